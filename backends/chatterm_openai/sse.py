"""A small Server-Sent Events decoder over raw bytes.

Why our own instead of ``response.aiter_lines()`` or ``httpx-sse``: ``aiter_lines`` splits on
U+2028, U+0085 and other characters that ``str.splitlines`` treats as line ends, and JSON may
carry those unescaped; ``httpx-sse`` turns comments after an ``id:`` line into empty events,
drops llama.cpp's ``error:`` field and discards a last event that lacks the trailing blank line.
The rules needed here fit in one screen:

* lines end at ``b"\\n"`` only (a byte that never occurs inside a UTF-8 sequence, so a
  multi-byte character split across reads is safe); one trailing ``b"\\r"`` is stripped;
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
"""

from __future__ import annotations

__all__ = ["SSEDecoder"]

_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Turns the bytes of an event stream, in reads of any size, into the events' data.

    ``error`` is None until an event with an ``error:`` field arrives; then it holds that
    field's text (lines joined with ``\n``) and the decoder ignores all further input.
    """

    __slots__ = ("_data", "_errors", "_pending", "_started", "error")

    def __init__(self) -> None:
        self.error: str | None = None
        self._pending = b""  # the unfinished last line of the previous read
        self._data: list[bytes] = []  # data lines of the event being built
        self._errors: list[bytes] = []  # error lines of the event being built
        self._started = False  # whether a leading BOM has been checked for

    def feed(self, chunk: bytes) -> list[str]:
        """Take one read of the body; return the data of the events it completed.

        Fast path for what nearly every server sends: no ``\r`` in the read, and events made
        of one ``data: `` line ended by a blank line. Those are cut out with ``split`` in C;
        anything else (CRLF, comments, several fields) goes through the line rules.
        """
        if self._pending:
            chunk = self._pending + chunk
            self._pending = b""
        if not self._started:
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._pending = chunk  # too short to tell whether it is a BOM yet
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        events: list[str] = []
        if self.error is not None:
            return events
        if b"\r" in chunk:
            lines = chunk.split(b"\n")
            self._pending = lines.pop()
            self._take(lines, events)
            return events
        blocks = chunk.split(b"\n\n")
        tail = blocks.pop()
        if blocks:
            if self._data or self._errors:  # the first block ends an event begun earlier
                self._take(blocks[0].split(b"\n"), events)
                self._end_event(events)
                del blocks[0]
                if self.error is not None:
                    return events
            for block in blocks:
                if block[:6] == b"data: " and b"\n" not in block:
                    events.append(block[6:].decode("utf-8", "replace"))
                else:
                    self._take(block.split(b"\n"), events)
                    self._end_event(events)
                    if self.error is not None:
                        return events
        if b"\n" in tail:
            lines = tail.split(b"\n")
            self._pending = lines.pop()
            self._take(lines, events)
        else:
            self._pending = tail
        return events

    def close(self) -> list[str]:
        """End of body: finish the last line and dispatch the last event if it has content."""
        pending, self._pending = self._pending, b""
        if not self._started and pending.startswith(_BOM):
            pending = pending[len(_BOM) :]
        self._started = True
        events = self.feed(pending + b"\n") if pending else []
        self._end_event(events)
        return events

    def _take(self, lines: list[bytes], events: list[str]) -> None:
        """The line rules, for complete lines; data of dispatched events goes to ``events``."""
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
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
