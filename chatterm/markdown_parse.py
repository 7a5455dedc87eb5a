"""Rich Markdown documents parsed by a markdown-it parser made once per thread.

``rich.markdown.Markdown`` builds a new markdown-it parser in every ``__init__``: 0.66 ms here,
more than parsing a short part takes (0.05 ms for a 180-character reply). The TUI renders every
part on screen again at each new width and every live segment again as it grows, and `ask`'s
live region re-renders its tail ten times a second, so the parser was most of the cost of a
short part. A document made here is what ``cls(markup, **options)`` makes (a test compares
their renderings element by element), with the parsing done by this thread's parser.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, TypeVar

from markdown_it import MarkdownIt
from rich.markdown import Markdown

DocumentT = TypeVar("DocumentT", bound=Markdown)

# Per thread: the TUI renders on its event loop and on its render thread, `ask` on the main
# thread and in rich's refresh thread; a parser is not shared between two parses at once.
_LOCAL = threading.local()


def markdown_parser() -> MarkdownIt:
    """This thread's parser, with the rules ``rich.markdown.Markdown`` enables."""
    parser: MarkdownIt | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = MarkdownIt().enable("strikethrough").enable("table")
    return parser


def parsed_markdown(cls: type[DocumentT], markup: str, **options: Any) -> DocumentT:
    """``cls(markup, **options)``, parsed by this thread's parser.

    Rich's own ``__init__`` runs once per thread, class and options, for an empty document that
    is then copied: whatever attributes a Rich version sets there, a document made here has
    them, with ``markup`` and its tokens (``parsed``) replaced."""
    templates: dict[tuple[Any, ...], Markdown] | None = getattr(_LOCAL, "templates", None)
    if templates is None or len(templates) >= 64:  # a few: a class per theme colour, options
        templates = _LOCAL.templates = {}
    key = (cls, *sorted(options.items()))
    template = templates.get(key)
    if template is None:
        template = templates[key] = cls("", **options)
    document = copy.copy(template)
    document.markup = markup
    document.parsed = markdown_parser().parse(markup)
    assert isinstance(document, cls)
    return document
