"""A reply as rows: parts rendered where they are on screen, estimated elsewhere.

Why: rendering is the cost (about 13 µs a character with code blocks), and a 5 MB reply is a
hundred screens of it. A reply's text is kept in parts cut where a cut cannot change the
rendering (chatterm.markdown_blocks), each rendered by Rich (chatterm.tui.widgets.
markdown_render) and kept per width and theme. A part is rendered when a row of it is first
asked for; until then its height is an estimate from its length and newlines. A small part is
rendered at once; a longer one (or any part of a streaming reply) on the render thread
(chatterm.tui.widgets.render_queue), shown meanwhile as its previous rendering or its plain
text, so the event loop never waits for Rich. A part too long to lay out as Markdown at all (a
50 MB line, a code block with no place to cut) is shown as plain text folded at the width
(chatterm.tui.widgets.plain_rows). Opening, resizing and streaming therefore cost what the
screen shows, not what the reply holds. :class:`PartRows` is not a widget: the inline reply
(chatterm.tui.widgets.frozen_markdown) and the full-screen reader (chatterm.tui.screens.reader)
both draw from it.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.app import App
from textual.strip import Strip

from chatterm.markdown_blocks import FROZEN_CHARS, split_segments
from chatterm.tui.widgets import markdown_render
from chatterm.tui.widgets.markdown_render import ConsoleSpec, Line, MarkdownColors
from chatterm.tui.widgets.plain_rows import PlainRows
from chatterm.tui.widgets.render_queue import QUEUE, Skipped

# A part up to this many characters is rendered when first drawn (a few milliseconds); a
# longer one on the render thread.
SYNC_CHARS = 1_500
# How much of the event loop small parts may take to render when drawn, per window of time:
# a screen of short parts (a reply just finished, a conversation scrolled through) drew them
# all in one frame, 20-25 ms of Rich on top of the frame itself. Past the allowance a part is
# rendered on the render thread like a long one, shown as plain rows until then. A part that
# has an earlier rendering to show meanwhile (a streamed reply's last segment, once it ends)
# is always rendered there: drawn in place it only cost the frame time.
SYNC_ALLOWANCE_S = 0.016  # one part of FROZEN_CHARS by the estimate below
SYNC_WINDOW_S = 0.05
# What Rich takes per character of Markdown here, code blocks included (see render_queue):
# the estimate must not be below what a part costs, or one part overruns the allowance (at
# 8 µs the frame that ends a fast reply spent 25 ms on one code-heavy part: the longest
# stall of bench/bench_tui.py's stream).
SYNC_COST_PER_CHAR_S = 13e-6


class SyncBudget:
    """The event loop's allowance for rendering small parts in place (one per process: the
    loop is one)."""

    def __init__(self, allowance: float = SYNC_ALLOWANCE_S, window: float = SYNC_WINDOW_S):
        self.allowance = allowance
        self.window = window
        self._start = 0.0
        self._spent = 0.0

    def allows(self, chars: int) -> bool:
        """Whether a part of ``chars`` characters fits what is left of this window."""
        now = time.perf_counter()
        if now - self._start >= self.window:
            self._start, self._spent = now, 0.0
        return self._spent + chars * SYNC_COST_PER_CHAR_S <= self.allowance

    def spend(self, seconds: float) -> None:
        self._spent += seconds


SYNC_BUDGET = SyncBudget()
# A part longer than this is shown as plain text folded at the width: Rich's Markdown of a
# part this long would take seconds, and its rendering hundreds of megabytes.
PLAIN_CHARS = 200_000
# How many drawn rows keep their finished strips (a few screens): a streaming reply draws
# the same rows again at every frame, one batch higher up the screen each time.
STRIP_CACHE_ROWS = 1_000


# A rendering at a width: (width, lines, styles).
Shown = tuple[int, list[Line], list["Style | None"]]


class Part:
    """One piece of the reply and what is known of it at the current width and theme."""

    __slots__ = (
        "_more", "_source", "asked", "chars", "estimate", "key", "lines", "newlines",
        "placeholder", "plain", "previous", "styles",
    )

    def __init__(self, source: str) -> None:
        self._source = source
        self._more: list[str] = []  # text added since (a growing plain part), not joined yet
        self.chars = len(source)
        # Counted once: a new width estimates every part not rendered at it (4,000 parts in a
        # 5 MB reply), and counting each part's lines again made that 13 ms of each resize.
        self.newlines = source.count("\n")
        self.plain = PlainRows(source) if len(source) > PLAIN_CHARS else None
        self.placeholder: PlainRows | None = None  # its plain rows, while it renders
        self.key: tuple[int, str] | None = None  # what ``lines`` were rendered for
        self.lines: list[Line] = []
        self.styles: list[Style | None] = []
        self.asked: tuple[int, str] | None = None  # a background render requested for
        self.estimate = (0, 0)  # (width, rows) of the last estimate
        # An earlier rendering of (nearly) this text: the live segment's previous batch,
        # shown until this one's rendering comes back, so a streaming reply never flickers.
        self.previous: Shown | None = None

    @property
    def source(self) -> str:
        if self._more:  # joined when asked for (a freeze), not once per batch
            self._source = "".join([self._source, *self._more])
            self._more = []
        return self._source

    def grow(self, text: str) -> None:
        """A plain part's text gets ``text`` at its end (see PartRows.append_plain)."""
        assert self.plain is not None
        self._more.append(text)
        self.chars += len(text)
        self.newlines += text.count("\n")
        self.plain.append(text)

    def twin(self) -> Part:
        """The same text with state of its own (the reader draws at its own width, so it must
        not share renderings, or heights, with the inline reply); the folded plain rows are
        shared (they refold per width)."""
        twin = Part.__new__(Part)
        twin._source, twin._more, twin.chars = self.source, [], self.chars
        twin.newlines = self.newlines
        twin.plain, twin.placeholder = self.plain, None
        twin.key, twin.lines, twin.styles = self.key, self.lines, self.styles
        twin.asked, twin.estimate, twin.previous = None, self.estimate, self.previous
        return twin

    def height(self, key: tuple[int, str]) -> int:
        if self.plain is not None:
            return self.plain.count(key[0])
        if self.key == key:
            return len(self.lines)
        if self.previous is not None and self.previous[0] == key[0]:
            return len(self.previous[1])
        width, rows = self.estimate
        if width != key[0]:
            width = key[0]
            # Before it is rendered: its lines, plus the folds of long ones.
            rows = self.newlines + 1 + self.chars // max(1, width)
            self.estimate = (width, rows)
        return rows


