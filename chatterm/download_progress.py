"""A model download as plain events: files, bytes, speed, ETA, and a way to cancel it.

huggingface_hub reports a download through a tqdm progress bar, and accepts any tqdm-like
class in place of its own (``hf_hub_download(..., tqdm_class=...)``). :class:`Download` hands it
such a class (:meth:`Download.bar_class`), counts what the bars are told, and turns it into
:class:`DownloadUpdate` snapshots for whoever listens (:func:`subscribe`): the TUI's download
panel, a test. No listener, and nothing is shown here; the CLI keeps the hub's own bars on
stderr by asking for an echoing bar class.

Cancelling (:meth:`Download.cancel`, or :func:`cancel` by model) sets a ``threading.Event``;
the next chunk the hub reports raises :class:`DownloadCancelled` in the downloading thread,
which stops the transfer there. What was received stays in the hub cache's ``.incomplete``
file, and the next download of the same file resumes from it (an HTTP ``Range`` request).

This is a core module: no Textual, no torch, no huggingface_hub import.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DOWNLOADING, DONE, CANCELLED, FAILED = "downloading", "done", "cancelled", "failed"

# Listeners hear at most this often while bytes flow (file boundaries and the end always).
UPDATE_INTERVAL_S = 0.1
# Speed is measured over this much recent time, so it follows a changing rate.
SPEED_WINDOW_S = 5.0


class DownloadCancelled(Exception):
    """Raised in the downloading thread once the download was cancelled."""


@dataclass(frozen=True, slots=True)
class DownloadUpdate:
    """Where one download stands. ``bytes_total`` is None while a size is unknown."""

    model: str
    state: str
    files_done: int
    files_total: int
    current_file: str | None
    bytes_done: int
    bytes_total: int | None
    speed: float | None  # bytes per second, over the last few seconds
    eta: float | None  # seconds left at that speed

    @property
    def fraction(self) -> float | None:
        if not self.bytes_total:
            return None
        return min(1.0, self.bytes_done / self.bytes_total)


Listener = Callable[[DownloadUpdate], None]

_LOCK = threading.Lock()
_LISTENERS: list[Listener] = []
_ACTIVE: list[Download] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Hear every download's updates (from the downloading thread); returns the unsubscribe."""
    with _LOCK:
        _LISTENERS.append(listener)

    def unsubscribe() -> None:
        with _LOCK:
            if listener in _LISTENERS:
                _LISTENERS.remove(listener)

    return unsubscribe


def has_listeners() -> bool:
    with _LOCK:
        return bool(_LISTENERS)


def active_downloads() -> list[Download]:
    with _LOCK:
        return list(_ACTIVE)


def cancel(model: str | None = None) -> int:
    """Cancel the running downloads of ``model`` (all of them when None); how many."""
    targets = [d for d in active_downloads() if model is None or d.model == model]
    for download in targets:
        download.cancel()
    return len(targets)


