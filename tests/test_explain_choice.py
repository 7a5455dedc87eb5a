"""`explain_choice`: which backend and model answer, and why (welcome panel, doctor)."""

from __future__ import annotations

from pathlib import Path

from chatterm.config import Config, Profile, explain_choice, resolve


def _config() -> Config:
    return Config(
        path=Path("/nowhere/config.toml"),
        exists=True,
        default_profile="srv",
        profiles={
            "srv": Profile("srv", backend="openai", base_url="http://h:1/v1", model="m1"),
            "gpu": Profile("gpu", backend="local", model="org/big"),
        },
    )


def test_default_is_the_local_model() -> None:
    why = explain_choice(resolve(Config(path=Path("/x")), env={}))
    assert (why.backend, why.model, why.source) == ("local", "Qwen/Qwen2.5-0.5B-Instruct", "default")
    assert "no flag, profile or OPENAI_* variable" in why.reason


def test_each_source_is_named() -> None:
    config = _config()
    by_file = explain_choice(resolve(config, env={}))
    assert (by_file.source, by_file.model, by_file.base_url) == ("profile", "m1", "http://h:1/v1")
    assert "profile srv (default_profile in the config)" in by_file.reason
    by_flag = explain_choice(resolve(config, profile="gpu", env={}))
    assert by_flag.source == "profile" and "-p/--profile" in by_flag.reason
    by_var = explain_choice(resolve(config, profile="gpu", env={"CHATTERM_PROFILE": "srv"}))
    assert by_var.backend == "local" and by_var.model == "org/big"
    by_env = explain_choice(resolve(Config(path=Path("/x")), env={"OPENAI_BASE_URL": "http://e/v1"}))
    assert (by_env.source, by_env.backend) == ("environment", "openai")
    assert "$OPENAI_BASE_URL" in by_env.reason
    assert by_env.model == "the first model the server lists"
    by_backend = explain_choice(resolve(config, backend="local", env={}))
    assert by_backend.source == "flag" and "--backend" in by_backend.reason
    by_url = explain_choice(resolve(Config(path=Path("/x")), base_url="http://u/v1", env={}))
    assert by_url.source == "flag" and "--base-url" in by_url.reason
    env_profile = explain_choice(resolve(config, env={"CHATTERM_PROFILE": "gpu"}))
    assert "$CHATTERM_PROFILE" in env_profile.reason


def test_a_password_in_the_server_url_is_masked() -> None:
    """The explanation is shown (welcome panel, doctor): URL user info never is."""
    config = Config(
        path=Path("/x"),
        profiles={"pw": Profile("pw", backend="openai", base_url="http://bob:hunter22@h:1/v1")},
    )
    why = explain_choice(resolve(config, profile="pw", env={}))
    assert why.base_url == "http://***@h:1/v1"
