"""API keys and URL passwords: never sent where they must not go, never shown, never stored.

The decisions are tested directly and end to end: the CLI in a subprocess against the loopback
server, which logs the headers it receives.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest
from chatterm_openai import OpenAIBackend
from cli_run import assert_one_line_error, run_cli
from openai_server import OpenAIServer

from chatterm.backend import BackendConfig, BackendError, ChatMessage, ChatRequest, OptionError
from chatterm.config import ConfigError, load_config, resolve
from chatterm.paths import history_path
from chatterm.secrets_mask import is_openai_host, key_problem, mask_secrets

KEY = "sk-test-" + "k3y" * 6


# --- which host gets OPENAI_API_KEY -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.openai.com/v1", True),
        ("https://API.OpenAI.com/v1/", True),
        ("https://api.openai.com:443/v1", True),
        ("https://api.openai.com.evil.net/v1", False),
        ("https://api.openai.com@evil.net/v1", False),
        ("https://user:pw@api.openai.com/v1", False),
        ("https://evil.net/api.openai.com/v1", False),
        ("https://evil.net/?h=://api.openai.com", False),
        ("http://api.openai.com/v1", False),
        ("https://api.openai.com:8443/v1", False),
        ("https://api.openai.com./v1", False),
        ("https://xapi.openai.com/v1", False),
        ("https://[::1]:99999/v1", False),
        ("api.openai.com", False),
        ("", False),
    ],
)
def test_the_default_key_goes_only_to_openai_over_https(url: str, expected: bool) -> None:
    assert is_openai_host(url) is expected


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize(
    ("base_url", "gets_key"),
    [
        ("https://api.openai.com/v1", True),
        ("https://api.openai.com.evil.net/v1", False),
        ("http://127.0.0.1:8000/v1", False),
    ],
)
def test_resolve_sends_the_default_key_by_parsed_host(
    tmp_path: Path, base_url: str, gets_key: bool
) -> None:
    path = _config(tmp_path, f'[profiles.p]\nbackend = "openai"\nbase_url = "{base_url}"\n')
    choice = resolve(load_config(path), profile="p", env={"OPENAI_API_KEY": KEY})
    assert (choice.backend_config.api_key == KEY) is gets_key


def test_a_profile_naming_the_variable_gets_it(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        '[profiles.p]\nbackend = "openai"\nbase_url = "https://api.openai.com.evil.net/v1"\n'
        'api_key_env = "OPENAI_API_KEY"\n',
    )
    choice = resolve(load_config(path), profile="p", env={"OPENAI_API_KEY": KEY})
    assert choice.backend_config.api_key == KEY


@pytest.fixture
def profile_env(tmp_path: Path, openai_server: OpenAIServer):  # type: ignore[no-untyped-def]
    def make(extra: str = "") -> dict[str, str]:
        path = _config(
            tmp_path,
            f'[profiles.loop]\nbackend = "openai"\nbase_url = "{openai_server.base_url}"\n{extra}',
        )
        return {"CHATTERM_CONFIG": str(path), "OPENAI_API_KEY": KEY}

    return make


def test_a_profiles_own_server_gets_no_authorization_header(  # type: ignore[no-untyped-def]
    openai_server, profile_env
) -> None:
    model = "echo@keys-no-header"
    result = run_cli("ask", "-p", "loop", "-m", model, "hi", env=profile_env())
    assert result.returncode == 0, result.stderr
    (request,) = openai_server.requests_for(model)
    assert request.authorization is None
    assert KEY not in json.dumps(request.headers)


def test_a_profile_that_names_the_variable_sends_it(openai_server, profile_env) -> None:  # type: ignore[no-untyped-def]
    model = "echo@keys-named"
    env = profile_env('api_key_env = "OPENAI_API_KEY"\n')
    result = run_cli("ask", "-p", "loop", "-m", model, "hi", env=env)
    assert result.returncode == 0, result.stderr
    (request,) = openai_server.requests_for(model)
    assert request.authorization == f"Bearer {KEY}"


# --- keys that cannot be sent -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [KEY + "\n", KEY + "\r", KEY + "\r\n", " " + KEY, KEY[:8] + " " + KEY[8:],
            KEY + "\x1b[2J", KEY + "\t", KEY + "é", KEY + "\x7f"],
)
def test_a_key_with_whitespace_or_controls_is_refused_before_sending(  # type: ignore[no-untyped-def]
    openai_server, bad: str
) -> None:
    model = f"echo@keys-bad-{secrets.token_hex(3)}"
    env = {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": bad}
    result = run_cli("ask", "-m", model, "hi", env=env)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "$OPENAI_API_KEY" in result.stderr and "nothing was sent" in result.stderr
    assert KEY[8:] not in result.stderr  # never the key, not even its repr
    assert openai_server.requests_for(model) == []
    assert not history_path().exists() or KEY.encode() not in history_path().read_bytes()


def test_a_bad_key_in_the_config_file_names_the_profile(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        '[profiles.p]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        f'api_key = "{KEY}\\r"\n',
    )
    with pytest.raises(ConfigError) as caught:
        resolve(load_config(path), profile="p", env={})
    message = caught.value.message
    assert "api_key of [profiles.p]" in message and str(path) in message
    assert KEY[8:] not in message


def test_the_backend_refuses_a_bad_key_itself() -> None:
    with pytest.raises(OptionError) as caught:
        OpenAIBackend(BackendConfig(base_url="http://127.0.0.1:9/v1", api_key=KEY + "\n"))
    assert KEY[8:] not in caught.value.message


def test_key_problem_accepts_ordinary_keys() -> None:
    for key in (KEY, "sk-proj-AbC_123-xyz", "ollama", "a" * 200):
        assert key_problem(key) is None


# --- masking ------------------------------------------------------------------------------------


def test_every_form_of_a_key_is_masked() -> None:
    key = "sk-a/b+c=d'e\"f"
    forms = [
        key,
        repr(key),
        json.dumps(key),
        quote(key, safe=""),
        f"Bearer {key}",
        "Authorization: Bearer some-other-token-123",
        "Basic " + base64.b64encode(b"user:pw").decode(),
    ]
    for form in forms:
        masked = mask_secrets(f"the server said: {form} (end)", [key])
        assert "sk-a" not in masked and "other-token" not in masked, masked
        assert "dXNlcjpwdw" not in masked and masked.endswith("(end)")


def test_url_user_info_is_masked() -> None:
    text = "cannot connect to http://alice:hunter2@127.0.0.1:9/v1 (and https://tok@h.example/x)"
    masked = mask_secrets(text)
    assert "hunter2" not in masked and "alice" not in masked and "tok@" not in masked
    assert "http://***@127.0.0.1:9/v1" in masked and "https://***@h.example/x" in masked


async def _error(server: OpenAIServer, model: str, api_key: str, base_url: str | None = None) -> BackendError:
    backend = OpenAIBackend(
        BackendConfig(base_url=base_url or server.base_url, api_key=api_key, extra={"retry_delay": 0.01})
    )
    request = ChatRequest([ChatMessage("user", "hi")], model=model)
    try:
        async for _ in backend.stream(request):
            pass
    except BackendError as exc:
        return exc
    finally:
        await backend.aclose()
    raise AssertionError("no error")


@pytest.mark.parametrize("length", [250, 268, 272, 290, 400])
def test_a_key_echoed_at_the_cut_is_masked_whole(openai_server, length: int) -> None:  # type: ignore[no-untyped-def]
    """The 401 body echoes the key; cut to 300 characters first, most of it would show."""
    key = "sk-" + secrets.token_hex(length // 2)
    error = asyncio.run(_error(openai_server, "http:401", key))
    windows = {key[i : i + 8] for i in range(len(key) - 8)}
    assert not any(w in error.message for w in windows), error.message
    assert "rejected the API key" in error.message


def test_a_key_echoed_by_the_server_is_never_shown_or_stored(openai_server) -> None:  # type: ignore[no-untyped-def]
    env = {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": KEY}
    result = run_cli("ask", "-m", "http:401", "hi", env=env)
    assert result.returncode == 1 and KEY not in result.stderr and "***" in result.stderr
    stored = b"".join(
        p.read_bytes() for p in history_path().parent.glob("history.db*") if p.is_file()
    )
    assert stored and KEY.encode() not in stored


def test_url_user_info_is_masked_in_notices(openai_server) -> None:  # type: ignore[no-untyped-def]
    url = openai_server.base_url.replace("http://", "http://alice:pw-secret-9@")
    result = run_cli("ask", "-m", "http:503-then-ok@keys-notice", "hi", env={"OPENAI_BASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "retrying" in result.stderr and "http://***@127.0.0.1" in result.stderr
    assert "pw-secret-9" not in result.stderr and "alice" not in result.stderr


def test_words_after_basic_or_bearer_are_not_mangled() -> None:
    text = "Basic authentication required; Bearer tokens only"
    assert mask_secrets(text) == text


@pytest.mark.parametrize("pad", [120, 135, 140, 150])
def test_a_url_password_cut_at_the_limit_is_still_masked(pad: int) -> None:
    import httpx
    from chatterm_openai.failures import Failures

    url = "http://alice:supersecretpassword@127.0.0.1:9/v1"
    failures = Failures(url, None, httpx.Timeout(1.0), 0.0)
    error = failures.transport(httpx.ConnectError("x" * pad + f" while reaching {url}"), False)
    assert "supersec" not in error.message and "alice" not in error.message, error.message


def test_the_error_boundary_masks_what_a_backend_did_not(capsys) -> None:  # type: ignore[no-untyped-def]
    from chatterm.backend import ServerError
    from chatterm.cli.failures import report_failure

    message = "proxy said: Authorization: Bearer tok-12345678 for http://bob:pa55word@h/v1"
    for debug in (False, True):
        try:
            raise ServerError(message)
        except ServerError as exc:
            report_failure(exc, debug=debug)
        shown = capsys.readouterr().err
        assert "tok-12345678" not in shown and "pa55word" not in shown and "bob" not in shown
        assert "Bearer ***" in shown and "http://***@h/v1" in shown
