"""Running chatterm on a real pseudo-terminal and checking every byte it wrote there.

A test of terminal safety must look at what actually reaches the terminal: the command runs as
a subprocess with its stdout (and, when asked, stderr) on a pty, and :func:`unsafe_sequences`
lists whatever in the captured bytes could act as a control. chatterm's own styling (SGR
colours, rich's cursor moves for the live region) is allowed; everything else is not.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from cli_run import cli_env

# What chatterm itself writes (rich): SGR, cursor show/hide, erase line, cursor up/down/column,
# bracketed paste and the alternate screen toggles. A payload's CSI (clear screen, cursor
# position, device status report) is none of these.
_OWN_SEQUENCE = re.compile(
    r"\x1b\[(?:[0-9;]*m|\?25[hl]|[0-2]?K|[0-9]*[ABG]|\?2004[hl]|\?1049[hl])"
)
_ESCAPE = re.compile(r"\x1b.{0,12}", re.DOTALL)
_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069\ufffd]"
)


@dataclass
class TerminalRun:
    returncode: int
    terminal: str  # everything written to the pty, decoded (pty's \r\n folded to \n)
    stderr: str  # stderr when it was a pipe, else ""


def run_on_pty(
    args: list[str],
    env: Mapping[str, str],
    stderr_on_pty: bool = True,
    input_text: str | None = None,
) -> TerminalRun:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", *args],
        stdin=subprocess.PIPE if input_text is not None else terminal,
        stdout=terminal,
        stderr=terminal if stderr_on_pty else subprocess.PIPE,
        env=cli_env({"TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40", **env}),
        close_fds=True,
    )
    os.close(terminal)
    if input_text is not None and proc.stdin is not None:
        proc.stdin.write(input_text.encode())
        proc.stdin.close()
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is done writing
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(controller)
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    shown = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return TerminalRun(proc.returncode, shown, err)


def unsafe_sequences(output: str, allow_own_styling: bool = True) -> list[str]:
    """Every escape sequence and control character in ``output`` that chatterm did not mean.

    ``output`` is decoded text; the pty's ``\\r\\n`` should already be folded to ``\\n``. A
    bare ``\\r`` is allowed only right before one of rich's own erase-line sequences.
    """
    found: list[str] = []
    for match in _ESCAPE.finditer(output):
        if not (allow_own_styling and _OWN_SEQUENCE.match(output, match.start())):
            found.append(match.group())
    found += [m.group() for m in _UNSAFE_CHARS.finditer(output)]
    for match in re.finditer("\r", output):
        if not _OWN_SEQUENCE.match(output, match.end()):
            found.append(output[match.start() : match.start() + 12])
    return found


def without_styling(output: str) -> str:
    """``output`` with chatterm's own sequences removed: what a user reads."""
    return _OWN_SEQUENCE.sub("", output).replace("\r", "")
