"""ChatSession: what is stored on every exit path of a streamed reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatterm.backend import (
    Backend,
    BackendConfig,
    ChatRequest,
    Finish,
    ServerError,
    StreamEvent,
    TextDelta,
    Usage,
)
from chatterm.chat import ChatSession
from chatterm.store import HistoryStore


class ScriptedBackend(Backend):
    """A backend written against the public contract, as a plugin author would."""

    name = "scripted"

    def __init__(self, words: list[str], fail_after: int | None = None, delay: float = 0) -> None:
        super().__init__(BackendConfig(model="scripted-1"))
        self.words = words
        self.fail_after = fail_after
        self.delay = delay
        self.requests: list[ChatRequest] = []
        self.closed = False

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        try:
            for i, word in enumerate(self.words):
                if self.fail_after is not None and i == self.fail_after:
                    raise ServerError("server error from test: boom")
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield TextDelta(word)
            yield Usage(3, len(self.words))
            yield Finish("stop")
        finally:
            self.closed = True


def session(tmp_path: Path, backend: Backend, **kw: object) -> ChatSession:
    return ChatSession(HistoryStore(tmp_path / "h.db"), backend, backend_name="scripted",
                       model="m1", **kw)  # type: ignore[arg-type]


async def drain(events: AsyncIterator[StreamEvent]) -> str:
    return "".join([e.text async for e in events if isinstance(e, TextDelta)])


def test_complete_reply_is_stored_with_usage_and_timings(tmp_path: Path) -> None:
    chat = session(tmp_path, ScriptedBackend(["a", "b", "c"]), system_prompt="sys")
    assert asyncio.run(drain(chat.send("hi"))) == "abc"
    user, reply = chat.messages()
    assert (user.role, user.content) == ("user", "hi")
    assert (reply.content, reply.status, reply.finish_reason) == ("abc", "complete", "stop")
    assert (reply.prompt_tokens, reply.completion_tokens, reply.model) == (3, 3, "m1")
    assert reply.duration_s is not None and reply.first_token_s is not None
    assert chat.conversation is not None and chat.conversation.title == "hi"
    assert chat.conversation.system_prompt == "sys"


def test_server_error_keeps_partial_marked_error(tmp_path: Path) -> None:
    backend = ScriptedBackend(["x", "y", "z"], fail_after=2)
    chat = session(tmp_path, backend)
    with pytest.raises(ServerError):
        asyncio.run(drain(chat.send("hi")))
    reply = chat.messages()[-1]
    assert (reply.content, reply.status, reply.error) == ("xy", "error", "server error from test: boom")
    assert backend.closed


def test_cancel_keeps_partial_marked_interrupted(tmp_path: Path) -> None:
    backend = ScriptedBackend([str(i) for i in range(100)], delay=0.01)
    chat = session(tmp_path, backend)

    async def cancel_midway() -> None:
        task = asyncio.create_task(drain(chat.send("count")))
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    reply = chat.messages()[-1]
    assert reply.status == "interrupted" and 0 < len(reply.content) < 190
    assert backend.closed  # the backend's stream was closed: its work stopped


def test_history_resend_regenerate_and_edit_branch(tmp_path: Path) -> None:
    backend = ScriptedBackend(["ok"])
    chat = session(tmp_path, backend)
    asyncio.run(drain(chat.send("one")))
    asyncio.run(drain(chat.send("two")))
    assert [(m.role, m.content) for m in backend.requests[-1].messages] == [
        ("user", "one"), ("assistant", "ok"), ("user", "two"),
    ]
    asyncio.run(drain(chat.regenerate()))
    assert [m.content for m in backend.requests[-1].messages] == ["one", "ok", "two"]
    first_user = chat.messages()[0]
    asyncio.run(drain(chat.edit(first_user.id, "uno")))
    assert [m.content for m in chat.messages()] == ["uno", "ok"]
    assert [m.content for m in backend.requests[-1].messages] == ["uno"]
    # The old branch is still there.
    assert len(chat.store.all_messages(chat.conversation.id)) == 7  # type: ignore[union-attr]


def test_switching_backend_records_the_new_model(tmp_path: Path) -> None:
    chat = session(tmp_path, ScriptedBackend(["a"]))
    asyncio.run(drain(chat.send("q1")))
    chat.switch_backend(ScriptedBackend(["b"]), backend_name="other", model="m2")
    asyncio.run(drain(chat.send("q2")))
    replies = [m for m in chat.messages() if m.role == "assistant"]
    assert [(m.backend, m.model) for m in replies] == [("scripted", "m1"), ("other", "m2")]


# --- issue 8: what is sent, what is flushed ---------------------------------------------------


class IdleBackend(Backend):
    """Sends one piece, then nothing until told: a stream gone idle."""

    name = "idle"

    def __init__(self) -> None:
        super().__init__(BackendConfig(model="idle-1"))
        self.release = asyncio.Event()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("seen by the user")
        await self.release.wait()
        yield TextDelta(" and the rest")
        yield Finish("stop")


def test_an_idle_stream_is_flushed_on_a_timer(tmp_path: Path) -> None:
    backend = IdleBackend()
    chat = session(tmp_path, backend)
    other = HistoryStore(tmp_path / "h.db")  # another reader, as another process would be

    async def run() -> None:
        task = asyncio.create_task(drain(chat.send("hi")))
        for _ in range(400):  # poll for the state, however slow the machine is
            await asyncio.sleep(0.05)
            reply = other.branch(chat.conversation.id)[-1] if chat.conversation else None
            if reply is not None and reply.content == "seen by the user":
                break
        assert reply is not None and (reply.content, reply.status) == (
            "seen by the user", "streaming",
        )
        backend.release.set()
        assert await task == "seen by the user and the rest"

    asyncio.run(run())
    reply = other.branch(chat.conversation.id)[-1]  # type: ignore[union-attr]
    assert (reply.content, reply.status) == ("seen by the user and the rest", "complete")


def test_failed_turns_are_not_sent_and_requests_alternate(tmp_path: Path) -> None:
    from chatterm.chat import context_turns

    chat = session(tmp_path, ScriptedBackend(["ok"]), system_prompt="sys")
    asyncio.run(drain(chat.send("one")))
    failing = ScriptedBackend(["x"], fail_after=0)
    chat.switch_backend(failing, backend_name="scripted", model="m1")
    for prompt in ("two", "three"):
        with pytest.raises(ServerError):
            asyncio.run(drain(chat.send(prompt)))
    good = ScriptedBackend(["fine"])
    chat.switch_backend(good, backend_name="scripted", model="m1")
    asyncio.run(drain(chat.send("four")))
    assert [(m.role, m.content) for m in good.requests[-1].messages] == [
        ("system", "sys"), ("user", "one"), ("assistant", "ok"), ("user", "four"),
    ]
    # Every request ever sent alternated and ended with the new prompt.
    for request in [*failing.requests, *good.requests]:
        turns = [m.role for m in request.messages if m.role != "system"]
        assert turns == ["user", "assistant"] * (len(turns) // 2) + ["user"]
    stored = [(m.role, m.status) for m in chat.messages()]
    assert stored.count(("assistant", "error")) == 2  # the failures stay visible, marked
    assert context_turns([]) == []


def test_the_route_is_remembered_after_a_reply(tmp_path: Path) -> None:
    route = {"backend": "scripted", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-x"}
    chat = session(tmp_path, ScriptedBackend(["a"]), route=route)
    asyncio.run(drain(chat.send("q")))
    assert chat.conversation is not None
    assert chat.conversation.route == {
        "backend": "scripted", "base_url": "http://127.0.0.1:9/v1", "model": "m1",
    }  # never a key


# --- issue 9: a big, fast reply into the history ---------------------------------------------


class BurstBackend(Backend):
    """Sends ``chunks`` as fast as they are taken, then waits until told before finishing."""

    name = "burst"

    def __init__(self, chunks: list[str]) -> None:
        super().__init__(BackendConfig(model="burst-1"))
        self.chunks = chunks
        self.release = asyncio.Event()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        for chunk in self.chunks:
            yield TextDelta(chunk)
        await self.release.wait()
        yield Finish("stop")


def test_a_fast_stream_is_written_while_it_streams_not_only_at_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the interval timer out of the way, the writer still writes once a piece's worth is
    waiting: a fast reply's text (and its WAL syncs) reach the file while it streams."""
    import chatterm.chat
    import chatterm.store

    monkeypatch.setattr(chatterm.chat, "FLUSH_INTERVAL_S", 3600.0)
    monkeypatch.setattr(chatterm.store, "EAGER_CHARS", 64 * 1024)
    chunks = [f"word{i} " * 1000 for i in range(40)]  # ~330 KB, no pause between chunks
    backend = BurstBackend(chunks)
    chat = session(tmp_path, backend)
    other = HistoryStore(tmp_path / "h.db")

    async def run() -> None:
        task = asyncio.create_task(drain(chat.send("go")))
        stored = 0
        for _ in range(400):  # poll for the state, however slow the machine is
            await asyncio.sleep(0.05)
            stored = other._db.execute(
                "SELECT coalesce(sum(length(content)), 0) FROM message_pieces"
            ).fetchone()[0]
            if stored >= 256 * 1024:
                break
        assert stored >= 256 * 1024  # written although the interval (an hour) never came
        reply = other.branch(chat.conversation.id)[-1]  # type: ignore[union-attr]
        assert reply.status == "streaming" and "".join(chunks).startswith(reply.content)
        # In pieces of at least the eager size, not one transaction per chunk.
        pieces = other._db.execute("SELECT count(*) FROM message_pieces").fetchone()[0]
        assert 1 <= pieces <= stored // (64 * 1024)
        backend.release.set()
        await task

    asyncio.run(run())
    reply = other.branch(chat.conversation.id)[-1]  # type: ignore[union-attr]
    assert (reply.content, reply.status) == ("".join(chunks), "complete")


