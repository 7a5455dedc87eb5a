"""The TUI driven for real: ``App.run_test()`` and the pilot, a HistoryStore on disk, the loopback
OpenAI-compatible server (tests/openai_server.py) and the tiny local model.

Each test is a plain function running one scenario with ``asyncio.run`` (pytest-asyncio is not
a project dependency). The server's behaviour is picked by the model name (``echo``,
``slow:N:MS``, ``chunks:N:markdown``, ``error-event``, ``http:500-always``,
``reasoning_content``).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.screen import ModalScreen
from textual.worker import WorkerCancelled

from chatterm import state
from chatterm.backend import BackendConfig
from chatterm.chat import ChatSession
from chatterm.config import Choice, Config, Profile, resolve
from chatterm.store import COMPLETE, ERROR, INTERRUPTED, HistoryStore, StoreError
from chatterm.tui.app import ChattermApp, build_app
from chatterm.tui.screens.search import SearchScreen
from chatterm.tui.widgets.frozen_markdown import FrozenMarkdown
from chatterm.tui.widgets.message_view import MessageView
from chatterm.tui.widgets.prompt_input import PromptInput
from chatterm.tui.widgets.sidebar import PAGE_SIZE

SIZE = (100, 30)


# --- helpers ---------------------------------------------------------------------------------


def server_choice(server: Any, model: str = "echo") -> Choice:
    return resolve(Config(path=Path("none.toml")), backend="openai", base_url=server.base_url,
                   model=model, env={})


def make_app(tmp_path: Path, choice: Choice, config: Config | None = None,
             **kwargs: Any) -> tuple[ChattermApp, HistoryStore]:
    store = HistoryStore(tmp_path / "history.db")
    app = build_app(
        choice, config or Config(path=tmp_path / "config.toml"), store,
        state_file=tmp_path / "state.json", user_themes_dir=tmp_path / "themes", **kwargs,
    )
    return app, store


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def settle(app: ChattermApp, pilot: Any) -> None:
    """Wait until every worker (the reply above all) is done, cancelled ones included."""
    for _ in range(5):
        try:
            await app.workers.wait_for_complete()
            break
        except WorkerCancelled:
            continue
    await pilot.pause()


async def send(app: ChattermApp, pilot: Any, text: str) -> None:
    app.prompt_input.text = text
    await pilot.press("enter")
    await settle(app, pilot)


async def wait_for(predicate: Callable[[], bool], pilot: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.02)


async def type_now(app: ChattermApp, *keys: str) -> None:
    """Send keys like a terminal would, without the pilot's wait-until-idle after each one.

    (The pilot waits up to 1 s per key for the CPU to go idle, which never happens while a
    reply streams from an in-process server.)
    """
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))
    await asyncio.sleep(0)


def screen_text(app: ChattermApp) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip).rstrip() for strip in strips)


def rendered_text(segment: FrozenMarkdown) -> str:
    return "\n".join(segment.rendered_lines(80))


def replies(store: HistoryStore, conv_id: str) -> list[Any]:
    return [m for m in store.branch(conv_id) if m.role == "assistant"]


# --- sending ---------------------------------------------------------------------------------


def test_send_streams_reply_and_shows_markup_as_typed(tmp_path: Path, openai_server: Any) -> None:
    prompt = "look in [/mnt/data/models] and [bold]this[/bold] [link=x]y[/link]"

    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "echo@tui_markup"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, prompt)
            assert app.conversation is not None
            branch = store.branch(app.conversation.id)
            assert [(m.role, m.content, m.status) for m in branch] == [
                ("user", prompt, COMPLETE), ("assistant", prompt, COMPLETE),
            ]
            assert branch[1].model == "echo@tui_markup" and branch[1].backend == "openai"
            assert app.prompt_input.text == ""
            text = screen_text(app)
            assert "[/mnt/data/models] and [bold]this[/bold]" in text  # the prompt as typed
            assert "echo@tui_markup" in text  # the header names the model
            assert "complete" in text and "openai" in text  # the status line
            assert app.sidebar.option_list.option_count == 1

    run(scenario)


def test_markdown_reply_renders_blocks_after_stream(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "chunks:300:markdown"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "write a report")
            assert app.conversation is not None
            reply = replies(store, app.conversation.id)[-1]
            assert reply.status == COMPLETE and reply.content.count("```") >= 2
            view = app.view.message_views()[-1]
            assert view.source == reply.content
            # Streamed into live segments, each rendered whole once finished: fences split
            # across deltas come out right (oterm #308), tables and headings too.
            segments = view.segments
            assert segments and all(isinstance(s, FrozenMarkdown) for s in segments)
            rendered = "\n".join(rendered_text(s) for s in segments)
            assert "def f1(x):" in rendered and "return x * 1" in rendered
            assert "```" not in rendered and "alpha" in rendered and "Section 2" in rendered
            assert "## Section" not in rendered and "**bold**" not in rendered

    run(scenario)


def test_reasoning_is_shown_apart_and_collapsed(tmp_path: Path, openai_server: Any) -> None:
    from textual.widgets import Collapsible

    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "reasoning_content"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "hi")
            view = app.view.message_views()[-1]
            section = view.query_one(Collapsible)
            assert section.display and section.collapsed
            assert "greet" in view.reasoning and "greet" not in view.text
            assert app.conversation is not None
            stored = replies(store, app.conversation.id)[-1]
            assert stored.reasoning == view.reasoning and stored.content == view.text

    run(scenario)


def test_local_model_reply_and_switch_to_remote(
    tmp_path: Path, openai_server: Any, tiny_model_dir: Path
) -> None:
    async def scenario() -> None:
        remote = Profile(name="remote", backend="openai", base_url=openai_server.base_url,
                         model="echo@tui_switch")
        config = Config(path=tmp_path / "config.toml", profiles={"remote": remote})
        choice = resolve(config, backend="local", model=str(tiny_model_dir), env={})
        app, store = make_app(tmp_path, choice, config)
        async with app.run_test(size=SIZE) as pilot:
            app.pending_settings = {"system_prompt": "", "options": {"max_tokens": 8}}
            await send(app, pilot, "hello there")
            assert app.conversation is not None
            local = replies(store, app.conversation.id)[-1]
            assert local.status == COMPLETE and local.backend == "local"
            assert local.model == str(tiny_model_dir) and local.content
            assert store.get_conversation(app.conversation.id).options == {"max_tokens": 8}
            # Mid-conversation switch to the server: the next reply records its own model.
            app.switch_to("profile:remote")
            await send(app, pilot, "and now remote")
            both = replies(store, app.conversation.id)
            assert [(m.backend, m.model) for m in both] == [
                ("local", str(tiny_model_dir)), ("openai", "echo@tui_switch"),
            ]
            assert both[-1].content == "and now remote"

    run(scenario)


def test_switch_model_from_dialog_records_model_per_message(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "echo"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "first")
            await pilot.press("ctrl+o")
            await pilot.pause()
            await pilot.press(*"chunks:5")
            await pilot.press("enter")
            await pilot.pause()
            assert app.choice.backend_config.model == "chunks:5"
            assert "chunks:5" in screen_text(app)  # the status line names the next model
            await send(app, pilot, "second")
            assert app.conversation is not None
            models = [m.model for m in replies(store, app.conversation.id)]
            assert models == ["echo", "chunks:5"]
            headers = [v.header_text().plain for v in app.view.message_views()]
            assert headers[1].startswith("echo") and headers[3].startswith("chunks:5")

    run(scenario)


def test_profile_switch_from_palette_command(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        profile = Profile(name="fast", backend="openai", base_url=openai_server.base_url,
                          model="chunks:4")
        config = Config(path=tmp_path / "c.toml", profiles={"fast": profile})
        app, store = make_app(tmp_path, server_choice(openai_server, "echo"), config)
        async with app.run_test(size=SIZE) as pilot:
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Use profile fast" in titles and "Regenerate the last reply" in titles
            app.switch_to("profile:fast")
            await send(app, pilot, "hi")
            assert app.conversation is not None
            assert replies(store, app.conversation.id)[-1].model == "chunks:4"

    run(scenario)


# --- control ---------------------------------------------------------------------------------


def test_escape_cancels_and_keeps_partial_reply(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "slow:400:10"))
        async with app.run_test(size=SIZE) as pilot:
            app.prompt_input.text = "count slowly"
            await type_now(app, "enter")
            await wait_for(lambda: app.last_streamer is not None
                           and app.last_streamer.deltas >= 5, pilot)
            # Typing is taken in while the reply streams (how fast is bench/bench_tui.py's job).
            await type_now(app, *"draft")
            await wait_for(lambda: app.prompt_input.text == "draft", pilot)
            assert app.streaming
            await type_now(app, "escape")
            await settle(app, pilot)
            assert app.conversation is not None
            reply = replies(store, app.conversation.id)[-1]
            assert reply.status == INTERRUPTED
            assert reply.content.startswith("tok0 tok1 ") and "tok399" not in reply.content
            view = app.view.message_views()[-1]
            assert view.status == INTERRUPTED and "interrupted" in view.header_text().plain
            assert view.source == reply.content
            assert app.prompt_input.text == "draft"

    run(scenario)


def test_reply_keeps_streaming_when_switching_away_and_quit_stores_partial(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "slow:40:15"))
        other = seed(store, "Elsewhere", [("a", "b")])
        async with app.run_test(size=SIZE) as pilot:
            app.prompt_input.text = "long one"
            await type_now(app, "enter")
            await wait_for(lambda: app.last_streamer is not None
                           and app.last_streamer.deltas >= 3, pilot)
            first = app.conversation
            assert first is not None
            await app.open_conversation(other)  # the reply goes on, stored, not drawn
            await settle(app, pilot)
            reply = replies(store, first.id)[-1]
            assert reply.status == COMPLETE and reply.content.count("tok") == 40
            await app.open_conversation(first.id)
            await pilot.pause()
            assert app.view.message_views()[-1].source == reply.content

            # Quitting mid-reply stops it and stores what arrived.
            await type_now(app, *"again", "enter")
            await wait_for(lambda: app.streaming and app.last_streamer is not None
                           and app.last_streamer.deltas >= 3, pilot)
            await app.action_quit()
        last = replies(store, first.id)[-1]
        assert last.status == INTERRUPTED and last.content.startswith("tok0")

    run(scenario)


def test_regenerate_keeps_old_reply_as_sibling(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "echo"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "say it twice")
            await pilot.press("ctrl+r")
            await settle(app, pilot)
            assert app.conversation is not None
            user = store.branch(app.conversation.id)[0]
            answers = store.children(user.id)
            assert len(answers) == 2 and all(a.content == "say it twice" for a in answers)
            assert app.view.message_views()[-1].branch == (2, 2)
            await pilot.press("alt+left")
            await pilot.pause()
            assert store.branch(app.conversation.id)[-1].id == answers[0].id

    run(scenario)


def test_edit_branches_and_old_branch_stays_reachable(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "echo"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "first question")
            await send(app, pilot, "second question")
            first = app.view.message_views()[0]
            first.focus()
            await pilot.press("e")
            await pilot.pause()
            dialog_text = app.screen.query_one("#text")
            dialog_text.text = "first, reworded"
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            assert app.conversation is not None
            contents = [m.content for m in store.branch(app.conversation.id)]
            assert contents == ["first, reworded", "first, reworded"]
            assert app.view.message_views()[0].branch == (2, 2)
            # The old branch is one key away, whole.
            app.view.message_views()[0].focus()
            await pilot.press("left")
            await pilot.pause()
            contents = [m.content for m in store.branch(app.conversation.id)]
            assert contents == ["first question"] * 2 + ["second question"] * 2
            assert [v.text for v in app.view.message_views()] == contents

    run(scenario)


def test_server_error_mid_reply_keeps_everything(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "error-event"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "please fail")
            assert app.conversation is not None
            user, reply = store.branch(app.conversation.id)
            assert user.content == "please fail"
            assert reply.status == ERROR and reply.content and reply.error
            assert any(sev == "error" for sev, _ in app.notices)
            view = app.view.message_views()[-1]
            assert view.status == ERROR and reply.error in view.problem_text().plain
            assert view.query_one(".problem").display and "failed" in view.header_text().plain
            assert "ctrl+r retries" in view.problem_text().plain  # the retry action, named

            # A failure before any text: the prompt comes back into the box.
            app.choice = server_choice(openai_server, "http:500-always")
            await send(app, pilot, "try again")
            assert app.prompt_input.text == "try again"
            assert app.is_running

    run(scenario)


def test_unavailable_backend_keeps_prompt(tmp_path: Path) -> None:
    async def scenario() -> None:
        choice = Choice("no-such-backend", BackendConfig(model="m"), {}, None, None)
        app, store = make_app(tmp_path, choice)
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "keep me [please]")
            assert app.prompt_input.text == "keep me [please]"
            assert any("no-such-backend" in text for _, text in app.notices)
            assert store.count_conversations() == 0

    run(scenario)


def test_usable_at_80x24_and_sidebar_toggle(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path, server_choice(openai_server))
        async with app.run_test(size=(80, 24)) as pilot:
            await send(app, pilot, "hello from a small terminal")
            await pilot.pause()
            screen = app.screen.region
            reply = app.view.message_views()[-1]
            assert reply.source == "hello from a small terminal"
            for widget in (reply, app.prompt_input, app.status_line):
                region = widget.region
                assert region.width > 0 and region.height > 0, widget
                assert screen.contains_region(region), (widget, region)
            assert app.view.region.contains_region(reply.region)
            # The status line redraws on its own 10 Hz timer: wait for the draw, not a pause.
            await wait_for(lambda: "complete" in screen_text(app), pilot)
            text = screen_text(app)
            assert "hello from a small terminal" in text
            assert "complete" in text and "openai" in text  # the status line, state first
            chat = app.query_one("#chat")
            assert chat.region.width < screen.width
            app.action_toggle_sidebar()
            await pilot.pause()
            assert not app.sidebar.display
            assert chat.region.width == screen.width
            assert app.view.region.contains_region(reply.region)

    run(scenario)


def test_stream_follows_only_while_at_the_bottom(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        # Long enough to still be streaming on a loaded machine when the view is scrolled back.
        app, store = make_app(tmp_path, server_choice(openai_server, "slow:1000:10"))
        filler = [(f"question {i}", "answer " + "words " * 40) for i in range(6)]
        conv_id = seed(store, "Long", filler)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.open_conversation(conv_id)
            app.prompt_input.text = "go on"
            await type_now(app, "enter")
            view = app.view
            await wait_for(lambda: app.last_streamer is not None
                           and app.last_streamer.deltas >= 20, pilot)
            assert view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y
            view.scroll_home(animate=False, immediate=True)
            await pilot.pause()
            assert view.scroll_y == 0
            streamer = app.last_streamer
            assert streamer is not None
            seen = streamer.deltas
            await wait_for(lambda: app.last_streamer is not None
                           and app.last_streamer.deltas >= seen + 30, pilot)
            await pilot.pause()
            assert app.streaming and view.scroll_y == 0  # not pulled back down
            view.scroll_end(animate=False, immediate=True)
            await pilot.pause()
            height = view.max_scroll_y
            await wait_for(lambda: view.max_scroll_y > height + 1, pilot)
            await pilot.pause()
            assert view.scroll_y >= view.max_scroll_y - 1  # following again
            await type_now(app, "escape")
            await settle(app, pilot)

    run(scenario)


def test_domain_errors_in_actions_become_notifications(
    tmp_path: Path, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server))
        conv_id = seed(store, "Seeded", [("q", "a")])
        async with app.run_test(size=SIZE) as pilot:
            def broken(*args: Any, **kwargs: Any) -> Any:
                raise StoreError("the history is locked")

            # Every connection's branch read (the view reads on a connection of its own,
            # in a thread).
            monkeypatch.setattr(HistoryStore, "branch", broken)
            await app.open_conversation(conv_id)
            await pilot.pause()
            monkeypatch.setattr(store, "rename_conversation", broken)
            app._rename(conv_id, "New title")
            assert app.export_to(conv_id, tmp_path / "no-such-dir" / "x.json") is None
            await pilot.pause()
            errors = [text for sev, text in app.notices if sev == "error"]
            assert errors.count("the history is locked") == 2
            assert any("No such file or directory" in text for text in errors)
            assert app.is_running

    run(scenario)


def test_unexpected_reply_error_hides_the_exception_text(
    tmp_path: Path, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path, server_choice(openai_server), debug=True)

        async def explode(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("token=sk-secret")

        monkeypatch.setattr(app.pool, "get", explode)
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "hi")
            errors = [text for sev, text in app.notices if sev == "error"]
            assert errors == ["unexpected error (RuntimeError); run with --debug for details"]
            debug = [text for sev, text in app.notices if sev == "debug"]
            assert len(debug) == 1 and "Traceback" in debug[0]
            assert app.status_line.state == "error"

    run(scenario)


def test_status_line_says_while_a_local_model_loads(tmp_path: Path) -> None:
    async def scenario() -> None:
        choice = Choice("local", BackendConfig(model="tiny/model"), {}, None, None)
        app, _ = make_app(tmp_path, choice)
        loading = asyncio.Event()

        async def slow_open(*args: Any, **kwargs: Any) -> Any:
            await loading.wait()  # a model that takes its time; Esc cancels the wait

        app.pool.get = slow_open  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            app.prompt_input.text = "hello"
            await type_now(app, "enter")
            await wait_for(lambda: "loading model tiny/model…" in screen_text(app), pilot)
            assert app.streaming
            await type_now(app, "escape")
            await settle(app, pilot)
            assert app.status_line.state == "stopped"
        remote = Choice("openai", BackendConfig(), {}, None, None)
        app, _ = make_app(tmp_path, remote)
        app.pool.get = slow_open  # type: ignore[method-assign]  # (the app opens it at start)
        async with app.run_test(size=SIZE):
            assert app._opening_state() == "opening openai…"

    run(scenario)


# --- conversations ---------------------------------------------------------------------------


def _store_of(app: ChattermApp) -> HistoryStore:
    return app.store


def seed(store: HistoryStore, title: str, pairs: list[tuple[str, str]]) -> str:
    conv = store.create_conversation(title)
    parent = None
    for prompt, answer in pairs:
        parent = store.add_message(conv.id, "user", prompt, parent_id=parent).id
        parent = store.add_message(conv.id, "assistant", answer, parent_id=parent,
                                   backend="openai", model="seeded").id
    return conv.id


def test_search_opens_conversation_at_hit(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        filler = [(f"question {i}", "answer " + "words " * 40) for i in range(12)]
        target = seed(store, "Pelicans", [*filler, ("where do pelicans nest", "on islands")])
        for i in range(5):
            seed(store, f"Other {i}", [(f"other {i}", "nothing")])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+f")
            await pilot.pause()
            assert isinstance(app.screen, SearchScreen)
            await pilot.press(*"pelic")
            # The query runs in a worker after a short debounce (never on a keystroke).
            await wait_for(lambda: bool(app.screen.hits), pilot)
            assert app.screen.hits and app.screen.hits[0].conversation_id == target
            await pilot.press("enter")
            await pilot.pause()
            await pilot.pause()
            assert app.conversation is not None and app.conversation.id == target
            focused = app.focused
            assert isinstance(focused, MessageView)
            assert focused.text == "where do pelicans nest"
            assert "where do pelicans nest" in screen_text(app)

    run(scenario)


def test_continue_last_and_session_id_resume_ask_conversations(
    tmp_path: Path, openai_server: Any
) -> None:
    async def ask_like() -> str:
        # What `chatterm ask` does: a ChatSession over the same store, no TUI.
        from chatterm.runtime import open_backend

        choice = server_choice(openai_server, "echo")
        backend, options = open_backend(choice)
        store = HistoryStore(tmp_path / "history.db")
        session = ChatSession(store, backend, backend_name="openai", model="echo",
                              options=options)
        async for _ in session.send("asked from the shell"):
            pass
        await backend.aclose()
        assert session.conversation is not None
        return session.conversation.id

    async def scenario() -> None:
        older = await ask_like()
        latest = await ask_like()
        app, store = make_app(tmp_path, server_choice(openai_server, "echo"), continue_last=True)
        async with app.run_test(size=SIZE) as pilot:
            assert app.conversation is not None and app.conversation.id == latest
            assert "asked from the shell" in screen_text(app)
            await send(app, pilot, "continued in the tui")
            assert [m.content for m in store.branch(latest)][-1] == "continued in the tui"
        app2, _ = make_app(tmp_path, server_choice(openai_server), session_id=older[:6])
        async with app2.run_test(size=SIZE):
            assert app2.conversation is not None and app2.conversation.id == older

    run(scenario)


def test_draft_survives_switching_conversations(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        first = seed(store, "First", [("a", "b")])
        second = seed(store, "Second", [("c", "d")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(first)
            app.prompt_input.text = "half-written [thought]"
            await app.open_conversation(second)
            assert app.prompt_input.text == ""
            await app.open_conversation(first)
            await pilot.pause()
            assert app.prompt_input.text == "half-written [thought]"

    run(scenario)


def test_up_recalls_earlier_prompts(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        conv = seed(store, "T", [("one", "1"), ("two\nlines", "2")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            app.prompt_input.focus()
            await pilot.press("up")
            assert app.prompt_input.text == "two\nlines"
            await pilot.press("up", "up")  # cursor on the first line: older prompt
            assert app.prompt_input.text == "one"
            await pilot.press("down")
            assert app.prompt_input.text == "two\nlines"
            await pilot.press("down")  # past the newest: back to the draft
            assert app.prompt_input.text == ""
            await pilot.press("up")
            await pilot.press("ctrl+j")
            assert app.prompt_input.text.count("\n") == 2

    run(scenario)


def test_the_prompt_acts_on_its_own_binding_keys_where_it_gets_them(tmp_path: Path) -> None:
    """Backspace (a TextArea binding) is acted on in the prompt's own queue, not after the key
    has bubbled back through every ancestor to the app: each hop could wait behind a frame
    while a reply streams. Keys the prompt does not bind still reach the app's bindings."""
    from chatterm.tui.screens.help import HelpScreen

    arrivals: list[str] = []

    def hook(message: Any) -> None:
        if isinstance(message, events.Key):
            arrivals.append(message.key)

    async def scenario() -> None:
        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        async with app.run_test(size=SIZE, message_hook=hook) as pilot:
            app.prompt_input.focus()
            app.prompt_input.set_text("abc")
            await pilot.pause()
            arrivals.clear()
            await pilot.press("backspace")
            assert app.prompt_input.text == "ab"
            # Once at the app (which forwards it to the focused widget), once at the prompt.
            assert arrivals.count("backspace") == 2
            await pilot.press("left", "ctrl+j")
            assert app.prompt_input.text == "a\nb"
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)

    run(scenario)


