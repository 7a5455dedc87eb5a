"""Finished Markdown shown by one widget, rendered only where it is on screen.

Why not Textual's ``Markdown`` widget for everything: it mounts one widget per block (a table
or a nested list is dozens), and Textual lays out every widget of the screen on each frame. A
conversation of long replies then costs hundreds of milliseconds per frame, and opening one
80 KB reply took 11 s in the benchmark. So text that is not streaming any more (stored
replies, and each segment of a streaming reply once the stream has moved past it) is held by
:class:`FrozenMarkdown`: one widget per reply, its text kept in parts cut where a cut cannot
change the rendering (chatterm.markdown_blocks), each part rendered by Rich, styled from the
current theme, and kept per width and theme.

Why only where it is on screen: rendering is the cost (about 13 µs a character with code
blocks), and a 5 MB reply is a hundred screens of it. A part is rendered when Textual first
asks for one of its rows; until then its height is an estimate from its length and newlines,
and a part whose rendering changes the height of what is above the viewport moves the
scroll position with it, so what the user reads stays put. A small part is rendered at once;
a longer one on the render thread (chatterm.tui.widgets.render_queue), shown meanwhile as
its plain text, so the event loop never waits for Rich. A part too long to lay out as
Markdown at all (a 50 MB line, a code block with no place to cut) is shown as plain text
folded at the width (chatterm.tui.widgets.plain_rows). Opening, resizing and streaming
therefore cost what the screen shows, not what the reply holds.

Model text is Markdown, never console markup: ``[bold]`` stays two brackets and a word; and it
is sanitised (:func:`chatterm.sanitize.safe_text`) before it is parsed, so no control
character of a reply (or of a code block in it) reaches the terminal or a saved screenshot.
"""

from __future__ import annotations

import io
import threading
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import CodeBlock, Markdown
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.theme import Theme as RichTheme
from textual.app import App
from textual.color import Color, ColorParseError
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from chatterm.markdown_blocks import FROZEN_CHARS, split_segments
from chatterm.sanitize import safe_text
from chatterm.tui.widgets.plain_rows import PlainRows
from chatterm.tui.widgets.render_queue import QUEUE


@dataclass(frozen=True, slots=True)
class MarkdownColors:
    """The few theme colors the rendering needs, resolved to hex strings."""

    primary: str
    secondary: str
    accent: str
    foreground: str
    muted: str
    panel: str
    dark: bool

    @classmethod
    def from_app(cls, app: App[Any]) -> MarkdownColors:
        variables = app.get_css_variables()

        def color(name: str, fallback: str) -> Color:
            try:
                return Color.parse(variables.get(name, fallback))
            except ColorParseError:  # a theme variable that is not a plain colour
                return Color.parse(fallback)

        foreground = color("foreground", "#e0e0e0")
        background = color("background", "#121212")
        return cls(
            primary=color("text-primary", "#57a5e2").hex,
            secondary=color("text-secondary", "#9d7cd8").hex,
            accent=color("text-accent", "#ffa62b").hex,
            foreground=foreground.hex,
            muted=background.blend(foreground, 0.6).hex,
            panel=color("panel", "#242f38").hex,
            dark=app.current_theme.dark,
        )

    def rich_theme(self) -> RichTheme:
        code = Style(color=self.accent, bgcolor=self.panel)
        return RichTheme(
            {
                "markdown.code": code,
                "markdown.code_block": Style(bgcolor=self.panel),
                "markdown.block_quote": Style(color=self.muted, italic=True),
                "markdown.list": Style(color=self.secondary),
                "markdown.item.bullet": Style(color=self.secondary, bold=True),
                "markdown.item.number": Style(color=self.secondary),
                "markdown.hr": Style(color=self.secondary),
                # Every heading level differs from the body and from the others (colour or
                # attributes) in every theme: tests/test_tui.py checks the shipped themes.
                "markdown.h1.border": Style(color=self.primary),
                "markdown.h1": Style(color=self.primary, bold=True, underline=True),
                "markdown.h2": Style(color=self.primary, bold=True),
                "markdown.h3": Style(color=self.secondary, bold=True),
                "markdown.h4": Style(color=self.accent, bold=True),
                "markdown.h5": Style(color=self.secondary, italic=True),
                "markdown.h6": Style(color=self.muted, italic=True, underline=True),
                "markdown.link": Style(color=self.primary, underline=True),
                "markdown.link_url": Style(color=self.muted, underline=True),
                "markdown.table.border": Style(color=self.muted),
                "markdown.table.header": Style(color=self.primary, bold=True),
            },
            inherit=True,
        )


class _CodeBlock(CodeBlock):
    """A fenced block on the theme's panel color, with a little padding, no forced width."""

    background: ClassVar[str] = "#242f38"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        code = str(self.text).rstrip()
        yield Syntax(
            code, self.lexer_name, theme=self.theme, word_wrap=True, padding=(0, 1),
            background_color=self.background,
        )