def test_a_big_reply_is_stored_byte_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces cut anywhere (in words, in runs with no whitespace, after multi-byte characters,
    control bytes and CRs) join back to exactly what streamed, for a reply kept in pieces."""
    import random

    import chatterm.chat
    import chatterm.store

    monkeypatch.setattr(chatterm.store, "EAGER_CHARS", 200_000)
    monkeypatch.setattr(chatterm.chat, "MAX_PIECE_CHARS", 300_000)
    rng = random.Random(9)
    alphabet = "abc déf \n\t\r\x00\x1b😀 " + "x" * 20
    chunks = []
    for _ in range(600):
        size = rng.choice([1, 7, 500, 4095, 4096, 5000, 20_000])
        pool = rng.choice([alphabet, "y", "z "])
        chunks.append("".join(rng.choice(pool) for _ in range(size)))
    expected = "".join(chunks)
    assert len(expected) > chatterm.store.FOLD_LIMIT  # kept in pieces, not folded
    chat = session(tmp_path, ScriptedBackend(chunks))
    assert asyncio.run(drain(chat.send("go"))) == expected
    with HistoryStore(tmp_path / "h.db") as other:
        reply = other.branch(chat.conversation.id)[-1]  # type: ignore[union-attr]
        assert reply.status == "complete" and reply.content == expected
        assert other._db.execute("SELECT count(*) FROM message_pieces").fetchone()[0] > 1


def test_a_session_that_does_not_keep_the_text_lets_it_go_once_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``keep_text=False`` (what `ask` to a pipe uses): each chunk is emptied in memory once it
    went into a piece for the history, yet the history holds the reply byte for byte."""
    import chatterm.chat
    import chatterm.store

    monkeypatch.setattr(chatterm.store, "EAGER_CHARS", 50_000)
    monkeypatch.setattr(chatterm.chat, "MAX_PIECE_CHARS", 80_000)
    chunks = [f"w{i} " * 700 + "\u00e9\n" for i in range(200)]  # ~0.7 MB, many pieces
    expected = "".join(chunks)
    chat = session(tmp_path, ScriptedBackend(chunks), keep_text=False)
    assert asyncio.run(drain(chat.send("go"))) == expected
    outcome = chat.last_outcome
    assert outcome is not None and outcome.status == "complete"
    assert not any(outcome.pieces) and outcome.released == len(expected)
    assert outcome.has_text
    with pytest.raises(RuntimeError):
        _ = outcome.text  # never a silently shortened reply
    with HistoryStore(tmp_path / "h.db") as other:
        reply = other.branch(chat.conversation.id)[-1]  # type: ignore[union-attr]
        assert (reply.content, reply.status) == (expected, "complete")


