"""The TUI's search runs on one thread with one connection per search screen (issue 9).

Real SQLite files, the real app through the pilot. What is checked: a read-only history's
pending pieces are found from the search box; the screen's queries share one connection (so
what one search set up, the private index of pending pieces, is there for the next); a query
made stale by a newer one gives up instead of running to its end; the connection is closed
with the screen.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from test_tui import SIZE, run, type_now, wait_for

from chatterm.backend import BackendConfig
from chatterm.config import Choice, Config
from chatterm.store import HistoryStore, StoreError
from chatterm.tui.app import build_app
from chatterm.tui.screens.search import SearchScreen, SearchThread


def history_with_a_pending_reply(path: Path) -> int:
    """A history whose streamed reply is in pieces nothing has indexed yet."""
    with HistoryStore(path) as store:
        conv = store.create_conversation("Fruit")
        store.add_message(conv.id, "user", "tell me")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(reply.id, "lorem ipsum " * 5000 + "a ripe kumquat")
        store.append_pieces(reply.id, " and a quince")
        store.update_message(reply.id, status="complete")  # folded: a fresh one instead
        other = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(other.id, "the okapi grazes")
        return other.id


def test_a_read_only_history_finds_pending_pieces_from_the_search_box(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    reply_id = history_with_a_pending_reply(path)

    async def scenario() -> None:
        store = HistoryStore(path, readonly=True)
        app = build_app(
            Choice("openai", BackendConfig(), {}, None, None),
            Config(path=tmp_path / "config.toml"), store,
            state_file=tmp_path / "state.json", user_themes_dir=tmp_path / "themes",
        )
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+f")
            screen = app.screen
            assert isinstance(screen, SearchScreen)
            await type_now(app, *"okapi")
            await wait_for(lambda: bool(screen.hits), pilot)
            assert [h.message_id for h in screen.hits] == [reply_id]
            thread = screen._thread
            assert thread is not None
            first = thread._store
            assert first is not None and first.readonly
            # The next query is answered on the same connection, its private index reused.
            for _ in "okapi":
                await pilot.press("backspace")
            await type_now(app, *"grazes")
            await wait_for(lambda: screen.query_text == "grazes" and bool(screen.hits), pilot)
            assert [h.message_id for h in screen.hits] == [reply_id]
            assert thread._store is first
            done = await asyncio.wrap_future(thread._pool.submit(
                lambda: first._db.execute("SELECT count(*) FROM temp.pieces_pending_done")
                .fetchone()[0]
            ))
            assert done == 1
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, SearchScreen)
            await wait_for(lambda: thread._store is None, pilot)  # closed with the screen
        store.close()

    run(scenario)


def test_a_query_made_stale_by_a_newer_one_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        conv = store.create_conversation("t")
        for i in range(200):
            store.add_message(conv.id, "user", f"kumquat number {i} " + "filler " * 50)

    async def scenario() -> None:
        thread = SearchThread(path, readonly=False)
        gate = threading.Event()
        thread._pool.submit(gate.wait)  # hold the thread: both queries wait behind this
        stale = asyncio.ensure_future(thread.search("kumquat", 50))
        fresh = asyncio.ensure_future(thread.search("kumquat number", 50))
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(StoreError, match="interrupted"):
            await stale  # it ran, but a newer query had been asked: stopped at once
        hits = await fresh
        assert len(hits) == 50
        thread.close()

    asyncio.run(scenario())


def test_the_progress_check_stops_a_search(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        for i in range(50):
            store.add_message(conv.id, "user", f"kumquat {i}")
        store.set_progress_check(lambda: True, 1)
        with pytest.raises(StoreError, match="interrupted"):
            store.search("kumquat")
        store.set_progress_check(None)
        assert len(store.search("kumquat")) == 50
