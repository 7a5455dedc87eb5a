"""Containers that draw one of their own rows and repeat it (chatterm.tui.widgets.
repeated_rows): in the real app, what they draw is exactly what Textual would have drawn,
focused or not, and a container whose rows differ (a top border) is drawn row by row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_part_strips import runs
from test_tui import make_app, run, seed
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region
from textual.strip import Strip

from chatterm.backend import BackendConfig
from chatterm.config import Choice
from chatterm.tui.widgets.conversation_view import ConversationView
from chatterm.tui.widgets.repeated_rows import rows_alike

SIZE = (100, 30)
CHOICE = Choice("openai", BackendConfig(), {}, None, None)


def drawn(strips: list[Strip]) -> list[list[tuple[str, Any]]]:
    """Each row as its runs of text in one style (how Textual cut it into segments aside)."""
    return [runs(strip) for strip in strips]


def as_textual_draws(widget: Any, textual_class: type) -> tuple[list[Any], list[Any]]:
    """The widget's rows as the mixin draws them and as its Textual class alone does."""
    region = Region(0, 0, widget.size.width, widget.size.height)
    widget.refresh()
    ours = drawn(widget.render_lines(region))
    widget.refresh()
    theirs = drawn(textual_class.render_lines(widget, region))
    return ours, theirs


def test_repeated_rows_are_the_rows_textual_draws(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, CHOICE)
        conv = seed(store, "T", [("question", "an answer\n\nin two paragraphs")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            await pilot.pause()
            view = app.query_one(ConversationView)
            message = view.message_views()[-1]
            assert view.size.height > 1 and message.size.height > 1
            for widget, textual_class in ((view, VerticalScroll), (message, Vertical)):
                assert rows_alike(widget)
                ours, theirs = as_textual_draws(widget, textual_class)
                assert ours == theirs
            message.focus()  # a left border, in the theme's primary color
            await pilot.pause()
            ours, theirs = as_textual_draws(message, Vertical)
            assert ours == theirs
            assert ours[0] != drawn(Vertical.render_lines(view, Region(0, 0, 1, 1)))[0]
            # A top border: the rows differ, so each is drawn.
            view.styles.border_top = ("solid", "red")
            await pilot.pause()
            assert not rows_alike(view)
            ours, theirs = as_textual_draws(view, VerticalScroll)
            assert ours == theirs
            assert ours[0] != ours[1]

    run(scenario)