def test_a_reply_that_fails_keeps_what_arrived_when_the_text_is_not_kept(
    tmp_path: Path,
) -> None:
    words = [f"word{i} " for i in range(50)]
    chat = session(tmp_path, ScriptedBackend(words, fail_after=30), keep_text=False)
    with pytest.raises(ServerError):
        asyncio.run(drain(chat.send("go")))
    with HistoryStore(tmp_path / "h.db") as other:
        reply = other.branch(chat.conversation.id)[-1]  # type: ignore[union-attr]
        assert (reply.content, reply.status) == ("".join(words[:30]), "error")
    assert chat.last_outcome is not None and chat.last_outcome.has_text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("ab \n\t"), min_size=1, max_size=5000),
        min_size=1, max_size=5,
    )
)
def test_a_word_cut_at_a_flush_is_held_back_exactly_as_before(parts: list[str]) -> None:
    """The piece ends after its last whitespace, the word after it waits for the next piece,
    unless it is long (HELD_WORD_CHARS) or there is none; found without joining the text."""
    from chatterm.chat import HELD_WORD_CHARS, _held_word

    text = "".join(parts)
    cut = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"))
    if 0 <= cut < len(text) - 1 and len(text) - cut < HELD_WORD_CHARS:
        want = (text[: cut + 1], text[cut + 1 :])
    else:
        want = (text, "")
    kept = list(parts)
    held = _held_word(kept)
    assert ("".join(kept), held) == want
