"""Search snippets whose cost depends neither on a message's size nor on how often it matches.

Why not ``snippet()`` on the history's own full-text index: FTS5 scores every match against
every other match of the row (quadratic in the matches of one message) and tokenizes the whole
message, so one 40,000-word reply matching on every word took 34 s to search. Here each hit's
text is read through SQLite's incremental blob I/O in bounded windows (never the whole
message), and FTS5 makes the snippet in a small in-memory FTS5 table with the same tokenizer:
the same tokenization, the same choice of excerpt, but over a bounded amount of text.

A window is 2 KiB, but it goes into that table as rows of at most :data:`ROW_CHARS`
characters (cut at a space or line end): ``snippet()`` costs the square of the matches in a
row (a 2 KiB window of ``t t t …`` searched for ``t`` took 16 ms, 50 such hits most of a
second); on rows of 96 characters it costs at most ~0.05 ms. Which rows match is asked
first (rowids only: linear, no positions, no ranking), and only one row per hit gets a
snippet: the first holding every word of the query, else the first holding any. The rows
of a first window go in a few at a time (4, then 8, 16, ...) until one settles the hit, so
a message dense with matches costs a few rows, not its whole window. A message that fits one
row gets exactly the snippet FTS5 gives for the whole message. The rows are written inside a
savepoint that is rolled back, so nothing is left to delete.

The snippet's matches come back as character spans: ``snippet()`` wraps them in a pair of
private-use characters, chosen so that neither occurs in the text read, and the markers are
parsed out. For longer messages with no match in the first window the next windows are
tried (all hits at once, a round per window), up to :data:`SCAN_LIMIT` bytes of a message
and :data:`SEARCH_SCAN_LIMIT` over the whole search; a match only beyond that gives the
message's opening words without spans.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ROW_CHARS", "SCAN_LIMIT", "WINDOW", "Snippet", "SnippetMaker", "any_word_query"]

WINDOW = 2048  # bytes read at a time from a hit's text
OVERLAP = 128  # bytes shared by consecutive windows, so a word on the cut is not lost
SCAN_LIMIT = 256 * 1024  # bytes of one message searched for a match, at most
SEARCH_SCAN_LIMIT = 1024 * 1024  # bytes read past the first windows, over all hits of a search
TOKENS = 12  # words in a snippet, as before
ROW_CHARS = 96  # characters in one row of the snippet table, at most (~15 words)
FIRST_ROWS = 4  # rows of a hit's first window in the first round (then 8, 16, ...)
ELLIPSIS = "…"
_TABLE = "temp.chatterm_snippet_window"
# Pairs of private-use characters to mark matches; the first pair absent from the text is used.
_MARKERS = tuple((chr(0xE000 + 2 * i), chr(0xE001 + 2 * i)) for i in range(16))

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Snippet:
    text: str
    matches: tuple[Span, ...]


def any_word_query(words: Sequence[str]) -> str:
    """An FTS5 query matching any of ``words`` as a prefix, each quoted so it is never syntax."""
    quoted = (w.replace('"', '""') for w in words if w)
    return " OR ".join(f'"{w}"*' for w in quoted)


def all_words_query(words: Sequence[str]) -> str:
    """An FTS5 query matching all of ``words`` as prefixes, each quoted so it is never syntax."""
    quoted = (w.replace('"', '""') for w in words if w)
    return " AND ".join(f'"{w}"*' for w in quoted)


@dataclass(slots=True)
class _Window:
    rowid: int
    start: int  # byte offset in the message
    end: int  # byte offset just past the window
    size: int  # bytes in the whole message
    text: str


# A snippet before its markers are parsed out: FTS5's text, the markers used, and whether the
# window holds text before / after the row it was made from.
_Raw = tuple[str, tuple[str, str], bool, bool]


@dataclass(slots=True)
class _Pending:
    """A hit whose snippet is not settled yet: its window, cut into rows as they are needed
    (``next``: the character where the next row starts); ``batch`` rows go into the next
    round."""

    window: _Window
    batch: int
    next: int = 0
    fallback: _Raw | None = None


class SnippetMaker:
    """Makes snippets for hits of one query, reading at most a few windows of each message.

    ``table``/``column`` name the message text (read by rowid with blob I/O); ``tokenize``
    must be the tokenizer of the index the hits came from, so both agree on what matched.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        table: str,
        column: str,
        tokenize: str = "unicode61",
        schema: str = "main",
    ) -> None:
        self._db = db
        self._table = table
        self._schema = schema  # the attached database holding ``table`` (blobs name it)
        self._column = column
        self._tokenize = tokenize
        self._ready = False

    def make(self, rowids: Sequence[int], words: Sequence[str]) -> dict[int, Snippet]:
        """Snippets for ``rowids`` (hits of a query made of ``words``), keyed by rowid."""
        query = any_word_query(words)
        every = all_words_query(words) if len(words) > 1 else None
        if not rowids or not query:
            return {}
        self._ensure_table()
        first = {rowid: self._read(rowid, 0) for rowid in rowids}
        result: dict[int, Snippet] = {}
        pending = [_Pending(window, FIRST_ROWS) for window in first.values()]
        budget = SEARCH_SCAN_LIMIT
        while pending:
            found = self._round(pending, query, every)
            later: list[_Pending] = []
            for item in pending:
                window = item.window
                raw = found.get(window.rowid)
                if raw is not None:
                    result[window.rowid] = _parse(*raw, window)
                elif item.next < len(window.text):
                    later.append(item)  # the window's next rows, in the next round
                elif item.fallback is not None:
                    result[window.rowid] = _parse(*item.fallback, window)
                elif window.end < min(window.size, SCAN_LIMIT) and budget > 0:
                    budget -= WINDOW
                    following = self._read(window.rowid, window.end - OVERLAP)
                    later.append(_Pending(following, WINDOW))  # scanning: all of it at once
                else:
                    result[window.rowid] = _opening(first[window.rowid])
            pending = later
        return result

    def _ensure_table(self) -> None:
        # With prefix indexes, as the history's: a window of 2 KiB holds a few hundred
        # distinct words that may all start with the query ("tok0 tok1 …"), and without them
        # each of the two queries per round merged one list per such word (13 ms -> 3 ms for
        # the 50 hits of the 40,000-distinct-word benchmark).
        if not self._ready:
            self._db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {_TABLE}"
                f" USING fts5(content, tokenize='{self._tokenize}', prefix='1 2 3 4')"
            )
            self._ready = True

    def _read(self, rowid: int, start: int) -> _Window:
        """:data:`WINDOW` bytes of one message from ``start``, cut back to whole words."""
        with self._db.blobopen(
            self._table, self._column, rowid, readonly=True, name=self._schema
        ) as blob:
            size = len(blob)
            start = max(0, min(start, size))
            blob.seek(start)
            data = blob.read(WINDOW)
        end = start + len(data)
        text = data.decode("utf-8", "ignore")  # drops only characters cut at the edges
        if start > 0:  # the first word may be the tail of a longer one
            cut = _first_space(text)
            text = text[cut:] if cut is not None else text
        if end < size:  # the last word may be the head of a longer one
            cut = _last_space(text)
            text = text[:cut] if cut is not None else text
        return _Window(rowid, start, end, size, text)

    def _round(
        self, pending: list[_Pending], query: str, every: str | None
    ) -> dict[int, _Raw]:
        """Put the next rows of each pending window in the table and make the snippet of
        each hit that is settled: the first row holding every word (``every``; a one-word
        query: any match), keyed by message rowid. The first row holding only some words
        is kept as the hit's fallback (``_Pending.fallback``), for when no row holds all.

        Which rows match is asked first (rowids only: linear, no positions, no ranking),
        and only the chosen rows get a ``snippet()``."""
        rows: list[tuple[int, str]] = []
        where: dict[int, tuple[_Pending, bool, bool]] = {}
        for item in pending:
            text = item.window.text
            for _ in range(item.batch):
                begin = item.next
                row, item.next = _next_row(text, begin)
                rows.append((len(rows) + 1, row))
                where[len(rows)] = (item, begin > 0, item.next < len(text))
                if item.next >= len(text):
                    break
            item.batch *= 2
        texts = [text for _, text in rows]
        markers = next(
            (m for m in _MARKERS if not any(m[0] in t or m[1] in t for t in texts)), None
        )
        opening, closing = markers or ("", "")
        db = self._db
        found: dict[int, _Raw] = {}
        db.execute("SAVEPOINT chatterm_snippet")
        try:
            db.executemany(f"INSERT INTO {_TABLE}(rowid, content) VALUES (?, ?)", rows)
            # FTS5 gives the rows in rowid order: the first one seen is the earliest.
            chosen: dict[int, _Pending] = {}
            fallbacks: dict[int, _Pending] = {}
            settled: set[int] = set()
            for wanted in ([every] if every else []) + [query]:
                for (row,) in db.execute(
                    f"SELECT rowid FROM {_TABLE} WHERE chatterm_snippet_window MATCH ?",
                    (wanted,),
                ):
                    item = where[row][0]
                    if id(item) in settled:
                        continue
                    settled.add(id(item))
                    if wanted is every or every is None:
                        chosen[row] = item
                    elif item.fallback is None:
                        fallbacks[row] = item
            if chosen or fallbacks:
                # The row numbers are ours, not user text.
                listed = ",".join(str(row) for row in sorted(chosen.keys() | fallbacks.keys()))
                for row, text in db.execute(
                    f"SELECT rowid, snippet(chatterm_snippet_window, 0, ?, ?, ?, {TOKENS})"
                    f" FROM {_TABLE} WHERE chatterm_snippet_window MATCH ?"
                    f" AND rowid IN ({listed})",
                    (opening, closing, ELLIPSIS, query),
                ):
                    item, before, after = where[row]
                    raw = (str(text), (opening, closing), before, after)
                    if row in chosen:
                        found[item.window.rowid] = raw
                    else:
                        item.fallback = raw
        finally:
            if db.in_transaction:  # SQLite may have rolled back already (a full disk)
                db.execute("ROLLBACK TO chatterm_snippet")
                db.execute("RELEASE chatterm_snippet")
        return found


