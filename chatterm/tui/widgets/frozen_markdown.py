"""A finished reply (or the finished part of a streaming one) as one widget.

Why not Textual's ``Markdown`` widget: it mounts one widget per block (a table or a nested list
is dozens), and Textual lays out every widget of the screen on each frame: a conversation of
long replies cost hundreds of milliseconds per frame, and opening one 80 KB reply took 11 s.
This is one widget per reply, on Textual's line API: a row becomes a Strip only when Textual
draws it, from :class:`~chatterm.tui.widgets.part_rows.PartRows` (rendered where on screen).

Why a cap on its height: Textual's cost per layout grows with a widget's height (its spatial
map and dirty-line sets), so a reply taller than ``MAX_INLINE_ROWS`` shows its last rows under
a one-line notice, and the reader (chatterm.tui.screens.reader) shows it whole.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from chatterm.tui.widgets.part_rows import PartRows, Shown

# A reply taller than this many rows shows its last rows inline, under one line that says
# how many came before and which key opens it whole (the reader): Textual costs time in
# proportion to a widget's height on every layout (its spatial map and dirty-line sets), so a
# 400,000-row widget would make every frame of the app slow.
MAX_INLINE_ROWS = 4_000


class FrozenMarkdown(Widget):
    """Markdown that no longer changes, as one widget (see the module docstring).

    It uses Textual's line API: a line becomes a Strip only when Textual asks to draw it.
    A reply of more than ``MAX_INLINE_ROWS`` rows shows its end, below a notice line.
    """

    DEFAULT_CSS = """
    FrozenMarkdown {
        height: auto;
    }
    """

    # The notice above a cut reply; ``{rows}`` and ``{key}`` are filled in.
    CUT_NOTICE: ClassVar[str] = "⋯ {rows:,} earlier rows not shown here · {key} opens the whole reply"

    class NoticeClicked(Message):
        """The notice above a cut reply was clicked: the owner opens the reader."""

    def __init__(
        self, source: str, *, classes: str | None = None, parts: list[Any] | None = None
    ) -> None:
        super().__init__(classes=classes)
        self.rows = PartRows(source, self._changed, parts)
        self.rows.alive = lambda: self.is_attached
        self.rows.on_error = self._report
        self.rows.wait_for = self.input_on_screen
        self.notice_key = "o"  # set by the message view from the key table
        self._line_base: Style | None = None  # rich_style while render_lines draws

    @property
    def source(self) -> str:
        return self.rows.source

    @property
    def _key(self) -> tuple[int, str] | None:
        return self.rows.key

    def extend_parts(
        self, sources: list[str], shown: Shown | None = None, parts: list[Any] | None = None
    ) -> None:
        """Append finished segments (``parts``, made already, first): nothing is rendered
        until it is drawn (the first shows ``shown``, the live segment's last rendering,
        until then)."""
        old_cut = self.cut_rows
        if self.rows.extend(sources, shown, parts):
            if old_cut or self.rows.height > MAX_INLINE_ROWS:  # a capped reply grew
                self._keep_read_rows(old_cut, None)
            self.refresh(layout=True)

    def replace(self, source: str, keep_shown: bool = True) -> None:
        """Show ``source`` instead (``keep_shown``: the old rendering until it is drawn)."""
        self.rows.replace(source, keep_shown)
        self.refresh(layout=True)

    @property
    def cut_rows(self) -> int:
        """How many rows of the reply are not shown inline (above the notice)."""
        return max(0, self.rows.height - MAX_INLINE_ROWS)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self.rows.layout(width, self.app)
        cut = self.cut_rows
        return self.rows.height - cut + (1 if cut else 0)

    def render_lines(self, crop: Region) -> list[Strip]:
        # The widget's colors are worked out once per drawing, not once per row: Textual's
        # ``rich_style`` walks every ancestor's styles (a third of a millisecond a call, a few
        # milliseconds of each frame of a streaming reply).
        self._line_base = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._line_base = None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        # The widget's colors under the Markdown's own styles.
        base = self._line_base if self._line_base is not None else self.rich_style
        if width <= 0:
            return Strip.blank(width, base)
        self.rows.layout(width, self.app)
        cut = self.cut_rows
        if cut:
            if y == 0:
                notice = self.CUT_NOTICE.format(rows=cut, key=self.notice_key)
                return Strip([Segment(notice, Style(dim=True, italic=True))]).adjust_cell_length(
                    width, base).apply_style(base)
            y += cut - 1
        return self.rows.strip(y, width, base)

    def input_on_screen(self) -> Awaitable[None] | None:
        """The app's wait for typed input to be drawn, if input is on its way (see
        PartRows.wait_for; the streaming reply's batches ask it too)."""
        wait = getattr(self.app, "input_on_screen", None) if self.is_attached else None
        return wait() if wait is not None else None

    def on_unmount(self) -> None:
        self.rows.cancel_waiting()

    def _report(self, error: BaseException) -> None:
        report = getattr(self.app, "report_unexpected", None) if self.is_attached else None
        if report is not None:
            report(error, "drawing a reply")

    def on_click(self, event: Click) -> None:
        if self.cut_rows and event.y == 0:
            event.stop()
            self.post_message(self.NoticeClicked())

    def _changed(self, start: int, change: int) -> None:
        """A part's rendering came: lay out again if its height changed, keeping what is on
        screen where it is when the part begins above it."""
        if not change:
            self.refresh()
            return
        old_cut = max(0, self.rows.height - change - MAX_INLINE_ROWS)
        if old_cut or self.cut_rows:
            self._keep_read_rows(old_cut, start)
        else:
            scroller = self._scroller()
            if (
                scroller is not None
                and scroller.scroll_y < scroller.max_scroll_y
                and self.region.y + start < scroller.region.y
            ):
                scroller.scroll_to(y=scroller.scroll_y + change, animate=False, immediate=True)
        self.refresh(layout=True)

    def _keep_read_rows(self, old_cut: int, boundary: int | None) -> None:
        """The reply grew past MAX_INLINE_ROWS: its inline rows now begin ``moved`` rows
        later (earlier, when a part's rendering came back shorter than its estimate), so the
        rows before ``boundary`` (a row of the reply; None: all of them) moved by that much.
        A user reading them (not following the end) keeps them where they are, until they
        leave the inline rows."""
        if self.rows.stale and self.size.width > 0:
            self.rows.layout(self.size.width, self.app)
        moved = self.cut_rows - old_cut
        scroller = self._scroller()
        if not moved or scroller is None or scroller.scroll_y >= scroller.max_scroll_y:
            return
        top = scroller.region.y - self.region.y  # this widget's row at the viewport's top
        if top < 1 or (boundary is not None and top - 1 + old_cut >= boundary):
            return  # at the notice, above the reply, or reading rows that did not move
        scroller.scroll_to(y=scroller.scroll_y - moved, animate=False, immediate=True)

    def _scroller(self) -> Widget | None:
        """The container that scrolls this reply (the conversation view): the first ancestor
        that scrolls vertically (every container is ``is_scrollable`` in Textual's sense)."""
        for ancestor in self.ancestors:
            if isinstance(ancestor, Widget) and ancestor.styles.overflow_y in ("auto", "scroll"):
                return ancestor
        return None

    def rendered_lines(self, width: int) -> list[str]:
        """Every row as text at ``width``, all parts rendered now (tests; never on screen)."""
        rows = self.rows.text_rows(width, self.app)
        self.refresh(layout=True)
        return rows
