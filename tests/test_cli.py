"""The `chatterm` command end to end: a subprocess against the loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_run import assert_one_line_error, cli_env, modules_loaded_by, run_cli

SECRET = "sk-test-secret-4242"


@pytest.fixture
def server_env(openai_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": SECRET}


def history_rows(sql: str) -> list[tuple]:  # type: ignore[type-arg]
    data_home = Path(os.environ["XDG_DATA_HOME"])
    db = sqlite3.connect(data_home / "chatterm" / "history.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def last_request(openai_server) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return openai_server.requests[-1]["body"]


def test_ask_streams_plain_text_to_a_pipe_and_saves(openai_server, server_env) -> None:
    result = run_cli("ask", "-m", "echo", "hello [bold]world[/bold]", env=server_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello [bold]world[/bold]\n"
    assert "\x1b" not in result.stdout
    rows = history_rows("SELECT role, content, status, model FROM messages ORDER BY id")
    assert rows == [
        ("user", "hello [bold]world[/bold]", "complete", None),
        ("assistant", "hello [bold]world[/bold]", "complete", "echo"),
    ]
    assert openai_server.requests[-1]["headers"].get("authorization") == f"Bearer {SECRET}"
    # The key is sent to the server but never stored.
    db_bytes = (Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db").read_bytes()
    assert SECRET.encode() not in db_bytes


def test_stdin_then_blank_line_then_prompt(openai_server, server_env) -> None:
    result = run_cli("ask", "-m", "echo", "summarise", input="line one\nline two\n", env=server_env)
    assert result.returncode == 0, result.stderr
    assert last_request(openai_server)["messages"][-1]["content"] == "line one\nline two\n\nsummarise"


def test_title_comes_from_the_prompt_not_from_piped_stdin(openai_server, server_env) -> None:
    result = run_cli(
        "ask", "-m", "echo", "write a commit message", input="diff --git a/x b/x\n+1\n",
        env=server_env,
    )
    assert result.returncode == 0, result.stderr
    alone = run_cli("ask", "-m", "echo", input="only stdin here\n", env=server_env)
    assert alone.returncode == 0, alone.stderr
    titles = [t for (t,) in history_rows("SELECT title FROM conversations ORDER BY created_at")]
    assert titles == ["write a commit message", "only stdin here"]


def test_stdin_alone_with_and_without_subcommand(openai_server, server_env) -> None:
    for args in (["ask", "-m", "echo"], ["-m", "echo"]):
        result = run_cli(*args, input="just stdin\n", env=server_env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "just stdin\n"
        assert last_request(openai_server)["messages"][-1]["content"] == "just stdin"


def test_empty_input_is_a_usage_error(server_env) -> None:
    result = run_cli("ask", input="  \n", env=server_env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "nothing to ask" in result.stderr


def test_invalid_utf8_and_large_stdin(openai_server, server_env) -> None:
    bad = run_cli("ask", "x", input=b"ok \xff\xfe bad", env=server_env)
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr)
    assert "not UTF-8" in bad.stderr
    big = ("0123456789abcdef" * 64 + "\n") * 10_000  # ~10 MB
    result = run_cli("ask", "-m", "chunks:3", "count", input=big, env=server_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(last_request(openai_server)["messages"][-1]["content"]) == len(big) - 1 + 7


def test_a_prompt_argument_that_is_not_utf8_is_one_line(server_env) -> None:
    """``chatterm ask $'\\x9b'`` (a raw byte, not U+009B) used to end in an internal error."""
    import os

    result = run_cli("ask", "-m", "echo", "hi " + os.fsdecode(b"\x9b"), env=server_env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "not UTF-8" in result.stderr and "internal error" not in result.stderr
    listed = run_cli("sessions", "list", "--json")
    assert json.loads(listed.stdout or "[]") == []


def test_json_output(server_env) -> None:
    result = run_cli("ask", "-m", "echo", "--json", "ping pong", env=server_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["reply"] == "ping pong"
    assert data["status"] == "complete" and data["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] is not None
    assert data["model"] and data["conversation_id"]
    assert data["timings"]["duration_s"] >= data["timings"]["first_token_s"] >= 0


def test_continue_and_session_resend_history(openai_server, server_env) -> None:
    first = run_cli("ask", "-m", "echo", "--json", "-s", "be brief", "first", env=server_env)
    conv = json.loads(first.stdout)["conversation_id"]
    run_cli("ask", "-m", "echo", "unrelated", env=server_env)
    result = run_cli("ask", "-m", "echo", "--session", conv[:6], "second", env=server_env)
    assert result.returncode == 0, result.stderr
    sent = [(m["role"], m["content"]) for m in last_request(openai_server)["messages"]]
    assert sent == [
        ("system", "be brief"), ("user", "first"), ("assistant", "first"), ("user", "second"),
    ]
    result = run_cli("ask", "-m", "echo", "-c", "third", env=server_env)
    assert [m["content"] for m in last_request(openai_server)["messages"]][-3:] == [
        "second", "second", "third",
    ]
    missing = run_cli("ask", "--session", "zzzz", "x", env=server_env)
    assert missing.returncode == 2
    assert_one_line_error(missing.stderr)


def test_options_are_validated_and_sent(openai_server, server_env) -> None:
    result = run_cli(
        "ask", "-m", "echo", "-o", "temperature", "0.3", "-o", "seed=7", "--max-tokens", "5",
        "-o", "stop", "END", "-o", "stop", "FIN", "hi", env=server_env,
    )
    assert result.returncode == 0, result.stderr
    body = last_request(openai_server)
    assert (body["temperature"], body["seed"], body["max_tokens"]) == (0.3, 7, 5)
    assert body["stop"] == ["END", "FIN"]
    count = len(openai_server.requests)
    unknown = run_cli("ask", "-m", "echo", "-o", "colour", "red", "hi", env=server_env)
    assert unknown.returncode == 2
    assert_one_line_error(unknown.stderr)
    assert "temperature" in unknown.stderr  # lists what is accepted
    bad = run_cli("ask", "-m", "echo", "-o", "temperature", "hot", "hi", env=server_env)
    assert bad.returncode == 2
    assert len(openai_server.requests) == count  # nothing was sent


def test_no_log_and_usage(server_env) -> None:
    result = run_cli("ask", "-m", "echo", "-n", "-u", "secret plans", env=server_env)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stderr and "completion tokens" in result.stderr
    assert history_rows("SELECT count(*) FROM messages WHERE content LIKE '%secret plans%'") == [
        (0,)
    ]


def test_no_stream_prints_the_whole_reply(server_env) -> None:
    result = run_cli("ask", "-m", "echo", "--no-stream", "all at once", env=server_env)
    assert result.returncode == 0 and result.stdout == "all at once\n"


@pytest.mark.parametrize(
    ("scenario", "words"),
    [
        ("http:401", "API key"),
        ("http:404", "http:404"),
        ("http:500-plain", "500"),
        ("html-error", "502"),
    ],
)
def test_server_errors_are_one_line_and_hide_the_key(server_env, scenario, words) -> None:
    result = run_cli("ask", "-m", scenario, "hi", env=server_env)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert words in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_connection_refused_names_the_url() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    result = run_cli("ask", "-m", "x", "hi", env={"OPENAI_BASE_URL": url})
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert f"127.0.0.1:{port}" in result.stderr


def test_error_mid_reply_keeps_the_partial(server_env) -> None:
    result = run_cli("ask", "-m", "error-event", "hi", env=server_env)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert result.stdout  # the part that arrived was shown
    rows = history_rows("SELECT content, status, error FROM messages WHERE role='assistant'")
    content, status, error = rows[-1]
    assert content and status == "error" and error


def test_ctrl_c_mid_stream_exits_130_and_keeps_partial(server_env) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", "ask", "-m", "slow:400:25", "count slowly"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(server_env),
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)  # wait until the reply is streaming
    assert first
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"interrupted" in err
    rows = history_rows("SELECT content, status FROM messages WHERE role='assistant'")
    content, status = rows[-1]
    assert status == "interrupted"
    assert len(content) >= len(first + out.rstrip(b"\n")) - 1 > 0


def test_bad_config_file_is_exit_2_naming_file_and_line(server_env) -> None:
    config_dir = Path(os.environ["XDG_CONFIG_HOME"]) / "chatterm"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.toml").write_text("[profiles.a]\nbackend = openai\n")
    result = run_cli("ask", "hi", env=server_env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "config.toml" in result.stderr and "line 2" in result.stderr


def test_config_show_masks_the_key(server_env) -> None:
    path = run_cli("config", "path").stdout.strip()
    assert path.endswith("config.toml")
    shown = run_cli("config", "show", env=server_env)
    assert shown.returncode == 0 and "backend: openai" in shown.stdout
    assert SECRET not in shown.stdout and "api key: set" in shown.stdout


def test_unknown_backend_lists_installed(server_env) -> None:
    result = run_cli("ask", "--backend", "nope", "hi", env=server_env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "local, openai" in result.stderr


def test_models_lists_the_server_models(server_env) -> None:
    result = run_cli("models", "--json", env=server_env)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list) and json.loads(result.stdout)


def test_sessions_commands(server_env, tmp_path: Path) -> None:
    conv = json.loads(run_cli("ask", "-m", "echo", "--json", "the aardvark", env=server_env).stdout)[
        "conversation_id"
    ]
    listed = json.loads(run_cli("sessions", "list", "--json").stdout)
    assert listed[0]["id"] == conv and listed[0]["title"] == "the aardvark"
    shown = json.loads(run_cli("sessions", "show", conv, "--json").stdout)
    assert [m["content"] for m in shown["messages"]] == ["the aardvark", "the aardvark"]
    hits = json.loads(run_cli("sessions", "search", "aardv", "--json").stdout)
    assert {h["conversation_id"] for h in hits} == {conv}
    md = run_cli("sessions", "export", conv, "--format", "md").stdout
    assert md.startswith("# the aardvark")
    out = tmp_path / "c.json"
    run_cli("sessions", "export", conv, "--format", "json", "--output", str(out))
    assert json.loads(out.read_text())["id"] == conv
    assert run_cli("sessions", "rm", conv).returncode == 0
    assert run_cli("sessions", "show", conv).returncode == 2


def test_export_to_a_path_that_cannot_be_written_is_one_line(server_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("ask", "-m", "echo", "keep this", env=server_env).returncode == 0
    conv = json.loads(run_cli("sessions", "list", "--json").stdout)[0]["id"]
    for target in (tmp_path / "missing" / "x.md", tmp_path):
        result = run_cli("sessions", "export", conv, "--output", str(target))
        assert result.returncode == 2, result.stderr
        assert_one_line_error(result.stderr)
        assert f"cannot write {target}" in result.stderr and "internal error" not in result.stderr


def test_ask_path_imports_no_heavy_modules(openai_server, server_env) -> None:
    code, found, out = modules_loaded_by(
        ["ask", "-m", "echo", "hi"], ["torch", "transformers", "textual"], server_env
    )
    assert (code, found, out) == (0, [], "hi\n")


def test_help_is_quick_to_import() -> None:
    code, found, out = modules_loaded_by(
        ["--help"], ["httpx", "rich.markdown", "textual", "torch", "sqlite3"]
    )
    assert (code, found) == (0, []) and "Usage" in out


def test_concurrent_ask_processes_lose_nothing(server_env) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "chatterm", "ask", "-m", "slow:20:5", f"writer {n}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=cli_env(server_env),
        )
        for n in range(5)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    rows = history_rows(
        "SELECT m.content, r.status, length(r.content) FROM messages m"
        " JOIN messages r ON r.parent_id = m.id WHERE m.content LIKE 'writer %'"
    )
    assert sorted(r[0] for r in rows) == [f"writer {n}" for n in range(5)]
    assert all(status == "complete" and length > 0 for _, status, length in rows)


def test_history_problems_are_one_line_errors(server_env) -> None:
    from chatterm.store import HistoryStore

    db_path = Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db"
    with HistoryStore(db_path) as store:
        for n in range(17):  # 17 ids over 16 hex digits: two must share the first one
            store.create_conversation(f"q{n}")
    ids = [row[0] for row in history_rows("SELECT id FROM conversations")]
    prefix = next(p for p in "0123456789abcdef" if sum(i.startswith(p) for i in ids) > 1)
    ambiguous = run_cli("sessions", "show", prefix)
    assert ambiguous.returncode == 2
    assert_one_line_error(ambiguous.stderr)
    assert "ambiguous" in ambiguous.stderr
    db = sqlite3.connect(Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    newer = run_cli("ask", "-m", "echo", "hi", env=server_env)
    assert newer.returncode == 1
    assert_one_line_error(newer.stderr)
    assert "newer chatterm" in newer.stderr and "internal error" not in newer.stderr


def test_options_before_the_command_are_not_silently_dropped(server_env) -> None:
    result = run_cli("-m", "echo", "ask", "hi", env=server_env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "options go after the command" in result.stderr


def test_rate_limit_is_retried_and_said_on_stderr(server_env) -> None:
    result = run_cli("ask", "-m", "http:429-then-ok:2:0@cli", "patience", env=server_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "patience\n"
    assert result.stderr.count("rate limited") == 2
