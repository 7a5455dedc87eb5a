"""Drawing a streaming reply into its message view without slowing the app down.

Why it is shaped this way:

* The controller (:mod:`chatterm.controller`) consumes the backend's stream and hands each
  piece of text to :meth:`ReplyRenderer.write`, which only appends it to a list: no widget,
  no message, no await per chunk. The text itself lives once, in the controller's
  :class:`~chatterm.controller_events.Reply`; the renderer only draws.
* At most every ``FLUSH_INTERVAL_S`` a timer hands the batch to the live segment: sanitised
  once per batch (a :class:`~chatterm.sanitize.StreamSanitizer`, so a control character split
  across chunks is still disarmed), cut by :mod:`chatterm.markdown_blocks`, and the live
  segment (:class:`~chatterm.tui.widgets.message_view.LiveMarkdown`, one widget of a few
  hundred characters) draws its text again from a fresh parse. Per chunk the cost is a list
  append; per batch it is independent of the reply's length. (It used to be Textual's
  ``MarkdownStream``: each append mounted new block widgets, and the mounts and the layouts
  they caused, not the chunks, were what a 20,000-chunk reply waited for.)
* When the stream moves past a safe cut, the segment is frozen (it becomes a part of the
  reply's frozen rendering, drawn only if and when it is on screen) and the live segment
  starts again; finished segments never render again while the reply streams, and those
  that scrolled past unseen are never rendered at all.
* When the stream stops (finished, failed, cancelled) the open segment is frozen from its
  complete text: one segment, so the final render is bounded.
* Reasoning is redrawn at most 10 times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from chatterm.controller_events import Reply
from chatterm.markdown_blocks import BREAK, SegmentSplitter
from chatterm.sanitize import StreamSanitizer
from chatterm.tui.widgets.message_view import LiveMarkdown, MessageView

REASONING_REFRESH_S = 0.1
# How often streamed text is handed to the live segment (10 times a second): often enough to
# look live, rarely enough that the layout and frame each batch causes (40-80 ms on a loaded
# 2-core machine) leave the loop free for keys most of the time. With rendering off the loop,
# 10 instead of 20 halved the p99 keystroke latency (bench/bench_tui.py, 4 interleaved pairs).
FLUSH_INTERVAL_S = 0.1
# While the user types (a key or click posted in the last TYPING_S), batches come this far
# apart instead: each batch costs a layout and a full frame of the screen, and a key that
# arrives during one waits for it, so fewer of them while typing means keys shown sooner.
TYPING_FLUSH_INTERVAL_S = 0.3
TYPING_S = 0.5
# A batch due while typed input is on its way to the screen waits for it, this long at most.
INPUT_WAIT_S = 0.15
# At most this much text is handed over per batch (about 20 ms of work); a backlog (a stream
# faster than 10 MB/s) goes over in batches one pass of the loop apart, so no batch holds
# the loop longer, however fast the stream.
BATCH_CHARS = 512 * 1024
# The live segment is cut at the first safe cut after this many characters: it is drawn again
# whole on each batch; what is cut off is rendered once, appended to the frozen rendering
# before it. (200 made more, smaller batches of work and was no faster: bench/bench_tui.py.)
LIVE_CHARS = 600


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
        self.next_reasoning = 0.0
        self.rendered_at: float | None = None

    @property
    def live(self) -> bool:
        """False once the reply is drawn, or its view went away (the user switched)."""
        return self.writer.live_view

    @property
    def segments(self) -> int:
        return self.writer.frozen

    def write(self, text: str) -> None:
        """Per chunk: keep it for the next batch (see the module docstring)."""
        self.writer.write(text)

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
        self.writer.live_view = False
        self.rendered_at = time.monotonic()


class _SegmentWriter:
    """Collects deltas; a timer hands each batch to the live segment. At a safe cut it freezes
    the segment and starts a new one, so the live segment never holds more than a few hundred
    characters (unless one block, a long code fence, is longer)."""

    def __init__(
        self, view: MessageView, checkpoint: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self.view = view
        self.checkpoint = checkpoint  # chatterm.gc_policy, after each finished segment
        self.splitter = SegmentSplitter(LIVE_CHARS)
        self.sanitizer = StreamSanitizer()
        live = view.segments[-1]
        assert isinstance(live, LiveMarkdown)
        self.live: LiveMarkdown = live
        self.raw: list[str] = []  # deltas not yet handed over (unsanitised)
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.live_view = True  # False once the view is gone: the reply goes on, undrawn
        self.frozen = 0
        self.backlog = False  # more than one batch was waiting at the last flush

    def write(self, text: str) -> None:
        if not self.live_view:
            return
        self.raw.append(text)
        if self.timer is None and self.task is None:
            self.timer = asyncio.get_running_loop().call_later(self._interval(), self._kick)

    def _interval(self) -> float:
        view = self.view
        last_input = getattr(view.app, "last_input_at", None) if view.is_attached else None
        if last_input is not None and time.monotonic() - last_input < TYPING_S:
            return TYPING_FLUSH_INTERVAL_S
        return FLUSH_INTERVAL_S

    def _kick(self) -> None:
        self.timer = None
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._input_drawn()
            await self._guarded_flush()
        finally:
            self.task = None
        if self.raw and self.live_view and self.timer is None:
            # Deltas that came while this batch was drawn (a segment was frozen), or more than
            # one batch holds: next batch (at once for a backlog).
            delay = 0.0 if self.backlog else self._interval()
            self.timer = asyncio.get_running_loop().call_later(delay, self._kick)

    async def _input_drawn(self) -> None:
        """Until the input posted so far (keys, clicks) is on screen, at most
        INPUT_WAIT_S in all: see the app's ``input_on_screen``."""
        deadline = time.monotonic() + INPUT_WAIT_S
        while time.monotonic() < deadline and (waiting := self.live.input_on_screen()) is not None:
            await waiting

    async def _guarded_flush(self, tail: bool = False) -> None:
        """A drawing failure stops the drawing, never the reply: its text is stored anyway.
        Reported (debug log + notification) unless the view simply went away meanwhile."""
        try:
            await self._flush(tail)
        except Exception as exc:
            self.live_view = False
            self.raw.clear()
            if self.view.is_attached:
                report = getattr(self.view.app, "report_unexpected", None)
                if report is not None:
                    report(exc, "drawing a streaming reply")

    async def _flush(self, tail: bool = False) -> None:
        """Hand everything collected so far to the live segment (``tail``: the stream ended,
        so the sanitiser's held-back bytes too)."""
        if not self.live_view:
            return
        if not self.view.is_attached:
            # The user switched conversations: the reply goes on (stored), undrawn.
            self.live_view = False
            self.raw.clear()
            return
        raw, taken, size = self.raw, 0, 0
        while taken < len(raw) and size < BATCH_CHARS:
            size += len(raw[taken])
            taken += 1
        text = self.sanitizer.feed("".join(raw[:taken])) if taken else ""
        del raw[:taken]
        self.backlog = bool(raw)
        if tail and not raw:
            text += self.sanitizer.flush()
        if not text:
            return
        # The batch, cut where the stream passed safe cuts: every segment but the last is
        # finished; the last stays live. However many cuts a batch holds (a backlog after a
        # busy moment), it costs one freeze and one redraw of the live segment.
        segments: list[list[str]] = [[]]
        for piece in self.splitter.feed(text):
            if piece is BREAK:
                segments.append([])
            else:
                segments[-1].append(piece)
        if len(segments) == 1:
            self.live.extend("".join(segments[0]))
            return
        finished = ["".join(pieces) for pieces in segments[1:-1]]
        await self.view.freeze_before(
            self.live, "".join(segments[0]), finished, "".join(segments[-1])
        )
        self.frozen += 1 + len(finished)
        if self.checkpoint is not None and not tail:
            # Collect what the finished segments left behind while it is still young (the
            # reply's end takes one checkpoint of its own).
            await self.checkpoint()

    async def stop(self) -> None:
        """No more deltas: draw what is left (the sanitiser's tail included)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        task = self.task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._guarded_flush(tail=True)
        while self.raw and self.live_view:  # a backlog: a batch at a time, the loop between
            await asyncio.sleep(0)
            await self._guarded_flush(tail=True)

    async def final_render(self) -> None:
        """After the stream: the open segment becomes a frozen one (one fresh parse of a
        segment of a few hundred characters: bounded, whatever the reply's length)."""
        await self.view.freeze(self.live)
        self.frozen += 1
