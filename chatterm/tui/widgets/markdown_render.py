"""Rich's rendering of a reply's Markdown, in chatterm's theme colors, on any thread.

Model text is Markdown, never console markup: ``[bold]`` stays two brackets and a word; and it
is sanitised (:func:`chatterm.sanitize.safe_text`) before it is parsed, so no control
character of a reply (or of a code block in it) reaches the terminal or a saved screenshot.
:func:`render_part` runs on the event loop or on the render thread
(chatterm.tui.widgets.render_queue): each thread renders with a console of its own, since the
app's console belongs to the event loop. What is rendered where, and when, is
chatterm.tui.widgets.part_rows' business.
"""

from __future__ import annotations

import io
import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import CodeBlock, Markdown
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax, SyntaxTheme
from rich.theme import Theme as RichTheme
from textual.app import App
from textual.color import Color, ColorParseError

from chatterm.markdown_parse import parsed_markdown
from chatterm.sanitize import safe_text
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
        """The app's colours in its current theme; worked out once per theme and app.

        Every reply on screen asks for them again at a new width (a resize), and Textual
        generates the theme's whole colour system for each ``get_css_variables`` call
        (2 ms a call here, a dozen calls in one resize)."""
        theme = app.theme
        cached = _COLORS.get(app)
        if cached is not None and cached[0] == theme:
            return cached[1]
        colors = cls._resolve(app)
        _COLORS[app] = (theme, colors)
        return colors

    @classmethod
    def _resolve(cls, app: App[Any]) -> MarkdownColors:
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


# Each app's colours with the theme they were worked out for (see MarkdownColors.from_app).
_COLORS: weakref.WeakKeyDictionary[App[Any], tuple[str, MarkdownColors]] = (
    weakref.WeakKeyDictionary()
)


class _CodeBlock(CodeBlock):
    """A fenced block on the theme's panel color, with a little padding, no forced width."""

    background: ClassVar[str] = "#242f38"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        code = str(self.text).rstrip()
        lexer, theme = _syntax_parts(self.lexer_name, self.theme)
        yield Syntax(
            code, lexer, theme=theme, word_wrap=True, padding=(0, 1), tab_size=TAB_SIZE,
            background_color=self.background,
        )


TAB_SIZE = 4  # Syntax's own default
_SYNTAX = threading.local()


def _syntax_parts(lexer_name: str, theme: str) -> tuple[Lexer | str, SyntaxTheme]:
    """This thread's pygments lexer and Rich syntax theme for a code block.

    Syntax looks both up by name for every block it draws (the lexer alone 0.2 ms of a 0.7 ms
    block; a part of a code-heavy reply holds a dozen blocks). The lexer is made with the
    options Syntax gives it (a test compares the two renderings); a name pygments does not
    know stays a name, which Syntax shows as plain text as before. Per thread (the render
    thread and the event loop both render), and few: names come from replies."""
    cache: dict[tuple[str, str], tuple[Lexer | str, SyntaxTheme]] | None = getattr(
        _SYNTAX, "cache", None
    )
    if cache is None or len(cache) >= 64:
        cache = _SYNTAX.cache = {}
    found = cache.get((lexer_name, theme))
    if found is None:
        lexer: Lexer | str
        try:
            lexer = get_lexer_by_name(lexer_name, stripnl=False, ensurenl=True, tabsize=TAB_SIZE)
        except ClassNotFound:
            lexer = lexer_name
        found = cache[(lexer_name, theme)] = (lexer, Syntax.get_theme(theme))
    return found


@lru_cache(maxsize=16)
def _rich_theme(colors: MarkdownColors) -> RichTheme:
    """The theme's Rich styles, built once per set of colours (every part's rendering asks)."""
    return colors.rich_theme()


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
        markdown = parsed_markdown(
            _markdown_class(self.colors.panel),
            safe_text(self.source),
            code_theme="monokai" if self.colors.dark else "friendly",
            hyperlinks=True,
        )
        with console.use_theme(_rich_theme(self.colors)):
            lines = console.render_lines(markdown, options, pad=False, new_lines=False)
        new_line = Segment.line()
        for line in lines:
            yield from line
            yield new_line


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
