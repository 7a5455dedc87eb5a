"""`ask`'s pipe sink: byte-exact text, written once per turn of the event loop, errors kept.

The sink writes to a real text stream over a real pipe or an in-memory buffer; what is
checked is what reached the stream and when (in which write), never how long it took.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from typing import Any

import pytest
from cli_run import run_cli
from openai_server import UTF8_TEXT, scenario_text

from chatterm.cli.render import HOLD_LIMIT, RawSink


class Recording(io.StringIO):
    """A text stream that remembers each flushed write, and can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []
        self._mark = 0
        self.fail: BaseException | None = None

    def write(self, text: str) -> int:
        if self.fail is not None:
            raise self.fail
        return super().write(text)

    def flush(self) -> None:
        super().flush()
        value = self.getvalue()
        if len(value) > self._mark:
            self.flushed.append(value[self._mark :])
            self._mark = len(value)


def test_outside_an_event_loop_every_piece_is_written_at_once() -> None:
    out = Recording()
    sink = RawSink(out, sanitize=False)
    for piece in ("a", "b ", "c"):
        sink.text(piece)
    assert out.flushed == ["a", "b ", "c"]
    sink.close()
    assert out.getvalue() == "ab c\n"


def test_pieces_of_one_loop_turn_go_out_in_one_write_before_the_next_wait() -> None:
    out = Recording()
    sink = RawSink(out, sanitize=False)
    seen_while_waiting: list[str] = []

    async def stream() -> None:
        for turn in (["one ", "two "], ["three"]):
            for piece in turn:
                sink.text(piece)
            assert out.getvalue() == "".join(seen_while_waiting)  # held during the turn
            await asyncio.sleep(0)  # the next read waits: what arrived goes out first
            await asyncio.sleep(0)
            seen_while_waiting.append("".join(turn))
            assert out.getvalue() == "".join(seen_while_waiting)

    asyncio.run(stream())
    sink.close()
    assert out.flushed == ["one two ", "three", "\n"]
    assert out.getvalue() == "one two three\n"


def test_close_writes_what_is_held_without_waiting_for_the_loop() -> None:
    out = Recording()
    sink = RawSink(out, sanitize=False)

    async def stream() -> None:
        sink.text("partial, then the end\n")
        sink.close()  # an error or a signal: the sink is closed inside the loop's turn
        assert out.getvalue() == "partial, then the end\n"

    asyncio.run(stream())
    assert out.flushed == ["partial, then the end\n"]


def test_flush_writes_what_is_held_now() -> None:
    out = Recording()
    sink = RawSink(out, sanitize=False)

    async def stream() -> None:
        sink.text("before the notice ")
        sink.flush()
        assert out.getvalue() == "before the notice "
        sink.text("after")

    asyncio.run(stream())
    sink.close()
    assert out.getvalue() == "before the notice after\n"


def test_a_big_turn_is_written_before_the_hold_limit_is_passed() -> None:
    out = Recording()
    sink = RawSink(out, sanitize=False)
    piece = "x" * 1000

    async def stream() -> None:
        for _ in range(3 * HOLD_LIMIT // len(piece)):
            sink.text(piece)
        assert len(out.getvalue()) >= 2 * HOLD_LIMIT  # not all held to the end of the turn

    asyncio.run(stream())
    sink.close()
    assert out.getvalue() == piece * (3 * HOLD_LIMIT // len(piece)) + "\n"
    assert all(len(w) <= HOLD_LIMIT + len(piece) for w in out.flushed)


@pytest.mark.parametrize("where", ["text", "flush", "close"])
def test_a_failed_held_write_is_raised_by_the_next_call(where: str) -> None:
    out = Recording()
    sink = RawSink(out, sanitize=False)

    async def stream() -> None:
        sink.text("held ")
        out.fail = BrokenPipeError(32, "Broken pipe")
        await asyncio.sleep(0)  # the held write fails in the loop's turn, quietly
        with pytest.raises(BrokenPipeError):
            if where == "text":
                sink.text("more")
            elif where == "flush":
                sink.flush()
            else:
                sink.close()

    asyncio.run(stream())


def test_on_a_terminal_the_held_text_is_sanitised() -> None:
    out = Recording()
    sink = RawSink(out, sanitize=True)

    async def stream() -> None:
        sink.text("red \x1b[31mtext\x1b")
        sink.text("]0;title\x07 end\n")

    asyncio.run(stream())
    sink.close()
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert out.getvalue().startswith("red ") and out.getvalue().endswith(" end\n")


def test_into_a_real_pipe_the_bytes_are_exact_and_in_order() -> None:
    read_end, write_end = os.pipe()
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
        stdin=read_end, stdout=subprocess.PIPE,
    )
    os.close(read_end)
    pieces = [f"piece {i} é\u2028 " for i in range(500)]
    with os.fdopen(write_end, "w", encoding="utf-8") as stream:
        sink = RawSink(stream, sanitize=False)

        async def run() -> None:
            for i, piece in enumerate(pieces):
                sink.text(piece)
                if i % 7 == 0:
                    await asyncio.sleep(0)

        asyncio.run(run())
        sink.close()
    out, _ = reader.communicate(timeout=60)
    assert out == ("".join(pieces) + "\n").encode()


@pytest.mark.parametrize("model", ["chunks:20000", "chunks:3000:markdown", "u2028", "split-utf8"])
def test_ask_into_a_pipe_is_byte_exact_however_the_reply_arrives(
    openai_server: Any, model: str
) -> None:
    """The whole path, fast server to pipe: what one read brings goes out in one write, and the
    bytes are the reply's, in order, with one newline added at the end if it lacks one."""
    result = run_cli("ask", "-m", model, "go", env={"OPENAI_BASE_URL": openai_server.base_url})
    assert result.returncode == 0, result.stderr
    text = {
        "u2028": "line one\u2028line two\u0085line three\u2029end",  # not line ends to us
        "split-utf8": UTF8_TEXT,  # characters cut between reads
    }.get(model) or scenario_text(model)
    assert result.stdout == text + ("" if text.endswith("\n") else "\n")
