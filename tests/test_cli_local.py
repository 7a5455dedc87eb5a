"""`chatterm ask --backend local` end to end: a subprocess loading the tiny model from disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import assert_one_line_error, cli_env, run_cli

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_ask_with_the_local_backend(tiny_model_dir: Path) -> None:
    args = ["ask", "--backend", "local", "-m", str(tiny_model_dir), "-o", "temperature", "0",
            "--max-tokens", "6", "--json"]
    first = run_cli(*args, "héllo 你好", timeout=180)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["status"] == "complete" and data["finish_reason"] in ("length", "stop")
    assert data["usage"]["completion_tokens"] <= 6
    assert data["metadata"]["device"] == "cpu" and data["metadata"]["dtype"] == "float32"
    again = run_cli(*args, "héllo 你好", timeout=180)
    assert json.loads(again.stdout)["reply"] == data["reply"]  # greedy: same reply
    piped = run_cli("ask", "--backend", "local", "-m", str(tiny_model_dir), "--max-tokens", "4",
                    "-c", "more", timeout=180)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stdout


def test_local_debug_shows_device_on_stderr(tiny_model_dir: Path) -> None:
    result = run_cli("ask", "--backend", "local", "-m", str(tiny_model_dir), "--max-tokens", "2",
                     "--debug", "hi", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "'device': 'cpu'" in result.stderr


def test_local_option_errors_and_missing_model(tmp_path: Path) -> None:
    bad = run_cli("ask", "--backend", "local", "-m", str(tmp_path), "-o", "top_k", "many", "hi")
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr)
    missing = run_cli("ask", "--backend", "local", "-m", str(tmp_path / "nope"), "hi",
                      env={"HF_HUB_OFFLINE": "1"}, timeout=120)
    assert missing.returncode == 1
    assert_one_line_error(missing.stderr)


def test_ctrl_c_during_local_generation_keeps_the_partial(tiny_model_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", "ask", "--backend", "local", "-m", str(tiny_model_dir),
         "-o", "min_tokens", "4000", "--max-tokens", "4000", "go on"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.read(1)  # streaming has started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    import sqlite3

    db = sqlite3.connect(Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db")
    content, status = db.execute(
        "SELECT content, status FROM messages WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert status == "interrupted" and content


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_ctrl_c_while_starting_or_loading_exits_130_promptly(
    tiny_model_dir: Path, delay: float
) -> None:
    """Wherever the interrupt lands (imports, model load, prefill), the exit is clean and quick."""
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", "ask", "--backend", "local", "-m", str(tiny_model_dir),
         "--max-tokens", "4000", "-o", "min_tokens", "4000", "hi"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    # The interrupt stopped it: no reply ran to its 4,000 tokens (a started one is kept, marked).
    import sqlite3

    path = Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db"
    if path.exists():
        db = sqlite3.connect(path)
        statuses = [s for (s,) in db.execute("SELECT status FROM messages WHERE role = 'assistant'")]
        db.close()
        assert set(statuses) <= {"interrupted"}, statuses