# What a part-rows owner does when a part's rendering arrives: (part's first row, change in
# height); the owner lays itself out again and keeps what the user reads where it is.
ChangeCallback = Callable[[int, int], None]


class PartRows:
    """A reply's parts as rows at a width and theme: the layout both the inline widget and
    the full-screen reader draw from (see the module docstring). Not a widget."""

    def __init__(
        self, source: str, on_change: ChangeCallback, parts: list[Part] | None = None
    ) -> None:
        # ``parts``: ``prepare(source)``, already made on another thread (a long reply).
        self.parts: list[Part] = parts if parts is not None else prepare(source)
        self.chars = len(source) if parts is None else sum(p.chars for p in parts)
        self.on_change = on_change
        self.key: tuple[int, str] | None = None  # the width and theme of the last layout
        self.colors: MarkdownColors | None = None
        self.spec: ConsoleSpec | None = None
        self.starts: list[int] = []  # the first row of each part (after its separator)
        self.height = 0
        self.stale = True  # starts must be computed again
        self.alive: Callable[[], bool] = lambda: True
        self.on_error: Callable[[BaseException], None] = lambda error: None
        # Render every part on the render thread, however small (a streaming reply: the
        # event loop only ever draws finished renderings, so typing stays responsive).
        self.background = False
        # What a rendering that comes back waits for before it is shown: None, or typed
        # input still on its way to the screen (the app's ``input_on_screen``). A rendering
        # changes rows, often every row on screen; the key then waits for that frame too.
        self.wait_for: Callable[[], Awaitable[None] | None] = lambda: None
        self._later: set[asyncio.Task[None]] = set()  # renderings waiting for it
        # Rows drawn lately, as finished strips, by (part, row): each holds the rendering it
        # was made from, and is used only while that is still the part's rendering. For the
        # ``base`` style below; another base (focus, theme) or width starts afresh.
        self._strips: OrderedDict[tuple[Part, int], tuple[object, Strip]] = OrderedDict()
        self._strips_for: tuple[int, Style] | None = None

    @property
    def source(self) -> str:
        return "".join(part.source for part in self.parts)

    def _plain_part(self) -> Part | None:
        """The one part of a reply too long for Markdown with no safe cut, if it is that."""
        if len(self.parts) == 1 and self.parts[0].plain is not None:
            return self.parts[0]
        return None

    def append_plain(self, text: str) -> bool:
        """Add ``text`` to the end of a reply that is one part too long for Markdown (a live
        segment with no safe cut past PLAIN_CHARS: a huge code block or line), costing only
        ``text``; False (nothing done) for any other reply. Why: drawing such a segment
        again whole per batch made a 20 MB block cost 0.14 s per batch, growing with it."""
        part = self._plain_part()
        if part is None:
            return False
        if text:
            part.grow(text)
            self.chars += len(text)
            self.stale = True
        return True

    def take_plain(self) -> list[Part] | None:
        """This reply's one plain part, handed over to another (a live segment's text joining
        the frozen rendering), so it is not cut and folded again; None for any other reply."""
        part = self._plain_part()
        if part is None:
            return None
        self.parts, self.chars, self.stale = [], 0, True
        return [part]

    def extend(
        self, sources: list[str], shown: Shown | None = None, parts: list[Part] | None = None
    ) -> bool:
        """Append parts (``parts``, already made, before those of ``sources``); the first
        shows ``shown`` until it is rendered (see Part.previous)."""
        added = [*(parts or ()), *(part for source in sources for part in prepare(source))]
        if added and shown is not None:
            added[0].previous = shown
        self.chars += sum(part.chars for part in added)
        key = self.key
        if not self.stale and key is not None and self.chars > SYNC_CHARS:
            # Appended at the end (a streaming reply): only the new parts' rows are new.
            for part in added:
                row = self.height + (1 if self.parts else 0)
                self.starts.append(row)
                self.parts.append(part)
                self.height = row + part.height(key)
        else:
            self.parts.extend(added)
            self.stale = self.stale or bool(added)
        return bool(added)

    def replace(self, source: str, keep_shown: bool = True) -> None:
        """The text is now ``source``: what was shown stays until the new text is drawn
        (unless ``keep_shown`` is false: the text went elsewhere)."""
        shown = self.shown() if keep_shown else None
        self.parts = prepare(source)
        self.chars = len(source)
        if self.parts and shown is not None:
            self.parts[0].previous = shown
        self.stale = True

    def shown(self) -> Shown | None:
        """The last rendering of the first part (or what it still shows), if any."""
        if not self.parts:
            return None
        first = self.parts[0]
        if first.key is not None:
            return (first.key[0], first.lines, first.styles)
        return first.previous

    def layout(self, width: int, app: App[object]) -> tuple[int, str]:
        """Rows at ``width`` in the app's theme: every part's first row and the total."""
        key = (width, app.theme)
        if key != self.key:
            self.key = key
            self.colors = MarkdownColors.from_app(app)
            self.spec = ConsoleSpec.of(app.console)
            self.stale = True
        if self.stale:
            if self.chars <= SYNC_CHARS and not self.background:
                # A short reply is rendered whole here: its height is exact from the first
                # layout (nothing moves when it is first drawn).
                for part in self.parts:
                    if part.key != key and part.plain is None:
                        self._store(part, key, self._render(part.source, width))
            starts: list[int] = []
            append = starts.append
            row = -1
            for part in self.parts:
                row += 1  # the blank line Markdown puts between two blocks
                append(row)
                row += part.height(key)
            self.starts, self.height, self.stale = starts, max(row, 0), False
        return key

    def _args(self) -> tuple[MarkdownColors, ConsoleSpec]:
        assert self.colors is not None and self.spec is not None
        return self.colors, self.spec

    def _render(self, source: str, width: int) -> tuple[list[Line], list[Style | None]]:
        """Rich's rendering of ``source`` now, on this thread, in the last layout's theme."""
        return markdown_render.render_part(source, width, *self._args())

    def strip(self, y: int, width: int, base: Style) -> Strip:
        """Row ``y`` (after :meth:`layout` for ``width``); a part not rendered yet is
        rendered now when small, else on the render thread."""
        key = self.key
        assert key is not None and key[0] == width
        index = bisect_right(self.starts, y) - 1
        if index < 0 or y >= self.height:
            return Strip.blank(width, base)
        part = self.parts[index]
        row = y - self.starts[index]
        if row >= part.height(key):
            return Strip.blank(width, base)  # the separator after it
        if part.plain is not None:
            return _plain_strip(part.plain.row(width, row), width, base)
        lines, styles = part.lines, part.styles
        if part.key != key:
            shown = part.previous is not None and part.previous[0] == width
            if (
                part.chars <= SYNC_CHARS and not self.background and not shown
                and SYNC_BUDGET.allows(part.chars)
            ):
                started = time.perf_counter()
                self._take(index, key, self._render(part.source, width))
                SYNC_BUDGET.spend(time.perf_counter() - started)
                lines, styles = part.lines, part.styles
            else:
                self._ask(part, key)
                if shown:
                    assert part.previous is not None
                    _, lines, styles = part.previous
                else:
                    if part.placeholder is None:
                        part.placeholder = PlainRows(part.source)
                    return _plain_strip(part.placeholder.row(width, row), width, base)
        if row >= len(lines):
            return Strip.blank(width, base)
        return self._rendered_strip(part, row, lines, styles, width, base)

    def _rendered_strip(
        self, part: Part, row: int, lines: list[Line], styles: list[Style | None], width: int,
        base: Style,
    ) -> Strip:
        """Row ``row`` of a rendering (``lines``) as a strip, made once while it is drawn."""
        strips = self._strips
        if self._strips_for != (width, base):
            strips.clear()
            self._strips_for = (width, base)
        cached = strips.get((part, row))
        if cached is not None and cached[0] is lines:
            strips.move_to_end((part, row))
            return cached[1]
        strip = Strip([Segment(text, styles[style]) for text, style in lines[row]])
        strip = strip.adjust_cell_length(width, base).apply_style(base)
        strips[(part, row)] = (lines, strip)
        if len(strips) > STRIP_CACHE_ROWS:
            strips.popitem(last=False)
        return strip

    def _store(
        self, part: Part, key: tuple[int, str],
        rendered: tuple[list[Line], list[Style | None]],
    ) -> int:
        before = part.height(key)
        part.lines, part.styles = rendered
        part.key, part.placeholder, part.previous = key, None, None
        return len(part.lines) - before

    def _take(
        self, index: int, key: tuple[int, str],
        rendered: tuple[list[Line], list[Style | None]],
    ) -> None:
        starts = self.starts
        laid_out = not self.stale and index < len(starts)
        change = self._store(self.parts[index], key, rendered)
        if laid_out:
            # Against the height its rows were laid out with (what ``starts`` hold), not
            # what the part said just before.
            end = starts[index + 1] - 1 if index + 1 < len(starts) else self.height
            change = len(self.parts[index].lines) - (end - starts[index])
            if change:  # only the rows after this part move: shift them, no full layout
                for later in range(index + 1, len(starts)):
                    starts[later] += change
                self.height += change
        self.on_change(self.starts[index] if index < len(self.starts) else 0, change)

    def _ask(self, part: Part, key: tuple[int, str]) -> None:
        """Have the render thread render ``part`` for ``key`` (once per key)."""
        if part.asked == key:
            return
        part.asked = key
        source, width = part.source, key[0]
        colors, spec = self._args()

        def wanted() -> bool:  # read on the render thread: plain attribute reads
            return self.key == key and part.asked == key and self.alive()

        def done(rendered: Any, error: BaseException | None) -> asyncio.Future[None] | None:
            if error is None and self.alive() and self.key == key:
                waiting = self.wait_for()
                if waiting is not None:  # typed input first (see ``wait_for``)
                    task = asyncio.ensure_future(self._take_later(waiting, part, key, rendered))
                    self._later.add(task)
                    task.add_done_callback(self._later.discard)
                    return task  # the queue counts it as pending until it is shown
            if part.asked == key:
                part.asked = None  # asked again if it is drawn at this key again
            if isinstance(error, Skipped):
                return None
            if error is not None:
                # A rendering bug: the part stays on screen as its plain text, and the owner
                # reports it (once per part); the reply itself is untouched in the history.
                part.plain = PlainRows(part.source)
                self.stale = True
                self.on_error(error)
                self.on_change(0, 1)
                return None
            if self.alive() and self.key == key and part in self.parts:
                self._take(self.parts.index(part), key, rendered)
            return None

        QUEUE.submit(lambda: markdown_render.render_part(source, width, colors, spec), done, wanted)

    async def _take_later(
        self, waiting: Awaitable[None], part: Part, key: tuple[int, str],
        rendered: tuple[list[Line], list[Style | None]],
    ) -> None:
        """A rendering that came back while typed input was on its way: shown once the input
        is (still asked for: the part is not asked again meanwhile)."""
        try:
            await waiting
        finally:
            if part.asked == key:
                part.asked = None  # asked again if it is drawn at this key again
        if self.alive() and self.key == key and part in self.parts and part.key != key:
            self._take(self.parts.index(part), key, rendered)

    def cancel_waiting(self) -> None:
        """The owner went away: drop the renderings still waiting (see ``wait_for``)."""
        for task in list(self._later):
            task.cancel()

    def text_rows(self, width: int, app: App[object]) -> list[str]:
        """Every row as text at ``width``, all parts rendered now (tests; never on screen)."""
        key = self.layout(width, app)
        rows: list[str] = []
        for index, part in enumerate(self.parts):
            if index:
                rows.append("")
            if part.plain is not None:
                rows.extend(part.plain.row(width, y) for y in range(part.plain.count(width)))
                continue
            if part.key != key and self._store(part, key, self._render(part.source, width)):
                self.stale = True
            rows.extend("".join(text for text, _ in line) for line in part.lines)
        return rows


def _plain_strip(text: str, width: int, base: Style) -> Strip:
    """A row of plain text in ``base``, padded to ``width`` (built as one strip: this is drawn
    for every row of a part still rendering, at every frame)."""
    cells = cell_len(text)
    if cells > width:
        return Strip([Segment(text)]).adjust_cell_length(width, base).apply_style(base)
    if cells == width:
        return Strip([Segment(text, base)], width)
    return Strip([Segment(text, base), Segment(" " * (width - cells), base)], width)


def prepare(source: str) -> list[Part]:
    """``source`` cut into parts (pure Python, any thread: the TUI prepares a long stored
    reply's parts on the thread that reads it, so the event loop never cuts 5 MB)."""
    return [Part(part) for part in _cut(source)]


def _cut(source: str) -> list[str]:
    """``source`` in parts of about ``FROZEN_CHARS`` (one part when it has no safe cut)."""
    if not source:
        return []
    if len(source) <= FROZEN_CHARS:
        return [source]
    return split_segments(source, FROZEN_CHARS)
