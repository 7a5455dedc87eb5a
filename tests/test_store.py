"""The history store: real SQLite files on disk."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chatterm.store import (
    INTERRUPTED,
    SCHEMA_VERSION,
    HistoryStore,
    StoreError,
    title_from_prompt,
)


def test_database_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.db"
    with HistoryStore(path) as store:
        store.create_conversation("x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    HistoryStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer chatterm"):
        HistoryStore(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open history database"):
        HistoryStore(path)


def test_branches_search_and_prefix_ids(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation(title_from_prompt("  what is\nthe answer"))
        assert conv.title == "what is"
        q = store.add_message(conv.id, "user", "what is a zebra?")
        a1 = store.add_message(conv.id, "assistant", "a striped horse", parent_id=q.id)
        a2 = store.add_message(conv.id, "assistant", "an equine", parent_id=q.id)
        assert [m.id for m in store.branch(conv.id)] == [q.id, a2.id]
        store.set_active_leaf(conv.id, a1.id)
        assert [m.content for m in store.branch(conv.id)] == ["what is a zebra?", "a striped horse"]
        assert [m.id for m in store.children(q.id)] == [a1.id, a2.id]
        hits = store.search("strip")
        assert [h.message_id for h in hits] == [a1.id]
        # FTS syntax in user text is matched literally, never parsed.
        assert store.search('zebra" OR "x') == []
        assert store.search("AND") == []
        assert store.get_conversation(conv.id[:4]) == store.get_conversation(conv.id)


def test_streaming_updates_are_searchable_and_marked(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        store.update_message(reply.id, content="partial kumquat", status=INTERRUPTED)
        got = store.get_message(reply.id)
        assert got is not None and got.status == INTERRUPTED and got.content == "partial kumquat"
        assert [h.message_id for h in store.search("kumquat")] == [reply.id]


def test_delete_removes_messages_and_index(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        store.add_message(conv.id, "user", "platypus")
        assert store.delete_conversation(conv.id)
        assert store.get_conversation(conv.id) is None
        assert store.search("platypus") == []
        assert store.count_conversations() == 0


def test_reading_one_conversation_does_not_scan_history(tmp_path: Path) -> None:
    """Every query the store runs to show or continue a conversation uses an index: the cost
    follows the conversation, not the size of the history."""
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        store.add_message(conv.id, "user", "hi")
        executed: list[str] = []
        store._db.set_trace_callback(executed.append)
        store.branch(conv.id)
        store.latest_conversation()
        store.list_conversations(limit=20)
        store._db.set_trace_callback(None)
        selects = [sql for sql in executed if sql.lstrip().upper().startswith("SELECT")]
        assert len(selects) >= 4
        for sql in selects:
            plan = " ".join(
                str(row) for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
            )
            assert "USING" in plan and "SCAN messages " not in plan + " ", (sql, plan)
            assert not ("SCAN conversations" in plan and "INDEX" not in plan), (sql, plan)


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from chatterm.store import HistoryStore
    store = HistoryStore(Path(sys.argv[1]))
    for i in range(int(sys.argv[3])):
        conv = store.create_conversation(f"{sys.argv[2]}-{i}")
        parent = None
        for j in range(5):
            parent = store.add_message(conv.id, "user", f"w{sys.argv[2]} m{j}", parent_id=parent).id
            store.update_message(parent, content=f"w{sys.argv[2]} m{j} final")
    """
)


def test_concurrent_writer_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n), "20"])
        for n in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    with HistoryStore(path) as store:
        assert store.count_conversations() == 80
        for conv in store.list_conversations(limit=100):
            assert [m.content.endswith("final") for m in store.branch(conv.id)] == [True] * 5
    assert os.path.exists(path)
