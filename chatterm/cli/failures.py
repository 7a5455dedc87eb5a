"""Turning any failure into one line on stderr and the documented exit code.

Exit codes: 0 success, 1 backend or server error, 2 usage or config error, 130 interrupted
(SIGINT), 141 broken pipe, 143 terminated (SIGTERM), 129 hung up (SIGHUP).
Every line goes through the sanitiser, even when stderr is a pipe: an error may quote a
server's body or a file name, and diagnostics are read by people.
"""

from __future__ import annotations

import contextlib
import sys
import traceback


class Failure(Exception):
    """A CLI-level failure with its exit code (usage errors, nothing to ask, ...)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def report_failure(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` for a user and return the exit code. Tracebacks only with --debug."""
    from chatterm import endings
    from chatterm.endings import Ended

    signum = endings.ended_by()
    if signum is not None and not isinstance(exc, KeyboardInterrupt | Ended):
        # An ending signal was handled (it raised Ended), but where it landed the interpreter
        # turned that into another error: a class being created wraps it in a RuntimeError
        # ("Error calling __set_name__"), some C code in a TypeError. It is still the signal.
        exc = Ended(signum)
    if isinstance(exc, KeyboardInterrupt | Ended):
        endings.settle()  # a retry of the same signal must not land on the way out
        with contextlib.suppress(OSError, ValueError):
            print(f"chatterm: {getattr(exc, 'message', 'interrupted')}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, Ended) else 130
    if isinstance(exc, BrokenPipeError):
        silence_stdout()
        return 141
    if debug:  # a traceback quotes messages too (a server's words): sanitised like the rest
        sys.stderr.write(for_stderr("".join(traceback.format_exception(exc)), one_line=False))
    message = getattr(exc, "message", None)
    code = getattr(exc, "exit_code", None)
    if isinstance(message, str) and isinstance(code, int):
        print(f"chatterm: error: {for_stderr(message)}", file=sys.stderr)
        return code
    print(
        f"chatterm: internal error: {type(exc).__name__}: {for_stderr(str(exc), limit=300)}"
        + ("" if debug else " (run with --debug for details)"),
        file=sys.stderr,
    )
    return 1


def for_stderr(text: str, one_line: bool = True, limit: int | None = None) -> str:
    """``text`` fit for a diagnostic line: URL passwords and Bearer/Basic credentials masked
    (a backend may not have), then cut to ``limit``, then sanitised (always, even into a pipe).
    """
    from chatterm.sanitize import safe_inline, safe_text  # only here: start-up stays light
    from chatterm.secrets_mask import mask_secrets

    text = mask_secrets(text)
    if not one_line:
        return safe_text(text)
    if limit is not None:
        text = _one_line(text, limit)
    return safe_inline(text)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def silence_stdout() -> None:
    """After the reader of a pipe went away, stop Python from complaining at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
