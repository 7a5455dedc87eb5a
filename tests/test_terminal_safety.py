"""Untrusted text never drives the terminal: every CLI surface, run on a real pseudo-terminal.

The loopback server's hostile scenarios (tests/openai_server.py) send every dangerous sequence
(OSC 52/0/2/8, CSI, DCS, APC, PM, SOS, 8-bit C1, BEL, backspace, bare CR, bidi overrides), cut
so an ESC ends one chunk and the rest of its sequence starts the next. chatterm runs as a
subprocess on a pty; every byte it writes there is checked: no payload sequence, and each
payload's visible stand-in (``␛]52;c;PWNCLIP``...) present. Pipes and files stay byte-exact.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from cli_run import run_cli
from openai_server import (
    HOSTILE_LINE,
    HOSTILE_MODEL_IDS,
    HOSTILE_PAYLOADS,
    HOSTILE_TEXT,
    OpenAIServer,
)
from terminal_bytes import run_on_pty, unsafe_sequences, without_styling

from chatterm.export import to_markdown
from chatterm.paths import history_path
from chatterm.sanitize import safe_inline, safe_text
from chatterm.store import HistoryStore

# Payloads that survive a one-line error message (whitespace-like controls are folded there).
LINE_PAYLOADS = ("osc52", "osc0", "osc8", "csi-clear", "dcs", "c1-csi", "c1-osc", "bidi")


def signature(name: str, inline: bool = False) -> str:
    """What a user sees of payload ``name``: its sequence's stand-ins, then its marker."""
    before, marker, _ = HOSTILE_PAYLOADS[name]
    return (safe_inline(before) if inline else safe_text(before)) + marker


def assert_safe_and_visible(output: str, names=tuple(HOSTILE_PAYLOADS), inline=False) -> None:  # type: ignore[no-untyped-def]
    assert unsafe_sequences(output) == []
    shown = without_styling(output)
    for name in names:
        assert signature(name, inline) in shown, (name, shown[-2000:])


@pytest.fixture
def server_env(openai_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"OPENAI_BASE_URL": openai_server.base_url}


# --- ask --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [[], ["-r"], ["--no-stream"], ["--no-stream", "-r"], ["-u"]],
    ids=["rendered", "raw", "no-stream", "no-stream-raw", "usage"],
)
def test_ask_on_a_terminal_shows_payloads_visibly(server_env, flags) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["ask", *flags, "-m", "hostile", "go"], server_env)
    assert run.returncode == 0, run.terminal
    assert_safe_and_visible(run.terminal)
    assert "Last line." in run.terminal


def test_ask_rendered_markdown_shows_reasoning_safely(server_env) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["ask", "-m", "hostile-reasoning", "go"], server_env)
    assert run.returncode == 0
    assert_safe_and_visible(run.terminal)
    assert "thinking…" in run.terminal  # the reasoning was on screen, sanitised too


def test_ask_json_on_a_terminal_escapes_every_control(server_env) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["ask", "--json", "-m", "hostile-reasoning", "go"], server_env)
    assert run.returncode == 0
    assert unsafe_sequences(run.terminal, allow_own_styling=False) == []
    result = json.loads(run.terminal)
    assert result["reply"] == HOSTILE_TEXT and result["reasoning"] == HOSTILE_LINE
    assert "\\u001b]52;c;PWNCLIP" in run.terminal and "\\u009b31mPWNCSIEIGHT" in run.terminal


@pytest.mark.parametrize("flags", [[], ["-r"], ["--no-stream"], ["-u"]])
def test_ask_into_a_pipe_is_byte_exact(server_env, flags) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("ask", *flags, "-m", "hostile", "go", env=server_env)
    assert result.returncode == 0
    assert result.stdout == HOSTILE_TEXT + "\n"


def test_ask_json_into_a_pipe_is_exact_json(server_env) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("ask", "--json", "-m", "hostile", "go", env=server_env)
    assert json.loads(result.stdout)["reply"] == HOSTILE_TEXT
    assert "\x9b31m" in result.stdout  # json.dumps as is: not the terminal's escapes


# --- errors and notices on stderr: sanitised always, even into a pipe ----------------------------


@pytest.mark.parametrize("model", ["http:401-hostile", "http:500-hostile", "error-event-hostile"])
def test_error_lines_are_sanitised_even_into_a_pipe(server_env, model) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["ask", "-m", model, "go"], server_env, stderr_on_pty=False)
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("chatterm: error:")] == lines[-1:], lines
    assert_safe_and_visible(run.stderr, LINE_PAYLOADS, inline=True)


def test_error_lines_on_a_terminal(server_env) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["ask", "-m", "error-event-hostile", "go"], server_env)
    assert run.returncode == 1
    assert_safe_and_visible(run.terminal, LINE_PAYLOADS, inline=True)


def test_notices_quoting_a_model_id_are_sanitised() -> None:
    with OpenAIServer(models=HOSTILE_MODEL_IDS[1:]) as server:
        run = run_on_pty(
            ["ask", "go"], {"OPENAI_BASE_URL": server.base_url}, stderr_on_pty=False
        )
    assert run.returncode == 0
    assert "no model given" in run.stderr
    assert unsafe_sequences(run.stderr) == []
    assert "␛]0;PWNMODEL␇evil" in run.stderr


# --- models -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_models_server():  # type: ignore[no-untyped-def]
    with OpenAIServer(models=HOSTILE_MODEL_IDS) as server:
        yield server


