"""Every ending kept and marked (issue 8): `chatterm ask` in subprocesses against the loopback
server, ended by signals, kill -9, a full disk, a read-only history, a closed pipe."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import assert_one_line_error, cli_env, run_cli
from openai_server import PARTIAL

from chatterm.store import ORPHANED, pieces_path

SECRET = "sk-test-secret-4242"


@pytest.fixture
def server_env(openai_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": SECRET}


def db_path() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db"


def rows(sql: str, params: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
    """Read the history as another program would: read-only, never repairing anything (the
    streamed pieces' file attached as ``pieces``, as chatterm does)."""
    db = sqlite3.connect(f"file:{db_path()}?mode=ro", uri=True)
    try:
        pieces = pieces_path(db_path())
        if pieces.exists():
            db.execute("ATTACH DATABASE ? AS pieces", (f"file:{pieces}?mode=ro",))
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def reply_row(prompt: str) -> tuple[str, str, str | None]:
    """(content, status, error) of the reply to ``prompt``, pieces of a streaming row joined."""
    found = rows(
        "SELECT r.id, r.content, r.status, r.error FROM messages m JOIN messages r"
        " ON r.parent_id = m.id WHERE m.content = ? ORDER BY r.id DESC LIMIT 1",
        (prompt,),
    )
    assert found, f"no reply to {prompt!r}"
    message_id, content, status, error = found[0]
    pieces = rows(
        "SELECT content FROM message_pieces WHERE message_id = ? ORDER BY id", (message_id,)
    )
    return content + "".join(p[0] for p in pieces), status, error


def popen(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "chatterm", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(env), **kwargs,  # type: ignore[arg-type]
    )


def wait_until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Poll for a state (not a speed): fails only if it never happens."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "state never reached"
        time.sleep(0.05)


# --- signals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGTERM, 143, b"terminated"), (signal.SIGHUP, 129, b"hung up"),
     (signal.SIGINT, 130, b"interrupted")],
)
def test_ending_signal_mid_stream_saves_marks_and_exits(server_env, signum, code, word) -> None:
    prompt = f"count for {signum}"
    proc = popen("ask", "-m", "slow:400:25", prompt, env=server_env)
    assert proc.stdout is not None
    first = proc.stdout.read(5)  # the reply is streaming
    assert first == b"tok0 "
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert b"Traceback" not in err and word in err
    assert b"partial reply saved" in err
    content, status, _ = reply_row(prompt)
    assert status == "interrupted"
    assert content.startswith((first + out).decode().rstrip("\n")) and content


def test_kill_9_is_repaired_by_the_next_process_and_a_live_writer_is_untouched(
    server_env,
) -> None:
    dead = popen("ask", "-m", "idle:120", "the one that dies", env=server_env)
    assert dead.stdout is not None
    assert dead.stdout.read(len(PARTIAL)) == PARTIAL.encode()
    # What was shown reaches the database while the stream is idle (timer flush).
    wait_until(lambda: reply_row("the one that dies")[0] == PARTIAL)
    dead.kill()
    dead.wait(timeout=30)
    live = popen("ask", "-m", "idle:120", "the one that lives", env=server_env)
    assert live.stdout is not None
    assert live.stdout.read(len(PARTIAL)) == PARTIAL.encode()
    try:
        wait_until(lambda: reply_row("the one that lives")[0] == PARTIAL)
        listed = run_cli("sessions", "list")  # any chatterm process opening the history
        assert listed.returncode == 0, listed.stderr
        assert reply_row("the one that dies") == (PARTIAL, "interrupted", ORPHANED)
        content, status, error = reply_row("the one that lives")
        assert (content, status, error) == (PARTIAL, "streaming", None)
        assert live.poll() is None
    finally:
        live.send_signal(signal.SIGINT)
        live.communicate(timeout=60)
    assert live.returncode == 130
    assert reply_row("the one that lives") == (PARTIAL, "interrupted", "interrupted")
    shown = json.loads(run_cli("sessions", "show", "--json", _conv_of("the one that dies")).stdout)
    assert shown["messages"][-1]["status"] == "interrupted"
    assert shown["messages"][-1]["error"] == ORPHANED


