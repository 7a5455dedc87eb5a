"""How chatterm ends on a signal: SIGINT (130), SIGTERM (143) and SIGHUP (129) all save.

Why one process-wide handler instead of Python's defaults: SIGTERM and SIGHUP would kill the
process on the spot (no partial reply saved, the terminal left in the alternate screen), and
SIGINT raises ``KeyboardInterrupt`` wherever the interpreter happens to be, including inside
asyncio's own set-up where it surfaces as a bare ``CancelledError``. Here every ending signal
does the same thing:

* while a front end has *attached* (``ask`` attaches its main task, the TUI its app), the
  signal is handed to that front end on its event loop, which cancels the reply: the
  reply's ``finally`` stores the partial text as interrupted, and the front end exits with
  :func:`exit_code`;
* otherwise (start-up, shutdown) it raises :class:`Ended`, a ``BaseException`` that the error
  boundary turns into the same exit code and one line.

The TUI's part (for ``chatterm/tui``): call ``attach(loop, on_signal)`` once the app runs, with
an ``on_signal(signum)`` that cancels the reply worker and exits the app (Textual then restores
the terminal); call ``detach()`` when it has stopped; return ``exit_code()`` when
``ended_by()`` is set. Until a front end attaches, a signal that lands inside a running event
loop ends the process as Python would (SIGINT: ``KeyboardInterrupt``; SIGTERM/SIGHUP: killed),
unless the front end called :func:`handle_in_loops`.

This is a core module: it must not import Textual.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncio is imported by the front ends that need it, not by --help
    import asyncio

EXIT_CODES: dict[int, int] = {
    signal.SIGINT: 130,
    signal.SIGTERM: 143,
    signal.SIGHUP: 129,
}
_WORDS: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


class Ended(BaseException):
    """The process was asked to end by a signal outside of a reply."""

    def __init__(self, signum: int) -> None:
        super().__init__(_WORDS.get(signum, f"signal {signum}"))
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 128 + signum)
        self.message = _WORDS.get(signum, f"ended by signal {signum}")


class _State:
    signum: int | None = None
    loop: asyncio.AbstractEventLoop | None = None
    callback: Callable[[int], Any] | None = None
    installed = False
    pending: int | None = None  # a signal to handle again (see _retry_soon)
    retry_armed_once = False
    loops_handled = False  # the front end turns Ended into its exit even inside its loop


_state = _State()


def install() -> None:
    """Take over SIGINT, SIGTERM and SIGHUP for this process (once, at start-up)."""
    if _state.installed:
        return
    for signum in EXIT_CODES:
        try:
            signal.signal(signum, _handle)
        except (ValueError, OSError):  # not the main thread, or not supported here
            continue
    _state.installed = True


def handle_in_loops() -> None:
    """Say that this front end deals with :class:`Ended` raised inside its event loop (``ask``
    runs one task and attaches as its loop starts). Without it, a signal that lands in a
    running event loop nobody attached to ends the process the way Python would have (an
    exception raised inside some task could be swallowed there, and the signal ignored)."""
    _state.loops_handled = True


def attach(loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], Any]) -> None:
    """From now on, ``on_signal(signum)`` runs on ``loop`` when an ending signal arrives."""
    _state.loop = loop
    _state.callback = on_signal


def attach_task(task: asyncio.Task[Any]) -> None:
    """The common case: an ending signal cancels ``task`` (e.g. ``ask``'s main task)."""
    attach(task.get_loop(), lambda _signum: task.cancel())


def detach() -> None:
    _state.loop = None
    _state.callback = None


def ended_by() -> int | None:
    """The first ending signal received, if any."""
    return _state.signum


def exit_code(default: int = 130) -> int:
    return EXIT_CODES.get(_state.signum, default) if _state.signum is not None else default


def describe() -> str:
    """'interrupted', 'terminated' or 'hung up': for the one line said on the way out."""
    return _WORDS.get(_state.signum or signal.SIGINT, "interrupted")


def reset() -> None:
    """Forget a received signal (tests that run several front ends in one process)."""
    _state.signum = None


def _handle(signum: int, frame: object) -> None:
    if _state.signum is None:
        _state.signum = signum
    loop, callback = _state.loop, _state.callback
    if loop is not None and callback is not None and not loop.is_closed():
        try:
            loop.call_soon_threadsafe(callback, signum)
            return
        except RuntimeError:  # the loop closed in between
            pass
    if not _state.loops_handled and _running_loop() is not None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _in_import_machinery(frame):
        _retry_soon(signum)
        return
    raise Ended(signum)


# An exception raised inside importlib's own callbacks (the weakref callback that drops a module
# lock) or inside a finalizer (``__del__``) is printed as "Exception ignored in ..." with a
# traceback and then lost. A signal that lands there is handled again a few milliseconds later,
# once the interpreter is back in ordinary code.
_RETRY_AFTER_S = 0.005


def _in_import_machinery(frame: object) -> bool:
    """Also a finalizer (``__del__``, e.g. an event loop's): what it raises is only printed."""
    code = getattr(frame, "f_code", None)
    return code is not None and (
        str(code.co_filename).startswith("<frozen importlib") or code.co_name == "__del__"
    )


def _retry_soon(signum: int) -> None:
    _state.pending = signum
    if not _state.retry_armed_once:
        # The timer must never outlive the handler: at exit Python puts SIGALRM back to its
        # default, which kills the process (exit -14) if a retry is still due then.
        _state.retry_armed_once = True
        atexit.register(settle)
    signal.signal(signal.SIGALRM, _retry)
    signal.setitimer(signal.ITIMER_REAL, _RETRY_AFTER_S)


def settle() -> None:
    """The ending is being handled now (the front end saw ``ended_by()``): a retry still due
    for it is dropped, so it cannot land a second time in the middle of the way out."""
    if _state.pending is not None or _state.retry_armed_once:
        _state.pending = None
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            signal.setitimer(signal.ITIMER_REAL, 0)


def _retry(_alarm: int, frame: object) -> None:
    signum, _state.pending = _state.pending, None
    if signum is not None:
        _handle(signum, frame)


def _running_loop() -> object | None:
    """The event loop running in this thread, if any (without importing asyncio)."""
    # asyncio may be half imported when the signal lands: then no loop runs yet.
    get = getattr(sys.modules.get("asyncio"), "_get_running_loop", None)
    return get() if callable(get) else None