def test_models_on_a_terminal(hostile_models_server) -> None:  # type: ignore[no-untyped-def]
    env = {"OPENAI_BASE_URL": hostile_models_server.base_url}
    run = run_on_pty(["models"], env)
    assert run.returncode == 0
    assert unsafe_sequences(run.terminal) == []
    for model in HOSTILE_MODEL_IDS:
        assert safe_inline(model) in run.terminal
    run = run_on_pty(["models", "--json"], env)
    assert unsafe_sequences(run.terminal, allow_own_styling=False) == []
    assert sorted(json.loads(run.terminal)) == sorted(HOSTILE_MODEL_IDS)


def test_models_into_a_pipe_are_exact(hostile_models_server) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("models", env={"OPENAI_BASE_URL": hostile_models_server.base_url})
    assert result.stdout.splitlines() == list(HOSTILE_MODEL_IDS)  # the server's order (issue 8)


# --- sessions: the history replayed -------------------------------------------------------------


@pytest.fixture
def hostile_conversation() -> str:
    """A real history holding a hostile title, prompt and reply."""
    with HistoryStore(history_path()) as store:
        conv = store.create_conversation("title \x1b]0;PWNTITLE\x07 \x9b2J")
        user = store.add_message(conv.id, "user", "say \x1b]52;c;PWNCLIP\x07 PWNSEARCH")
        store.add_message(conv.id, "assistant", HOSTILE_TEXT, parent_id=user.id, model="m\x1b[2J")
        return conv.id


def test_sessions_show_on_a_terminal(hostile_conversation) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["sessions", "show", hostile_conversation], {})
    assert run.returncode == 0
    assert_safe_and_visible(run.terminal)
    assert "title ␛]0;PWNTITLE␇" in run.terminal


def test_sessions_show_json_on_a_terminal(hostile_conversation) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["sessions", "show", "--json", hostile_conversation], {})
    assert unsafe_sequences(run.terminal, allow_own_styling=False) == []
    assert json.loads(run.terminal)["messages"][1]["content"] == HOSTILE_TEXT


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_sessions_export_on_a_terminal(hostile_conversation, fmt) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["sessions", "export", "-f", fmt, hostile_conversation], {})
    assert run.returncode == 0
    assert unsafe_sequences(run.terminal, allow_own_styling=False) == []
    assert "PWNCLIP" in run.terminal


def test_sessions_list_and_search_on_a_terminal(hostile_conversation) -> None:  # type: ignore[no-untyped-def]
    listed = run_on_pty(["sessions", "list"], {})
    assert unsafe_sequences(listed.terminal) == []
    assert f"{hostile_conversation}" in listed.terminal and "␛]0;PWNTITLE␇" in listed.terminal
    found = run_on_pty(["sessions", "search", "PWNSEARCH"], {})
    assert unsafe_sequences(found.terminal) == []
    assert "PWNCLIP" in found.terminal and "PWNTITLE" in found.terminal
    for args in (["sessions", "list", "--json"], ["sessions", "search", "--json", "PWNSEARCH"]):
        run = run_on_pty(args, {})
        assert unsafe_sequences(run.terminal, allow_own_styling=False) == []
        assert json.loads(run.terminal)


def test_sessions_export_to_a_pipe_and_a_file_is_byte_exact(  # type: ignore[no-untyped-def]
    hostile_conversation, tmp_path
) -> None:
    with HistoryStore(history_path()) as store:
        conv = store.get_conversation(hostile_conversation)
        assert conv is not None
        expected = to_markdown(conv, store.branch(conv.id)) + "\n"
    piped = run_cli("sessions", "export", hostile_conversation)
    assert piped.stdout == expected
    shown = run_cli("sessions", "show", hostile_conversation)
    assert shown.stdout == expected
    target = tmp_path / "export.md"
    result = run_cli("sessions", "export", hostile_conversation, "--output", str(target))
    assert result.returncode == 0
    assert target.read_bytes().decode("utf-8") == expected
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


# --- config show --------------------------------------------------------------------------------


def test_config_show_is_sanitised_and_masks_url_user_info(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text(
        'default_profile = "p"\n[profiles.p]\nbackend = "openai"\n'
        'model = "m\\u001b]52;c;PWNCLIP\\u0007"\n'
        'base_url = "http://alice:hunter2pass@127.0.0.1:9/v1"\n',
        encoding="utf-8",
    )
    run = run_on_pty(["config", "show"], {"CHATTERM_CONFIG": str(config)})
    assert run.returncode == 0, run.terminal
    assert unsafe_sequences(run.terminal) == []
    assert "m␛]52;c;PWNCLIP␇" in run.terminal
    assert "hunter2pass" not in run.terminal and "alice" not in run.terminal
    assert "http://***@127.0.0.1:9/v1" in run.terminal


def test_the_error_boundary_sanitises_messages_and_debug_tracebacks(capsys) -> None:  # type: ignore[no-untyped-def]
    from chatterm.backend import ServerError
    from chatterm.cli.failures import report_failure

    for error, debug in ((ServerError(HOSTILE_LINE), False), (ValueError(HOSTILE_LINE), True)):
        try:
            raise error
        except Exception as exc:
            code = report_failure(exc, debug=debug)
        shown = capsys.readouterr().err
        assert code == 1 and unsafe_sequences(shown) == []
        assert signature("osc52", inline=True) in shown
        assert ("Traceback" in shown) is debug


def test_links_are_shown_with_their_address_not_planted_as_hyperlinks(server_env) -> None:  # type: ignore[no-untyped-def]
    run = run_on_pty(["ask", "-m", "chunks:60:markdown", "go"], server_env)
    assert run.returncode == 0
    assert unsafe_sequences(run.terminal) == []  # no OSC 8, not even chatterm's own
    assert "https://example.com/1" in without_styling(run.terminal)
