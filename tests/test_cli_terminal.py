"""`chatterm ask` on a real pseudo-terminal: rendered markdown, NO_COLOR honoured."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest
from cli_run import cli_env

COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|4[0-9]|9[0-7])[0-9;]*m")


def run_on_terminal(args: list[str], env: dict[str, str]) -> str:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", *args],
        stdin=terminal, stdout=terminal, stderr=subprocess.PIPE,
        env=cli_env({"TERM": "xterm-256color", "COLUMNS": "80", "LINES": "40", **env}),
        close_fds=True,
    )
    os.close(terminal)
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
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def server_env(openai_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"OPENAI_BASE_URL": openai_server.base_url}


def test_markdown_is_rendered_on_a_terminal(server_env) -> None:
    shown = run_on_terminal(["ask", "-m", "chunks:60:markdown", "go"], server_env)
    assert "•" in shown  # list bullets: rendered, not raw "- item"
    assert "```" not in shown  # code fences are drawn, not printed
    assert COLOUR.search(shown)


def test_no_color_is_honoured(server_env) -> None:
    shown = run_on_terminal(["ask", "-m", "chunks:60:markdown", "go"], {**server_env, "NO_COLOR": "1"})
    assert "•" in shown
    assert not COLOUR.search(shown)


def test_raw_on_a_terminal_is_plain_text(server_env) -> None:
    shown = run_on_terminal(["ask", "-r", "-m", "chunks:60:markdown", "go"], server_env)
    assert "```" in shown and "\x1b[" not in shown
