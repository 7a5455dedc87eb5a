"""`chatterm ask` on a real pseudo-terminal: rendered markdown, NO_COLOR honoured."""

from __future__ import annotations

import re

import pytest
from terminal_bytes import run_on_pty

COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|4[0-9]|9[0-7])[0-9;]*m")


def run_on_terminal(args: list[str], env: dict[str, str]) -> str:
    """Everything ``chatterm ARGS`` wrote to its terminal (stdout on a pty, stderr a pipe)."""
    run = run_on_pty(args, env, stderr_on_pty=False)
    assert run.returncode == 0, run.stderr
    return run.terminal


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
