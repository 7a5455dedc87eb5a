"""The ``chatterm`` command: where a command line goes, and the error boundary.

Start-up time is a feature. A plain `chatterm ask` command line (the one users run in loops
and scripts), and ``chatterm`` alone with piped stdin, are read from a table of `ask`'s flags
(:mod:`chatterm.cli.ask_line`) and never import typer or click, which cost ~50 ms before the question was even sent. Everything else
goes to the typer app in :mod:`chatterm.cli.commands`, imported only then; ``from chatterm.cli
import app`` still works (a lazy attribute).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

from chatterm.cli.failures import report_failure


def main() -> None:
    """Entry point: runs the app and turns failures into one line and an exit code."""
    from chatterm import endings

    # SIGINT, SIGTERM and SIGHUP end chatterm the same way at any instant (see endings).
    endings.install()
    debug = "--debug" in sys.argv[1:] or bool(os.environ.get("CHATTERM_DEBUG"))
    # Start-up allocates many long-lived objects (modules, classes) and the collector would scan
    # them again and again: off while importing, then see start_collecting() (~15 ms saved).
    gc.disable()
    try:
        from chatterm.cli.settings import normalise_option_args

        args = normalise_option_args(sys.argv[1:])
        if args and args[0] == "ask":
            # A plain `ask` command line skips typer altogether (see fastpath, ask_line).
            from chatterm.cli.fastpath import run_ask_plain

            code = run_ask_plain(args)
            if code is not None:
                sys.exit(code)
        elif not args and "_CHATTERM_COMPLETE" not in os.environ:  # (not a shell completing)
            from chatterm.cli.inputs import stdin_is_terminal

            if not stdin_is_terminal():  # `echo hi | chatterm`: ask with stdin, as the root does
                from chatterm.cli.ask_line import ask_from_args

                sys.exit(ask_from_args())
        from chatterm.cli.commands import app

        app(args=args, prog_name="chatterm")
    except SystemExit:
        raise
    except BaseException as exc:  # the error boundary: no traceback without --debug
        sys.exit(report_failure(exc, debug))


def start_collecting() -> None:
    """Called once the imports are done: freeze what exists so later collections skip it."""
    gc.freeze()
    gc.enable()


def __getattr__(name: str) -> Any:
    """The typer app and commands of :mod:`chatterm.cli.commands`, imported on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    commands = importlib.import_module("chatterm.cli.commands")
    try:
        return getattr(commands, name)
    except AttributeError:
        raise AttributeError(f"module 'chatterm.cli' has no attribute {name!r}") from None
