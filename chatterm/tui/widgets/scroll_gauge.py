"""The conversation's scroll bar, drawn from a handful of kept one-cell rows.

Why not Textual's scroll bar: while a reply streams, the conversation grows and scrolls at
every frame, so its bar is drawn again at every frame, through Textual's generic path (a Rich
renderable, then the widget's styles applied row by row). That was 3-4 ms of the costliest
frames (20-23 ms), the largest single piece of a frame after the compositor itself. Here a
row is one of four strips kept per colour scheme, and a frame picks them.

It looks like Textual's bar: the same theme colours (the view's ``scrollbar-*`` styles,
hover and grab variants), the thumb's ends drawn in eighths of a cell. A click above or below
the thumb pages up or down; dragging the thumb scrolls; letting go of it at the end follows
new content again.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.color import Color
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

# Textual's glyphs for a thumb's end, by eighths (the last: none).
EIGHTHS = ("▁", "▂", "▃", "▄", "▅", "▆", "▇", " ")


# Where a thumb is: (first row, eighths into it, the row after its last, eighths into that).
Span = tuple[int, int, int, int]


def thumb_span(height: int, virtual: float, window: float, position: float) -> Span | None:
    """Where the thumb is, in eighths of a row, as Textual's bar computes it; ``None`` when
    everything fits (no bar)."""
    if not (window and height and virtual) or virtual <= window or virtual == height:
        return None  # (the last as Textual's: a bar as tall as the content shows no thumb)
    thumb = max(1.0, window / (virtual / height))
    ratio = position / (virtual - window)
    top = (height - thumb) * ratio
    start = int(top * 8)
    end = start + ceil(thumb * 8)
    start_row, start_eighth = divmod(max(0, start), 8)
    end_row, end_eighth = divmod(max(0, end), 8)
    return start_row, start_eighth, end_row, end_eighth


def row_kinds(height: int, span: Span | None) -> list[tuple[str, str]]:
    """Each row's kind and glyph, top to bottom: ``track``, ``thumb``, or the thumb's ``top``
    or ``bottom`` end drawn in eighths (as Textual's ``ScrollBarRender.render_bar``)."""
    rows = [("track", " ")] * height
    if span is None:
        return rows
    start_row, start_eighth, end_row, end_eighth = span
    rows[start_row:end_row] = [("thumb", " ")] * (min(end_row, height) - min(start_row, height))
    if start_row < height and EIGHTHS[7 - start_eighth] != " ":
        rows[start_row] = ("top", EIGHTHS[7 - start_eighth])
    if end_row < height and EIGHTHS[7 - end_eighth] != " ":
        rows[end_row] = ("bottom", EIGHTHS[7 - end_eighth])
    return rows


def on_thumb(y: int, span: Span) -> int:
    """-1 above the thumb, 0 on it, 1 below it (a click there pages up, grabs, pages down).
    The row after the thumb's last belongs to it only when its end is drawn there."""
    start_row, _, end_row, end_eighth = span
    if y < start_row:
        return -1
    if y > end_row or (y == end_row and end_eighth == 0):
        return 1
    return 0


class ScrollGauge(Widget):
    """A one-column bar docked at the right of the scrolling widget it is mounted in."""

    ALLOW_SELECT = False
    DEFAULT_CSS = """
    ScrollGauge {
        dock: right;
        width: 1;
        height: 1fr;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._strips: dict[tuple[Any, ...], Strip] = {}
        self._hover = False
        self._grab: tuple[int, float] | None = None  # (screen row, scroll_y) at the grab

    @property
    def view(self) -> Widget:
        parent = self.parent
        assert isinstance(parent, Widget)
        return parent

    def _span(self) -> Span | None:
        view = self.view
        return thumb_span(self.size.height, view.virtual_size.height,
                          view.container_size.height, int(view.scroll_y * 8) / 8)

    def _colors(self) -> tuple[Color, Color]:
        """Track and thumb colour, as Textual's bar resolves them."""
        view = self.view
        styles = view.styles
        if self._grab is not None:
            back, bar = styles.scrollbar_background_active, styles.scrollbar_color_active
        elif self._hover:
            back, bar = styles.scrollbar_background_hover, styles.scrollbar_color_hover
        else:
            back, bar = styles.scrollbar_background, styles.scrollbar_color
        if back.a < 1:
            base, _ = view.background_colors
            back = base + back
        return back, back + bar

    def _strip(self, kind: str, glyph: str, back: Color, bar: Color) -> Strip:
        key = (kind, glyph, back, bar)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > 64:  # colours change with the theme and the pointer
                self._strips.clear()
            if kind == "track":
                style = Style(bgcolor=back.rich_color)
            elif kind == "thumb":
                style = Style(bgcolor=bar.rich_color)
            elif kind == "top":
                style = Style(color=bar.rich_color, bgcolor=back.rich_color)
            else:  # the bottom end: the glyph's lower part is track, drawn reversed
                style = Style(color=bar.rich_color, bgcolor=back.rich_color, reverse=True)
            strip = self._strips[key] = Strip([Segment(glyph, style)], 1)
        return strip

    def rows(self) -> list[Strip]:
        """Every row of the bar, top to bottom."""
        height = self.size.height
        span = self._span()
        if span is None:  # as Textual's bar, none at all: a track in the view's background
            _, background = self.view.background_colors
            return [self._strip("track", " ", background, background)] * height
        back, bar = self._colors()
        return [self._strip(kind, glyph, back, bar) for kind, glyph in row_kinds(height, span)]

    def render_lines(self, crop: Region) -> list[Strip]:
        # The kept strips as they are: no Rich renderable, no styles applied per row.
        rows = self.rows()[crop.y:crop.bottom]
        if crop.x or crop.width != 1:
            return [row.crop(crop.x, crop.right) for row in rows]
        return rows

    # --- the pointer --------------------------------------------------------------------

    def on_enter(self, event: events.Enter) -> None:
        self._hover = True
        self.refresh()

    def on_leave(self, event: events.Leave) -> None:
        self._hover = False
        self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        event.stop()
        span = self._span()
        if span is None:
            return
        where = on_thumb(event.y, span)
        if where < 0:
            self.view.scroll_page_up()
        elif where > 0:
            self.view.scroll_page_down()
        else:
            self.view.release_anchor()  # held, the view stops following a growing reply
            self._grab = (event.screen_y, self.view.scroll_y)
            self.capture_mouse()
            self.refresh()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._grab is None:
            return
        event.stop()
        view = self.view
        window = view.container_size.height
        if window:
            row, scroll_y = self._grab
            ratio = view.virtual_size.height / window
            view.scroll_to(y=scroll_y + (event.screen_y - row) * ratio, animate=False)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._grab is not None:
            self.release_mouse()  # then MouseRelease ends the grab
        event.stop()

    def on_mouse_release(self, event: events.MouseRelease) -> None:
        """The capture ended: let go here, or taken away (a dialog opened mid-drag)."""
        self._let_go()

    def on_hide(self, event: events.Hide) -> None:
        if self._grab is not None:
            self.release_mouse()
            self._let_go()

    def _let_go(self) -> None:
        if self._grab is None:
            return
        self._grab = None
        self.refresh()
        view = self.view
        if view.is_anchored and view.scroll_y >= view.max_scroll_y:
            view.anchor()  # let go at the end: follow new content again, as Textual's bar