def _conv_of(prompt: str) -> str:
    return str(rows("SELECT conversation_id FROM messages WHERE content = ?", (prompt,))[0][0])


def test_reused_pid_does_not_keep_a_dead_row_alive(tmp_path: Path) -> None:
    """A row naming this very pid but another start time is a dead writer's."""
    from chatterm.store import HistoryStore, writer_alive, writer_token

    mine = writer_token()
    pid, start, boot = mine.split(":")
    assert writer_alive(mine)
    assert not writer_alive(f"{pid}:{int(start or 0) + 1}:{boot}")
    assert not writer_alive(f"{pid}:{start}:another-boot")
    assert not writer_alive(None)
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        live = store.add_message(conv.id, "assistant", "", status="streaming")
        reused = store.add_message(
            conv.id, "assistant", "", status="streaming", writer=f"{pid}:{int(start or 0) + 1}:"
        )
        store.append_pieces(reused.id, "half a reply")
        assert store.repair_orphans() == [reused.id]
        assert store.get_message(live.id).status == "streaming"  # type: ignore[union-attr]
        got = store.get_message(reused.id)
        assert got is not None and (got.content, got.status, got.error) == (
            "half a reply", "interrupted", ORPHANED,
        )


# --- SIGINT at every point of start-up ------------------------------------------------------

# Says GO the moment chatterm's entry point (``chatterm.__main__.run``) starts: from then on
# every instant is chatterm's to handle; before it, Python itself is still starting.
_LAUNCH = """
import sys
def announce(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "run" and "chatterm" in frame.f_code.co_filename:
        sys.setprofile(None)
        sys.stderr.write("GO\\n")
        sys.stderr.flush()
sys.argv = ["chatterm", *sys.argv[1:]]
import chatterm.__main__
sys.setprofile(announce)
chatterm.__main__.run()
"""


def test_sigint_at_many_points_of_start_up_exits_130(server_env) -> None:
    offsets = [0.002 * 1.6**k for k in range(12)]  # 2 ms .. ~0.5 s: imports, config, loop
    for offset in offsets:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, "ask", "-m", "slow:40:20", f"start {offset:.3f}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=cli_env(server_env),
        )
        assert proc.stderr is not None
        assert proc.stderr.readline() == b"GO\n"
        time.sleep(offset)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            continue  # the reply was already complete: nothing to interrupt
        assert proc.returncode == 130, (offset, err)
        assert b"internal error" not in err and b"Traceback" not in err, (offset, err)
        assert b"chatterm: interrupted" in err


_RUNNER_WINDOW = """
import asyncio, os, signal, sys
original = asyncio.Runner._lazy_init
def lazy_init(self):
    original(self)
    os.kill(os.getpid(), signal.SIGINT)  # lands right after the runner's set-up
asyncio.Runner._lazy_init = lazy_init
sys.argv = ["chatterm", *sys.argv[1:]]
from chatterm.__main__ import run
run()
"""


def test_sigint_inside_asyncio_runner_set_up_is_an_interrupt(server_env) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER_WINDOW, "ask", "-m", "slow:40:20", "in the window"],
        stdin=subprocess.DEVNULL, capture_output=True, env=cli_env(server_env), timeout=60,
    )
    assert proc.returncode == 130, proc.stderr
    assert b"internal error" not in proc.stderr and b"CancelledError" not in proc.stderr
    assert b"Traceback" not in proc.stderr
    assert b"chatterm: interrupted" in proc.stderr
    # Nothing was sent yet; whatever was stored is not left streaming.
    assert rows("SELECT count(*) FROM messages WHERE status = 'streaming'") == [(0,)]


