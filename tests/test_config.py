"""Config file parsing and the flags > env > file precedence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatterm.config import ConfigError, load_config, resolve

GOOD = """
default_profile = "vllm"

[profiles.vllm]
backend = "openai"
base_url = "http://localhost:8000/v1"
model = "qwen"
api_key_env = "VLLM_KEY"
options = { temperature = 0.2 }

[profiles.offline]
backend = "local"
model = "/models/tiny"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_file_env_and_flags_in_order(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    choice = resolve(config, env={"VLLM_KEY": "k1"})
    assert choice.backend == "openai" and choice.profile == "vllm"
    assert choice.backend_config.base_url == "http://localhost:8000/v1"
    assert choice.backend_config.api_key == "k1"
    assert choice.options == {"temperature": 0.2}
    env_wins = resolve(config, profile="offline", model=None, backend="openai",
                       env={"OPENAI_BASE_URL": "http://env/v1"})
    assert env_wins.backend_config.base_url == "http://env/v1"
    env_model = resolve(load_config(write(tmp_path, "[profiles.m]\nmodel = 'file-model'\n")),
                        profile="m", model="flag-model", env={})
    assert env_model.backend_config.model == "flag-model"
    flag_wins = resolve(
        config, base_url="http://flag/v1", model="m2", options={"temperature": "0.9"},
        env={"OPENAI_BASE_URL": "http://env/v1"},
    )
    assert flag_wins.backend_config.base_url == "http://flag/v1"
    assert flag_wins.backend_config.model == "m2"
    assert flag_wins.options == {"temperature": "0.9"}
    offline = resolve(config, profile="offline", env={})
    assert offline.backend == "local" and offline.backend_config.model == "/models/tiny"


def test_backend_defaults(tmp_path: Path) -> None:
    empty = load_config(tmp_path / "missing.toml")
    assert resolve(empty, env={}).backend == "local"
    assert resolve(empty, env={}).chosen_by_default
    assert resolve(empty, env={"OPENAI_API_KEY": "x"}).backend == "openai"
    assert resolve(empty, env={"OPENAI_BASE_URL": "http://h/v1"}).backend == "openai"
    assert resolve(empty, base_url="http://h/v1", env={}).backend == "openai"


def test_api_key_is_not_in_repr(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.toml")
    choice = resolve(config, env={"OPENAI_API_KEY": "sk-secret-123"})
    assert "sk-secret-123" not in repr(choice)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[profiles.a]\nbackend = \n", "line 2"),
        ("[profiles.a]\nbakend = 'openai'\n", "unknown key 'bakend' (known: api_key, api_key_env, backend, base_url, model, options, system_prompt) (line 2)"),
        ("\ncolour = 1\n", "unknown key 'colour' (known: default_profile, keys, profiles, templates, tui) (line 2)"),
        ("default_profile = 'nope'\n", "not a profile defined in the file (line 1)"),
        ("[profiles.b]\noptions={}\n[profiles.a]\nmodel='m'\noptions = 3\n", "options must be a table (line 5)"),
    ],
)
def test_malformed_files_name_the_file_and_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in info.value.message and expected in info.value.message
    assert "\n" not in info.value.message


def test_key_in_a_readable_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[profiles.a]\napi_key = 'sk-x'\n", mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        load_config(path)
    assert "sk-x" not in info.value.message


def test_unknown_profile(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match=r"no profile 'x'.*offline, vllm"):
        resolve(config, profile="x", env={})


def test_a_profiles_own_server_is_not_redirected_and_gets_no_default_key(tmp_path: Path) -> None:
    """OPENAI_* are for the default endpoint: they never send a profile's prompts or the
    OpenAI key to another server."""
    config = load_config(write(tmp_path, GOOD + """
[profiles.ollama]
backend = "openai"
base_url = "http://localhost:11434/v1"

[profiles.openai]
backend = "openai"
base_url = "https://api.openai.com/v1"
"""))
    env = {"OPENAI_BASE_URL": "https://api.openai.com/v1", "OPENAI_API_KEY": "sk-real"}
    ollama = resolve(config, profile="ollama", env=env)
    assert ollama.backend_config.base_url == "http://localhost:11434/v1"
    assert ollama.backend_config.api_key is None
    assert resolve(config, profile="openai", env=env).backend_config.api_key == "sk-real"
    # A profile that names its key variable gets that key.
    assert resolve(config, profile="vllm", env={"VLLM_KEY": "v"}).backend_config.api_key == "v"
