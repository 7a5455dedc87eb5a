"""Where `ask` writes the reply: raw text for pipes, rendered markdown for terminals.

The raw sink is the hot path when piping: one write and flush per streamed piece, nothing else.
The markdown sink prints each finished block once (blank line outside a code fence) and keeps
only the unfinished tail in a live region, so rendering stays linear in the reply's length.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

# C0 and C1 control characters except tab and newline: never let model text drive the terminal.
_CONTROL = {c: 0xFFFD for c in [*range(0, 9), *range(11, 32), 127, *range(0x80, 0xA0)]}


class ReplySink(Protocol):
    def text(self, piece: str) -> None: ...
    def reasoning(self, piece: str) -> None: ...
    def close(self) -> None: ...


class RawSink:
    """Plain text, written as it arrives. Control characters are replaced on a terminal only."""

    def __init__(self, stream: TextIO, sanitize: bool) -> None:
        self._write = stream.write
        self._flush = stream.flush
        self._sanitize = sanitize
        self._wrote_newline = True

    def text(self, piece: str) -> None:
        if self._sanitize:
            piece = piece.translate(_CONTROL)
        self._write(piece)
        self._flush()
        self._wrote_newline = piece.endswith("\n") if piece else self._wrote_newline

    def reasoning(self, piece: str) -> None:
        """Reasoning is not part of the answer: pipes get the answer only."""

    def close(self) -> None:
        if not self._wrote_newline:
            self._write("\n")
        self._flush()


class CollectSink:
    """Keeps the reply for printing at the end (--no-stream, --json)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def text(self, piece: str) -> None:
        self.pieces.append(piece)

    def reasoning(self, piece: str) -> None:
        pass

    def close(self) -> None:
        pass


def _fence_toggles(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith("```") or stripped.startswith("~~~")


class MarkdownSink:
    """Renders markdown to a terminal as it streams (rich)."""

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        self._console = console
        self._pending = ""
        self._thinking = ""
        self._blocks_printed = 0
        self._live = Live(
            console=console,
            auto_refresh=True,
            refresh_per_second=10,
            transient=True,
            vertical_overflow="visible",
            get_renderable=self._tail,
        )
        self._live.start()

    def _tail(self) -> Any:
        from rich.markdown import Markdown
        from rich.text import Text

        if self._pending:
            return Markdown(self._pending)
        if self._thinking:
            lines = self._thinking.splitlines()[-4:]
            return Text("thinking… " + " ".join(lines), style="dim italic", overflow="ellipsis")
        return Text("")

    def text(self, piece: str) -> None:
        self._pending += piece
        if "\n" in piece:
            self._commit_finished_blocks()

    def reasoning(self, piece: str) -> None:
        self._thinking = (self._thinking + piece)[-2000:]

    def _commit_finished_blocks(self) -> None:
        from rich.markdown import Markdown

        in_fence = False
        cut = 0
        pos = 0
        lines = self._pending.split("\n")
        for line in lines[:-1]:
            pos += len(line) + 1
            if _fence_toggles(line):
                in_fence = not in_fence
            elif not in_fence and not line.strip() and pos > 1:
                cut = pos
        if cut:
            block, self._pending = self._pending[:cut], self._pending[cut:]
            if block.strip():
                self._print_block(Markdown(block))

    def close(self) -> None:
        from rich.markdown import Markdown

        self._live.stop()
        if self._pending.strip():
            self._print_block(Markdown(self._pending))
        self._pending = ""

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


def make_console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def choose_sink(raw: bool, collect: bool) -> ReplySink:
    if collect:
        return CollectSink()
    if raw or not sys.stdout.isatty():
        return RawSink(sys.stdout, sanitize=sys.stdout.isatty())
    return MarkdownSink(make_console())
