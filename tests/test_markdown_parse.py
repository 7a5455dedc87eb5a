"""chatterm.markdown_parse: a document parsed by the thread's parser renders as Rich's own."""

from __future__ import annotations

import threading

import pytest
from rich.console import Console
from rich.markdown import Markdown
from rich.segment import Segment

from chatterm.markdown_parse import markdown_parser, parsed_markdown
from chatterm.tui.widgets import markdown_render

# Every element Rich's Markdown renders differently, the extensions it enables (tables,
# strikethrough) included: a parser set up otherwise renders one of them another way.
SAMPLE = """# One

## Two

Text with *em*, **strong**, ~~struck~~, `code`, a [link](https://example.com) and
https://example.org written out.

- a
- b
  1. nested
  2. list

> quoted
> text

| left | right |
|:-----|------:|
| 1    | 2     |

```python
def f(x: int) -> int:
    return x  # note
```

    indented code

---

<b>html</b> and an image ![alt](https://example.com/i.png)
"""


def segments(document: Markdown, width: int) -> list[Segment]:
    console = Console(width=width, force_terminal=True, color_system="truecolor",
                      markup=False, emoji=False, highlight=False)
    return list(console.render(document, console.options.update_width(width)))


@pytest.mark.parametrize("options", [{}, {"hyperlinks": False}, {"code_theme": "friendly"}])
@pytest.mark.parametrize("width", [24, 80])
def test_renders_as_rich_does(options: dict[str, object], width: int) -> None:
    expected = segments(Markdown(SAMPLE, **options), width)  # type: ignore[arg-type]
    made = parsed_markdown(Markdown, SAMPLE, **options)
    assert made.markup == SAMPLE
    assert segments(made, width) == expected
    # The next document from the same template holds its own text, not the last one's.
    other = parsed_markdown(Markdown, "just *this*", **options)
    assert segments(other, width) == segments(Markdown("just *this*", **options), width)  # type: ignore[arg-type]
    assert segments(made, width) == expected


def test_a_subclass_stays_that_class() -> None:
    themed = markdown_render._markdown_class("#123456")
    made = parsed_markdown(themed, "```\ncode\n```\n")
    assert type(made) is themed
    assert segments(made, 40) == segments(themed("```\ncode\n```\n"), 40)


def test_each_thread_parses_with_its_own_parser() -> None:
    here = markdown_parser()
    assert markdown_parser() is here  # made once on a thread
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(markdown_parser()))
    thread.start()
    thread.join()
    assert seen and seen[0] is not here


@pytest.mark.parametrize("lexer_name", ["python", "text", "no-such-language", ""])
@pytest.mark.parametrize("theme", ["monokai", "friendly"])
def test_a_code_block_renders_as_syntax_by_name_does(lexer_name: str, theme: str) -> None:
    """The themed code block hands Syntax a lexer and theme made once per thread; the
    rendering is the one Syntax gives when it looks both up by name for every block."""
    from rich.syntax import Syntax

    code = "def f(x):\n\treturn x * 2  # tab, comment, 'str'\n"
    block = markdown_render._markdown_class("#123456")
    fence = f"```{lexer_name}\n{code}```\n"
    made = parsed_markdown(block, fence, code_theme=theme)
    expected = Syntax(code.rstrip(), lexer_name or "text", theme=theme, word_wrap=True,
                      padding=(0, 1), background_color="#123456")
    for _ in range(2):  # the second time from this thread's cache
        assert segments(made, 30) == segments(expected, 30)  # type: ignore[arg-type]