# --- pipes ---------------------------------------------------------------------------------


def test_ask_into_head_exits_141_quietly(server_env) -> None:
    script = (
        f'"{sys.executable}" -m chatterm ask -m chunks:20000 "a long one" 2>"$ERR" | head -c 20'
        ' >/dev/null; echo "${PIPESTATUS[0]}"'
    )
    err_file = Path(os.environ["XDG_STATE_HOME"]) / "err.txt"
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120,
        env=cli_env({**server_env, "ERR": str(err_file)}), stdin=subprocess.DEVNULL,
    )
    assert result.stdout.strip() == "141", result.stderr
    assert err_file.read_text() == ""
    _, status, _ = reply_row("a long one")
    assert status in ("interrupted", "complete")


# --- storage faults ------------------------------------------------------------------------


def _limit_file_size(limit: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_mid_stream_is_one_line_and_the_next_run_works(server_env) -> None:
    assert run_cli("ask", "-m", "echo", "make the history", env=server_env).returncode == 0
    size = max(p.stat().st_size for p in db_path().parent.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "chatterm", "ask", "-m", "chunks:60000", "fill the disk"],
        stdin=subprocess.DEVNULL, capture_output=True, env=cli_env(server_env), timeout=120,
        preexec_fn=_limit_file_size(size + 64 * 1024),
    )
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert_one_line_error(err)
    assert str(db_path()) in err and ("full" in err or "I/O error" in err)
    again = run_cli("ask", "-m", "echo", "after the fault", env=server_env)
    assert again.returncode == 0, again.stderr
    assert "rollback" not in again.stderr and again.stdout == "after the fault\n"
    # The reply that could not be finished is not left streaming for ever.
    assert reply_row("fill the disk")[1] in ("interrupted", "error")


