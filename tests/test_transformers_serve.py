"""End to end against a real third-party OpenAI-compatible server: `transformers serve`.

The server is started on loopback with the tiny random model the suite builds offline; chatterm
talks to it exactly as it would to vLLM or OpenAI. Its quirks (no `[DONE]`, usage on the finish
chunk, FastAPI error bodies) are the point of the test.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Skipped only without transformers; with it, the serving extra is part of the test extra and a
# missing fastapi/uvicorn is a failure, not a skip.
pytest.importorskip("transformers")

from cli_run import cli_env, run_cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import httpx

    executable = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = cli_env({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [executable, "serve", str(tiny_model_dir), "--host", "127.0.0.1",
             "--port", str(port), "--device", "cpu"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_ask_against_transformers_serve(served_model: str, tiny_model_dir: Path) -> None:
    env = {"OPENAI_BASE_URL": served_model}
    result = run_cli(
        "ask", "-m", str(tiny_model_dir), "--json", "--max-tokens", "8", "-o", "temperature", "0",
        "hello", env=env, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # No [DONE] from this server: the finish chunk ends the reply normally.
    assert data["status"] == "complete"
    assert data["finish_reason"] in ("stop", "length")
    assert data["usage"]["completion_tokens"] and data["usage"]["completion_tokens"] <= 8
    assert isinstance(data["reply"], str)
    # Streaming to a pipe works too, and the exchange continues with -c.
    again = run_cli(
        "ask", "-m", str(tiny_model_dir), "-c", "--max-tokens", "4", "more", env=env, timeout=180
    )
    assert again.returncode == 0, again.stderr
    models = run_cli("models", env=env)
    assert models.returncode == 0, models.stderr


def test_unknown_model_is_a_one_line_error(served_model: str, tmp_path: Path) -> None:
    result = run_cli(
        "ask", "-m", str(tmp_path / "no-such-model"), "--max-tokens", "4", "hi",
        env={"OPENAI_BASE_URL": served_model}, timeout=180,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("chatterm: error:") == 1
