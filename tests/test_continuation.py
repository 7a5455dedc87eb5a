"""A failed turn never poisons the conversation, a continuation goes back to its own server,
and `ask` reports every outcome (issue 8). Subprocesses against the loopback server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_run import assert_one_line_error, run_cli
from openai_server import ALTERNATE_ERROR, LLAMA_TIMINGS, PARTIAL, OpenAIServer

SECRET = "sk-test-secret-4242"


@pytest.fixture
def server_env(openai_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": SECRET}


def roles(request) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(m["role"], m["content"]) for m in request.body["messages"]]


def show(conv: str) -> dict:  # type: ignore[type-arg]
    result = run_cli("sessions", "show", "--json", conv)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_strict_server_rejects_what_does_not_alternate(openai_server, server_env) -> None:
    """The scenario itself behaves like a strict chat template."""
    import httpx

    body = {"model": "strict", "stream": False,
            "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    answer = httpx.post(openai_server.base_url + "/chat/completions", json=body)
    assert answer.status_code == 400 and ALTERNATE_ERROR in answer.text


def test_failed_turns_stay_visible_but_are_not_sent(openai_server, server_env) -> None:
    first = run_cli("ask", "-m", "strict@alt", "--json", "-s", "sys", "one", env=server_env)
    assert first.returncode == 0, first.stderr
    conv = json.loads(first.stdout)["conversation_id"]
    for model in ("http:400", "headers-then-cut", "http:500-always"):
        failed = run_cli("ask", "--session", conv, "-m", model, f"fails on {model}",
                         env=server_env)
        assert failed.returncode == 1
        assert "partial reply" not in failed.stderr  # nothing arrived: nothing claimed
    again = run_cli("ask", "--session", conv, "-m", "strict@alt", "three", env=server_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "three\n"
    sent = roles(openai_server.requests_for("strict@alt")[-1])
    assert sent == [("system", "sys"), ("user", "one"), ("assistant", "one"), ("user", "three")]
    # The failed turns are still in the history, each marked.
    messages = show(conv)["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "one", "fails on http:400", "fails on headers-then-cut", "fails on http:500-always",
        "three",
    ]
    failed_replies = [m for m in messages if m["role"] == "assistant" and m["content"] == ""]
    assert len(failed_replies) == 3 and all(m["status"] == "error" for m in failed_replies)
    assert all(m["error"] for m in failed_replies)


def test_partial_reply_with_text_is_context(openai_server, server_env) -> None:
    cut = run_cli("ask", "-m", "cut", "--json", "start", env=server_env)
    assert cut.returncode == 1
    data = json.loads(cut.stdout)
    assert data["reply"] == PARTIAL and data["status"] == "error" and data["error"]
    again = run_cli("ask", "-c", "-m", "strict@partial", "go on", env=server_env)
    assert again.returncode == 0, again.stderr
    assert roles(openai_server.requests_for("strict@partial")[-1]) == [
        ("user", "start"), ("assistant", PARTIAL), ("user", "go on"),
    ]


def test_continue_without_flags_reaches_the_conversations_own_server(
    openai_server, server_env
) -> None:
    with OpenAIServer(models=["own-model"]) as own:
        first = run_cli("ask", "--base-url", own.base_url, "-m", "echo@own", "--json", "hello",
                        env=server_env)
        assert first.returncode == 0, first.stderr
        conv = json.loads(first.stdout)["conversation_id"]
        run_cli("ask", "-m", "echo", "elsewhere", env=server_env)  # a newer conversation
        # OPENAI_BASE_URL still points at the other server: the conversation's route wins.
        again = run_cli("ask", "--session", conv, "and again", env=server_env)
        assert again.returncode == 0, again.stderr
        assert again.stdout == "and again\n"
        requests = own.requests_for("echo@own")
        assert len(requests) == 2
        assert roles(requests[-1])[-1] == ("user", "and again")
        # An ad-hoc base URL gets OPENAI_API_KEY exactly as it did on the command line.
        assert [r.authorization for r in requests] == [f"Bearer {SECRET}"] * 2
        # -c without flags: the latest conversation (that one now), on its own server.
        latest = run_cli("ask", "-c", "last one", env=server_env)
        assert latest.returncode == 0, latest.stderr
        assert roles(own.requests_for("echo@own")[-1])[-1] == ("user", "last one")
        # Flags say otherwise: they win, and the remembered model is not carried over.
        moved = run_cli("ask", "--session", conv, "--base-url", openai_server.base_url,
                        "-m", "echo@moved", "moved", env=server_env)
        assert moved.returncode == 0, moved.stderr
        assert len(own.requests_for("echo@own")) == 3
        assert roles(openai_server.requests_for("echo@moved")[-1])[-1] == ("user", "moved")
    # The route is stored without any key.
    db = (Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db").read_bytes()
    assert SECRET.encode() not in db


def test_continue_goes_back_through_the_profile(openai_server, server_env) -> None:
    with OpenAIServer(api_key="profile-key-77") as own:
        config = Path(os.environ["XDG_CONFIG_HOME"]) / "chatterm" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f'[profiles.mine]\nbackend = "openai"\nbase_url = "{own.base_url}"\n'
            'model = "echo@profile"\napi_key_env = "MINE_KEY"\n'
        )
        env = {**server_env, "MINE_KEY": "profile-key-77"}
        first = run_cli("ask", "-p", "mine", "--json", "via profile", env=env)
        assert first.returncode == 0, first.stderr
        again = run_cli("ask", "-c", "still via profile", env=env)
        assert again.returncode == 0, again.stderr
        last = own.requests_for("echo@profile")[-1]
        assert last.authorization == "Bearer profile-key-77"
        assert roles(last)[-1] == ("user", "still via profile")
        config.write_text("")
        gone = run_cli("ask", "-c", "profile gone", env=env)
        assert gone.returncode == 2
        assert_one_line_error(gone.stderr)
        assert "'mine'" in gone.stderr and "--profile" in gone.stderr


def test_credentials_in_a_base_url_are_never_stored(openai_server, server_env) -> None:
    url = openai_server.base_url.replace("http://", "http://user:pw-hidden@")
    result = run_cli("ask", "--base-url", url, "-m", "echo", "with userinfo", env=server_env)
    assert result.returncode == 0, result.stderr
    db = (Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db").read_bytes()
    assert b"pw-hidden" not in db


# --- what `ask` reports -------------------------------------------------------------------


def test_json_is_printed_on_failure_and_keeps_the_exit_code(server_env) -> None:
    result = run_cli("ask", "--json", "-m", "error-event", "explode", env=server_env)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    data = json.loads(result.stdout)
    assert data["status"] == "error" and "model overloaded" in data["error"]
    assert data["reply"] == PARTIAL and data["conversation_id"] and data["message_id"]
    refused = run_cli("ask", "--json", "-m", "http:401", "no", env=server_env)
    assert refused.returncode == 1
    data = json.loads(refused.stdout)
    assert data["status"] == "error" and "API key" in data["error"] and data["reply"] == ""


def test_no_stream_sends_stream_false_and_uses_that_usage(openai_server, server_env) -> None:
    result = run_cli("ask", "--no-stream", "-u", "-m", "llama-timings@ns", "whole reply",
                     env=server_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "whole reply\n"
    (request,) = openai_server.requests_for("llama-timings@ns")
    assert request.body["stream"] is False and "stream_options" not in request.body
    assert "completion tokens" in result.stderr and "?" not in result.stderr
    # The server's own speed figure (llama.cpp timings) is the one reported.
    assert f"{LLAMA_TIMINGS['predicted_per_second']:.1f} tokens/s" in result.stderr


def test_streamed_speed_comes_from_the_server_timings(server_env) -> None:
    result = run_cli("ask", "--json", "-m", "llama-timings", "fast", env=server_env)
    data = json.loads(result.stdout)
    assert data["timings"]["tokens_per_second"] == LLAMA_TIMINGS["predicted_per_second"]


@pytest.mark.parametrize("model", ["content-number", "content-list", "content-nan",
                                   "deep-nesting"])
def test_malformed_event_is_one_line_naming_the_server_and_keeps_the_partial(
    openai_server, server_env, model
) -> None:
    result = run_cli("ask", "--json", "-m", model, "malformed", env=server_env)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert openai_server.base_url in result.stderr and "internal error" not in result.stderr
    data = json.loads(result.stdout)
    assert data["reply"] == PARTIAL and data["status"] == "error"
    messages = show(data["conversation_id"])["messages"]
    assert (messages[-1]["content"], messages[-1]["status"]) == (PARTIAL, "error")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_option_values_are_refused(openai_server, server_env, value) -> None:
    count = len(openai_server.requests)
    result = run_cli("ask", "-m", "echo", "-o", "temperature", value, "hi", env=server_env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "finite" in result.stderr and len(openai_server.requests) == count


def test_timeouts_are_options_and_say_what_happened(openai_server, server_env) -> None:
    idle = run_cli("ask", "-m", "wait:5", "-o", "idle_timeout", "0.3", "slow one",
                   env=server_env)
    assert idle.returncode == 1
    assert_one_line_error(idle.stderr)
    assert "connected to" in idle.stderr and "no data for 0.3s" in idle.stderr
    assert "partial reply" not in idle.stderr
    assert "idle_timeout" not in json.dumps(openai_server.requests[-1].body)  # not sent
    cut = run_cli("ask", "-m", "headers-then-cut", "cut early", env=server_env)
    assert cut.returncode == 1 and "before any text arrived" in cut.stderr
    assert "cannot connect" not in cut.stderr


def test_models_are_listed_in_the_servers_order_and_empty_is_said() -> None:
    with OpenAIServer(models=["zeta", "alpha", "mid"]) as server:
        listed = run_cli("models", "--base-url", server.base_url)
        assert listed.returncode == 0 and listed.stdout.split() == ["zeta", "alpha", "mid"]
    with OpenAIServer(models=[]) as server:
        empty = run_cli("models", "--base-url", server.base_url)
        assert empty.returncode == 0 and empty.stdout == ""
        assert "lists no models" in empty.stderr


def test_default_model_notice_is_said_once_per_server_and_model(server_env) -> None:
    first = run_cli("ask", "no model given", env=server_env)
    assert first.returncode == 0 and "no model given; using echo" in first.stderr
    second = run_cli("ask", "still none", env=server_env)
    assert second.returncode == 0 and "no model given" not in second.stderr


def test_json_is_printed_when_the_history_cannot_be_written(server_env) -> None:
    db = Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"not a database at all " * 100)
    result = run_cli("ask", "--json", "-m", "echo", "hi", env=server_env)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    data = json.loads(result.stdout)
    assert data["status"] == "error" and str(db) in data["error"] and data["reply"] == ""