@lru_cache(maxsize=16)
def _markdown_class(panel: str) -> type[Markdown]:
    """Rich's Markdown whose code blocks sit on ``panel`` (one class per theme color)."""
    code_block = type("ThemedCodeBlock", (_CodeBlock,), {"background": panel})
    elements = {**Markdown.elements, "fence": code_block, "code_block": code_block}
    return type("ThemedMarkdownDocument", (Markdown,), {"elements": elements})


class ThemedMarkdown:
    """A Rich renderable: Markdown rendered with chatterm's theme colors."""

    def __init__(self, source: str, colors: MarkdownColors) -> None:
        self.source = source
        self.colors = colors

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        markdown = _markdown_class(self.colors.panel)(
            safe_text(self.source),
            code_theme="monokai" if self.colors.dark else "friendly",
            hyperlinks=True,
        )
        with console.use_theme(self.colors.rich_theme()):
            lines = console.render_lines(markdown, options, pad=False, new_lines=False)
        new_line = Segment.line()
        for line in lines:
            yield from line
            yield new_line


# A part up to this many characters is rendered when first drawn (a few milliseconds); a
# longer one on the render thread.
SYNC_CHARS = 1_500
# A part longer than this is shown as plain text folded at the width: Rich's Markdown of a
# part this long would take seconds, and its rendering hundreds of megabytes.
PLAIN_CHARS = 200_000

# One rendered line: (text, index into the part's styles) pairs. Compact tuples of strings and
# ints are not tracked by the garbage collector, so a long reply adds little to every full
# collection's walk (the reason for chatterm.gc_policy).
Line = tuple[tuple[str, int], ...]
_CONSOLES = threading.local()


@dataclass(frozen=True, slots=True)
class ConsoleSpec:
    """What a private console needs to render as the app's would (read on the loop)."""

    color_system: str | None
    legacy_windows: bool
    safe_box: bool

    @classmethod
    def of(cls, console: Console) -> ConsoleSpec:
        return cls(console.color_system, console.legacy_windows, console.safe_box)


def _console(spec: ConsoleSpec) -> Console:
    """This thread's console for ``spec``: the app's console belongs to the event loop."""
    consoles: dict[ConsoleSpec, Console] = getattr(_CONSOLES, "consoles", None) or {}
    _CONSOLES.consoles = consoles
    console = consoles.get(spec)
    if console is None:
        console = consoles[spec] = Console(
            file=io.StringIO(), force_terminal=True, width=80, markup=False, emoji=False,
            highlight=False, legacy_windows=spec.legacy_windows, safe_box=spec.safe_box,
            color_system=spec.color_system,  # type: ignore[arg-type]
        )
    return console


def render_part(
    source: str, width: int, colors: MarkdownColors, spec: ConsoleSpec
) -> tuple[list[Line], list[Style | None]]:
    """Rich's rendering of one part at ``width``: thread-safe (a console per thread)."""
    console = _console(spec)
    options = console.options.update_width(width)
    rendered = console.render_lines(
        ThemedMarkdown(source, colors), options, pad=False, new_lines=False
    )
    ids: dict[Style | None, int] = {}
    lines: list[Line] = [
        tuple(
            (text, ids.setdefault(style, len(ids)))
            for text, style, control in line
            if not control
        )
        for line in rendered
    ]
    return lines, list(ids)


# What the first reply usually holds: rendering it once on the render thread after the first
# frame compiles pygments' lexer and markdown-it's rules there (first use costs 100-160 ms of
# regular-expression compiling, which otherwise lands on the event loop mid-stream).
WARM_UP_SAMPLE = """# Title

Some *text* with `code`, **bold** and a [link](https://example.com).

- one
- two

> a quote

| a | b |
|---|---|
| 1 | 2 |

```python
def f(x: int) -> int:
    return x * 2  # comment
```
"""


def warm_up(app: App[Any]) -> None:
    """Render a sample on the render thread, once (see ``WARM_UP_SAMPLE``)."""
    colors = MarkdownColors.from_app(app)
    spec = ConsoleSpec.of(app.console)
    QUEUE.submit(lambda: render_part(WARM_UP_SAMPLE, 80, colors, spec),
                 lambda _result, _error: None, lambda: True)


def estimated_rows(source: str, width: int) -> int:
    """A part's height before it is rendered: its lines, plus the folds of long ones."""
    return source.count("\n") + 1 + len(source) // max(1, width)


# A rendering at a width: (width, lines, styles).
Shown = tuple[int, list[Line], list["Style | None"]]


