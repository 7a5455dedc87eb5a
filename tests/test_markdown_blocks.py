"""The one Markdown block splitter (chatterm.markdown_blocks), checked against whole-document
rendering: `ask`'s terminal renderer prints block by block, and must show what rich shows for
the whole answer at once."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.markdown import Markdown

from chatterm.cli.render import MarkdownSink
from chatterm.markdown_blocks import split_blocks, split_segments

# Answers shaped like real ones: the cases a blank-line splitter gets wrong come first.
CORPUS = {
    "numbered steps with indented code": """To set up the project:

1. Create a virtual environment:

   ```bash
   python -m venv .venv
   ```

2. Activate it (indented code block inside the item):

       source .venv/bin/activate

3. Install the dependencies:

   ```bash
   pip install -e '.[dev]'
   ```

That's it: run `pytest` to check.
""",
    "list items with second paragraphs": """There are two options:

- **Rebase** your branch onto main.

  This keeps history linear, but rewrites your commits.

- **Merge** main into your branch.

  This keeps every commit as it was.

  It also records when you took in the changes.

Pick whichever your team prefers.
""",
    "fences containing blank lines": """Here is the function:

```python
import sys


def main() -> int:

    print("hello")

    return 0
```

And the test:

~~~
def test_main():

    assert main() == 0
~~~

Run it with `python -m pytest`.
""",
    "tables": """| Flag | Meaning |
|------|---------|
| `-r` | raw output |
| `-n` | do not log |

Both can be combined.

| a | b |
|---|--:|
| 1 | 22 |
""",
    "quotes": """As the docs say:

> A quote that spans
> two lines.
>
> And a second paragraph in the same quote.

> - a list inside a quote
> - second item

Back to normal text.
""",
    "headings and paragraphs": """# Summary

The short answer is yes.

## Details

First paragraph of the details, long enough to wrap across more than one line of an eighty
column terminal so that wrapping is compared too.

Second paragraph.

### Caveats

* one
* two

Setext heading
--------------

Last words.
""",
    "nested lists and loose items": """1. First

   - nested a

   - nested b

2. Second

   Continuation paragraph of the second item.

10. Tenth item number

Paragraph after.
""",
    "code right after a heading": """## Example
```js
console.log("hi")

console.log("bye")
```
Text directly after the fence.

    indented code after a paragraph's blank line

Final line.
""",
}


def _console(buffer: io.StringIO) -> Console:
    return Console(
        file=buffer, width=80, force_terminal=False, color_system=None,
        highlight=False, soft_wrap=False,
    )


def _normalised(text: str) -> str:
    """Plain text with trailing spaces gone and blank-line runs collapsed to one.

    The sink trims each block's edges and puts exactly one blank line between blocks, so only
    the spacing between blocks may differ from a whole render; everything else must match.
    """
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def whole_render(text: str) -> str:
    buffer = io.StringIO()
    _console(buffer).print(Markdown(text, hyperlinks=False))
    return _normalised(buffer.getvalue())


def sink_render(text: str, chunk: int) -> str:
    buffer = io.StringIO()
    sink = MarkdownSink(_console(buffer))
    for i in range(0, len(text), chunk):
        sink.text(text[i : i + chunk])
    sink.close()
    return _normalised(buffer.getvalue())


@pytest.mark.parametrize("name", list(CORPUS))
@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_streamed_blocks_render_as_the_whole_document(name: str, chunk: int) -> None:
    text = CORPUS[name]
    assert sink_render(text, chunk) == whole_render(text)


def test_the_whole_corpus_as_one_answer() -> None:
    text = "\n".join(CORPUS.values())
    assert sink_render(text, 5) == whole_render(text)


def test_blank_line_splitting_would_differ() -> None:
    """The comparison can fail: cutting at every blank line (the old renderer) breaks it."""
    text = CORPUS["numbered steps with indented code"]
    naive = "".join(whole_render(part) + "\n\n" for part in re.split(r"(?<=\n)\n", text))
    assert _normalised(naive) != whole_render(text)


@pytest.mark.parametrize("name", list(CORPUS))
def test_blocks_are_the_text_and_never_cut_inside_a_fence(name: str) -> None:
    text = CORPUS[name]
    blocks = split_blocks(text)
    assert "".join(blocks) == text
    for block in blocks:
        fences = [ln for ln in block.split("\n") if ln.strip()[:3] in ("```", "~~~")]
        assert len(fences) % 2 == 0, block
        first = block.lstrip("\n")[:1]
        assert block is blocks[0] or first not in " \t-*+>|<0123456789", block


def test_numbered_step_stays_with_its_indented_code() -> None:
    blocks = split_blocks(CORPUS["numbered steps with indented code"])
    steps = next(b for b in blocks if "1. Create" in b)
    assert "source .venv/bin/activate" in steps and "3. Install" in steps


def test_segments_are_blocks_merged_up_to_a_size() -> None:
    text = "\n".join(CORPUS.values()) * 3
    assert "".join(split_segments(text, 300)) == text
    assert len(split_segments(text, 300)) < len(split_blocks(text))


_LINES = st.sampled_from(
    ["", "para text", "- item", "  indented", "1. step", "```", "> quote", "| a | b |", "# h"]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_LINES, max_size=30), st.integers(min_value=1, max_value=9))
def test_streaming_in_any_pieces_cuts_like_the_whole_text(lines: list[str], size: int) -> None:
    from chatterm.markdown_blocks import BREAK, SegmentSplitter

    text = "\n".join(lines) + "\n"
    splitter = SegmentSplitter(limit=0)
    blocks = [""]
    for i in range(0, len(text), size):
        for part in splitter.feed(text[i : i + size]):
            if part is BREAK:
                blocks.append("")
            else:
                blocks[-1] += part
    assert blocks == split_blocks(text)


_ATOMS = [
    "\n", "\n\n", "  \n", "```\n", "```py\n", "~~~\n", "````\n", " ```\n", "# h\n", "para text\n",
    "- item\n", "1. x\n", "    code\n", "> q\n", "|a|b|\n", "x", "\r\n", "\t\n", "   ~~~\n",
    "```x```\n", "~~~~\n", "<div>\n",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ATOMS), max_size=60), st.sampled_from([0, 1, 5, 20, 80]))
def test_whole_text_cuts_are_the_stream_cuts(atoms: list[str], limit: int) -> None:
    """split_segments (regular expressions, for a stored reply) cuts exactly where the
    streaming splitter does: a stored reply renders as it did while it streamed."""
    from chatterm.markdown_blocks import BREAK, SegmentSplitter

    text = "".join(atoms)
    streamed: list[list[str]] = [[]]
    for piece in SegmentSplitter(limit).feed(text):
        if piece is BREAK:
            streamed.append([])
        else:
            streamed[-1].append(piece)
    assert split_segments(text, limit) == ["".join(pieces) for pieces in streamed]
