"""The conversation controller without any UI: a real HistoryStore on disk, the loopback
OpenAI-compatible server (tests/openai_server.py), events collected in a list.

Each test is a plain function running one scenario with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chatterm.backend import Finish, Metadata, Notice, ReasoningDelta, TextDelta, Usage
from chatterm.config import Choice, Config, Profile, resolve
from chatterm.controller import (
    ControllerError,
    ConversationController,
    describe_choice,
    pass_loop,
)
from chatterm.controller_events import (
    ModelResolved,
    ReplyEnded,
    ReplyStarted,
    SendFailed,
    TextArrived,
    Told,
)
from chatterm.events import NullHandler, dispatch
from chatterm.local_models import cached_models, hf_cache_dir
from chatterm.store import COMPLETE, ERROR, INTERRUPTED, STREAMING, HistoryStore


def server_choice(server: Any, model: str = "echo") -> Choice:
    return resolve(Config(path=Path("none.toml")), backend="openai", base_url=server.base_url,
                   model=model, env={})


def make(tmp_path: Path, choice: Choice, config: Config | None = None
         ) -> tuple[ConversationController, HistoryStore, list[Any]]:
    store = HistoryStore(tmp_path / "history.db")
    seen: list[Any] = []
    controller = ConversationController(
        store, config or Config(path=tmp_path / "c.toml"), choice, listener=seen.append
    )
    return controller, store, seen


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def roles(store: HistoryStore, conv_id: str) -> list[tuple[str, str, str]]:
    return [(m.role, m.content, m.status) for m in store.branch(conv_id)]


def test_a_send_streams_stores_and_reports_in_order(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        controller, store, seen = make(tmp_path, server_choice(openai_server, "echo@ctl"))
        await controller.prewarm()
        reply = controller.start("send", "hello controller")
        assert reply.stored and controller.streaming
        # The prompt and an (empty, streaming) reply row exist before the first chunk.
        assert controller.conversation is not None
        conv_id = controller.conversation.id
        assert roles(store, conv_id) == [
            ("user", "hello controller", COMPLETE), ("assistant", "", STREAMING),
        ]
        await controller.run(reply)
        assert not controller.streaming
        assert roles(store, conv_id) == [
            ("user", "hello controller", COMPLETE), ("assistant", "hello controller", COMPLETE),
        ]
        kinds = [type(e) for e in seen]
        assert kinds[0] is ReplyStarted and kinds[-1] is ReplyEnded
        text = "".join(e.text for e in seen if isinstance(e, TextArrived))
        assert text == "hello controller" == reply.text
        # The one copy of the streaming text: the session's outcome pieces.
        assert reply.outcome is not None and "".join(reply.outcome.pieces) == reply.text
        ended = seen[-1]
        assert ended.message is not None and ended.message.status == COMPLETE
        await controller.pool.aclose()

    run(scenario)


def test_quit_right_after_enter_leaves_an_interrupted_reply(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        controller, store, _ = make(tmp_path, server_choice(openai_server, "slow:50:20"))
        await controller.prewarm()
        reply = controller.start("send", "first")
        controller.abandon(reply)  # the app quit before its worker ever ran
        assert controller.conversation is not None
        conv_id = controller.conversation.id
        assert roles(store, conv_id) == [
            ("user", "first", COMPLETE), ("assistant", "", INTERRUPTED),
        ]
        # The next prompt follows that reply: never two user turns in a row.
        second = controller.start("send", "second")
        await controller.run(second)
        branch = [m.role for m in store.branch(conv_id)]
        assert branch == ["user", "assistant", "user", "assistant"]
        await controller.pool.aclose()

    run(scenario)


def test_quit_while_the_backend_opens_keeps_the_prompt(tmp_path: Path) -> None:
    async def scenario() -> None:
        choice = resolve(Config(path=Path("none.toml")), backend="openai",
                         base_url="http://127.0.0.1:9", model="m", env={})
        controller, store, _ = make(tmp_path, choice)
        reply = controller.start("send", "do not lose me")
        assert not reply.stored  # the backend was not open yet
        controller.abandon(reply)
        assert controller.conversation is not None
        assert roles(store, controller.conversation.id) == [
            ("user", "do not lose me", COMPLETE), ("assistant", "", INTERRUPTED),
        ]

    run(scenario)


def test_stop_takes_effect_at_the_next_chunk_of_a_fast_stream(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        store = HistoryStore(tmp_path / "history.db")
        seen: list[Any] = []
        stopped_after: list[int] = []

        def listener(event: Any) -> None:
            seen.append(event)
            if isinstance(event, TextArrived) and event.reply.deltas == 200:
                controller.stop()
                stopped_after.append(event.reply.deltas)

        controller = ConversationController(
            store, Config(path=tmp_path / "c.toml"), server_choice(openai_server, "chunks:20000"),
            listener=listener,
        )
        await controller.prewarm()
        reply = controller.start("send", "go")
        await controller.run(reply)
        assert stopped_after == [200] and reply.deltas == 200  # not one chunk more
        assert controller.conversation is not None
        stored = store.branch(controller.conversation.id)[-1]
        assert stored.status == INTERRUPTED and stored.content == reply.text
        assert len(stored.content.split()) == 200
        await controller.pool.aclose()

    run(scenario)


def test_posted_input_gets_the_loop_at_once_during_a_fast_stream(
    tmp_path: Path, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the front end says input is waiting, the stream hands the loop over at its next
    chunk, long enough for the input to pass a few message queues, not at its next slice or
    network wait (without the hand-back this key is handled over a hundred chunks later)."""
    import chatterm.controller

    monkeypatch.setattr(chatterm.controller, "YIELD_EVERY_S", 3600.0)  # only input yields

    async def scenario() -> None:
        store = HistoryStore(tmp_path / "history.db")
        posted: list[bool] = []
        handled_at: list[int] = []
        hops: list[asyncio.Task[None]] = []

        async def hop(left: int) -> None:  # a key passing app -> screen -> widget
            if left:
                hops.append(asyncio.create_task(hop(left - 1)))
            else:
                handled_at.append(reply.deltas)

        def listener(event: Any) -> None:
            if isinstance(event, TextArrived) and event.reply.deltas == 300 and not posted:
                posted.append(True)  # the "key" is posted here, and three hops away
                hops.append(asyncio.create_task(hop(2)))

        controller = ConversationController(
            store, Config(path=tmp_path / "c.toml"), server_choice(openai_server, "chunks:20000"),
            listener=listener,
            input_pending=lambda: pass_loop() if posted and not handled_at else None,
        )
        await controller.prewarm()
        reply = controller.start("send", "go")
        await controller.run(reply)
        assert reply.deltas == 20000
        # Handled right after it was posted, not after the rest of the buffered stream.
        assert handled_at and handled_at[0] <= 301
        await controller.pool.aclose()

    run(scenario)


