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
from chatterm.tui.widgets.frozen_markdown import FrozenMarkdown
from chatterm.tui.widgets.part_rows import PartRows


class ReplyReader(ScrollView, can_focus=True):
    """A reply's rows, drawn from its parts as they scroll into view."""

    DEFAULT_CSS = """
    ReplyReader {
        height: 1fr;
        padding: 0 1;
    }
    """

    def __init__(self, frozen: FrozenMarkdown) -> None:
        super().__init__()
        self.rows = PartRows("", self._changed)
        self.rows.parts = frozen.rows.parts  # the same parts: rendered once per width
        self.rows.alive = lambda: self.is_attached
        self.rows.on_error = frozen.rows.on_error

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

    def __init__(self, frozen: FrozenMarkdown, title: str) -> None:
        super().__init__()
        self.frozen = frozen
        self.title_text = title

    def compose(self) -> ComposeResult:
        label = Text(f"{safe_inline(self.title_text)} · Esc or q goes back", no_wrap=True,
                     overflow="ellipsis")
        yield Static(label, classes="reader-title", markup=False)
        yield ReplyReader(self.frozen)

    def on_mount(self) -> None:
        self.query_one(ReplyReader).focus()

    def action_close(self) -> None:
        if self.app.screen is self:
            self.app.pop_screen()
