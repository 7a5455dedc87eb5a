"""No network: one line within seconds, a fix to try, and no conversation left behind.

The hub is a real endpoint on 127.0.0.1 that either refuses connections or accepts them and
never answers. The subprocess timeout is the bound on how long chatterm may take.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import run_cli
from hub_cache import hub_cache_dir, install_in_cache

# Import of chatterm plus a 3 s probe; far below the 50-70 s of hub retries this replaces.
BOUND_S = 30


@pytest.fixture
def refusing_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """Accepts connections (the kernel's backlog does) and never sends a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _online(endpoint: str) -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": endpoint}


def _conversations() -> list[object]:
    listed = run_cli("sessions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def _assert_one_hint_line(stderr: str, why: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("chatterm: error: the Hugging Face Hub"), line
    assert f"cannot be reached ({why})" in line
    assert "HF_HUB_OFFLINE=1" in line and "-m PATH" in line and "--base-url" in line


@pytest.mark.parametrize("args", [["ask", "hi"], ["ask", "-m", "someorg/some-model", "hi"]])
def test_refused_hub_is_one_line_and_saves_nothing(
    refusing_endpoint: str, args: list[str]
) -> None:
    result = run_cli(*args, env=_online(refusing_endpoint), timeout=BOUND_S)
    assert result.returncode == 1
    _assert_one_hint_line(result.stderr, "connection refused")
    assert result.stdout == ""
    assert _conversations() == []


def test_silent_hub_is_one_line_and_saves_nothing(silent_endpoint: str) -> None:
    result = run_cli("ask", "hi", env=_online(silent_endpoint), timeout=BOUND_S)
    assert result.returncode == 1
    _assert_one_hint_line(result.stderr, "no answer within 3 s")
    assert _conversations() == []


def test_continuing_while_offline_adds_nothing(refusing_endpoint: str, openai_server) -> None:  # type: ignore[no-untyped-def]
    server = {"OPENAI_BASE_URL": openai_server.base_url}
    first = run_cli("ask", "-m", "echo@offline", "first", env=server)
    assert first.returncode == 0, first.stderr
    conversation_id = json.loads(run_cli("sessions", "list", "--json").stdout)[0]["id"]
    before = run_cli("sessions", "show", "--json", conversation_id).stdout
    again = run_cli("ask", "--backend", "local", "-c", "second", env=_online(refusing_endpoint),
                    timeout=BOUND_S)
    assert again.returncode == 1
    _assert_one_hint_line(again.stderr, "connection refused")
    after = run_cli("sessions", "show", "--json", conversation_id).stdout
    assert json.loads(after)["messages"] == json.loads(before)["messages"]


def test_cached_model_loads_quietly_without_the_hub(
    tiny_model_dir: Path, refusing_endpoint: str
) -> None:
    cache = hub_cache_dir(Path(os.environ["XDG_CACHE_HOME"]))
    install_in_cache(tiny_model_dir, "chatterm-test/tiny", cache)
    result = run_cli("ask", "--backend", "local", "-m", "chatterm-test/tiny", "--max-tokens", "3",
                     "hi", env=_online(refusing_endpoint), timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(_conversations()) == 1