def format_bytes(count: float) -> str:
    """``1.5 MB``: decimal units, as download sizes are usually quoted."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"  # pragma: no cover


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def describe(update: DownloadUpdate) -> str:
    """One plain line: ``file 2/5 model.safetensors  12.0 MB / 988.1 MB  4.1 MB/s  ETA 03:58``."""
    total = format_bytes(update.bytes_total) if update.bytes_total is not None else "?"
    speed = f"{format_bytes(update.speed)}/s" if update.speed else "-- B/s"
    current = f" {update.current_file}" if update.current_file else ""
    shown_file = min(update.files_done + (1 if update.current_file else 0), update.files_total)
    return (
        f"file {shown_file}/{update.files_total}{current}  "
        f"{format_bytes(update.bytes_done)} / {total}  {speed}  ETA {format_eta(update.eta)}"
    )


class Download:
    """One model's download: counts what the hub's bars report, tells listeners, can cancel.

    The downloading code calls :meth:`start` once, then per file :meth:`skip` (already cached)
    or :meth:`begin_file` + a hub download with :meth:`bar_class` + :meth:`end_file`, and
    :meth:`finish` at the end. Thread-safe: the hub may report from worker threads.
    """

    def __init__(
        self,
        model: str,
        files: Sequence[tuple[str, int | None]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self._sizes = dict(files)
        self._clock = clock
        self._lock = threading.Lock()
        self.cancel_event = threading.Event()
        self._state = DOWNLOADING
        self._files_done = 0
        self._current: str | None = None
        self._done_before = 0  # bytes of finished or skipped files
        self._file_bytes = 0  # bytes of the current file, resumed part included
        self._samples: deque[tuple[float, int]] = deque()
        self._received = 0  # bytes that really came over the network (for the speed)
        self._last_notice = float("-inf")

    # --- driving it ---------------------------------------------------------------------

    def start(self) -> None:
        with _LOCK:
            _ACTIVE.append(self)
        self._notify(force=True)

    def skip(self, name: str) -> None:
        """``name`` is already in the cache: count it as done, not as transferred."""
        with self._lock:
            self._done_before += self._sizes.get(name) or 0
            self._files_done += 1
        self._notify(force=True)

    def begin_file(self, name: str) -> None:
        self.check()
        with self._lock:
            self._current = name
            self._file_bytes = 0
        self._notify(force=True)

    def end_file(self) -> None:
        with self._lock:
            name = self._current
            size = self._sizes.get(name or "")
            self._done_before += size if size is not None else self._file_bytes
            self._file_bytes = 0
            self._files_done += 1
            self._current = None
        self._notify(force=True)

    def finish(self, state: str) -> None:
        with self._lock:
            self._state = state
            if state == DONE:
                self._current = None
        with _LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        self._notify(force=True)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise DownloadCancelled(f"download of {self.model} cancelled")

    # --- what the hub's bar reports -------------------------------------------------------

    def _bar_opened(self, total: int | None, initial: int) -> None:
        with self._lock:
            if self._current is not None and total is not None:
                self._sizes[self._current] = total
            self._file_bytes = initial
        self._notify(force=True)

    def _bar_advanced(self, count: float) -> None:
        self.check()
        now = self._clock()
        with self._lock:
            self._file_bytes = max(0, self._file_bytes + int(count))
            if count > 0:
                self._received += int(count)
            self._samples.append((now, self._received))
            while self._samples and now - self._samples[0][0] > SPEED_WINDOW_S:
                self._samples.popleft()
        self._notify()

    def bar_class(self, echo: bool = False) -> type:
        """A tqdm-like class for ``hf_hub_download(tqdm_class=...)``, bound to this download.

        With ``echo``, each bar also drives one of huggingface_hub's own bars (on stderr), so
        the CLI on a terminal looks as it always did.
        """
        download = self

        class Bar:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                self.total = kwargs.get("total")
                self.n = int(kwargs.get("initial") or 0)
                self.disable = False
                self._inner: Any = None
                if echo:
                    from huggingface_hub.utils import tqdm as hub_tqdm

                    self._inner = hub_tqdm(*args, **kwargs)
                download._bar_opened(self.total, self.n)

            def update(self, n: float | None = 1) -> None:
                count = n or 0
                self.n += int(count)
                if self._inner is not None:
                    self._inner.update(count)
                download._bar_advanced(count)

            def update_transfer(self, n: float | None = 1) -> None:
                """Network bytes, reported next to ``update`` by the hub (Xet, http_get).

                Having it tells the hub to use this one bar for both, and ``update`` already
                counts the file's bytes: counting these too would count them twice.
                """

            def set_transfer_postfix_str(self, *args: Any, **kwargs: Any) -> None:
                pass

            def close(self) -> None:
                if self._inner is not None:
                    self._inner.close()

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                self.close()

            def set_description(self, *args: Any, **kwargs: Any) -> None:
                if self._inner is not None:
                    self._inner.set_description(*args, **kwargs)

            def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
                pass

            def refresh(self, *args: Any, **kwargs: Any) -> None:
                pass

        return Bar

    # --- reading it ---------------------------------------------------------------------

    def snapshot(self) -> DownloadUpdate:
        with self._lock:
            sizes = list(self._sizes.values())
            total = None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)
            done = self._done_before + self._file_bytes
            speed = None
            if len(self._samples) >= 2:
                (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
                if t1 > t0:
                    speed = (b1 - b0) / (t1 - t0)
            eta = None
            if speed and total is not None:
                eta = max(0.0, (total - done) / speed)
            return DownloadUpdate(
                model=self.model,
                state=self._state,
                files_done=self._files_done,
                files_total=len(self._sizes),
                current_file=self._current,
                bytes_done=done,
                bytes_total=total,
                speed=speed,
                eta=eta,
            )

    def _notify(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_notice < UPDATE_INTERVAL_S:
            return
        self._last_notice = now
        update = self.snapshot()
        with _LOCK:
            listeners = list(_LISTENERS)
        for listener in listeners:
            with contextlib.suppress(Exception):  # a broken listener must not break it
                listener(update)