def test_a_prompt_binding_that_skips_leaves_the_key_to_the_next(tmp_path: Path) -> None:
    """Ctrl+C in the prompt with nothing selected: the prompt's copy skips, so the key goes
    on to the app's binding (Textual's "press ctrl+q to quit" hint), as Textual does it."""

    async def scenario() -> None:
        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        hints: list[str] = []
        async with app.run_test(size=SIZE) as pilot:
            app.action_help_quit = lambda: hints.append("quit?")  # type: ignore[method-assign]
            app.prompt_input.focus()
            app.prompt_input.set_text("abc")
            await pilot.pause()
            await pilot.press("ctrl+c")
            await pilot.pause()
            assert hints == ["quit?"]
            assert app.prompt_input.text == "abc"

    run(scenario)


def test_rename_export_copy_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        code = "Here:\n\n```python\nprint('hi')\n```\n"
        conv = seed(store, "Old [title]", [("show code", code)])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            await pilot.press("f2")
            await pilot.pause()
            app.screen.query_one("#line").value = "New [name]"
            await pilot.press("enter")
            await pilot.pause()
            assert store.get_conversation(conv).title == "New [name]"
            assert "New [name]" in screen_text(app)

            await pilot.press("alt+c")
            assert app.clipboard == code
            await pilot.press("alt+k")
            assert app.clipboard == "print('hi')\n"

            await pilot.press("ctrl+s")
            await pilot.pause()
            path = Path(app.screen.query_one("#line").value)
            assert path.parent == tmp_path and path.suffix == ".md"
            await pilot.press("enter")
            await pilot.pause()
            assert "print('hi')" in path.read_text()
            json_path = tmp_path / "out.json"
            assert app.export_to(conv, json_path) == json_path
            assert json.loads(json_path.read_text())["title"] == "New [name]"

            await pilot.press("f8")
            await pilot.pause()
            await pilot.click("#ok")
            await pilot.pause()
            assert store.get_conversation(conv) is None and app.conversation is None

    run(scenario)


