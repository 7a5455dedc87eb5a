"""The conversation's scroll bar (chatterm.tui.widgets.scroll_gauge).

It replaces Textual's bar for speed, so it must look and act like it: the thumb's rows are
checked against Textual's own ``ScrollBarRender`` for any sizes and positions, and the real
app is driven with the mouse (page up and down, dragging, following the end again).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.color import Color as RichColor
from test_tui import make_app, seed, settle, wait_for
from test_tui_long import opened
from textual.scrollbar import ScrollBarRender
from textual.widgets import Static

from chatterm.backend import BackendConfig
from chatterm.config import Choice
from chatterm.tui.widgets.scroll_gauge import ScrollGauge, on_thumb, row_kinds, thumb_span

SIZE = (100, 30)
BACK, BAR = RichColor.parse("#111111"), RichColor.parse("#eeeeee")


CLICKS = {"scroll_up": -1, "grab": 0, "scroll_down": 1}


def textual_rows(
    height: int, virtual: int, window: int, position: float
) -> list[tuple[str, int | None]]:
    """Each row of Textual's bar: ``track``, ``thumb`` or the end glyph drawn, and what a
    click there does (-1 page up, 0 grab, 1 page down; None: no bar)."""
    bar = ScrollBarRender.render_bar(size=height, virtual_size=virtual, window_size=window,
                                     position=position, back_color=BACK, bar_color=BAR)
    rows = []
    for segment in bar.segments:
        style = segment.style
        assert style is not None
        click = style.meta.get("@mouse.down")
        kind = segment.text if segment.text.strip() else (
            "thumb" if style.reverse else "track")
        rows.append((kind, None if click is None else CLICKS[click]))
    return rows


def gauge_rows(
    height: int, virtual: int, window: int, position: float
) -> list[tuple[str, int | None]]:
    """The same from the gauge's own functions (what ScrollGauge.rows and its clicks use)."""
    span = thumb_span(height, virtual, window, position)
    return [
        (glyph if kind in ("top", "bottom") else kind,
         None if span is None else on_thumb(y, span))
        for y, (kind, glyph) in enumerate(row_kinds(height, span))
    ]


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


def test_the_row_under_a_thumb_that_ends_on_a_row_boundary_pages_down() -> None:
    span = (2, 0, 6, 0)  # rows 2-5 are the thumb, no partial end drawn on row 6
    assert [on_thumb(y, span) for y in range(8)] == [-1, -1, 0, 0, 0, 0, 1, 1]
    assert [on_thumb(y, (2, 0, 6, 3)) for y in (5, 6, 7)] == [0, 0, 1]  # its end on row 6


LONG = [(f"question {i}", f"answer {i} " + "words " * 400) for i in range(12)]


def test_the_conversation_draws_its_own_bar_and_the_mouse_drives_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path, "Long", LONG) as (app, pilot):
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
            await pilot.mouse_down(ScrollGauge, offset=(0, span[0]))
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
            await pilot.mouse_down(ScrollGauge, offset=(0, span[0]))
            await pilot.hover(ScrollGauge, offset=(0, gauge.size.height + 3))
            await pilot.mouse_up(ScrollGauge, offset=(0, gauge.size.height - 1))
            await pilot.pause()
            assert view.scroll_y == view.max_scroll_y
            before = view.max_scroll_y
            await view.mount(Static("more\n" * 30))
            await wait_for(lambda: view.max_scroll_y > before, pilot)
            await pilot.pause()
            assert view.scroll_y == view.max_scroll_y

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
            assert gauge._span() is None  # it fits: no bar, the view's background
            rows = gauge.rows()
            assert len(rows) == gauge.size.height and len(set(map(id, rows))) == 1
            (segment,) = list(rows[0])
            assert segment.style is not None and segment.style.bgcolor is not None
            assert segment.style.bgcolor.get_truecolor() == (
                view.background_colors[1].rich_color.get_truecolor())
            long = seed(store, "Long", LONG)
            await app.open_conversation(long)
            await settle(app, pilot)
            span = gauge._span()
            assert span is not None and span[0] > 0  # the thumb moved to show the end
            drawn = "".join(segment.text for row in gauge.rows() for segment in row)
            assert len(drawn) == gauge.size.height
        store.close()

    asyncio.run(scenario())


def test_a_dialog_opened_mid_drag_ends_the_grab(tmp_path: Path) -> None:
    """Textual takes the mouse capture away when a screen opens: the bar lets go of the thumb
    then, and moving the pointer over it afterwards scrolls nothing."""

    async def scenario() -> None:
        async with opened(tmp_path, "Long", LONG) as (app, pilot):
            view = app.view
            gauge = view.query_one(ScrollGauge)
            span = gauge._span()
            assert span is not None
            await pilot.mouse_down(ScrollGauge, offset=(0, span[0]))
            assert gauge._grab is not None
            await pilot.press("f1")  # the help screen: Textual releases the capture
            await wait_for(lambda: type(app.screen).__name__ == "HelpScreen", pilot)
            await pilot.pause()
            assert gauge._grab is None
            await pilot.press("escape")
            await wait_for(lambda: app.screen is view.screen, pilot)
            before = view.scroll_y
            await pilot.hover(ScrollGauge, offset=(0, 0))
            await pilot.pause()
            assert view.scroll_y == before

    asyncio.run(scenario())
