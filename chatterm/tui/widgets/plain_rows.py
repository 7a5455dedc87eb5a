"""Text folded into screen rows on demand, for text too long to lay out as Markdown.

Why: a 50 MB reply on one line (or a 5 MB code block with no place to cut it) cannot go
through Rich's Markdown at all in reasonable time or memory, and it does not need to: only
the forty rows on screen are ever drawn. This folds the (sanitised) text at the width, a
row being a slice of a line; a line that holds only single-cell characters (every ASCII
line, found in constant time by ``str.isascii``, or by one regular-expression scan) is
never walked in Python, so the cost of a new width is one step per line, not per
character. Lines with wide or zero-width characters are chopped by Rich's cell rules, once
per width (a last line that grows is chopped again from its last row only). The same
folding gives the placeholder rows of a Markdown part whose rendering is not ready yet
(chatterm.tui.widgets.markdown_render).
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
    """The rows of ``text`` at a width: made visible (chatterm.sanitize), tabs expanded.

    The last line is also kept as the pieces it arrived in (:meth:`append`), so a line that
    grows by a batch at a time (a streaming reply's 20 MB line) is never copied whole per
    batch: its rows are sliced out of the pieces.
    """

    __slots__ = (
        "_chopped", "_lines", "_starts", "_tail", "_tail_len", "_tail_row_start",
        "_tail_single", "_tail_starts", "_width",
    )

    def __init__(self, text: str) -> None:
        self._lines = safe_text(text).replace("\t", TAB).split("\n")
        self._width = 0
        self._starts: list[int] = []  # the first row of each line, then the row count
        self._chopped: dict[int, list[str]] = {}
        # The last line as pieces: ``_lines[-1]`` is it only while there is one piece.
        self._tail = [self._lines[-1]]
        self._tail_starts = [0]  # where each piece begins in the last line
        self._tail_len = len(self._tail[0])
        self._tail_single: bool | None = None  # the last line is single-cell (when known)
        self._tail_row_start = 0  # where the last line's last chopped row begins in it

    def append(self, text: str) -> None:
        """``text`` added at the end (a streaming reply's live part past PLAIN_CHARS): only
        the new text is made visible and split, and only the lines it touches are folded
        again, so a reply that grows by a batch costs that batch, not its whole length."""
        new = safe_text(text).replace("\t", TAB).split("\n")
        lines = self._lines
        last = len(lines) - 1
        tail_single = self._tail_single
        if tail_single is None:
            tail_single = _single_cell(self._line(last))
        if new[0]:
            self._tail.append(new[0])
            self._tail_starts.append(self._tail_len)
            self._tail_len += len(new[0])
        # At a width of 2 or more every character fits an empty row, so the rows before
        # the last are full and stay as they are (at 1, Rich puts a wide one after an empty
        # row): only the last row and the new text are chopped again (a streaming 20 MB
        # line of CJK was chopped whole at every batch).
        rows = self._chopped.get(last) if self._width >= 2 else None
        if rows is not None:
            start = self._tail_row_start
            grown = chop_cells(self._tail_slice(start, self._tail_len), self._width) or [""]
            self._tail_row_start = start + sum(len(row) for row in grown[:-1])
            rows[-1:] = grown
        if len(new) == 1:
            self._tail_single = tail_single and _single_cell(new[0])
        else:
            lines[last] = self._line(last)  # complete now: one copy, once
            lines.extend(new[1:])
            self._tail, self._tail_starts = [new[-1]], [0]
            self._tail_len = len(new[-1])
            self._tail_single = _single_cell(new[-1])
        if self._width:
            del self._starts[last + 1 :]
            if rows is not None:
                self._starts.append(self._starts[last] + len(rows))
                if len(new) > 1:
                    self._fold_from(last + 1, self._width)
            else:
                self._fold_from(last, self._width)

    def _line(self, index: int) -> str:
        """Line ``index`` whole (the last one joined from its pieces, and kept so)."""
        if index == len(self._lines) - 1 and len(self._tail) > 1:
            joined = "".join(self._tail)
            self._lines[index] = joined
            self._tail, self._tail_starts = [joined], [0]
        return self._lines[index]

    def _fold(self, width: int) -> None:
        if width == self._width:
            return
        self._width = width
        self._chopped = {}
        self._starts = [0]
        self._fold_from(0, width)

    def _fold_from(self, first: int, width: int) -> None:
        """Rows of the lines from ``first`` on (``_starts`` holds the lines before it)."""
        lines = self._lines
        last = len(lines) - 1
        counts: list[int] = []
        for index in range(first, last + 1):
            if index == last and self._tail_single:
                counts.append(max(1, -(-self._tail_len // width)))
                continue
            line = self._line(index)
            if len(line) <= width and line.isascii():
                counts.append(1)
            elif _single_cell(line):
                counts.append(max(1, -(-len(line) // width)))
            else:
                rows = chop_cells(line, width) or [""]
                self._chopped[index] = rows
                counts.append(len(rows))
                if index == last:
                    self._tail_row_start = sum(len(row) for row in rows[:-1])
        self._starts.extend(accumulate(counts, initial=self._starts[-1]))
        del self._starts[first + 1]  # accumulate repeats the start of line ``first``

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
        if index == len(self._lines) - 1 and len(self._tail) > 1:
            return self._tail_slice(offset * width, (offset + 1) * width)
        return self._lines[index][offset * width : (offset + 1) * width]

    def _tail_slice(self, begin: int, end: int) -> str:
        """``last_line[begin:end]`` from its pieces, without joining them."""
        pieces, starts = self._tail, self._tail_starts
        index = bisect_right(starts, begin) - 1
        out: list[str] = []
        while index < len(pieces) and starts[index] < end:
            piece_start = starts[index]
            out.append(pieces[index][max(0, begin - piece_start) : end - piece_start])
            index += 1
        return "".join(out)


def _line_of(starts: list[int], y: int) -> int:
    """The line whose rows hold row ``y`` (``starts`` ascending, ``starts[0] == 0``)."""
    return bisect_right(starts, y) - 1
