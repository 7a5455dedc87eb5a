"""`chatterm doctor` run as a user would: a subprocess against a real server and real files."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import cli_env, run_cli

SECRET = "sk-doctor-secret-0123456789"


def _lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def _history(data_home: str) -> Path:
    return Path(data_home) / "chatterm" / "history.db"


def _config(text: str) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "chatterm" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthy_setup_passes_and_masks_keys(openai_server) -> None:  # type: ignore[no-untyped-def]
    _config(
        'default_profile = "loop"\n'
        "[profiles.loop]\n"
        'backend = "openai"\n'
        f'base_url = "{openai_server.base_url}"\n'
        'model = "echo@doctor"\n'
        'api_key_env = "DOCTOR_KEY"\n'
        '[profiles."odd\\u001bname"]\n'
        'backend = "local"\n'
    )
    env = {"DOCTOR_KEY": SECRET}
    asked = run_cli("ask", "hello doctor", env=env)
    assert asked.returncode == 0, asked.stderr

    result = run_cli("doctor", env=env)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert not _lines(out, "✗ config") and not _lines(out, "✗ history")
    assert "valid (2 profiles)" in _lines(out, "✓ config file:")[0]
    in_use = _lines(out, "✓ in use:")[0]
    assert "backend openai" in in_use and "profile loop (default_profile in the config)" in in_use
    assert "key set (from $DOCTOR_KEY" in in_use
    history = _lines(out, "✓ history:")[0]
    assert "1 conversations, readable and writable" in history
    server = _lines(out, "✓ server:")[0]
    assert openai_server.base_url in server and "echo" in server
    assert _lines(out, "✓ backend openai:") and _lines(out, "✓ backend local:")
    # Untrusted names are shown with the sanitiser's stand-ins, and the key never appears.
    assert "\x1b" not in out and "profile odd␛name" in out
    assert SECRET not in out and SECRET not in result.stderr


def test_broken_config_fails_with_the_line(tmp_path: Path) -> None:
    path = _config('[profiles.x]\nbackend = "openai"\nbogus = 1\n')
    result = run_cli("doctor")
    assert result.returncode == 1
    line = _lines(result.stdout, "✗ config file:")[0]
    assert str(path) in line and "unknown key 'bogus'" in line and "(line 3)" in line
    # The rest of the report still runs: a broken config is not the only thing to look at.
    assert _lines(result.stdout, "✓ backend openai:")
    assert "Traceback" not in result.stderr


def test_unreachable_server_fails() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    result = run_cli("doctor", "--timeout", "3", env={"OPENAI_BASE_URL": url})
    assert result.returncode == 1
    line = _lines(result.stdout, "✗ server:")[0]
    assert url in line and "unreachable" in line
    in_use = _lines(result.stdout, "✓ in use:")[0]
    assert "because $OPENAI_BASE_URL is set" in in_use
    # torch missing or a model not cached would only be optional with a server in use.
    assert "(optional)" not in line


def test_url_user_info_is_masked_in_every_line(openai_server) -> None:  # type: ignore[no-untyped-def]
    """A doctor report is pasted into bug reports: a password in a profile's URL never shows."""
    host = openai_server.base_url.split("://", 1)[1]
    _config(
        'default_profile = "pw"\n'
        "[profiles.pw]\n"
        'backend = "openai"\n'
        f'base_url = "http://bob:hunter22secret@{host}"\n'
        'model = "echo@doctor-pw"\n'
    )
    result = run_cli("doctor")
    out = result.stdout + result.stderr
    assert "hunter22secret" not in out and "bob:" not in out, out
    assert f"http://***@{host}" in _lines(result.stdout, "✓ profile pw:")[0]
    assert f"http://***@{host}" in _lines(result.stdout, "✓ server:")[0]


def test_read_only_history_fails(openai_server) -> None:  # type: ignore[no-untyped-def]
    env = {"OPENAI_BASE_URL": openai_server.base_url}
    assert run_cli("ask", "-m", "echo@doctor-ro", "keep me", env=env).returncode == 0
    history = _history(os.environ["XDG_DATA_HOME"])
    history.chmod(stat.S_IRUSR | stat.S_IRGRP)
    prefix: list[str] = []
    if os.geteuid() == 0:
        # root writes through file modes: drop the capabilities that let it, as for a user.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a read-only file is writable")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    result = _run_prefixed(prefix, ["doctor"], env)
    assert result.returncode == 1, result.stdout + result.stderr
    line = _lines(result.stdout, "✗ history:")[0]
    assert str(history) in line and "1 conversations" in line
    assert "not writable: the file is read-only" in line


def _run_prefixed(
    prefix: list[str], args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "chatterm", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=cli_env(env), timeout=60,
    )


def test_offline_without_the_model_fails_only_for_local(tmp_path: Path) -> None:
    result = run_cli("doctor", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    line = _lines(result.stdout, "✗ local model Qwen/")[0]
    assert "HF_HUB_OFFLINE=1 forbids downloading it" in line
    assert "(optional)" not in line


def test_local_model_folder_is_found(tiny_model_dir: Path) -> None:
    _config(f'[profiles.tiny]\nbackend = "local"\nmodel = "{tiny_model_dir}"\n')
    result = run_cli("doctor", env={"CHATTERM_PROFILE": "tiny"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert _lines(result.stdout, f"✓ local model {tiny_model_dir}: folder found")
    assert "from profile tiny ($CHATTERM_PROFILE)" in result.stdout


def _refusing_endpoint() -> str:
    return f"http://127.0.0.1:{_closed_port()}"


def test_unreachable_hub_without_the_model_fails() -> None:
    env = {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": _refusing_endpoint()}
    result = run_cli("doctor", env=env, timeout=60)
    assert result.returncode == 1
    hub = _lines(result.stdout, "✗ Hugging Face Hub:")[0]
    assert "connection refused" in hub and hub.endswith("(optional)")
    model = _lines(result.stdout, "✗ local model Qwen/")[0]
    assert "the hub cannot be reached to download it" in model
    assert not model.endswith("(optional)")


def test_unreachable_hub_with_the_model_cached_passes(tiny_model_dir: Path) -> None:
    from hub_cache import hub_cache_dir, install_in_cache

    install_in_cache(tiny_model_dir, "chatterm-test/tiny",
                     hub_cache_dir(Path(os.environ["XDG_CACHE_HOME"])))
    _config('[profiles.t]\nbackend = "local"\nmodel = "chatterm-test/tiny"\n')
    env = {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": _refusing_endpoint(), "CHATTERM_PROFILE": "t"}
    result = run_cli("doctor", env=env, timeout=60)
    assert result.returncode == 0, result.stdout
    assert _lines(result.stdout, "✗ Hugging Face Hub:")[0].endswith("(optional)")
    assert "in the Hugging Face cache" in _lines(result.stdout, "✓ local model chatterm-test/tiny:")[0]


def test_url_passwords_and_echoed_keys_are_masked(openai_server) -> None:  # type: ignore[no-untyped-def]
    url = openai_server.base_url.replace("http://", "http://me:hunter2hunter2@")
    result = run_cli("doctor", env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": SECRET})
    assert "hunter2hunter2" not in result.stdout and SECRET not in result.stdout
    assert "http://***@127.0.0.1" in _lines(result.stdout, "✓ server:")[0]