def test_sidebar_pages_lazily(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        for i in range(PAGE_SIZE * 2 + 30):
            store.create_conversation(f"conversation {i}")
        async with app.run_test(size=SIZE) as pilot:
            sidebar = app.sidebar
            assert sidebar.loaded == PAGE_SIZE and sidebar.total == PAGE_SIZE * 2 + 30
            sidebar.option_list.focus()
            await pilot.press("end")
            await pilot.pause()
            await pilot.press("end")
            await pilot.pause()
            assert sidebar.loaded == PAGE_SIZE * 2 + 30
            assert sidebar.option_list.option_count == PAGE_SIZE * 2 + 30
            await pilot.press("ctrl+b")
            assert not sidebar.display

    run(scenario)


def long_titled_history(tmp_path: Path) -> tuple[ChattermApp, HistoryStore]:
    """An app over three conversations whose titles are longer than the sidebar."""
    app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
    for i in range(3):
        store.create_conversation(f"a conversation with a rather long title {i}")
    return app, store


def test_sidebar_list_follows_a_resize_and_a_longer_list(tmp_path: Path) -> None:
    """A narrower sidebar draws its titles cut at its new width, and a list that grows past the
    sidebar's height gets its scroll bar and scrolls to its last conversation."""

    def sidebar_rows(app: ChattermApp) -> list[str]:
        region = app.sidebar.option_list.region
        lines = screen_text(app).splitlines()
        return [line[region.x : region.right].rstrip() for line in lines[region.y : region.bottom]]

    async def scenario() -> None:
        app, store = long_titled_history(tmp_path)
        async with app.run_test(size=(120, 30)) as pilot:
            options = app.sidebar.option_list
            await pilot.pause()
            wide_width, rows = options.virtual_size
            assert rows == 6 and not options.show_vertical_scrollbar
            wide = sidebar_rows(app)
            await pilot.resize_terminal(90, 30)
            await pilot.pause()
            assert options.virtual_size == (options.scrollable_content_region.width, 6)
            assert options.virtual_size.width < wide_width
            narrow = sidebar_rows(app)
            assert narrow[0].startswith("a conversation with a ") and narrow[0].endswith("…")
            assert len(narrow[0]) <= options.region.width < len(wide[0]) + 1
            assert narrow[0] != wide[0] and wide[0].endswith("…")

            for i in range(40):
                store.create_conversation(f"later {i}")
            app.sidebar.reload()
            await pilot.pause()
            assert options.virtual_size.height == 86
            assert options.show_vertical_scrollbar
            assert options.vertical_scrollbar.region.height == options.region.height
            options.focus()
            await pilot.press("end")
            await pilot.pause()
            last = sidebar_rows(app)  # the oldest conversation, on the last two rows
            assert last[-2].startswith("a conversation with a ") and "0 msg" in last[-1]
            assert options.highlighted == 42 and options.scroll_y == options.max_scroll_y > 0

    run(scenario)


def test_a_scroll_bar_that_comes_while_the_sidebar_draws_keeps_its_column(
    tmp_path: Path,
) -> None:
    """A list that grew past the sidebar while it was hidden is drawn, once shown, with its
    rows cut before the scroll bar's column, not under it (the sidebar keeps its region only
    while the scroll bars it was worked out for stay)."""

    async def scenario() -> None:
        app, store = long_titled_history(tmp_path)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            options = app.sidebar.option_list
            app.sidebar.display = False
            await pilot.pause()
            for i in range(40):
                store.create_conversation(f"later conversation with a long title {i}")
            app.sidebar.reload()
            app.sidebar.display = True
            await pilot.pause()
            assert options.show_vertical_scrollbar
            region, width = options.region, options.scrollable_content_region.width
            assert width < region.width
            lines = screen_text(app).splitlines()
            first = lines[region.y][region.x : region.x + width].rstrip()
            assert first.startswith("later conversation with a") and first.endswith("…")

    run(scenario)


# --- themes, keys, settings ------------------------------------------------------------------


def test_reply_colours_are_worked_out_once_per_theme(tmp_path: Path) -> None:
    """Each reply on screen asks for the theme's colours at every new width: Textual builds
    the theme's whole colour system per ``get_css_variables`` call, so they are kept per
    app and theme, and a theme switch gives the new theme's colours."""
    from chatterm.tui.widgets.markdown_render import MarkdownColors

    async def scenario() -> None:
        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            calls = []
            real = app.get_css_variables
            app.get_css_variables = lambda: calls.append(1) or real()  # type: ignore[method-assign]
            app.theme = "chatterm-dusk"
            await pilot.pause()
            before = len(calls)
            dusk = MarkdownColors.from_app(app)
            assert [MarkdownColors.from_app(app) for _ in range(5)] == [dusk] * 5
            assert len(calls) <= before + 1  # once for the theme, not once per reply
            app.theme = "chatterm-paper"
            await pilot.pause()
            paper = MarkdownColors.from_app(app)
            assert paper != dusk and paper.dark is False and dusk.dark is True

    run(scenario)


def test_theme_switch_is_remembered(tmp_path: Path) -> None:
    (tmp_path / "themes").mkdir()
    (tmp_path / "themes" / "mine.toml").write_text(
        'name = "my-theme"\ndark = false\nprimary = "#336699"\nbackground = "#fafafa"\n'
    )
    (tmp_path / "themes" / "broken.toml").write_text('name = "x"\nprimary = 3\n')

    async def scenario() -> None:
        choice = Choice("openai", BackendConfig(), {}, None, None)
        config = Config(path=tmp_path / "c.toml", tui={"theme": "chatterm-paper"})
        app, _ = make_app(tmp_path, choice, config)
        async with app.run_test(size=SIZE) as pilot:
            assert app.theme == "chatterm-paper"  # the config default
            assert "my-theme" in app.available_themes and "chatterm-dusk" in app.available_themes
            assert any("broken.toml" in text for _, text in app.notices)
            conv = seed(_store_of(app), "Md", [("q", "# Heading\n\nsome `code`")])
            await app.open_conversation(conv)
            await pilot.pause()
            segment = app.view.message_views()[-1].segments[0]
            assert isinstance(segment, FrozenMarkdown)
            assert segment._key is not None and segment._key[1] == "chatterm-paper"
            app.theme = "my-theme"
            await pilot.pause()
            await pilot.pause()
            assert segment._key is not None and segment._key[1] == "my-theme"  # drawn again
        saved = tmp_path / "state.json"
        assert state.load_state(saved)["theme"] == "my-theme"
        assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
        app2, _ = make_app(tmp_path, choice, config)
        async with app2.run_test(size=SIZE):
            assert app2.theme == "my-theme"  # the remembered choice beats the config

    run(scenario)


def test_keymap_from_config_and_help_screen(tmp_path: Path) -> None:
    from chatterm.tui.screens.help import HelpScreen

    async def scenario() -> None:
        config = Config(path=tmp_path / "c.toml", keys={"new_conversation": "f5", "bogus": "f6"})
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None), config)
        conv = seed(store, "T", [("a", "b")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            await pilot.press("f5")
            await pilot.pause()
            assert app.conversation is None
            assert any("bogus" in text for _, text in app.notices)
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            assert "new_conversation" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)

    run(scenario)


def test_settings_dialog_saves_system_prompt_and_options(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "echo@tui_settings"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "hello")
            await pilot.press("f4")
            await pilot.pause()
            app.screen.query_one("#system").text = "Be terse."
            app.screen.query_one("#temperature").value = "9"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "must be <=" in str(app.screen.query_one(".dialog-error").render())
            app.screen.query_one("#temperature").value = "0.5"
            app.screen.query_one("#max_tokens").value = "2"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.conversation is not None
            conv = store.get_conversation(app.conversation.id)
            assert conv.system_prompt == "Be terse."
            assert conv.options == {"temperature": 0.5, "max_tokens": 2}
            await send(app, pilot, "a long prompt that will be cut")
            request = openai_server.requests_for("echo@tui_settings")[-1].body
            assert request["messages"][0] == {"role": "system", "content": "Be terse."}
            assert request["temperature"] == 0.5 and request["max_tokens"] == 2

    run(scenario)


def test_segments_cut_only_at_safe_boundaries() -> None:
    from openai_server import markdown_document

    from chatterm.markdown_blocks import BREAK, SegmentSplitter, split_segments

    document = markdown_document(6000) + "\n```\nunclosed\n\n# not a heading\n"
    segments = split_segments(document, 300)
    assert "".join(segments) == document and len(segments) > 5
    for segment in segments[1:]:
        assert segment[0] not in " -*+>|0123456789"  # a heading, paragraph or fence
    for segment in segments:
        assert segment.count("```") % 2 == 0 or segment is segments[-1]
    # Fed in arbitrary deltas, the cuts are the same.
    splitter, pieces = SegmentSplitter(300), [""]
    for i in range(0, len(document), 7):
        for piece in splitter.feed(document[i : i + 7]):
            if piece is BREAK:
                pieces.append("")
            else:
                pieces[-1] += piece
    assert pieces == segments


def test_gc_policy_checkpoint_freezes_survivors() -> None:
    import gc

    from chatterm.gc_policy import CollectorPolicy

    policy = CollectorPolicy()
    try:
        policy.checkpoint()
        assert gc.get_freeze_count() > 0
        assert policy.full() >= 0 and policy.longest_checkpoint_s >= 0
    finally:
        gc.unfreeze()


def test_the_full_collection_after_a_switch_waits_for_the_user_to_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a conversation asks for a full collection (it walks the whole process, 50-100
    ms): it runs only once no key, click or resize came for FULL_PASS_QUIET_S, once however
    many switches asked for it. (Asserted on the times of the input, not of the clock: a
    stall of the machine may let the pass run between two keys, never closer to one.)"""

    class Recording:
        def __init__(self) -> None:
            self.full_at: list[float] = []

        def full(self) -> float:
            self.full_at.append(time.monotonic())
            return 0.0

    quiet = 0.4
    monkeypatch.setattr(ChattermApp, "FULL_PASS_QUIET_S", quiet)

    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        first = seed(store, "first", [("q1", "a1")])
        second = seed(store, "second", [("q2", "a2")])
        async with app.run_test(size=SIZE) as pilot:
            policy = Recording()
            app.gc_policy = policy  # type: ignore[assignment]
            activity = [time.monotonic()]
            await app.open_conversation(first)
            await app.open_conversation(second)
            busy_until = time.monotonic() + 0.8
            while time.monotonic() < busy_until:  # typing, then a resize, for about 0.8 s
                activity.append(time.monotonic())
                await type_now(app, "x")
                await pilot.pause(0.05)
            activity.append(time.monotonic())
            await pilot.resize_terminal(SIZE[0] - 10, SIZE[1])
            await wait_for(lambda: bool(policy.full_at), pilot)
            await pilot.pause(quiet + 0.2)
            assert len(policy.full_at) == 1
            ran = policy.full_at[0]
            assert ran - max(t for t in activity if t < ran) >= quiet

    run(scenario)


def test_domain_never_imports_textual() -> None:
    code = (
        "import sys, chatterm.chat, chatterm.store, chatterm.config, chatterm.state, "
        "chatterm.backend_pool; print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_tui_draws_up_to_120_frames_a_second_unless_the_user_says_otherwise() -> None:
    """The CLI's way into the TUI imports chatterm.tui before Textual, which reads
    TEXTUAL_FPS when first imported; a user's own TEXTUAL_FPS wins."""
    code = (
        "import sys, chatterm.cli, chatterm.cli.tui_entry; assert 'textual' not in sys.modules; "
        "import chatterm.tui.app, textual.constants as c; print(c.MAX_FPS)"
    )
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_FPS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == "120"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**env, "TEXTUAL_FPS": "30"})
    assert out.stdout.strip() == "30"


