"""Drawing a streaming reply into its message view without slowing the app down.

Why it is shaped this way:

* The controller (:mod:`chatterm.controller`) consumes the backend's stream and hands each
  piece of text to :meth:`ReplyRenderer.write`; the text itself lives once, in the
  controller's :class:`~chatterm.controller_events.Reply`. The renderer only draws.
* Text goes to Textual's ``MarkdownStream`` (``Markdown.get_stream``), which appends to the
  document and coalesces deltas that arrive while a render is in progress. The document is
  never re-rendered whole per chunk (the O(n²) trap of elia and parllama).
* The live Markdown widget holds one segment of a few hundred characters
  (:mod:`chatterm.markdown_blocks`); when the stream moves past a safe cut the segment is frozen
  (:mod:`chatterm.tui.widgets.markdown_render`: rendered whole, once, from a fresh parse, as one
  widget) and a new live segment starts, so each frame's cost stays independent of the reply's
  length.
* When the stream stops (finished, failed, cancelled) the open segment is rendered whole from
  its complete text: appending keeps parse state per top-level block (oterm #308).
* Live text passes through a :class:`~chatterm.sanitize.StreamSanitizer` before it reaches the
  Markdown widget: a control character split across chunks is still disarmed.
* Reasoning is redrawn at most 10 times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownStream

from chatterm.controller_events import Reply
from chatterm.markdown_blocks import BREAK, SegmentSplitter
from chatterm.sanitize import StreamSanitizer
from chatterm.tui.widgets.message_view import MessageView

REASONING_REFRESH_S = 0.1
# How often streamed text is handed to the Markdown widget (10 times a second): each hand-over
# makes Textual lay the screen out again, and at 20 a second an 8,000-chunk reply streamed
# 1.7x slower (bench/bench_tui.py).
FLUSH_INTERVAL_S = 0.1


class ReplyRenderer:
    """Draws one reply into ``view`` while it streams; stops drawing if the view goes away."""

    def __init__(
        self,
        reply: Reply,
        view: MessageView,
        checkpoint: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.reply = reply
        self.view = view
        self.writer = _SegmentWriter(view, checkpoint)
        self.live = True
        self.next_reasoning = 0.0
        self.rendered_at: float | None = None

    @property
    def segments(self) -> int:
        return self.writer.frozen

    async def write(self, text: str) -> None:
        if not self.live:
            return
        if self.view.is_attached:
            await self.writer.write(text)
        else:
            # The user switched conversations: the reply goes on (stored), undrawn.
            self.live = False
            await self.writer.stop()

    def reasoning(self) -> None:
        now = time.monotonic()
        if self.live and now >= self.next_reasoning and self.view.is_attached:
            self.next_reasoning = now + REASONING_REFRESH_S
            self.view.show_reasoning(self.reply.reasoning)

    def model(self, model: str) -> None:
        if self.view.is_attached:
            self.view.model = model
            self.view.refresh_header()

    async def finish(self) -> None:
        """The stream is over: render the open segment whole (the view then takes the row)."""
        await self.writer.stop()
        if self.view.is_attached and self.live:
            if self.reply.reasoning:
                self.view.show_reasoning(self.reply.reasoning)
            await self.writer.final_render()
        self.live = False
        self.rendered_at = time.monotonic()


class _SegmentWriter:
    """Writes deltas into the reply's live segment; at a safe cut, freezes it and starts a new
    one, so the live Markdown widget never holds more than a few thousand characters.

    Deltas are handed to the MarkdownStream at most every ``FLUSH_INTERVAL_S``: each append
    makes Textual parse the last block again and build throw-away block widgets, and at
    thousands of deltas a second that garbage alone (collected in full-heap passes of a
    hundred milliseconds and more) stalls the app. A timer flushes whatever is left when the
    model pauses.
    """

    def __init__(
        self, view: MessageView, checkpoint: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self.view = view
        self.checkpoint = checkpoint  # chatterm.gc_policy, after each finished segment
        self.splitter = SegmentSplitter()
        self.sanitizer = StreamSanitizer()
        live = view.segments[-1]
        assert isinstance(live, Markdown)
        self.live = live
        self.stream = Markdown.get_stream(live)
        # The open segment's sanitised display text (a few hundred characters): what the final
        # render of the segment parses. The reply's text itself is the controller's Reply.
        self.pieces: list[str] = []
        self.buffer: list[str] = []  # not yet handed to the stream
        self.last_flush = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.frozen = 0

    async def write(self, text: str) -> None:
        for piece in self.splitter.feed(self.sanitizer.feed(text)):
            if piece is BREAK:
                await self._next_segment()
            else:
                self.pieces.append(piece)
                self.buffer.append(piece)
        if time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S:
            await self._flush()
        elif self.buffer and self.timer is None:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(FLUSH_INTERVAL_S, self._flush_later)

    async def _next_segment(self) -> None:
        await self._flush()
        await _stop_quietly(self.view, self.stream)
        await self.view.freeze(self.live, "".join(self.pieces))
        self.frozen += 1
        self.pieces = []
        if self.checkpoint is not None:
            # Collect the finished segment's widgets before the next ones exist; drop our
            # own references to them first.
            self.live = self.stream = None  # type: ignore[assignment]
            await self.checkpoint()
        self.live = await self.view.add_live_segment()
        self.stream = Markdown.get_stream(self.live)

    def _flush_later(self) -> None:
        self.timer = None
        task = asyncio.ensure_future(self._flush())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        text = "".join(self.buffer)
        self.buffer.clear()
        with contextlib.suppress(RuntimeError):  # the stream stopped: the final render shows it
            await self.stream.write(text)

    async def stop(self) -> None:
        tail = self.sanitizer.flush()
        if tail:
            self.pieces.append(tail)
            self.buffer.append(tail)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        await self._flush()
        await _stop_quietly(self.view, self.stream)

    async def final_render(self) -> None:
        """After the stream: render the open segment's whole text once, from a fresh parse.

        Appending keeps parse state per block, so a block split across deltas (a fence opened
        in one delta and closed in another, oterm #308) is rendered again from the complete
        text here; earlier segments were rendered whole when the stream moved past them.
        """
        await self.view.freeze(self.live, "".join(self.pieces))
        self.frozen += 1


# Flush tasks started from a timer, kept referenced until they finish.
_background: set[asyncio.Future[None]] = set()


async def _stop_quietly(view: MessageView, stream: MarkdownStream) -> None:
    """Stop a segment's stream; a failure is reported (debug log + notification), not raised,
    because it happens while the reply is being cleaned up and the text is already stored."""
    try:
        await stream.stop()
    except Exception as exc:
        report = getattr(view.app, "report_unexpected", None)
        if report is not None:
            report(exc, "stopping a live segment")