class _Part:
    """One piece of the reply and what is known of it at the current width and theme."""

    __slots__ = (
        "asked", "estimate", "key", "lines", "placeholder", "plain", "source", "stale",
        "styles",
    )

    def __init__(self, source: str) -> None:
        self.source = source
        self.plain = PlainRows(source) if len(source) > PLAIN_CHARS else None
        self.placeholder: PlainRows | None = None  # its plain rows, while it renders
        self.key: tuple[int, str] | None = None  # what ``lines`` were rendered for
        self.lines: list[Line] = []
        self.styles: list[Style | None] = []
        self.asked: tuple[int, str] | None = None  # a background render requested for
        self.estimate = (0, 0)  # (width, rows) of the last estimate
        # An earlier rendering of (nearly) this text: the live segment's previous batch,
        # shown until this one's rendering comes back, so a streaming reply never flickers.
        self.stale: Shown | None = None

    def height(self, key: tuple[int, str]) -> int:
        if self.plain is not None:
            return self.plain.count(key[0])
        if self.key == key:
            return len(self.lines)
        if self.stale is not None and self.stale[0] == key[0]:
            return len(self.stale[1])
        width, rows = self.estimate
        if width != key[0]:
            rows = estimated_rows(self.source, key[0])
            self.estimate = (key[0], rows)
        return rows


# What a part-rows owner does when a part's rendering arrives: (part's first row, change in
# height); the owner lays itself out again and keeps what the user reads where it is.
ChangeCallback = Callable[[int, int], None]


class PartRows:
    """A reply's parts as rows at a width and theme: the layout both the inline widget and
    the full-screen reader draw from (see the module docstring). Not a widget."""

    def __init__(self, source: str, on_change: ChangeCallback) -> None:
        self.parts: list[_Part] = [_Part(part) for part in _cut(source)]
        self.chars = len(source)
        self.on_change = on_change
        self.key: tuple[int, str] | None = None  # the width and theme of the last layout
        self.colors: MarkdownColors | None = None
        self.spec: ConsoleSpec | None = None
        self.starts: list[int] = []  # the first row of each part (after its separator)
        self.height = 0
        self.stale = True  # starts must be computed again
        self.alive: Callable[[], bool] = lambda: True
        # Render every part on the render thread, however small (a streaming reply: the
        # event loop only ever draws finished renderings, so typing stays responsive).
        self.background = False

    @property
    def source(self) -> str:
        return "".join(part.source for part in self.parts)

    def extend(self, sources: list[str], shown: Shown | None = None) -> bool:
        """Append parts; the first shows ``shown`` until it is rendered (see _Part.stale)."""
        added = [_Part(part) for source in sources if source for part in _cut(source)]
        if added and shown is not None:
            added[0].stale = shown
        self.chars += sum(len(part.source) for part in added)
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
        self.parts = [_Part(part) for part in _cut(source)]
        self.chars = len(source)
        if self.parts and shown is not None:
            self.parts[0].stale = shown
        self.stale = True

    def shown(self) -> Shown | None:
        """The last rendering of the first part (or what it still shows), if any."""
        if not self.parts:
            return None
        first = self.parts[0]
        if first.key is not None:
            return (first.key[0], first.lines, first.styles)
        return first.stale

    def layout(self, width: int, app: App[object]) -> tuple[int, str]:
        """Rows at ``width`` in the app's theme: every part's first row and the total."""
        key = (width, app.theme)
        if key != self.key:
            self.key = key
            self.colors = MarkdownColors.from_app(app)
            self.spec = ConsoleSpec.of(app.console)
            self.stale = True
        if self.stale:
            if self.chars <= SYNC_CHARS:
                # A short reply is rendered whole here: its height is exact from the first
                # layout (nothing moves when it is first drawn).
                for part in self.parts:
                    if part.key != key and part.plain is None:
                        self._store(part, key, render_part(part.source, width, *self._args()))
            starts: list[int] = []
            row = 0
            for index, part in enumerate(self.parts):
                if index:
                    row += 1  # the blank line Markdown puts between two blocks
                starts.append(row)
                row += part.height(key)
            self.starts, self.height, self.stale = starts, row, False
        return key

    def _args(self) -> tuple[MarkdownColors, ConsoleSpec]:
        assert self.colors is not None and self.spec is not None
        return self.colors, self.spec

    def strip(self, y: int, width: int, base: Style, in_place: bool = False) -> Strip:
        """Row ``y`` (after :meth:`layout` for ``width``); a part not rendered yet is
        rendered now when small (or ``in_place``), else on the render thread."""
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
            if in_place or (len(part.source) <= SYNC_CHARS and not self.background):
                self._take(index, key, render_part(part.source, width, *self._args()))
                lines, styles = part.lines, part.styles
            else:
                self._ask(part, key)
                if part.stale is not None and part.stale[0] == width:
                    _, lines, styles = part.stale
                else:
                    if part.placeholder is None:
                        part.placeholder = PlainRows(part.source)
                    return _plain_strip(part.placeholder.row(width, row), width, base)
        if row >= len(lines):
            return Strip.blank(width, base)
        strip = Strip([Segment(text, styles[style]) for text, style in lines[row]])
        return strip.adjust_cell_length(width, base).apply_style(base)

    def _store(
        self, part: _Part, key: tuple[int, str],
        rendered: tuple[list[Line], list[Style | None]],
    ) -> int:
        before = part.height(key)
        part.lines, part.styles = rendered
        part.key, part.placeholder, part.stale = key, None, None
        return len(part.lines) - before

    def _take(
        self, index: int, key: tuple[int, str],
        rendered: tuple[list[Line], list[Style | None]],
    ) -> None:
        change = self._store(self.parts[index], key, rendered)
        if change and not self.stale:
            # Only the rows after this part move: shift their starts, not a full layout.
            starts = self.starts
            for later in range(index + 1, len(starts)):
                starts[later] += change
            self.height += change
        self.on_change(self.starts[index] if index < len(self.starts) else 0, change)

    def _ask(self, part: _Part, key: tuple[int, str]) -> None:
        """Have the render thread render ``part`` for ``key`` (once per key)."""
        if part.asked == key:
            return
        part.asked = key
        source, width = part.source, key[0]
        colors, spec = self._args()

        def wanted() -> bool:  # read on the render thread: plain attribute reads
            return self.key == key and part.asked == key and self.alive()

        def done(rendered: Any, error: BaseException | None) -> None:
            if part.asked == key:
                part.asked = None
            if error is not None:
                raise error  # Textual reports it as any error of the app
            if self.alive() and self.key == key and part in self.parts:
                self._take(self.parts.index(part), key, rendered)

        QUEUE.submit(lambda: render_part(source, width, colors, spec), done, wanted)

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
            if part.key != key and self._store(
                part, key, render_part(part.source, width, *self._args())
            ):
                self.stale = True
            rows.extend("".join(text for text, _ in line) for line in part.lines)
        return rows