# --- issue 10: no crash, no surprise ---------------------------------------------------------


def test_double_enter_closes_every_dialog_once(tmp_path: Path, openai_server: Any) -> None:
    from chatterm.tui.screens.dialogs import ConfirmDialog, LineDialog, SettingsDialog
    from chatterm.tui.screens.model_dialog import ModelDialog

    async def scenario() -> None:
        config = Config(path=tmp_path / "c.toml")
        app, store = make_app(tmp_path, server_choice(openai_server, "echo"), config)
        conv = seed(store, "Two enters", [("q", "a")])
        # Exports go to tmp_path: it is the folder "used last".
        state.save_state({"export_dir": str(tmp_path)}, tmp_path / "state.json")
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            for key, dialog in (("ctrl+o", ModelDialog), ("f2", LineDialog),
                                ("ctrl+s", LineDialog), ("f4", SettingsDialog),
                                ("ctrl+s", ConfirmDialog)):
                await pilot.press(key)
                await pilot.pause()
                if dialog is ConfirmDialog:  # the second export: same file, asks to replace
                    assert isinstance(app.screen, LineDialog)
                    await type_now(app, "enter")
                    await wait_for(lambda: isinstance(app.screen, ConfirmDialog), pilot)
                assert isinstance(app.screen, dialog), key
                if dialog is ModelDialog:
                    await pilot.press(*"chunks:3")
                if dialog is SettingsDialog:  # Enter in the system prompt is a newline
                    app.screen.query_one("#temperature").focus()
                await type_now(app, "enter", "enter", "enter")
                await pilot.pause()
                await pilot.pause()
                assert app.is_running and not isinstance(app.screen, ModalScreen), key
                assert len(app.screen_stack) == 1
            assert app.choice.backend_config.model == "chunks:3"
            exported = list(tmp_path.glob("chatterm-two-enters-*.md"))
            assert len(exported) == 1
            # Delete: the focus is on "Delete", so Enter deletes, once.
            await pilot.press("f8")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDialog)
            assert app.screen.focused is not None and app.screen.focused.id == "ok"
            await type_now(app, "enter", "enter")
            await pilot.pause()
            await pilot.pause()
            assert app.is_running and len(app.screen_stack) == 1
            assert store.get_conversation(conv) is None

    run(scenario)


