"""One background thread that renders Markdown parts, newest request first.

Why a thread: Rich's Markdown costs about 13 µs per character of a reply with code blocks
here (pygments), so drawing a few thousand characters on the event loop holds it for tens
of milliseconds, and keys typed meanwhile wait. Rendered on this thread, the loop keeps the
interpreter at least every switch interval (5 ms) and stays responsive; the widget shows
the part as plain rows until its rendering comes back.

Why one thread, newest first: the parts asked for last are the ones on screen now (the user
scrolled, or the window was resized again); older requests whose widget is gone, or whose
width or theme changed, are skipped when their turn comes (``wanted``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class _Job:
    work: Callable[[], Any]
    done: Callable[[Any, BaseException | None], object]
    wanted: Callable[[], bool]
    loop: asyncio.AbstractEventLoop


class RenderQueue:
    """Runs ``work`` on the render thread and hands its result to ``done`` on the loop."""

    def __init__(self) -> None:
        self._jobs: list[_Job] = []
        # Submitted, not handed to the thread yet, per event loop (see submit).
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        # Submitted, not yet handed back, per event loop (touched on that loop only).
        self._pending: dict[asyncio.AbstractEventLoop, int] = {}

    def submit(
        self,
        work: Callable[[], Any],
        done: Callable[[Any, BaseException | None], object],
        wanted: Callable[[], bool],
    ) -> None:
        """From the event loop: queue ``work``; ``done(result, error)`` runs on the loop. When
        ``done`` returns a future (it shows the result later), the job counts as pending
        until that future is done."""
        loop = asyncio.get_running_loop()
        job = _Job(work, done, wanted, loop)
        with self._ready:
            self._pending[loop] = self._pending.get(loop, 0) + 1
        # Handed to the thread once the loop has finished what it is doing now (parts are
        # asked for while a frame is drawn): a render started at once takes the interpreter
        # from the rest of that frame, every switch interval (a third more wall time per
        # frame of a streaming reply, bench/bench_tui.py).
        waiting = self._waiting.setdefault(loop, [])
        if not waiting:
            loop.call_soon(self._release, loop)
        waiting.append(job)

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop, after the callback that submitted: the waiting jobs go to the thread."""
        waiting = self._waiting.pop(loop, [])
        with self._ready:
            self._jobs.extend(waiting)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="chatterm-render", daemon=True
                )
                self._thread.start()
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                job = self._jobs.pop()  # the newest: what is on screen now
            result: Any = None
            error: BaseException | None = None
            try:
                if job.wanted():
                    result = job.work()
                else:
                    error = Skipped()
            except BaseException as exc:  # handed to the loop, which reports it
                error = exc
            try:
                job.loop.call_soon_threadsafe(self._hand_back, job, result, error)
            except RuntimeError:  # that loop is closed (the app ended): nothing to draw
                with self._ready:
                    self._pending.pop(job.loop, None)

    def _hand_back(self, job: _Job, result: Any, error: BaseException | None) -> None:
        try:
            later = job.done(result, error)  # Skipped too: the owner may ask again later
        except BaseException:
            self._settle(job.loop)
            raise
        if isinstance(later, asyncio.Future):
            # The owner shows it later (typed input first): pending until then, so idle()
            # means shown, not only rendered.
            later.add_done_callback(lambda _: self._settle(job.loop))
        else:
            self._settle(job.loop)

    def _settle(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._ready:
            left = self._pending.get(loop, 1) - 1
            if left > 0:
                self._pending[loop] = left
            else:
                self._pending.pop(loop, None)

    async def idle(self) -> None:
        """Wait until every part asked for is rendered and handed back (tests, benchmarks)."""
        loop = asyncio.get_running_loop()
        while self._pending.get(loop):
            await asyncio.sleep(0.005)

    def busy(self) -> bool:
        """Whether parts asked for on this loop are still being rendered."""
        return bool(self._pending.get(asyncio.get_running_loop()))


class Skipped(Exception):
    """The job was no longer wanted when its turn came (handed to ``done`` as its error)."""


QUEUE = RenderQueue()
