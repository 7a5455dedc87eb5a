"""The TUI's first run without network: a quick error, nothing saved, the prompt kept.

The real app (``build_app``) with nothing configured (local backend, default model) and the
Hugging Face Hub pointed at a loopback port that refuses connections.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from chatterm.config import Config, resolve
from chatterm.store import HistoryStore
from chatterm.tui.app import build_app

pytest.importorskip("huggingface_hub")


def test_offline_first_send_fails_fast_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatterm_local.hub import forget_probes
    from huggingface_hub import constants

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    forget_probes()

    async def scenario() -> None:
        store = HistoryStore(tmp_path / "history.db")
        choice = resolve(Config(path=tmp_path / "config.toml"), env={})
        app = build_app(choice, Config(path=tmp_path / "config.toml"), store,
                        state_file=tmp_path / "state.json", user_themes_dir=tmp_path / "themes")
        async with app.run_test(size=(100, 30)) as pilot:
            app.prompt_input.text = "hello offline"
            await pilot.press("enter")
            for _ in range(600):
                if any(sev == "error" for sev, _ in app.notices):
                    break
                await pilot.pause(0.05)
            errors = [msg for sev, msg in app.notices if sev == "error"]
            assert len(errors) == 1, list(app.notices)
            assert "cannot be reached (connection refused)" in errors[0]
            assert "HF_HUB_OFFLINE=1" in errors[0] and "--base-url" in errors[0]
            assert store.count_conversations() == 0
            assert app.prompt_input.text == "hello offline"

    asyncio.run(scenario())
    forget_probes()


def test_welcome_panel_in_the_real_app_until_the_first_conversation(
    tmp_path: Path, openai_server  # type: ignore[no-untyped-def]
) -> None:
    from chatterm.tui.widgets.welcome_panel import WelcomePanel

    async def scenario() -> None:
        store = HistoryStore(tmp_path / "history.db")
        config = Config(path=tmp_path / "config.toml")
        choice = resolve(config, backend="openai", base_url=openai_server.base_url,
                         model="echo", env={})
        app = build_app(choice, config, store, state_file=tmp_path / "state.json",
                        user_themes_dir=tmp_path / "themes")
        async with app.run_test(size=(100, 30)) as pilot:
            panel = app.query_one(WelcomePanel)
            shown = panel.render_facts().plain
            assert not panel.has_class("-hidden")
            assert "openai" in shown and "echo" in shown and "ctrl+o" in shown
            app.prompt_input.text = "hello"
            await pilot.press("enter")
            for _ in range(600):
                if store.count_conversations() and panel.has_class("-hidden"):
                    break
                await pilot.pause(0.05)
            assert store.count_conversations() == 1
            assert panel.has_class("-hidden")

    asyncio.run(scenario())