def test_alt_keys_work_with_the_prompt_focused(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        code = "Here:\n\n```sh\nls -la\n```\n"
        conv = seed(store, "Alt", [("list files", code)])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            app.prompt_input.focus()
            await pilot.press("alt+c")
            assert app.clipboard == code
            await pilot.press("alt+k")
            assert app.clipboard == "ls -la\n"
            assert app.prompt_input.text == ""  # nothing typed into the prompt
            assert isinstance(app.focused, PromptInput)
            await pilot.press("alt+e")
            await pilot.pause()
            assert isinstance(app.screen, ModalScreen)
            assert app.screen.query_one("#text").text == "list files"
            await pilot.press("escape")  # a dialog's Esc is the dialog's
            await pilot.pause()
            assert not isinstance(app.screen, ModalScreen) and app.prompt_input.text == ""

    run(scenario)


def test_escape_stops_a_20000_chunk_stream(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "chunks:20000"))
        async with app.run_test(size=SIZE) as pilot:
            app.prompt_input.text = "flood me"
            await type_now(app, "enter")
            await wait_for(lambda: app.last_streamer is not None
                           and app.last_streamer.deltas >= 300, pilot)
            await type_now(app, "escape")
            await settle(app, pilot)
            assert app.conversation is not None
            reply = replies(store, app.conversation.id)[-1]
            assert reply.status == INTERRUPTED
            assert 300 <= len(reply.content.split()) < 20000
            assert app.status_line.state == INTERRUPTED

    run(scenario)


