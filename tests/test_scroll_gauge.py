"""The conversation's scroll bar (chatterm.tui.widgets.scroll_gauge).

It replaces Textual's bar for speed, so it must look and act like it: the thumb's rows are
checked against Textual's own ``ScrollBarRender`` for any sizes and positions, and the real
app is driven with the mouse (page up and down, dragging, following the end again).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.color import Color as RichColor
from test_tui import make_app, seed, settle, wait_for
from textual.scrollbar import ScrollBarRender
from textual.widgets import Static

from chatterm.backend import BackendConfig
from chatterm.config import Choice
from chatterm.tui.widgets.scroll_gauge import EIGHTHS, ScrollGauge, thumb_span

SIZE = (100, 30)
BACK, BAR = RichColor.parse("#111111"), RichColor.parse("#eeeeee")


def textual_rows(height: int, virtual: int, window: int, position: float) -> list[str]:
    """Each row of Textual's bar as ``track``, ``thumb`` or the end glyph drawn."""
    bar = ScrollBarRender.render_bar(size=height, virtual_size=virtual, window_size=window,
                                     position=position, back_color=BACK, bar_color=BAR)
    rows = []
    for segment in bar.segments:
        style = segment.style
        assert style is not None
        if segment.text.strip():
            rows.append(segment.text)
        else:
            rows.append("thumb" if style.reverse else "track")
    return rows


def gauge_rows(height: int, virtual: int, window: int, position: float) -> list[str]:
    rows = ["track"] * height
    span = thumb_span(height, virtual, window, position)
    if span is None:
        return rows
    start_row, start_eighth, end_row, end_eighth = span
    for row in range(start_row, min(end_row, height)):
        rows[row] = "thumb"
    if start_row < height and EIGHTHS[7 - start_eighth] != " ":
        rows[start_row] = EIGHTHS[7 - start_eighth]
    if end_row < height and EIGHTHS[7 - end_eighth] != " ":
        rows[end_row] = EIGHTHS[7 - end_eighth]
    return rows


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(1, 60),
    window=st.integers(1, 60),
    extra=st.integers(1, 5_000),
    eighths=st.integers(0, 40_000),
)
def test_the_thumb_sits_where_textuals_bar_draws_it(
    height: int, window: int, extra: int, eighths: int
) -> None:
    virtual = window + extra
    position = min(eighths / 8, virtual - window)
    assert gauge_rows(height, virtual, window, position) == textual_rows(
        height, virtual, window, position)


def test_no_thumb_when_everything_fits() -> None:
    assert thumb_span(20, 20, 20, 0) is None and thumb_span(20, 10, 20, 0) is None


def long_conversation(store: Any) -> str:
    return seed(store, "Long", [(f"question {i}", f"answer {i} " + "words " * 400)
                                for i in range(12)])


def test_the_conversation_draws_its_own_bar_and_the_mouse_drives_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        conv = long_conversation(store)
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            await settle(app, pilot)
            view = app.view
            gauge = view.query_one(ScrollGauge)
            assert view.styles.scrollbar_size_vertical == 0  # Textual's bar takes no column
            assert gauge.region.right == view.region.right and gauge.size.width == 1
            assert view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y  # at its end
            span = gauge._span()
            assert span is not None and span[2] >= gauge.size.height - 1  # thumb at the bottom
            # A click above the thumb pages up and stops following the end.
            await pilot.click(ScrollGauge, offset=(0, 0))
            await wait_for(lambda: view.scroll_y < view.max_scroll_y, pilot)
            await wait_for(lambda: not app.animator.is_being_animated(view, "scroll_y"), pilot)
            paged = view.scroll_y
            # Dragging the thumb to the top scrolls to the top.
            span = gauge._span()
            assert span is not None
            await pilot.mouse_down(ScrollGauge, offset=(0, span[0] + 1))
            await pilot.hover(ScrollGauge, offset=(0, 0))
            await pilot.hover(ScrollGauge, offset=(0, -gauge.region.y))  # the top row
            await pilot.mouse_up(ScrollGauge, offset=(0, 0))
            await pilot.pause()
            assert view.scroll_y == 0 < paged
            # A click below the thumb pages down.
            await pilot.click(ScrollGauge, offset=(0, gauge.size.height - 1))
            await wait_for(lambda: view.scroll_y > 0, pilot)
            await wait_for(lambda: not app.animator.is_being_animated(view, "scroll_y"), pilot)
            # Dragged back to the end, the view follows new content again.
            span = gauge._span()
            assert span is not None
            await pilot.mouse_down(ScrollGauge, offset=(0, span[0] + 1))
            await pilot.hover(ScrollGauge, offset=(0, gauge.size.height + 3))
            await pilot.mouse_up(ScrollGauge, offset=(0, gauge.size.height - 1))
            await pilot.pause()
            assert view.scroll_y == view.max_scroll_y
            before = view.max_scroll_y
            await view.mount(Static("more\n" * 30))
            await wait_for(lambda: view.max_scroll_y > before, pilot)
            await pilot.pause()
            assert view.scroll_y == view.max_scroll_y
        store.close()

    asyncio.run(scenario())


def test_the_bar_follows_the_content_as_it_grows(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        conv = seed(store, "Short", [("question", "answer")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            await settle(app, pilot)
            view = app.view
            gauge = view.query_one(ScrollGauge)
            assert gauge._span() is None  # it fits: no thumb, only the track
            rows = gauge.rows()
            assert len(rows) == gauge.size.height and len(set(map(id, rows))) == 1
            long = long_conversation(store)
            await app.open_conversation(long)
            await settle(app, pilot)
            span = gauge._span()
            assert span is not None and span[0] > 0  # the thumb moved to show the end
            drawn = "".join(segment.text for row in gauge.rows() for segment in row)
            assert len(drawn) == gauge.size.height
        store.close()

    asyncio.run(scenario())
