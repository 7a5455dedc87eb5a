"""Text folded into screen rows on demand, for text too long to lay out as Markdown.

Why: a 50 MB reply on one line (or a 5 MB code block with no place to cut it) cannot go
through Rich's Markdown at all in reasonable time or memory, and it does not need to: only
the forty rows on screen are ever drawn. This folds the (sanitised) text at the width, a
row being a slice of a line; a line that holds only single-cell characters (every ASCII
line, found in constant time by ``str.isascii``, or by one regular-expression scan) is
never walked in Python, so the cost of a new width is one step per line, not per
character. Lines with wide or zero-width characters are chopped by Rich's cell rules, once
per width. The same folding gives the placeholder rows of a Markdown part whose rendering
is not ready yet (chatterm.tui.widgets.markdown_render).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate

from rich.cells import chop_cells

from chatterm.sanitize import safe_text

# Characters that are not one cell wide (or may not be): anything outside these ranges.
_NOT_SINGLE_CELL = re.compile("[^\x20-\x7e\xa0-\xac\xae-\u02ff\u0370-\u0482]")
TAB = "    "


def _single_cell(line: str) -> bool:
    return line.isascii() or _NOT_SINGLE_CELL.search(line) is None


class PlainRows:
    """The rows of ``text`` at a width: made visible (chatterm.sanitize), tabs expanded."""

    __slots__ = ("_chopped", "_lines", "_starts", "_width")

    def __init__(self, text: str) -> None:
        self._lines = safe_text(text).replace("\t", TAB).split("\n")
        self._width = 0
        self._starts: list[int] = []  # the first row of each line, then the row count
        self._chopped: dict[int, list[str]] = {}

    def _fold(self, width: int) -> None:
        if width == self._width:
            return
        self._width = width
        self._chopped = {}
        counts: list[int] = []
        for index, line in enumerate(self._lines):
            if len(line) <= width and line.isascii():
                counts.append(1)
            elif _single_cell(line):
                counts.append(max(1, -(-len(line) // width)))
            else:
                rows = chop_cells(line, width) or [""]
                self._chopped[index] = rows
                counts.append(len(rows))
        self._starts = list(accumulate(counts, initial=0))

    def count(self, width: int) -> int:
        """How many rows the text takes at ``width`` (at least one)."""
        width = max(1, width)
        self._fold(width)
        return self._starts[-1]

    def row(self, width: int, y: int) -> str:
        """Row ``y`` at ``width`` ("" past the end)."""
        width = max(1, width)
        self._fold(width)
        starts = self._starts
        if not 0 <= y < starts[-1]:
            return ""
        index = _line_of(starts, y)
        offset = y - starts[index]
        chopped = self._chopped.get(index)
        if chopped is not None:
            return chopped[offset]
        return self._lines[index][offset * width : (offset + 1) * width]


def _line_of(starts: list[int], y: int) -> int:
    """The line whose rows hold row ``y`` (``starts`` ascending, ``starts[0] == 0``)."""
    return bisect_right(starts, y) - 1