def test_quit_right_after_enter_leaves_a_reply_row(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "slow:50:20"))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.pool.cached(app.choice) is not None, pilot)
            app.prompt_input.text = "and then I quit"
            await type_now(app, "enter")
            await wait_for(lambda: app.streaming, pilot)
            await app.action_quit()  # before the reply's worker had a chance to stream
        conv = store.latest_conversation()
        assert conv is not None
        assert [(m.role, m.content, m.status) for m in store.branch(conv.id)] == [
            ("user", "and then I quit", COMPLETE), ("assistant", "", INTERRUPTED),
        ]

    run(scenario)


def test_remapped_keys_in_help_footer_palette_and_docs(tmp_path: Path) -> None:
    from chatterm.tui import keys
    from chatterm.tui.screens.help import HelpScreen

    async def scenario() -> None:
        config = Config(path=tmp_path / "c.toml", keys={"stop": "ctrl+x"})
        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None), config)
        async with app.run_test(size=SIZE) as pilot:
            footer = screen_text(app).splitlines()[-1]
            assert "^x stop" in footer and "esc stop" not in footer
            commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
            assert commands["Stop the reply (keeps the partial text)"] == "key: ctrl+x"
            assert "Keys" not in commands  # one help entry, not two
            assert not any("id " in (help_text or "") for help_text in commands.values())
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            text = screen_text(app)
            assert "ctrl+x stops a reply" in text and "esc stops" not in text
            assert "alt+enter" in text  # the long key cell wraps instead of being cut
            await pilot.press("escape")

    run(scenario)
    docs = (Path(__file__).parent.parent / "docs" / "tui.md").read_text(encoding="utf-8")
    assert keys.markdown_tables() in docs, "docs/tui.md: paste keys.markdown_tables() output"


