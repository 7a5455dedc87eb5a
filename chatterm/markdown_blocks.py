"""Cutting Markdown into top-level blocks where a cut cannot change how it renders.

One splitter for every renderer that shows a reply piece by piece: ``chatterm ask``'s terminal
renderer prints each finished block once (:func:`split_blocks`), and the TUI cuts a long reply
into segments of a few thousand characters, each shown by its own Markdown widget (Textual
lays out a Markdown widget by measuring every block it holds, so one widget holding a long
streaming reply costs time in proportion to the whole reply on every frame; cut, only the last
segment changes).

A cut is only made where Markdown's top-level parse state is clean: after a blank line,
outside a code fence, before a line that starts a heading, a paragraph or a fence (never
before an indented line, a list item, a table row, a quote or HTML, which could continue the
previous block: a numbered step's indented code, a list item's second paragraph, a fence
holding blank lines all stay with their block). Rendering the blocks one by one is then the
same as rendering the whole text. Plain Python: no Textual, no rich.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator

# The live (streaming) segment is cut after this many characters...
SEGMENT_CHARS = 600
# ...and a stored reply is cut into parts of about this size (each rendered when it is on
# screen: small enough to render on the event loop in a few milliseconds).
FROZEN_CHARS = 1200

BREAK = None  # in the output of SegmentSplitter.feed: start a new segment here

_UNSAFE_STARTS = frozenset(" \t-*+>|<0123456789\n\r")


class SegmentSplitter:
    """Incremental: feed deltas, get text pieces and BREAK markers, in order."""

    def __init__(self, limit: int = SEGMENT_CHARS) -> None:
        self.limit = limit
        self.segment_chars = 0
        self.in_fence = False
        self.fence = ""
        self.line = ""
        self.at_line_start = True
        self.previous_blank = False

    def feed(self, text: str) -> Iterator[str | None]:
        i = 0
        length = len(text)
        while i < length:
            if self.at_line_start:
                if (
                    self.previous_blank
                    and not self.in_fence
                    and self.segment_chars >= self.limit
                    and text[i] not in _UNSAFE_STARTS
                ):
                    yield BREAK
                    self.segment_chars = 0
                self.at_line_start = False
            end = text.find("\n", i)
            if end == -1:
                piece = text[i:]
                self.line += piece
                self.segment_chars += len(piece)
                yield piece
                return
            piece = text[i : end + 1]
            self.line += piece
            self.segment_chars += len(piece)
            yield piece
            self._line_done(self.line)
            self.line = ""
            self.at_line_start = True
            i = end + 1

    def _line_done(self, line: str) -> None:
        stripped = line.strip()
        self.previous_blank = not stripped
        marker = stripped[:3]
        if marker in ("```", "~~~"):
            if not self.in_fence:
                self.in_fence, self.fence = True, marker
            elif marker == self.fence and stripped.strip(marker[0]) == "":
                self.in_fence = False


def split_blocks(text: str) -> list[str]:
    """``text`` cut at every safe boundary: the smallest blocks that render as the whole."""
    return split_segments(text, 0)


def split_segments(text: str, limit: int = SEGMENT_CHARS) -> list[str]:
    """A whole text cut the same way the stream would be: always at least one segment.

    The same cuts as feeding ``text`` to :class:`SegmentSplitter` (tests/test_markdown_blocks.py
    checks that), found with regular expressions instead of a Python step per line: opening a
    stored 5 MB reply must not spend half a second here before its first frame.
    """
    cuts = _cuts(text, limit)
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


# A line holding only whitespace (its end is where the next line starts), and a line that
# starts, after whitespace, with a fence marker: the two things SegmentSplitter looks at.
_BLANK_LINE = re.compile(r"^[^\S\n]*\n", re.MULTILINE)
_FENCE_LINE = re.compile(r"^[^\S\n]*(?:```|~~~)[^\n]*\n", re.MULTILINE)


def _fence_states(text: str) -> tuple[list[int], list[bool]]:
    """Where the fence state changes (the end of each fence line) and what it becomes."""
    ends: list[int] = []
    states: list[bool] = []
    if "```" not in text and "~~~" not in text:  # a substring search: far faster than the scan
        return ends, states
    fence = ""
    for match in _FENCE_LINE.finditer(text):
        stripped = match.group().strip()
        marker = stripped[:3]
        if not fence:
            fence = marker
        elif marker == fence and stripped.strip(marker[0]) == "":
            fence = ""
        else:
            continue
        ends.append(match.end())
        states.append(bool(fence))
    return ends, states


def _cuts(text: str, limit: int) -> list[int]:
    """Where SegmentSplitter would put a BREAK: the start of a line after a blank line, outside
    a fence, at least ``limit`` characters after the previous cut, not a line that could
    continue the block before it."""
    cuts: list[int] = []
    if "\n" not in text or ("\n\n" not in text and _BLANK_LINE.search(text) is None):
        return cuts  # no blank line, no cut (a 50 MB single line returns here)
    ends, states = _fence_states(text)
    start = 0
    length = len(text)
    search_from = 0
    while True:
        wanted = start + limit
        # The blank line must end at ``wanted`` or later; it may begin on the line before.
        line_start = text.rfind("\n", search_from, max(search_from, wanted - 1)) + 1
        match = _BLANK_LINE.search(text, max(search_from, line_start))
        while match is not None:
            cut = match.end()
            if cut >= length:
                return cuts
            if cut >= wanted and text[cut] not in _UNSAFE_STARTS:
                changed = bisect_right(ends, cut)
                if not (changed and states[changed - 1]):
                    break
            match = _BLANK_LINE.search(text, cut)
        if match is None:
            return cuts
        cuts.append(cut)
        start = search_from = cut
