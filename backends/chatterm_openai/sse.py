"""A small Server-Sent Events decoder over raw bytes.

Why our own instead of ``response.aiter_lines()`` or ``httpx-sse``: ``aiter_lines`` splits on
U+2028, U+0085 and other characters that ``str.splitlines`` treats as line ends, and JSON may
carry those unescaped; ``httpx-sse`` turns comments after an ``id:`` line into empty events,
drops llama.cpp's ``error:`` field and discards a last event that lacks the trailing blank line.
The rules needed here fit in one screen:

* lines end at ``b"\\r\\n"``, ``b"\\n"`` or a lone ``b"\\r"``, as the SSE standard says (neither
  byte ever occurs inside a UTF-8 sequence, so a multi-byte character split across reads is
  safe); a ``b"\\r"`` at the end of one read and a ``b"\\n"`` at the start of the next are one
  line end;
* lines starting with ``:`` are comments (keep-alives) and are skipped;
* ``data:`` lines of one event are joined with ``\\n``; a blank line dispatches the event, and an
  event with no ``data:`` (and no ``error:``) is not dispatched at all;
* an ``error:`` field (older llama.cpp servers) ends the stream: it is kept in
  :attr:`SSEDecoder.error` for the caller to raise, and nothing after it is decoded;
* ``event:``, ``id:``, ``retry:`` and unknown fields are ignored;
* at the end of the body the last event is dispatched even without a trailing blank line.

The decoder is synchronous and push-based (:meth:`SSEDecoder.feed` per network read, returning
the ``data`` of each finished event as a ``str``), so the backend's hot loop drives it without
another async-generator layer or an object per event, and tests can feed it bytes split at
every position.

Cost is linear in the size of the body however it is cut into reads: the unfinished last line
is kept as a list of pieces, only each new read is searched for a line end, and the pieces are
joined once, when the line ends. (Re-joining a growing buffer on every read made a 50 MB
single-line event cost minutes instead of a second.)
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SSEDecoder", "loads_event"]

_BOM = b"\xef\xbb\xbf"
_raw_decode = json.JSONDecoder().raw_decode  # the decoder json.loads uses: no hooks, strict
_loads = json.loads


def loads_event(data: str) -> Any:
    """``json.loads(data)``, exactly (the same value, the same exceptions), in fewer steps.

    Why: one event per streamed piece makes this the busiest call of the stream. ``json.loads``
    goes through two more Python frames and two regex matches (for whitespace around the
    document) before the C scanner; an event's data almost never has any, so the scanner is
    called directly, and anything else (whitespace at either end, extra data, not JSON at all)
    is handed to ``json.loads`` to decide, as before.
    """
    try:
        value, end = _raw_decode(data)
    except ValueError:
        return _loads(data)
    if end != len(data):
        return _loads(data)
    return value


class SSEDecoder:
    """Turns the bytes of an event stream, in reads of any size, into the events' data.

    ``error`` is None until an event with an ``error:`` field arrives; then it holds that
    field's text (lines joined with ``\n``) and the decoder ignores all further input.
    """

    __slots__ = ("_after_cr", "_data", "_errors", "_head", "_pieces", "error")

    def __init__(self) -> None:
        self.error: str | None = None
        self._pieces: list[bytes] = []  # the unfinished last line, as the reads brought it
        self._data: list[bytes] = []  # data lines of the event being built
        self._errors: list[bytes] = []  # error lines of the event being built
        self._head: bytes | None = b""  # the first bytes, until a leading BOM is ruled out
        self._after_cr = False  # the last read ended in "\r": a "\n" next is the same line end

    def feed(self, chunk: bytes) -> list[str]:
        """Take one read of the body; return the data of the events it completed.

        Fast path for what nearly every server sends: no ``\r`` in the read, and events made
        of one ``data: `` line ended by a blank line. Those are cut out of the read directly;
        anything else (CR line ends, comments, several fields) goes through the line rules.
        """
        events: list[str] = []
        if self.error is not None or not chunk:
            return events
        if self._head is not None:
            chunk = self._head + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._head = chunk  # too short to tell whether it is a BOM yet
                return events
            self._head = None
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._after_cr = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        start = 0  # where this read's unhandled bytes begin
        if self._pieces:
            # Finish the pending line with this read's bytes up to its first line end; only
            # this read is searched, and the pieces are joined once.
            end = chunk.find(b"\n")
            if end < 0:
                if chunk:
                    self._pieces.append(chunk)
                return events
            pieces, self._pieces = self._pieces, []
            pieces.append(chunk[:end])
            if pieces[0][:6] == b"data: ":  # the usual long line: drop the prefix before joining
                pieces[0] = pieces[0][6:]
                self._data.append(b"".join(pieces))
            else:
                self._take((b"".join(pieces),), events)
                if self.error is not None:
                    return events
            start = end + 1
            if chunk[start : start + 1] == b"\n":  # the blank line after it ends the event
                self._end_event(events)
                if self.error is not None:
                    return events
                start += 1
        # Blocks (an event's lines, ended by a blank line) are found by searching for single
        # line ends: ``find(b"\n")`` is a memchr, while ``split(b"\n\n")`` or ``split(b"\n")``
        # walk every byte (72 and 53 us for a 64 KiB event here, against 2 us): a fast 100 MB
        # reply in 64 KiB events spent 0.12 s of its ~1 s in that split alone.
        find = chunk.find
        several = False  # a lone line end inside the block being scanned: more than one line
        pos = find(b"\n", start)
        while pos >= 0:
            if chunk[pos + 1 : pos + 2] != b"\n":
                several = True
                pos = find(b"\n", pos + 1)
                continue
            # chunk[start:pos] is a whole block. One "data: " line that begins no event left
            # open by an earlier read is the usual event; the rest goes through the line rules.
            if not several and not (self._data or self._errors) and chunk.startswith(
                b"data: ", start
            ):
                events.append(chunk[start + 6 : pos].decode("utf-8", "replace"))
            else:
                self._take(chunk[start:pos].split(b"\n"), events)
                self._end_event(events)
                if self.error is not None:
                    return events
            start = pos + 2
            several = False
            pos = find(b"\n", start)
        tail = chunk[start:] if start else chunk
        if several:
            lines = tail.split(b"\n")
            tail = lines.pop()
            self._take(lines, events)
        if tail and self.error is None:
            self._pieces.append(tail)
        return events

    def close(self) -> list[str]:
        """End of body: finish the last line and dispatch the last event if it has content."""
        events: list[str] = []
        if self._head:  # a body of one or two bytes that began like a BOM
            head, self._head = self._head, None
            self._pieces = [head]
        self._head = None
        if self._pieces and self.error is None:
            line = b"".join(self._pieces)
            self._take((line,), events)
        self._pieces = []
        self._end_event(events)
        return events

    def _take(self, lines: list[bytes] | tuple[bytes, ...], events: list[str]) -> None:
        """The line rules, for complete lines; data of dispatched events goes to ``events``."""
        for line in lines:
            if not line:
                self._end_event(events)
                if self.error is not None:
                    return
            elif line.startswith(b"data:"):
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] != 58:  # not a ":" comment
                self._field(line)

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":  # "data" with no colon at all: an empty data line
            self._data.append(value)
        elif name == b"error":
            self._errors.append(value)
        # event:, id:, retry: and unknown fields are ignored on purpose.

    def _end_event(self, events: list[str]) -> None:
        """A blank line (or the end of the body): dispatch the event being built, if any."""
        if self.error is not None:
            return
        if self._errors:
            self.error = b"\n".join(self._errors).decode("utf-8", "replace")
            self._errors = []
            self._data = []
        elif self._data:
            data = self._data
            self._data = []
            if len(data) == 1:
                events.append(data[0].decode("utf-8", "replace"))
            else:
                events.append(b"\n".join(data).decode("utf-8", "replace"))