async def search_for(app: ChattermApp, pilot: Any, words: str) -> SearchScreen:
    """Open the search (Ctrl+F), type ``words``, and wait for the answer to the last
    keystroke (an earlier keystroke's answer may come first) with hits in it."""
    await pilot.press("ctrl+f")
    await pilot.press(*words)
    screen = app.screen
    assert isinstance(screen, SearchScreen)
    await wait_for(lambda: screen.query_text == words and bool(screen.hits), pilot)
    return screen


def test_a_hit_picked_before_the_last_answer_stays_picked(tmp_path: Path) -> None:
    """↓ pressed before the answer to the last keystroke came: when it comes, a hit is still
    picked (Textual's option list forgets the highlight when its options are replaced)."""

    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        seed(store, "Birds", [("where do pelicans nest", "on islands, pelicans do")])
        seed(store, "More", [("pelicans again", "yes")])
        async with app.run_test(size=SIZE) as pilot:
            screen = await search_for(app, pilot, "pelican")
            hits = list(screen.hits)
            await pilot.press("down")
            results = screen.query_one("#results")
            assert results.has_focus and results.highlighted == 0
            screen._show(hits, "pelicans")  # the next answer arrives
            assert results.highlighted == 0
            screen._show([], "pelicanz")  # no hits: nothing to pick
            assert results.highlighted is None
            screen._show(hits, "pelican")
            screen.query_one("#query").focus()  # back in the query box: nothing kept
            await pilot.pause()
            results.highlighted = 0
            screen._show(hits, "pelican")
            assert results.highlighted is None

    run(scenario)


def test_search_highlights_and_opens_with_one_key(tmp_path: Path) -> None:
    from chatterm.tui.screens.search import match_pattern

    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        target = seed(store, "Birds", [("where do pelicans nest", "on islands")])
        seed(store, "Other", [("nothing here", "no")])
        async with app.run_test(size=SIZE) as pilot:
            screen = await search_for(app, pilot, "pelic")
            summary = str(screen.query_one(".search-summary").render())
            assert summary.startswith("1 match ·") and "matches" not in summary
            prompt = screen.query_one("#results").get_option_at_index(0).prompt
            highlighted = [prompt.plain[s.start:s.end] for s in prompt.spans
                           if "reverse" in str(s.style)]
            assert highlighted == ["pelicans"]
            await pilot.press("down")  # one key: the first hit is picked...
            assert screen.query_one("#results").highlighted == 0
            await pilot.press("enter")  # ...and Enter opens it
            await pilot.pause()
            await pilot.pause()
            assert app.conversation is not None and app.conversation.id == target

    run(scenario)

    async def typing_fast() -> None:
        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+f")
            screen = app.screen
            assert isinstance(screen, SearchScreen)
            await type_now(app, *"pelicans")  # eight keys before any query could run
            await wait_for(lambda: bool(screen.hits), pilot)
            await pilot.pause(0.3)
            assert screen.searches == 1 and screen.query_text == "pelicans"

    run(typing_fast)
    pattern = match_pattern('pel "x')
    assert pattern is not None and pattern.findall("Pelican pelts, x") == ["Pelican", "pelts", "x"]


