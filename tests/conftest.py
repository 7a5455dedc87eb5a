"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

# --- tiny_model_dir (local backend helper) ------------------------------------------------------
# A seeded random chat model built offline once per session (see tests/tiny_model.py); used by the
# local backend tests and the end-to-end test against `transformers serve`.


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


# --- end tiny_model_dir -------------------------------------------------------------------------


# --- openai_server + isolated environment (OpenAI backend helper) ------------------------------
# `openai_server`: one real loopback HTTP server (tests/openai_server.py) for the whole session;
# the request's model name picks the scenario (`echo`, `slow:N:MS`, `http:401`, ...). Tests that
# count requests or use `*-then-ok` scenarios should tag the model (`echo@my_test`) to stay apart.
# `_isolated_env` (autouse): XDG dirs in tmp, no OpenAI/colour settings leaking in, HF offline.


@pytest.fixture(scope="session")
def openai_server():  # type: ignore[no-untyped-def]
    from openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("home")
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        path = home / name.lower()
        path.mkdir()
        monkeypatch.setenv(name, str(path))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The loopback server must never be reached through a proxy from the environment.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# --- end openai_server -------------------------------------------------------------------------
