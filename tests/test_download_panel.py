"""The TUI's download panel and welcome panel, driven through the pilot in a small app.

The download is real: the local backend's downloader fetching the tiny model from the loopback
hub (tests/hub_server.py), slowly, on a worker thread, while the panel shows it, Esc cancels it,
and a second download resumes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hub_server import HubServer, use_hub
from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from chatterm.backend import ModelLoadError
from chatterm.config import Config, Profile, resolve
from chatterm.download_progress import CANCELLED, DONE
from chatterm.tui.widgets.download_panel import DownloadPanel
from chatterm.tui.widgets.welcome_panel import WelcomeFacts, WelcomePanel

pytest.importorskip("huggingface_hub")

REPO = "chatterm-test/tiny-panel"
SIZE = (100, 24)


class PanelApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Input(id="prompt")
        yield DownloadPanel(id="download")


@pytest.fixture
def hub(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with HubServer(chunk=4096) as server:
        server.add_repo(REPO, tiny_model_dir)
        use_hub(monkeypatch, server)
        yield server


async def _until(pilot, condition: Callable[[], bool], what: str, limit: int = 600) -> None:  # type: ignore[no-untyped-def]
    for _ in range(limit):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _text(panel: DownloadPanel, part: str) -> str:
    return str(panel.query_one(f"#download-{part}", Static).render())


def test_download_panel_shows_progress_cancels_and_resumes(
    hub: HubServer, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from chatterm_local.download import download_snapshot

    hub.delay_s = 0.03  # ~130 kB/s: the 0.4 MB of weights take about three seconds
    weights = tiny_model_dir / "model.safetensors"

    def fetch() -> str:
        return download_snapshot(REPO, cache_dir=tmp_path, echo=False)

    async def scenario() -> None:
        app = PanelApp()
        async with app.run_test(size=SIZE) as pilot:
            panel = app.query_one(DownloadPanel)
            assert not panel.has_class("-shown")
            first = asyncio.create_task(asyncio.to_thread(fetch))

            def midway() -> bool:
                last = panel.last
                return bool(last and last.current_file == "model.safetensors"
                            and last.bytes_done > 40_000)

            await _until(pilot, midway, "the weights to be downloading")
            assert panel.has_class("-shown") and app.focused is panel
            detail = _text(panel, "detail")
            assert "model.safetensors" in detail and "kB /" in detail and "ETA" in detail
            assert "Esc cancels" in _text(panel, "title")
            # The UI keeps answering while bytes arrive: the prompt takes typing.
            await pilot.click("#prompt")
            await pilot.press("h", "i")
            assert app.query_one("#prompt", Input).value == "hi"
            panel.focus()
            await pilot.press("escape")
            with pytest.raises(ModelLoadError, match="cancelled"):
                await first
            await _until(pilot, lambda: panel.last is not None and panel.last.state == CANCELLED,
                         "the cancel to show")
            assert "cancelled" in _text(panel, "title")
            assert "the next start resumes" in _text(panel, "detail")
            kept = panel.last.bytes_done if panel.last else 0

            hub.delay_s = 0.0
            folder = Path(await asyncio.to_thread(fetch))
            await _until(pilot, lambda: panel.last is not None and panel.last.state == DONE,
                         "the second download to finish")
            assert not panel.has_class("-shown")
            assert (folder / "model.safetensors").read_bytes() == weights.read_bytes()
            resumed = hub.ranges_for("model.safetensors")[-1]
            assert resumed is not None and resumed.startswith("bytes=")
            assert 0 < int(resumed[6:-1]) <= kept

    asyncio.run(scenario())


def test_model_ids_from_the_hub_are_shown_as_plain_text() -> None:
    from chatterm.download_progress import Download

    async def scenario() -> None:
        app = PanelApp()
        async with app.run_test(size=SIZE) as pilot:
            panel = app.query_one(DownloadPanel)
            hostile = "org/[bold]x\x1b]52;c;aGk=\x07"
            download = Download(hostile, [("config.json", 10)])
            download.start()
            await _until(pilot, lambda: panel.last is not None, "the first update")
            title = _text(panel, "title")
            assert "[bold]x␛]52;c;aGk=␇" in title and "\x1b" not in title
            download.finish(DONE)
            await _until(pilot, lambda: not panel.has_class("-shown"), "the panel to hide")

    asyncio.run(scenario())


class WelcomeApp(App[None]):
    def __init__(self, facts: WelcomeFacts, conversations: int) -> None:
        super().__init__()
        self.facts, self.conversations = facts, conversations

    def compose(self) -> ComposeResult:
        yield WelcomePanel(self.facts, conversations=self.conversations, id="welcome")


def test_welcome_panel_says_who_answers_and_hides_with_a_conversation() -> None:
    facts = WelcomeFacts.gather(resolve(Config(path=Path("/x")), env={}), model_key="ctrl+o")

    async def scenario() -> None:
        app = WelcomeApp(facts, conversations=0)
        async with app.run_test(size=SIZE) as pilot:
            panel = app.query_one(WelcomePanel)
            shown = str(panel.render())
            assert "local · Qwen/Qwen2.5-0.5B-Instruct" in shown
            assert "no flag, profile or OPENAI_* variable" in shown
            assert "ctrl+o" in shown and "OPENAI_BASE_URL" in shown
            assert str(facts.config_path) in shown and str(facts.history_path) in shown
            assert panel.display
            panel.conversations_changed(1)
            await pilot.pause()
            assert not panel.display

    asyncio.run(scenario())


def test_welcome_panel_names_a_profile_and_escapes_it() -> None:
    config = Config(path=Path("/x"), exists=True, default_profile="srv\x1b[2J", profiles={
        "srv\x1b[2J": Profile("srv\x1b[2J", backend="openai", base_url="http://h:1/v1",
                              model="[red]m"),
    })
    facts = WelcomeFacts.gather(resolve(config, env={}))

    async def scenario() -> None:
        app = WelcomeApp(facts, conversations=0)
        async with app.run_test(size=SIZE):
            shown = str(app.query_one(WelcomePanel).render())
            assert "openai · [red]m at http://h:1/v1" in shown
            assert "profile srv␛[2J (default_profile in the config)" in shown
            assert "\x1b" not in shown

    asyncio.run(scenario())
