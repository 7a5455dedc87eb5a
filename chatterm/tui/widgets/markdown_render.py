"""Finished Markdown shown by one widget: a themed Rich rendering per segment.

Why not Textual's ``Markdown`` widget for everything: it mounts one widget per block (a table
or a nested list is dozens), and Textual lays out every widget of the screen on each frame. A
conversation of long replies then costs hundreds of milliseconds per frame, and opening one
80 KB reply took 11 s in the benchmark. So text that is not streaming any more (stored
replies, and each segment of a streaming reply once the stream has moved past it) is rendered
by :class:`FrozenMarkdown`: a single widget with a Rich rendering of the whole segment, parsed
fresh (so a block split across deltas is always right), styled from the current theme, kept
per width and theme. Text appended at a safe cut is rendered on its own and its lines added
(the same as rendering the whole, chatterm.markdown_blocks). The segment being written is the
same widget, drawn again whole per batch (``LiveMarkdown``, chatterm.tui.widgets.message_view).

Model text is Markdown, never console markup: ``[bold]`` stays two brackets and a word; and it
is sanitised (:func:`chatterm.sanitize.safe_text`) before it is parsed, so no control
character of a reply (or of a code block in it) reaches the terminal or a saved screenshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

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

from chatterm.sanitize import safe_text


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
    def from_app(cls, app: App[object]) -> MarkdownColors:
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


class FrozenMarkdown(Widget):
    """Markdown that no longer changes, as one widget (see the module docstring).

    It uses Textual's line API: the Rich rendering is kept as compact tuples of (text, style
    number), which the garbage collector does not need to track, and a line becomes a Strip
    only when Textual asks to draw it. A long reply therefore adds little to the heap that
    every full garbage collection walks, which keeps those pauses short while streaming.
    """

    DEFAULT_CSS = """
    FrozenMarkdown {
        height: auto;
    }
    """

    def __init__(self, source: str, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.source = source
        # The text as appended, in parts cut at safe boundaries: rendering them one by one is
        # the same as rendering the whole (chatterm.markdown_blocks), so an append renders
        # only the new part, not the whole widget again.
        self._parts: list[str] = [source]
        self._done = 0  # parts rendered into _lines for _key
        self._key: tuple[int, str] | None = None
        self._lines: list[tuple[tuple[str, int], ...]] = []
        self._styles: list[Style | None] = []
        self._style_ids: dict[Style | None, int] = {}

    def extend(self, source: str) -> None:
        """Append text cut at a safe boundary (chatterm.markdown_blocks); only it is rendered."""
        if not source:
            return
        self.source += source
        self._parts.append(source)
        self.refresh(layout=True)

    def replace(self, source: str) -> None:
        """Show ``source`` instead (the live segment after its text was frozen)."""
        self.source = source
        self._parts = [source]
        self._key = None
        self.refresh(layout=True)

    def prepare(self, width: int) -> None:
        """Render what is not rendered yet now, rather than in the next layout: at the width
        of the last layout (``width`` only before the first: a guess that must not make the
        layout and this render each other's work undone)."""
        self._layout(self._key[0] if self._key is not None else width)

    def _layout(self, width: int) -> None:
        key = (width, self.app.theme)
        if width <= 0 or (key == self._key and self._done == len(self._parts)):
            return
        if key != self._key:
            self._lines, self._styles, self._style_ids, self._done = [], [], {}, 0
        console = self.app.console
        options = console.options.update_width(width)
        colors = MarkdownColors.from_app(self.app)
        styles = self._style_ids
        lines = self._lines
        for part in self._parts[self._done:]:
            rendered = console.render_lines(
                ThemedMarkdown(part, colors), options, pad=False, new_lines=False
            )
            if lines and rendered:
                lines.append(())  # the blank line Markdown puts between two blocks
            for line in rendered:
                lines.append(tuple(
                    (text, styles.setdefault(style, len(styles)))
                    for text, style, control in line
                    if not control
                ))
        self._styles = list(styles)
        self._done = len(self._parts)
        self._key = key

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._layout(width)
        return len(self._lines)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        self._layout(width)
        base = self.rich_style  # the widget's colors under the Markdown's own styles
        if not 0 <= y < len(self._lines):
            return Strip.blank(width, base)
        styles = self._styles
        strip = Strip([Segment(text, styles[index]) for text, index in self._lines[y]])
        return strip.adjust_cell_length(width, base).apply_style(base)