def test_export_offers_documents_then_last_folder_and_asks_before_replacing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatterm.tui.screens.dialogs import ConfirmDialog

    documents = tmp_path / "Documents"
    documents.mkdir()
    monkeypatch.setenv("XDG_DOCUMENTS_DIR", str(documents))

    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        conv = seed(store, "Export me", [("q", "first answer")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            await pilot.press("ctrl+s")
            await pilot.pause()
            first = Path(app.screen.query_one("#line").value)
            assert first.parent == documents
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            target = elsewhere / "out.md"
            app.screen.query_one("#line").value = str(target)
            await pilot.press("enter")
            await pilot.pause()
            assert "first answer" in target.read_text()
            target.write_text("precious")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert Path(app.screen.query_one("#line").value).parent == elsewhere  # last used
            app.screen.query_one("#line").value = str(target)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("escape")  # keep the file
            await pilot.pause()
            assert target.read_text() == "precious"

    run(scenario)


def test_delete_lands_on_the_neighbouring_conversation(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        oldest = seed(store, "Oldest", [("a", "b")])
        middle = seed(store, "Middle", [("c", "d")])
        seed(store, "Newest", [("e", "f")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(middle)
            await pilot.press("f8")
            await pilot.pause()
            await pilot.press("enter")  # the focused button deletes
            await pilot.pause()
            await pilot.pause()
            assert store.get_conversation(middle) is None
            assert app.conversation is not None and app.conversation.id == oldest
            assert app.sidebar.current_id == oldest

    run(scenario)


def test_model_dialog_offers_profiles_recent_server_and_cached_models(
    tmp_path: Path, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatterm.tui.screens.model_dialog import ModelDialog

    cache = tmp_path / "hf"
    (cache / "models--org--tiny" / "snapshots" / "r").mkdir(parents=True)
    (cache / "models--org--tiny" / "snapshots" / "r" / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    async def scenario() -> None:
        profile = Profile(name="work", backend="openai", base_url=openai_server.base_url,
                          model="gpt-x")
        config = Config(path=tmp_path / "c.toml", profiles={"work": profile})
        app, store = make_app(tmp_path, server_choice(openai_server, "echo"), config)
        seed(store, "Earlier", [("q", "a")])  # a reply by openai · seeded
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+o")
            dialog = app.screen
            assert isinstance(dialog, ModelDialog)
            await wait_for(lambda: bool(dialog.server_models), pilot)
            await pilot.pause()
            options = dialog.query_one("#choices")
            ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
            assert ids[:3] == ["profile:work", "openai:seeded", "local:org/tiny"]
            assert set(openai_server.models) <= set(ids)
            await pilot.press(*"tin")  # typing filters
            await pilot.pause()
            assert options.option_count == 1
            await pilot.press("down", "enter")
            await pilot.pause()
            assert app.choice.backend == "local"
            assert app.choice.backend_config.model == "org/tiny"

    run(scenario)


def test_status_and_header_name_the_model_that_answers(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path, server_choice(openai_server, "served-as:real-model-7b"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "who answers?")
            await pilot.pause(0.2)
            header = app.view.message_views()[-1].header_text().plain
            assert header.startswith("real-model-7b")
            assert "openai · real-model-7b" in screen_text(app)  # the status line
        local = Choice("local", BackendConfig(), {}, None, None)
        app, _ = make_app(tmp_path, local)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.pool.cached(app.choice) is not None, pilot)
            await pilot.pause(0.2)
            assert "default model" not in screen_text(app)
            assert "local · Qwen/" in screen_text(app)  # the default model, by name

    run(scenario)


def test_sidebar_shows_date_model_filters_and_scales(tmp_path: Path) -> None:
    from chatterm.tui.widgets.sidebar import when_text

    store = HistoryStore(tmp_path / "history.db")
    now = time.time()
    rows = [(f"{i:012x}", f"hi {i}" if i % 100 else f"needle {i}", now - i, now - i)
            for i in range(10_000)]
    store._db.executemany(
        "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)", rows
    )
    seeded = store.get_conversation(seed(store, "hi", [("hello", "there")]))
    assert seeded is not None
    # The time the sidebar shows is the seeded conversation's own (taken before the seeding,
    # ``now`` was a minute earlier whenever the seeding crossed a minute).
    now = seeded.updated_at
    store.close()

    async def scenario() -> None:
        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        async with app.run_test(size=SIZE) as pilot:
            sidebar = app.sidebar
            assert sidebar.total == 10_001 and sidebar.loaded == PAGE_SIZE
            first = sidebar.option_list.get_option_at_index(0).prompt.plain
            assert first.startswith("hi\n") and "2 msg · seeded" in first
            assert when_text(now, now) in first
            sidebar.filter_input.focus()
            await pilot.press(*"needle")
            await wait_for(lambda: sidebar.filter_text == "needle", pilot)
            assert sidebar.total == 100 and sidebar.option_list.option_count == 100
            assert "Matching" in screen_text(app)
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("enter")
            # Opening reads the conversation in a thread: wait for it, do not race it.
            await wait_for(lambda: app.conversation is not None, pilot)
            assert app.conversation is not None and app.conversation.title == "needle 0"

    run(scenario)
    assert when_text(0, 86400 * 365 * 60).count("-") == 2


def test_reasoning_is_live_then_collapsed(tmp_path: Path, openai_server: Any) -> None:
    from textual.widgets import Collapsible

    async def scenario() -> None:
        app, _ = make_app(tmp_path, server_choice(openai_server, "hostile-reasoning"))
        async with app.run_test(size=SIZE) as pilot:
            app.prompt_input.text = "think"
            await type_now(app, "enter")

            def reasoning_shown() -> bool:
                views = app.view.message_views()
                return bool(views) and views[-1].role == "assistant" and bool(
                    views[-1].reasoning) and not views[-1].text
            await wait_for(reasoning_shown, pilot)
            view = app.view.message_views()[-1]
            section = view.query_one(Collapsible)
            assert section.display and not section.collapsed  # open while it streams
            await settle(app, pilot)
            view = app.view.message_views()[-1]
            assert view.query_one(Collapsible).collapsed  # then out of the way

    run(scenario)


def test_headings_are_distinct_at_every_level_in_every_theme(tmp_path: Path) -> None:
    from rich.console import Console

    from chatterm.tui.themes import load_themes
    from chatterm.tui.widgets.markdown_render import MarkdownColors

    async def scenario() -> None:
        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        async with app.run_test(size=SIZE) as pilot:
            names = [t.name for t in load_themes(tmp_path / "none").themes]
            assert len(names) >= 3
            for name in names:
                app.theme = name
                await pilot.pause()
                theme = MarkdownColors.from_app(app).rich_theme()
                console = Console(theme=theme)
                styles = [console.get_style(f"markdown.h{level}") for level in range(1, 7)]
                body = console.get_style("none")
                assert len(set(styles)) == 6, name
                assert body not in styles, name

    run(scenario)


def test_up_history_spans_conversations(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        seed(store, "A", [("asked in A", "1")])
        other = seed(store, "B", [("asked in B", "2")])
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(None)
            app.prompt_input.focus()
            await pilot.press("up")
            assert app.prompt_input.text == "asked in B"
            await pilot.press("up")
            assert app.prompt_input.text == "asked in A"
            await app.open_conversation(other)
            app.prompt_input.focus()
            await pilot.press("up", "up")
            assert app.prompt_input.text == "asked in A"

    run(scenario)


def test_resending_a_failed_prompt_does_not_duplicate_it(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, "http:500-always"))
        async with app.run_test(size=SIZE) as pilot:
            await send(app, pilot, "once only")
            assert app.prompt_input.text == "once only"  # back in the box
            await pilot.press("enter")
            await settle(app, pilot)
            assert app.conversation is not None
            users = [m for m in store.all_messages(app.conversation.id) if m.role == "user"]
            assert [u.content for u in users] == ["once only"]
            assert [v.role for v in app.view.message_views()] == ["user", "assistant"]

    run(scenario)


def test_long_conversation_mounts_lazily_and_reveals_old_hits(tmp_path: Path) -> None:
    from chatterm.tui.widgets.conversation_view import MIN_WINDOW, SCREENS, WINDOW

    async def scenario() -> None:
        app, store = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        pairs = [(f"question {i}", f"answer {i} " + "words " * 30) for i in range(150)]
        conv = seed(store, "Long", pairs)
        first_prompt = store.branch(conv)[0]
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv)
            await pilot.pause()
            views = app.view.message_views()
            # Enough messages for SCREENS screens are mounted, not all 300 (nor the cap of 40).
            window = len(views)
            assert MIN_WINDOW <= window < WINDOW and views[-1].text.startswith("answer 149")
            assert sum(v.size.height + 1 for v in views) >= SCREENS * app.view.size.height
            assert len(app.view.hidden) == 300 - window
            note = app.view.query_one(".older").render()
            assert f"{300 - window} earlier messages" in str(note)
            app.view.scroll_home(animate=False, immediate=True)  # scrolling up loads more
            await wait_for(lambda: len(app.view.message_views()) > window, pilot)
            assert len(app.view.message_views()) <= window + WINDOW  # a window more, not all
            assert len(app.view.hidden) == 300 - len(app.view.message_views())
            # A search hit on the very first message: mounted, scrolled to, focused.
            await app.open_at(conv, first_prompt.id)
            await wait_for(lambda: isinstance(app.focused, MessageView)
                           and app.focused.message_id == first_prompt.id, pilot)
            assert not app.view.hidden and len(app.view.message_views()) == 300
            assert [v.text for v in app.view.message_views()][:2] == ["question 0",
                                                                       pairs[0][1]]

    run(scenario)