@pytest.fixture
def read_only_history(server_env) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A history with one conversation, then made read-only (a read-only mount as root,
    who ignores permission bits; file modes otherwise)."""
    data = Path(os.environ["XDG_DATA_HOME"]) / "chatterm"
    mounted = False
    if os.geteuid() == 0:
        data.mkdir(parents=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "none", str(data)],
                          capture_output=True).returncode != 0:
            pytest.skip("running as root and cannot mount a read-only filesystem")
        mounted = True
    made = run_cli("ask", "-m", "echo", "--json", "kept safe", env=server_env)
    conv = json.loads(made.stdout)["conversation_id"]
    try:
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)
        else:
            db_path().chmod(0o400)
            data.chmod(0o500)
        yield conv
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(data)], check=False)
        else:
            data.chmod(0o700)
            db_path().chmod(0o600)


def test_read_only_history_serves_reads_and_ask_n(read_only_history, server_env) -> None:
    conv = read_only_history
    listed = run_cli("sessions", "list")
    assert listed.returncode == 0 and conv in listed.stdout, listed.stderr
    shown = run_cli("sessions", "show", conv)
    assert shown.returncode == 0 and "kept safe" in shown.stdout, shown.stderr
    found = run_cli("sessions", "search", "kept")
    assert found.returncode == 0 and conv in found.stdout, found.stderr
    scratch = run_cli("ask", "-n", "-m", "echo", "no log needed", env=server_env)
    assert scratch.returncode == 0 and scratch.stdout == "no log needed\n", scratch.stderr
    follow = run_cli("ask", "-n", "-c", "-m", "echo", "and more", env=server_env)
    assert follow.returncode == 0, follow.stderr
    refused = run_cli("ask", "-m", "echo", "must be saved", env=server_env)
    assert refused.returncode == 1
    assert_one_line_error(refused.stderr)
    assert "read-only" in refused.stderr and "-n" in refused.stderr
    assert "internal error" not in refused.stderr


def test_damaged_page_is_one_line_with_the_recover_hint(server_env) -> None:
    for n in range(30):
        assert run_cli("ask", "-m", "echo", f"fill {n} " * 200, env=server_env).returncode == 0
    data = bytearray(db_path().read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, page):  # every page after the schema
        data[start : start + 64] = b"\xff" * 64
    db_path().write_bytes(bytes(data))
    for args in (["sessions", "list"], ["sessions", "search", "fill"], ["ask", "-c", "x"]):
        result = run_cli(*args, env=server_env)
        assert result.returncode != 0, args
        assert "internal error" not in result.stderr, result.stderr
        assert_one_line_error(result.stderr)
        assert ".recover" in result.stderr and str(db_path()) in result.stderr


def test_json_is_printed_on_interruption_with_the_partial(server_env) -> None:
    proc = popen("ask", "--json", "-m", "slow:400:25", "json and stop", env=server_env)
    def streaming() -> bool:
        try:
            return bool(reply_row("json and stop")[0])
        except (sqlite3.Error, AssertionError):  # not created yet
            return False

    wait_until(streaming)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    data = json.loads(out)
    assert data["status"] == "interrupted" and data["error"] == "terminated"
    assert data["reply"].startswith("tok0 ") and data["conversation_id"] and data["message_id"]
    content, status, _ = reply_row("json and stop")
    assert status == "interrupted" and content == data["reply"]


def test_a_signal_inside_the_import_machinery_is_handled_again_just_after() -> None:
    """Raised inside importlib's weakref callbacks, Ended would be printed as "Exception
    ignored" with a traceback and lost; the handler waits until ordinary code runs again."""
    import types

    from chatterm import endings

    inside_import = types.SimpleNamespace(
        f_code=types.SimpleNamespace(co_filename="<frozen importlib._bootstrap>")
    )
    previous = signal.getsignal(signal.SIGALRM)
    endings.reset()
    try:
        endings._handle(signal.SIGINT, inside_import)  # returns: not raised inside importlib
        with pytest.raises(endings.Ended) as ended:
            for _ in range(200):  # the retry comes on SIGALRM a few ms later
                time.sleep(0.01)
        assert ended.value.exit_code == 130
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        endings.reset()


def test_a_signal_the_interpreter_wrapped_in_another_error_still_ends_with_its_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ended raised by the handler while a class is being created reaches the boundary as
    RuntimeError("Error calling __set_name__ ..."): it is still SIGINT's exit, not an
    internal error."""
    from chatterm import endings
    from chatterm.cli.failures import report_failure

    monkeypatch.setattr(endings, "ended_by", lambda: signal.SIGINT)
    wrapped = RuntimeError("Error calling __set_name__ on 'Field' instance 'data'")
    assert report_failure(wrapped, debug=False) == 130
    assert capsys.readouterr().err == "chatterm: interrupted\n"
    monkeypatch.setattr(endings, "ended_by", lambda: signal.SIGTERM)
    assert report_failure(TypeError("expected a message argument"), debug=False) == 143


def test_a_retry_still_due_when_the_ending_is_handled_is_dropped() -> None:
    """A signal that landed in the import machinery (or a finalizer) is retried on SIGALRM a
    few ms later; when the front end handles the ending first (it saw ``ended_by()``), the
    retry is dropped, so no SIGALRM lands on the way out (at exit Python restores SIGALRM's
    default, which killed the process with -14)."""
    import types

    from chatterm import endings

    in_finalizer = types.SimpleNamespace(
        f_code=types.SimpleNamespace(co_filename="asyncio/base_events.py", co_name="__del__")
    )
    previous = signal.getsignal(signal.SIGALRM)
    endings.reset()
    try:
        endings._handle(signal.SIGINT, in_finalizer)  # not raised inside __del__: retried
        assert endings.ended_by() == signal.SIGINT
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
        endings.settle()
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        time.sleep(0.05)  # nothing is raised: the retry is gone
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        endings.reset()
