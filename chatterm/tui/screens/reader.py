"""The whole of one reply, full screen: the way to read a reply too long to show inline.

Why a screen of its own: inline, a reply shows at most ``MAX_INLINE_ROWS`` rows (Textual's
cost per layout grows with a widget's height). Here the reply is one ``ScrollView`` whose
height is only a number (its virtual size): drawing it costs the rows on screen whatever the
reply holds, and it draws from the same parts as the inline widget (rendered once per width,
on the render thread; chatterm.tui.widgets.markdown_render).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from chatterm.sanitize import safe_inline
from chatterm.tui.widgets.message_view import MessageView
from chatterm.tui.widgets.part_rows import Part, PartRows


class ReplyReader(ScrollView, can_focus=True):
    """A reply's rows, drawn from its parts as they scroll into view."""

    DEFAULT_CSS = """
    ReplyReader {
        height: 1fr;
        padding: 0 1;
    }
    """

    def __init__(self, view: MessageView) -> None:
        super().__init__()
        self.view = view
        # Twins of the reply's parts (its frozen ones, then the live segment's): the same
        # text with renderings of their own, at the reader's width.
        self._twins: dict[int, tuple[Part, Part]] = {}
        self.rows = PartRows("", self._changed, parts=self._snapshot())
        self.rows.alive = lambda: self.is_attached
        segments = view.segments
        if segments:
            self.rows.on_error = segments[0].rows.on_error

    def _snapshot(self) -> list[Part]:
        twins: dict[int, tuple[Part, Part]] = {}
        parts: list[Part] = []
        for segment in self.view.segments if self.view.is_attached else []:
            for part in segment.rows.parts:
                known = self._twins.get(id(part))
                twin = known[1] if known is not None and known[0] is part else part.twin()
                twins[id(part)] = (part, twin)
                parts.append(twin)
        self._twins = twins
        return parts

    def follow(self) -> None:
        """While the reply streams: take in what it added since (called a few times a second
        by the screen)."""
        parts = self._snapshot()
        if [id(part) for part in parts] != [id(part) for part in self.rows.parts]:
            self.rows.parts = parts
            self.rows.chars = sum(part.chars for part in parts)
            self.rows.stale = True
            self._sync_size()
            self.refresh()

    def _sync_size(self) -> None:
        width = self.scrollable_content_region.width
        if width > 0:
            self.rows.layout(width, self.app)
            size = Size(width, self.rows.height)
            if self.virtual_size != size:
                self.virtual_size = size

    def on_mount(self) -> None:
        self._sync_size()

    def on_resize(self, event: Resize) -> None:
        self._sync_size()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if width <= 0:
            return Strip.blank(0, base)
        self._sync_size()
        return self.rows.strip(y + round(self.scroll_offset.y), width, base)

    def _changed(self, start: int, change: int) -> None:
        if change:
            if start < self.scroll_offset.y:  # above the top row: what is read stays put
                self.scroll_to(y=self.scroll_y + change, animate=False, immediate=True)
            self._sync_size()
        self.refresh()


class ReaderScreen(Screen[None]):
    """Full screen: a title line and the reply; Esc or q goes back."""

    DEFAULT_CSS = """
    ReaderScreen > .reader-title {
        height: 1;
        color: $text-muted;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back", show=True),
    ]
    FOLLOW_S = 0.2  # how often a streaming reply's new text is taken in

    def __init__(self, view: MessageView) -> None:
        super().__init__()
        self.view = view

    def _title(self) -> Text:
        header = self.view.header_text().plain if self.view.is_attached else "reply"
        return Text(f"{safe_inline(header)} · Esc or q goes back", no_wrap=True,
                    overflow="ellipsis")

    def compose(self) -> ComposeResult:
        yield Static(self._title(), classes="reader-title", markup=False)
        yield ReplyReader(self.view)

    def on_mount(self) -> None:
        self.query_one(ReplyReader).focus()
        if self.view.live:
            self._following = self.set_interval(self.FOLLOW_S, self._follow)

    def _follow(self) -> None:
        self.query_one(ReplyReader).follow()
        self.query_one(".reader-title", Static).update(self._title())
        if not self.view.live:  # the reply ended: that was its last text
            self._following.stop()

    def action_close(self) -> None:
        if self.app.screen is self:
            self.app.pop_screen()
