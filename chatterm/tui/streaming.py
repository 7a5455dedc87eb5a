"""Feeding a reply's event stream into the widgets without slowing the app down.

Why it is shaped this way:

* Text deltas go to Textual's ``MarkdownStream`` (``Markdown.get_stream``), which appends to
  the document and coalesces deltas that arrive while a render is in progress. The document is
  never re-rendered whole per chunk (the O(n²) trap of elia and parllama).
* The live Markdown widget holds one segment of a few thousand characters
  (:mod:`chatterm.tui.segments`); when the stream moves past a safe cut the segment is frozen
  (:mod:`chatterm.tui.markdown_render`: rendered whole, once, from a fresh parse, as one
  widget) and a new live segment starts. Textual lays out every widget on every frame, so this
  keeps each frame's cost independent of the reply's length.
* When the stream stops (finished, failed, cancelled) the open segment is rendered whole from
  its complete text: appending keeps parse state per top-level block, so a code fence that
  opened in one delta and closed in another could render wrong until then (oterm #308).
* Status figures are plain attribute writes; the status line redraws at most 10 times a
  second, and the reasoning section at most 10 times a second.
* The iterator is closed with ``aclosing`` on every exit path, so ChatSession's ``finally``
  stores the partial reply and its status (interrupted, error) even when the worker is
  cancelled while it waits on the UI rather than on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import cast

from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownStream

from chatterm.backend import (
    BackendError,
    Metadata,
    Notice,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)
from chatterm.tui.message_view import MessageView
from chatterm.tui.segments import BREAK, SegmentSplitter
from chatterm.tui.status_line import StatusLine

REASONING_REFRESH_S = 0.1
# How often streamed text is handed to the Markdown widget (20 times a second).
FLUSH_INTERVAL_S = 0.05

_Events = AsyncGenerator[StreamEvent, None]


class ReplyStreamer:
    """Consumes one reply. ``error`` holds the backend's message when the reply failed."""

    def __init__(
        self,
        view: MessageView,
        status: StatusLine,
        notify: Callable[[str], None],
        checkpoint: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.view = view
        self.checkpoint = checkpoint
        self.status = status
        self.notify = notify
        self.pieces: list[str] = []
        self.thoughts: list[str] = []
        self.error: str | None = None
        self.deltas = 0
        self.completion_tokens: int | None = None
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.last_chunk_at: float | None = None
        self.rendered_at: float | None = None
        self.segments = 0  # Markdown segments the reply was shown in

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def _rate(self, now: float) -> float | None:
        if self.first_token_at is None:
            return None
        elapsed = now - self.first_token_at
        count = self.completion_tokens or self.deltas
        return count / elapsed if elapsed > 0.2 else None

    def _report(self, state: str, now: float) -> None:
        tokens = self.completion_tokens if self.completion_tokens is not None else self.deltas
        self.status.set_reply(
            state=state,
            tokens=tokens if (tokens or state != "connecting") else None,
            estimated=self.completion_tokens is None,
            tokens_per_s=self._rate(now),
        )

    async def run(self, events: AsyncIterator[StreamEvent]) -> None:
        """Consume ``events`` (an async generator, as ChatSession returns) to the end."""
        writer = _SegmentWriter(self.view, self.checkpoint)
        live = True
        next_reasoning = 0.0
        self._report("connecting", self.started)
        try:
            async with contextlib.aclosing(cast(_Events, events)) as reply:
                async for event in reply:
                    now = time.monotonic()
                    kind = type(event)
                    if kind is TextDelta:
                        assert isinstance(event, TextDelta)
                        self.pieces.append(event.text)
                        self.deltas += 1
                        self.last_chunk_at = now
                        if self.first_token_at is None:
                            self.first_token_at = now
                        if live:
                            if self.view.is_attached:
                                await writer.write(event.text)
                            else:
                                # The user switched conversations: keep storing, stop drawing.
                                live = False
                                await writer.stop()
                    elif kind is ReasoningDelta:
                        assert isinstance(event, ReasoningDelta)
                        self.thoughts.append(event.text)
                        if self.first_token_at is None:
                            self.first_token_at = now
                        if live and now >= next_reasoning and self.view.is_attached:
                            next_reasoning = now + REASONING_REFRESH_S
                            self.view.show_reasoning("".join(self.thoughts))
                    elif kind is Usage:
                        assert isinstance(event, Usage)
                        if event.completion_tokens is not None:
                            self.completion_tokens = event.completion_tokens
                    elif kind is Notice:
                        assert isinstance(event, Notice)
                        self.notify(event.message)
                    elif kind is Metadata:
                        assert isinstance(event, Metadata)
                        model = event.values.get("model")
                        if isinstance(model, str) and self.view.model != model:
                            self.view.model = model
                            if self.view.is_attached:
                                self.view.refresh_header()
                    self._report("streaming", now)
        except BackendError as exc:
            self.error = exc.message
        finally:
            await writer.stop()
            if self.view.is_attached:
                with contextlib.suppress(Exception):
                    if self.thoughts:
                        self.view.show_reasoning("".join(self.thoughts))
                    await writer.final_render()
                    self.segments = writer.frozen
                    self.view.text = self.text
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
        self.checkpoint = checkpoint  # chatterm.tui.gc_policy, after each finished segment
        self.splitter = SegmentSplitter()
        live = view.segments[-1]
        assert isinstance(live, Markdown)
        self.live = live
        self.stream = Markdown.get_stream(live)
        self.pieces: list[str] = []  # the live segment's text
        self.buffer: list[str] = []  # not yet handed to the stream
        self.last_flush = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.frozen = 0

    async def write(self, text: str) -> None:
        for piece in self.splitter.feed(text):
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
        await _stop_quietly(self.stream)
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
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        await self._flush()
        await _stop_quietly(self.stream)

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


async def _stop_quietly(stream: MarkdownStream) -> None:
    with contextlib.suppress(Exception):
        await stream.stop()