def test_a_hand_back_lets_a_task_whose_timer_came_due_run() -> None:
    """A timer that came due while the stream held the loop wakes its task one pass later,
    and the task runs in the pass after that: one pass of the loop was not enough, and the
    stream took another whole slice first (a 10 ms timer fired three slices late)."""
    from chatterm.controller import HAND_BACK_HOPS

    async def scenario(hops: int) -> bool:
        ran: list[bool] = []

        async def sleeper() -> None:
            await asyncio.sleep(0.005)
            ran.append(True)

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)  # it sleeps now
        time.sleep(0.02)  # a slice of the stream: the timer comes due meanwhile
        await pass_loop(hops)
        done = bool(ran)
        await task
        return done

    assert asyncio.run(scenario(HAND_BACK_HOPS))
    assert not asyncio.run(scenario(1))  # what the stream used to give


def test_cancelling_the_run_stores_the_partial_reply(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        controller, store, seen = make(tmp_path, server_choice(openai_server, "slow:100:20"))
        await controller.prewarm()
        reply = controller.start("send", "count")
        task = asyncio.ensure_future(controller.run(reply))
        while reply.deltas < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert controller.conversation is not None
        last = store.branch(controller.conversation.id)[-1]
        assert last.status == INTERRUPTED and last.content.startswith("tok0 tok1 tok2")
        assert isinstance(seen[-1], ReplyEnded) and not controller.streaming
        await controller.pool.aclose()

    run(scenario)


def test_resending_after_a_failure_does_not_duplicate_the_prompt(
    tmp_path: Path, openai_server: Any
) -> None:
    async def scenario() -> None:
        controller, store, _ = make(tmp_path, server_choice(openai_server, "http:500-always"))
        await controller.prewarm()
        first = controller.start("send", "try me")
        await controller.run(first)
        assert first.error and first.text == ""
        assert controller.conversation is not None
        conv_id = controller.conversation.id
        again = controller.start("send", "try me")
        assert again.kind == "regenerate"
        await controller.run(again)
        users = [m for m in store.all_messages(conv_id) if m.role == "user"]
        assert [u.content for u in users] == ["try me"]
        assert [m.status for m in store.branch(conv_id)] == [COMPLETE, ERROR]
        # A different prompt is a new turn as usual.
        third = controller.start("send", "something else")
        await controller.run(third)
        assert [m.role for m in store.branch(conv_id)] == ["user", "assistant"] * 2
        await controller.pool.aclose()

    run(scenario)


def test_unavailable_backend_stores_nothing_and_says_why(tmp_path: Path) -> None:
    async def scenario() -> None:
        choice = Choice("no-such-backend", resolve(
            Config(path=Path("x")), backend="openai", base_url="http://x", env={}
        ).backend_config, {}, None, None)
        controller, store, seen = make(tmp_path, choice)
        reply = controller.start("send", "hello")
        await controller.run(reply)
        failed = [e for e in seen if isinstance(e, SendFailed)]
        assert failed and "no-such-backend" in failed[0].message
        assert store.count_conversations() == 0 and not controller.streaming

    run(scenario)


def test_the_model_that_answers_is_named(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        controller, store, seen = make(tmp_path, server_choice(openai_server, "served-as:big-7b"))
        assert controller.describe_target() == "openai · served-as:big-7b"
        await controller.prewarm()
        reply = controller.start("send", "who are you")
        await controller.run(reply)
        assert [e.model for e in seen if isinstance(e, ModelResolved)] == ["big-7b"]
        assert controller.describe_target() == "openai · big-7b"
        assert store.branch(reply.conversation_id or "")[-1].model == "big-7b"
        await controller.pool.aclose()

    run(scenario)


def test_switch_branch_open_at_rename_delete(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        controller, store, _ = make(tmp_path, server_choice(openai_server, "echo"))
        await controller.prewarm()
        await controller.run(controller.start("send", "one"))
        await controller.run(controller.start("regenerate"))
        assert controller.conversation is not None
        conv_id = controller.conversation.id
        first_reply, second_reply = store.children(store.branch(conv_id)[0].id)
        assert controller.positions()[second_reply.id] == (2, 2)
        shown = controller.step_branch(second_reply.id, -1)
        assert shown.id == first_reply.id and store.branch(conv_id)[-1].id == first_reply.id
        with pytest.raises(ControllerError, match="no more branches"):
            controller.step_branch(first_reply.id, -1)
        controller.open(None)
        controller.open_at(conv_id, second_reply.id)  # a search hit on the other branch
        assert store.branch(conv_id)[-1].id == second_reply.id
        assert controller.rename("  a   new\ttitle ").title == "a new title"
        with pytest.raises(ControllerError):
            controller.rename("   ")
        deleted = controller.delete()
        assert deleted.id == conv_id and store.get_conversation(conv_id) is None
        with pytest.raises(ControllerError, match="no longer exists"):
            controller.open(conv_id)
        await controller.pool.aclose()

    run(scenario)


def test_settings_wait_for_the_first_send(tmp_path: Path, openai_server: Any) -> None:
    async def scenario() -> None:
        controller, store, _ = make(tmp_path, server_choice(openai_server, "echo@ctl_settings"))
        assert controller.save_settings("Be brief.", {"max_tokens": 3}) is False
        assert controller.settings() == ("Be brief.", {"max_tokens": 3})
        await controller.prewarm()
        await controller.run(controller.start("send", "a b c d e f"))
        assert controller.conversation is not None
        conv = store.get_conversation(controller.conversation.id)
        assert conv is not None and conv.options == {"max_tokens": 3}
        assert conv.system_prompt == "Be brief."
        body = openai_server.requests_for("echo@ctl_settings")[-1].body
        assert body["max_tokens"] == 3 and body["messages"][0]["content"] == "Be brief."
        await controller.pool.aclose()

    run(scenario)


def test_model_suggestions_profiles_recent_and_cached(tmp_path: Path, openai_server: Any) -> None:
    cache = tmp_path / "hub"
    snapshot = cache / "models--Qwen--Qwen2.5-0.5B-Instruct" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--half--download" / "snapshots" / "x").mkdir(parents=True)  # no config
    (cache / "datasets--some--data").mkdir()
    assert cached_models(cache) == ["Qwen/Qwen2.5-0.5B-Instruct"]
    assert hf_cache_dir({"HF_HOME": "/h"}) == Path("/h/hub")
    assert hf_cache_dir({"HF_HUB_CACHE": "/c"}) == Path("/c")

    async def scenario() -> None:
        profile = Profile(name="work", backend="openai", base_url=openai_server.base_url,
                          model="gpt-x")
        config = Config(path=tmp_path / "c.toml", profiles={"work": profile})
        controller, _, _ = make(tmp_path, server_choice(openai_server, "echo"), config)
        await controller.prewarm()
        await controller.run(controller.start("send", "hi"))
        values = [value for value, _ in controller.model_suggestions(cache)]
        assert values == ["profile:work", "openai:echo", "local:Qwen/Qwen2.5-0.5B-Instruct"]
        assert sorted(await controller.server_models()) == sorted(openai_server.models)
        await controller.pool.aclose()

    run(scenario)


def test_describe_choice() -> None:
    choice = Choice("openai", resolve(Config(path=Path("x")), backend="openai",
                                      base_url="http://x", env={}).backend_config,
                    {}, "work", None)
    assert describe_choice(choice) == "profile work · openai · default model"
    assert describe_choice(choice, "m") == "profile work · openai · m"


def test_one_dispatch_for_every_stream_event() -> None:
    class Recorder(NullHandler):
        def __init__(self) -> None:
            self.calls: list[tuple[str, Any]] = []

        def on_text(self, text: str) -> Any:
            self.calls.append(("text", text))

        def on_reasoning(self, text: str) -> Any:
            self.calls.append(("reasoning", text))

        def on_usage(self, usage: Usage) -> Any:
            self.calls.append(("usage", usage.completion_tokens))

        def on_finish(self, finish: Finish) -> Any:
            self.calls.append(("finish", finish.reason))

        def on_notice(self, message: str) -> Any:
            self.calls.append(("notice", message))

        def on_metadata(self, values: dict[str, Any]) -> Any:
            self.calls.append(("metadata", values))

    recorder = Recorder()
    for event in (TextDelta("a"), ReasoningDelta("r"), Usage(1, 2), Finish("stop"),
                  Notice("n"), Metadata({"model": "m"})):
        dispatch(event, recorder)
    dispatch(object(), recorder)  # type: ignore[arg-type]  # an unknown event: ignored
    assert recorder.calls == [
        ("text", "a"), ("reasoning", "r"), ("usage", 2), ("finish", "stop"),
        ("notice", "n"), ("metadata", {"model": "m"}),
    ]
    assert dispatch(TextDelta("x"), NullHandler()) is None


def test_notices_become_told_events(tmp_path: Path) -> None:
    controller, _, seen = make(tmp_path, Choice("openai", resolve(
        Config(path=Path("x")), backend="openai", base_url="http://x", env={}
    ).backend_config, {}, None, None))
    result = controller.emit(Told("hello", "warning"))
    assert result is None and seen == [Told("hello", "warning")]


def test_core_modules_never_import_textual() -> None:
    core = [
        "chatterm.controller", "chatterm.controller_events", "chatterm.events",
        "chatterm.backend_pool", "chatterm.gc_policy", "chatterm.local_models",
        "chatterm.markdown_blocks", "chatterm.chat", "chatterm.store", "chatterm.sanitize",
        "chatterm.config", "chatterm.state", "chatterm.export", "chatterm.runtime",
    ]
    code = f"import sys; import {', '.join(core)}; print('textual' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_opening_a_conversation_goes_back_to_where_it_was_answered(
    tmp_path: Path, openai_server: Any
) -> None:
    import dataclasses

    async def scenario() -> None:
        controller, store, _ = make(tmp_path, server_choice(openai_server, "echo@route"))
        await controller.prewarm()
        await controller.run(controller.start("send", "remember me"))
        assert controller.conversation is not None
        conv_id = controller.conversation.id
        await controller.pool.aclose()
        # A later TUI started with no backend flags opens it: same server, same model.
        default = dataclasses.replace(
            resolve(Config(path=Path("x")), backend="openai", base_url="http://127.0.0.1:9",
                    env={}), chosen_by_default=True)
        later = ConversationController(store, Config(path=tmp_path / "c.toml"), default)
        later.open(conv_id)
        assert later.choice.backend_config.model == "echo@route"
        assert later.choice.backend_config.base_url == openai_server.base_url
        # Started with flags (not chosen by default): the flags win.
        flagged = ConversationController(store, Config(path=tmp_path / "c.toml"),
                                         server_choice(openai_server, "other"))
        flagged.open(conv_id)
        assert flagged.choice.backend_config.model == "other"
        # A default profile or OPENAI_BASE_URL is not a flag: the CLI says so, routes win.
        by_env = ConversationController(store, Config(path=tmp_path / "c.toml"),
                                        server_choice(openai_server, "other"), follow_routes=True)
        by_env.open(conv_id)
        assert by_env.choice.backend_config.model == "echo@route"

    run(scenario)
