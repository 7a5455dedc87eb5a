"""Untrusted text in the TUI never drives the terminal (issue 7's TUI surfaces).

Three levels, all against real parts: the pilot checks that the widgets hold sanitised text
(replies live and finished, reasoning, code blocks, sidebar, title bar, model names,
notifications, search results, dialogs' pre-filled text); a screenshot of hostile text is
valid XML; and the real ``chatterm`` TUI runs as a subprocess on a pseudo-terminal against the
loopback server's ``hostile`` scenario, with every byte it writes checked for the payloads.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from cli_run import cli_env
from openai_server import HOSTILE_LINE, HOSTILE_MODEL_IDS, HOSTILE_PAYLOADS, OpenAIServer
from test_tui import make_app, run, seed, server_choice, settle, wait_for

from chatterm.backend import BackendConfig
from chatterm.config import Choice
from chatterm.controller_events import Reply
from chatterm.sanitize import UNSAFE_CODE_POINTS
from chatterm.tui.widgets.frozen_markdown import FrozenMarkdown
from chatterm.tui.widgets.message_view import MessageView
from chatterm.tui.widgets.streaming import ReplyRenderer

SIZE = (100, 30)
HOSTILE_TITLE = "Title \x1b]0;PWNTITLEBAR\x07 \x9b2J \u202eevil"


def unsafe(text: str) -> list[str]:
    """The characters of ``text`` the sanitiser would have replaced (there must be none)."""
    return [f"U+{ord(ch):04X}" for ch in text if ord(ch) in UNSAFE_CODE_POINTS or ch == "\r"]


def rendered(segment: FrozenMarkdown) -> str:
    return "\n".join(segment.rendered_lines(90))


def test_hostile_reply_reasoning_and_error_are_held_sanitised(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "hostile-reasoning"))
        async with app.run_test(size=SIZE) as pilot:
            app.prompt_input.text = "be hostile"
            await pilot.press("enter")
            await settle(app, pilot)
            view = app.view.message_views()[-1]
            assert view.role == "assistant" and "PWNCLIP" in view.text  # stored as sent
            assert "\x1b" in view.text  # byte-exact in the history...
            shown = "\n".join(rendered(s) for s in view.segments if isinstance(s, FrozenMarkdown))
            assert "PWNCLIP" in shown and "␛]52;c;PWNCLIP" in shown
            assert unsafe(shown) == []  # ...never on the screen
            reasoning = str(view.query_one(".reasoning").render())
            assert "PWNCLIP" in reasoning and unsafe(reasoning) == []
            header = view.header_text().plain
            assert unsafe(header) == []
            # An in-stream error that quotes the payloads: the notification is sanitised.
            app.choice = server_choice(openai_server, "error-event-hostile")
            app.prompt_input.text = "fail"
            await pilot.press("enter")
            await settle(app, pilot)
            errors = [text for sev, text in app.notices if sev == "error"]
            assert errors and "PWN" in errors[-1] and unsafe(errors[-1]) == []
            problem = app.view.message_views()[-1].problem_text().plain
            assert "PWN" in problem and unsafe(problem) == []
            # A screenshot of all that is valid XML (a raw ESC would make it invalid).
            svg = app.export_screenshot()
            ET.fromstring(svg)
            assert store.count_conversations() == 1

    run(scenario)


def test_live_segments_are_sanitised_across_chunk_boundaries(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        async with app.run_test(size=SIZE) as pilot:
            view = MessageView(None, role="assistant", live=True)
            await app.view.mount(view)
            renderer = ReplyRenderer(Reply("send"), view)
            for piece in ("start \x1b", "]52;c;PWNLIVE\x07 and \r", "\n \x9b", "2J end"):
                renderer.write(piece)  # a list append; stop() draws it
            await renderer.writer.stop()
            await pilot.pause()
            live = view.segments[-1]
            source = live.source
            assert "PWNLIVE" in source and unsafe(source) == []
            await renderer.finish()
            assert unsafe(view.source) == []

    run(scenario)


def test_sidebar_title_dialogs_and_search_hold_sanitised_text(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        conv = seed(store, HOSTILE_TITLE, [("find \x1b]52;c;PWNSEARCH\x07 me", "answer")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            await pilot.pause()
            row = app.sidebar.option_list.get_option_at_index(0).prompt.plain
            assert "PWNTITLEBAR" in row and unsafe(row) == []
            assert "PWNTITLEBAR" in app.title_bar.title_shown
            assert unsafe(app.title_bar.title_shown) == []
            await pilot.press("f2")
            await pilot.pause()
            value = app.screen.query_one("#line").value
            assert "PWNTITLEBAR" in value and unsafe(value) == []
            await pilot.press("escape")
            await pilot.press("ctrl+f")
            await pilot.press(*"PWNSEARCH")
            screen = app.screen
            await wait_for(lambda: bool(getattr(screen, "hits", None)), pilot)
            hit = screen.query_one("#results").get_option_at_index(0).prompt.plain
            assert "PWNSEARCH" in hit and unsafe(hit) == []
            ET.fromstring(app.export_screenshot())

    run(scenario)


def test_model_names_from_a_hostile_server_are_sanitised(tmp_path: Path) -> None:
    from chatterm.tui.screens.model_dialog import ModelDialog

    async def scenario() -> None:
        with OpenAIServer(models=HOSTILE_MODEL_IDS) as server:
            app, _ = make_app(tmp_path, server_choice(server, "echo"))
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("ctrl+o")
                dialog = app.screen
                assert isinstance(dialog, ModelDialog)
                await wait_for(lambda: bool(dialog.server_models), pilot)
                await pilot.pause()
                options = dialog.query_one("#choices")
                shown = [str(options.get_option_at_index(i).prompt)
                         for i in range(options.option_count)]
                assert any("PWNMODEL" in text for text in shown)
                assert all(unsafe(text) == [] for text in shown)
                app.switch_to("\x1b]0;PWNSTATUS\x07m")
                await pilot.pause(0.2)
                assert "PWNSTATUS" in app.status_line.target
                assert unsafe(str(app.status_line.render())) == []
                ET.fromstring(app.export_screenshot())

    run(scenario)


# --- the real TUI on a pseudo-terminal -------------------------------------------------------


def _read_until(fd: int, chunks: list[bytes], wanted: bytes, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        chunks.append(data)
        if wanted in b"".join(chunks[-50:]):
            return True
    return False


def test_tui_on_a_pty_writes_no_payload(tmp_path: Path, openai_server: Any) -> None:
    controller, terminal = pty.openpty()
    env = cli_env({
        "TERM": "xterm-256color", "COLUMNS": "110", "LINES": "100",  # the whole reply in view
        "OPENAI_BASE_URL": openai_server.base_url,
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", "--backend", "openai", "-m", "hostile"],
        stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    try:
        assert _read_until(controller, chunks, b"Message", 60), b"".join(chunks)[-2000:]
        os.write(controller, b"show me\r")
        assert _read_until(controller, chunks, b"Last line", 60), b"".join(chunks)[-2000:]
        time.sleep(0.5)
        _read_until(controller, chunks, b"\x00never", 1.0)
        os.write(controller, b"\x11")  # Ctrl+Q
        _read_until(controller, chunks, b"\x00never", 20)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    raw = b"".join(chunks)
    output = raw.decode("utf-8", "replace")
    assert proc.returncode == 0
    for name, (before, marker, _after) in HOSTILE_PAYLOADS.items():
        assert marker in output, name  # the reply was drawn, every payload visibly...
        assert before + marker not in output, name  # ...but none of its sequences
    for sequence in (b"\x1b]52;c;PWN", b"\x1b]0;PWN", b"\x1b]2;PWN", b"\x1b[2JPWN",
                     b"\xc2\x9b31mPWN", b"\xc2\x9d0;PWN", b"\x07\x07PWN"):
        assert sequence not in raw, sequence
    assert "PWN" in HOSTILE_LINE  # (the payload list the scenario used)



def test_sigterm_mid_reply_stores_the_partial_and_restores_the_terminal(
    tmp_path: Path, openai_server: Any
) -> None:
    import signal

    from chatterm.store import INTERRUPTED, HistoryStore

    controller, terminal = pty.openpty()
    env = cli_env({
        "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30",
        "OPENAI_BASE_URL": openai_server.base_url,
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", "--backend", "openai", "-m", "slow:400:20"],
        stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    try:
        assert _read_until(controller, chunks, b"Message", 60)
        os.write(controller, b"count for me\r")
        assert _read_until(controller, chunks, b"tok5", 60)
        proc.send_signal(signal.SIGTERM)
        _read_until(controller, chunks, b"\x00never", 20)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    assert proc.returncode == 143
    tail = b"".join(chunks)[-400:]
    assert b"\x1b[?1049l" in tail  # left the alternate screen: the terminal is restored
    history = Path(env["XDG_DATA_HOME"]) / "chatterm" / "history.db"
    store = HistoryStore(history)
    try:
        conv = store.latest_conversation()
        assert conv is not None
        user, reply = store.branch(conv.id)
        assert user.content == "count for me"
        assert reply.status == INTERRUPTED and reply.content.startswith("tok0 tok1")
    finally:
        store.close()
