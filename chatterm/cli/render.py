"""Where `ask` writes the reply: raw text for pipes, rendered markdown for terminals.

The raw sink is the hot path when piping: the reply is passed on byte-exact (the documented
contract scripts rely on), and what one network read brings is written with one ``write`` and
one ``flush`` (see :class:`RawSink`), not one per streamed piece. On a terminal
every piece first goes through the one sanitiser (:mod:`chatterm.sanitize`, a single translate
pass), so a reply can never drive the terminal. The markdown sink prints each finished block
once (cut by :mod:`chatterm.markdown_blocks`, the splitter the TUI uses, so the blocks render as
the whole document would) and keeps only the unfinished tail in a live region, so rendering
stays linear in the reply's length.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

from chatterm.markdown_blocks import BREAK, SegmentSplitter
from chatterm.sanitize import StreamSanitizer, safe_text


class ReplySink(Protocol):
    def text(self, piece: str) -> None: ...
    def reasoning(self, piece: str) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


# Held text is written at once past this size, however busy the event loop is.
HOLD_LIMIT = 64 * 1024


class RawSink:
    """Plain text, written as it arrives; on a terminal, with every control made visible.

    Why the pieces are held: a fast server sends thousands of small pieces a second, and a
    ``write`` + ``flush`` (a system call, and a wake-up of the reader of the pipe) for each one
    was most of what `ask` cost per piece. Inside an event loop, the pieces that arrive
    together (one network read brings many) are held and written once, as soon as the loop
    gets control back: before the next read waits for the server, so nothing that arrived is
    kept from the reader while the stream is idle. Outside a loop every piece is written at
    once. A write error of a held write (the reader of a pipe went away: ``BrokenPipeError``)
    is raised by the next :meth:`text`, :meth:`flush` or :meth:`close`, where it was raised
    before; :meth:`flush` writes what is held (before a notice goes to stderr, on the way out).
    """

    def __init__(self, stream: TextIO, sanitize: bool) -> None:
        self._write = stream.write
        self._flush = stream.flush
        self._clean = StreamSanitizer() if sanitize else None
        self._wrote_newline = True
        self._held: list[str] = []
        self._held_chars = 0
        self._scheduled = False
        self._failed: BaseException | None = None

    def text(self, piece: str) -> None:
        if self._clean is not None:
            piece = self._clean.feed(piece)
        if not piece:
            return
        if self._failed is not None:
            self._raise_failure()
        self._wrote_newline = piece.endswith("\n")
        self._held.append(piece)
        self._held_chars += len(piece)
        if self._scheduled and self._held_chars < HOLD_LIMIT:
            return
        if self._held_chars < HOLD_LIMIT:
            loop = _running_loop()
            if loop is not None:
                self._scheduled = True
                loop.call_soon(self._write_soon)
                return
        self._write_held()

    def reasoning(self, piece: str) -> None:
        """Reasoning is not part of the answer: pipes get the answer only."""

    def flush(self) -> None:
        """Write what is held now (raises a held write's error)."""
        if self._failed is not None:
            self._raise_failure()
        if self._held:
            self._write_held()

    def close(self) -> None:
        self.flush()
        if self._clean is not None:
            held = self._clean.flush()
            if held:
                self._write(held)
                self._wrote_newline = False
        if not self._wrote_newline:
            self._write("\n")
        self._flush()

    def _write_held(self) -> None:
        held = self._held
        text = held[0] if len(held) == 1 else "".join(held)
        self._held = []
        self._held_chars = 0
        self._write(text)
        self._flush()

    def _write_soon(self) -> None:
        """The event loop's turn: write what the last read brought; keep an error for later
        (raised here, the loop would only log it)."""
        self._scheduled = False
        if not self._held or self._failed is not None:
            return
        try:
            self._write_held()
        except (OSError, ValueError) as exc:
            self._failed = exc

    def _raise_failure(self) -> None:
        failed, self._failed = self._failed, None
        assert failed is not None
        raise failed


class CollectSink:
    """Keeps the reply for printing at the end (--no-stream, --json)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def text(self, piece: str) -> None:
        self.pieces.append(piece)

    def reasoning(self, piece: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MarkdownSink:
    """Renders markdown to a terminal as it streams (rich).

    The text is sanitised before rich sees it (rich would pass an ESC through), links are shown
    with their address instead of as terminal hyperlinks, and nothing is parsed as rich markup.
    """

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        self._console = console
        self._clean = StreamSanitizer()
        self._splitter = SegmentSplitter(limit=0)
        self._pending: list[str] = []
        self._pending_chars = 0
        self._thinking = ""
        self._blocks_printed = 0
        self._live = Live(
            console=console,
            auto_refresh=True,
            refresh_per_second=10,
            transient=True,
            vertical_overflow="visible",
            get_renderable=self._tail,
            # Notices printed while the reply streams go above the live region when stderr is
            # this terminal too; a redirected stderr keeps them (rich would move them to stdout).
            redirect_stderr=_is_terminal(sys.stderr),
        )
        self._live.start()

    def _tail(self) -> Any:
        from rich.text import Text

        if self._pending_chars:
            return _markdown("".join(self._pending))
        if self._thinking:
            lines = self._thinking.splitlines()[-4:]
            return Text("thinking… " + " ".join(lines), style="dim italic", overflow="ellipsis")
        return Text("")

    def text(self, piece: str) -> None:
        self._thinking = ""  # the answer has started: the live region shows it, not reasoning
        for part in self._splitter.feed(self._clean.feed(piece)):
            if part is BREAK:
                self._commit()
            else:
                self._pending.append(part)
                self._pending_chars += len(part)

    def reasoning(self, piece: str) -> None:
        self._thinking = (self._thinking + safe_text(piece))[-2000:]

    def flush(self) -> None:
        """Nothing to do: rich's live region draws on its own."""

    def _commit(self) -> None:
        block = "".join(self._pending)
        self._pending, self._pending_chars = [], 0
        if block.strip():
            self._print_block(_markdown(block))

    def close(self) -> None:
        self._live.stop()
        held = self._clean.flush()
        if held:
            self._pending.append(held)
        self._commit()

    def _print_block(self, block: Any) -> None:
        """Print one finished block with exactly one blank line before the next.

        Rendered alone, some blocks (lists, tables) end in blank lines and others do not, so the
        edges are trimmed and the spacing of a whole document is put back by hand.
        """
        from rich.segment import Segment, Segments

        console = self._live.console
        lines = console.render_lines(block, console.options, pad=False, new_lines=False)

        def blank(line: list[Segment]) -> bool:
            return not "".join(segment.text for segment in line).strip()

        while lines and blank(lines[-1]):
            lines.pop()
        while lines and blank(lines[0]):
            lines.pop(0)
        if not lines:
            return
        segments: list[Segment] = [Segment.line()] if self._blocks_printed else []
        for line in lines:
            segments.extend(line)
            segments.append(Segment.line())
        console.print(Segments(segments), end="")
        self._blocks_printed += 1


def _running_loop() -> Any:
    """The event loop running in this thread, or None (asyncio is imported by then, if one
    runs)."""
    asyncio = sys.modules.get("asyncio")
    return asyncio._get_running_loop() if asyncio is not None else None


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


def _markdown(text: str) -> Any:
    """rich's Markdown for already sanitised ``text``; links shown as ``text (address)``."""
    from rich.markdown import Markdown

    from chatterm.markdown_parse import parsed_markdown

    return parsed_markdown(Markdown, text, hyperlinks=False)


def make_console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def choose_sink(raw: bool, collect: bool) -> ReplySink:
    if collect:
        return CollectSink()
    if raw or not sys.stdout.isatty():
        return RawSink(sys.stdout, sanitize=sys.stdout.isatty())
    return MarkdownSink(make_console())