def _plain_strip(text: str, width: int, base: Style) -> Strip:
    return Strip([Segment(text)]).adjust_cell_length(width, base).apply_style(base)


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

    # Render every part on the loop when it is drawn (the live segment: a few hundred
    # characters, drawn again per batch, never shown as a placeholder).
    render_in_place: ClassVar[bool] = False
    # The notice above a cut reply; ``{rows}`` and ``{key}`` are filled in.
    CUT_NOTICE: ClassVar[str] = "⋯ {rows:,} earlier rows not shown here · {key} opens the whole reply"

    def __init__(self, source: str, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.rows = PartRows(source, self._changed)
        self.rows.alive = lambda: self.is_attached
        self.notice_key = "o"  # set by the message view from the key table

    @property
    def source(self) -> str:
        return self.rows.source

    @property
    def _key(self) -> tuple[int, str] | None:
        return self.rows.key

    def extend(self, source: str) -> None:
        """Append text cut at a safe boundary (chatterm.markdown_blocks)."""
        self.extend_parts([source])

    def extend_parts(self, sources: list[str], shown: Shown | None = None) -> None:
        """Append finished segments: nothing is rendered until it is drawn (the first shows
        ``shown``, the live segment's last rendering, until then)."""
        if self.rows.extend(sources, shown):
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

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style  # the widget's colors under the Markdown's own styles
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
        return self.rows.strip(y, width, base, self.render_in_place)

    def _changed(self, start: int, change: int) -> None:
        """A part's rendering came: lay out again if its height changed, keeping what is on
        screen where it is when the part begins above it."""
        if not change:
            self.refresh()
            return
        if not self.cut_rows:
            scroller = self._scroller()
            if (
                scroller is not None
                and scroller.scroll_y < scroller.max_scroll_y
                and self.region.y + start < scroller.region.y
            ):
                scroller.scroll_to(y=scroller.scroll_y + change, animate=False, immediate=True)
        self.refresh(layout=True)

    def _scroller(self) -> Widget | None:
        for ancestor in self.ancestors:
            if isinstance(ancestor, Widget) and ancestor.is_scrollable:
                return ancestor
        return None

    def rendered_lines(self, width: int) -> list[str]:
        """Every row as text at ``width``, all parts rendered now (tests; never on screen)."""
        rows = self.rows.text_rows(width, self.app)
        self.refresh(layout=True)
        return rows


def _cut(source: str) -> list[str]:
    """``source`` in parts of about ``FROZEN_CHARS`` (one part when it has no safe cut)."""
    if not source:
        return []
    if len(source) <= FROZEN_CHARS:
        return [source]
    return split_segments(source, FROZEN_CHARS)