def _next_row(text: str, start: int) -> tuple[str, int]:
    """The row of ``text`` from ``start``: at most :data:`ROW_CHARS` characters, cut at a
    space or line end in its second half where there is one (the separator is dropped), and
    where the next row starts."""
    end = start + ROW_CHARS
    if end >= len(text):
        return text[start:], len(text)
    cut = max(text.rfind(" ", start + ROW_CHARS // 2, end + 1),
              text.rfind("\n", start + ROW_CHARS // 2, end + 1))
    if cut < 0:
        return text[start:end], end
    return text[start:cut], cut + 1


def _rows(text: str) -> list[str]:
    """All the rows of ``text`` (see :func:`_next_row`)."""
    rows: list[str] = []
    start = 0
    while True:
        row, start = _next_row(text, start)
        rows.append(row)
        if start >= len(text):
            return rows


def _parse(
    text: str, markers: tuple[str, str], before: bool, after: bool, window: _Window
) -> Snippet:
    """Take the markers out of a snippet, keeping where they were as spans; add the ellipses
    FTS5 could not know about (its row is not the whole message: ``before``/``after`` say
    whether the window holds text before / after the row)."""
    opening, closing = markers
    more_before = before or window.start > 0
    more_after = after or window.end < window.size
    prefix = ELLIPSIS if more_before and not text.startswith(ELLIPSIS) else ""
    parts: list[str] = [prefix]
    spans: list[Span] = []
    length = len(prefix)
    start: int | None = None
    if not opening:
        parts.append(text)
        length += len(text)
    else:
        for piece in _split_markers(text, opening, closing):
            if piece == opening:
                start = length
            elif piece == closing:
                if start is not None and length > start:
                    spans.append((start, length))
                start = None
            else:
                parts.append(piece)
                length += len(piece)
    if more_after and not text.endswith(ELLIPSIS):
        parts.append(ELLIPSIS)
    return Snippet("".join(parts), tuple(spans))


def _split_markers(text: str, opening: str, closing: str) -> list[str]:
    """``text`` cut into runs of plain text and single marker characters."""
    return [p for p in re.split(f"([{re.escape(opening)}{re.escape(closing)}])", text) if p]


def _opening(window: _Window) -> Snippet:
    """No match within the scanned part of the message: its first words, no spans."""
    words = window.text.split()
    text = " ".join(words[:TOKENS])
    if len(words) > TOKENS or window.end < window.size:
        text += ELLIPSIS
    return Snippet(text, ())


def _first_space(text: str) -> int | None:
    for i, ch in enumerate(text[:200]):
        if ch.isspace():
            return i + 1
    return None


def _last_space(text: str) -> int | None:
    tail = max(0, len(text) - 200)
    for i in range(len(text) - 1, tail - 1, -1):
        if text[i].isspace():
            return i
    return None
