"""The key hints row (chatterm.tui.widgets.key_footer): what it shows, what a click does.

Driven as the real app (``build_app`` over a real history on disk) where the app's own keys
matter; a two-widget host app checks what the real app never has (a disabled binding).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import test_tui
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from chatterm.backend import BackendConfig
from chatterm.config import Choice, Config
from chatterm.store import HistoryStore
from chatterm.tui.app import ChattermApp
from chatterm.tui.widgets.key_footer import KeyFooter

SIZE = (100, 30)


CHOICE = Choice("openai", BackendConfig(model="m", base_url="http://127.0.0.1:9"), {}, None, None)


def make_app(tmp_path: Path, config: Config | None = None) -> tuple[ChattermApp, HistoryStore]:
    return test_tui.make_app(tmp_path, CHOICE, config)


def footer_row(app: App[Any]) -> str:
    footer = app.query_one(KeyFooter)
    return "".join(segment.text for segment in footer.render_line(0))


def x_of(footer: KeyFooter, label: str) -> int:
    """The column of the hint whose key reads ``label``."""
    for start, _end, hint in footer._spans:
        if hint.label == label:
            return start + 1
    raise AssertionError(f"no hint {label!r} in {footer.hints!r}")


def test_hints_are_one_widget_and_follow_the_focus(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            footer = app.query_one(KeyFooter)
            # One row drawn by one widget: no widget per key (each would be one more node in
            # every layout and frame).
            assert list(footer.children) == []
            row = footer_row(app)
            assert row.startswith(" ⏎ send  esc stop  ^n new  ^f search  ^b sidebar  f1 help ")
            assert row.rstrip().endswith("▏^p commands") and len(row) == SIZE[0]
            app.sidebar.option_list.focus()  # the prompt's own keys are not active there
            await pilot.pause()
            assert "send" not in footer_row(app) and "^n new" in footer_row(app)
            app.prompt_input.focus()
            await pilot.pause()
            assert "⏎ send" in footer_row(app)
        store.close()

    asyncio.run(scenario())


def test_a_remapped_palette_key_stays_on_the_right(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = Config(path=tmp_path / "config.toml", keys={"command_palette": "ctrl+k"})
        app, store = make_app(tmp_path, config)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            row = footer_row(app)
            assert row.rstrip().endswith("▏^k commands") and "^p" not in row
        store.close()

    asyncio.run(scenario())


def test_a_click_on_a_hint_presses_its_key(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            footer = app.query_one(KeyFooter)
            assert app.sidebar.display
            await pilot.click(KeyFooter, offset=(x_of(footer, "^b"), 0))
            await pilot.pause()
            assert not app.sidebar.display  # ctrl+b: the sidebar hides
            await pilot.click(KeyFooter, offset=(x_of(footer, "f1"), 0))
            await pilot.pause()
            assert type(app.screen).__name__ == "HelpScreen"
        store.close()

    asyncio.run(scenario())


def test_a_narrow_footer_keeps_the_left_hints_and_drops_the_palette_key(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        async with app.run_test(size=(50, 20)) as pilot:
            await pilot.pause()
            row = footer_row(app)
            assert row.startswith(" ⏎ send  esc stop") and "commands" not in row
            assert len(row) <= 50  # cropped at the edge, never wrapped onto a second row
        store.close()

    asyncio.run(scenario())


class Host(App[None]):
    """A disabled binding next to an enabled one (the real app has no disabled keys)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+y", "count", "count", show=True, tooltip="Count one more"),
        Binding("ctrl+u", "locked", "locked", show=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.counted = 0
        self.bells = 0

    def compose(self) -> ComposeResult:
        yield Static("body")
        yield KeyFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if action == "locked" else True  # None: shown, disabled (dimmed)

    def action_count(self) -> None:
        self.counted += 1

    def action_locked(self) -> None:  # never runs: check_action disables it
        raise AssertionError("a disabled binding ran")

    def bell(self) -> None:
        self.bells += 1


def test_a_disabled_hint_is_dim_and_a_click_on_it_rings_the_bell() -> None:
    async def scenario() -> None:
        app = Host()
        async with app.run_test(size=(60, 5)) as pilot:
            await pilot.pause()
            footer = app.query_one(KeyFooter)
            assert [(h.label, h.enabled) for h in footer.hints] == [("^y", True), ("^u", False)]
            strip = footer.render_line(0)
            styles = {seg.text: seg.style for seg in strip if seg.text.strip()}
            assert styles[" ^u "] is not None and styles[" ^u "].dim
            assert styles[" ^y "] is not None and not styles[" ^y "].dim
            await pilot.click(KeyFooter, offset=(x_of(footer, "^y"), 0))
            await pilot.click(KeyFooter, offset=(x_of(footer, "^u"), 0))
            await pilot.pause()
            assert (app.counted, app.bells) == (1, 1)
            await pilot.hover(KeyFooter, offset=(x_of(footer, "^y"), 0))
            await pilot.pause()
            assert footer.tooltip == "Count one more"  # the hint's tooltip, as Textual's
            hovered = {seg.text: seg.style for seg in footer.render_line(0) if seg.text.strip()}
            assert hovered[" ^y "] != styles[" ^y "]  # the hint under the pointer stands out

    asyncio.run(scenario())


def test_the_prompt_has_the_focus_from_the_first_frame(tmp_path: Path) -> None:
    """The screen focuses the prompt itself: no focus on the sidebar's filter first (each
    focus change styles its widgets again during the start-up)."""
    from textual import events

    focused: set[str] = set()

    def hook(message: object) -> None:
        if isinstance(message, events.DescendantFocus):
            focused.add(type(message.widget).__name__)

    async def scenario() -> None:
        app, store = make_app(tmp_path)
        async with app.run_test(size=SIZE, message_hook=hook) as pilot:
            await pilot.pause()
            assert app.focused is app.prompt_input
        store.close()

    asyncio.run(scenario())
    assert focused == {"PromptInput"}
