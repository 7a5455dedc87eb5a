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


# --- issue 8/9: pieces, writers, migrations ---------------------------------------------------


def test_version_1_history_migrates_and_its_stuck_rows_are_repaired(tmp_path: Path) -> None:
    from chatterm.store import _MIGRATIONS, ORPHANED, _split_sql

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in _split_sql(_MIGRATIONS[0]):
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO conversations VALUES ('c1', 'old', NULL, '{}', NULL, 1, 1)")
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, content, status, created_at)"
        " VALUES (1, 'c1', 'user', 'ancient wombat', 'complete', 1),"
        " (2, 'c1', 'assistant', 'stuck wombat reply', 'streaming', 2)"
    )
    db.close()
    with HistoryStore(path) as store:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        got = store.get_message(2)
        assert got is not None
        assert (got.content, got.status, got.error) == ("stuck wombat reply", INTERRUPTED, ORPHANED)
        # Indexed exactly once each: no stale entry from the old triggers.
        assert sorted(h.message_id for h in store.search("wombat")) == [1, 2]
        assert [h.message_id for h in store.search("stuck")] == [2]
        assert store.get_conversation("c1").route is None  # type: ignore[union-attr]


def test_streamed_reply_is_written_and_indexed_piece_by_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chatterm.store

    monkeypatch.setattr(chatterm.store, "FOLD_LIMIT", 1000)  # this reply counts as big
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        executed: list[str] = []
        store._db.set_trace_callback(executed.append)
        for n in range(50):
            store.append_pieces(reply.id, f"okapi{n} " * 20, "thinking ")
        store._db.set_trace_callback(None)
        # Each flush writes only its own piece: the statement does not grow with the reply.
        inserts = {sql for sql in executed if sql.startswith("INSERT INTO message_pieces")}
        sizes = [len(sql) for sql in inserts]
        assert len(inserts) == 50 and max(sizes) - min(sizes) < 40
        assert not any("SET content" in sql or "group_concat" in sql for sql in executed)
        # Readers see the streamed text, and search finds it while it streams.
        got = store.get_message(reply.id)
        assert got is not None and got.content.startswith("okapi0 ") and "okapi49" in got.content
        assert got.reasoning == "thinking " * 50
        assert store.branch(conv.id)[-1].content == got.content
        assert [h.message_id for h in store.search("okapi49")] == [reply.id]
        (hit,) = store.search("okapi49")
        assert "okapi49" in hit.snippet and hit.matches
        assert [h.message_id for h in store.search("okapi3 okapi48")] == [reply.id]  # 2 pieces
        assert store.search("okapi49 absent") == []
        # Ending a big reply rewrites nothing.
        executed.clear()
        store._db.set_trace_callback(executed.append)
        store.update_message(reply.id, status="complete", completion_tokens=50)
        store._db.set_trace_callback(None)
        writes = ("INSERT INTO message_pieces", "DELETE FROM message_pieces")
        assert not any("SET content" in sql or sql.startswith(writes) for sql in executed)
        done = store.get_message(reply.id)
        assert done is not None and done.content == got.content and done.status == "complete"
        # Deleting the conversation takes the pieces and their index entries with it.
        assert store.delete_conversation(conv.id)
        assert store._db.execute("SELECT count(*) FROM message_pieces").fetchone()[0] == 0
        assert store.search("okapi49") == []
        fts = "SELECT count(*) FROM pieces_fts WHERE pieces_fts MATCH 'okapi49'"
        assert store._db.execute(fts).fetchone()[0] == 0


def test_an_ordinary_reply_ends_up_whole_in_its_row(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(reply.id, "first quokka ", "hmm ")
        store.append_pieces(reply.id, "second quokka", "ok")
        store.update_message(reply.id, status="complete")
        row = store._db.execute(
            "SELECT content, reasoning, pieces FROM messages WHERE id = ?", (reply.id,)
        ).fetchone()
        assert row == ("first quokka second quokka", "hmm ok", 0)
        assert store._db.execute("SELECT count(*) FROM message_pieces").fetchone()[0] == 0
        assert [h.message_id for h in store.search("second quokka")] == [reply.id]


def test_read_only_store_reads_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with HistoryStore(path) as store:
        conv = store.create_conversation("readable")
    with HistoryStore(path, readonly=True) as store:
        assert store.readonly and store.get_conversation(conv.id) is not None
        with pytest.raises(StoreError, match=r"read-only.*-n"):
            store.create_conversation("nope")


def test_failed_write_leaves_no_open_transaction(tmp_path: Path) -> None:
    """A write that fails (here: a constraint) rolls back, and the next write works; no
    'cannot rollback - no transaction is active' however SQLite ended the transaction."""
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        with pytest.raises(StoreError):
            store.add_message("no-such-conversation", "user", "x")
        assert not store._db.in_transaction
        store.add_message(conv.id, "user", "fine")
        assert [m.content for m in store.branch(conv.id)] == ["fine"]


def test_a_new_history_uses_big_pages(tmp_path: Path) -> None:
    from chatterm.store import PAGE_SIZE

    with HistoryStore(tmp_path / "h.db") as store:
        assert store._db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- issue 9: pieces are indexed once, when the history is searched ---------------------------


def _fts_check(store: HistoryStore) -> None:
    """FTS5's own check that its index matches the pieces table (raises if not)."""
    store._db.execute("INSERT INTO pieces_fts(pieces_fts) VALUES ('integrity-check')")


def _pending(store: HistoryStore) -> int:
    return int(store._db.execute("SELECT count(*) FROM pieces_unindexed").fetchone()[0])


def test_a_huge_reply_is_indexed_at_the_next_search_and_found_anywhere(tmp_path: Path) -> None:
    filler = "lorem ipsum dolor sit amet " * 40_000  # ~1 MB a piece, 3 MB in all: kept in pieces
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(reply.id, "aardvark " + filler)
        store.append_pieces(reply.id, filler + " middlemost " + filler)
        store.append_pieces(reply.id, filler + " zebrafinch")
        # Written, not indexed: the stream did not pay for the index.
        assert _pending(store) == 3
        assert store._db.execute("SELECT count(*) FROM pieces_fts_docsize").fetchone()[0] == 0
        # Still streaming: a search indexes what is pending first and finds the words.
        assert [h.message_id for h in store.search("zebrafinch")] == [reply.id]
        assert _pending(store) == 0
        store.update_message(reply.id, status="complete")
        pieces = "SELECT count(*) FROM message_pieces WHERE message_id = ?"
        assert store._db.execute(pieces, (reply.id,)).fetchone()[0] == 3  # not folded
        for word in ("aardvark", "middlemost", "zebrafinch", "aardvark zebrafinch"):
            assert [h.message_id for h in store.search(word)] == [reply.id], word
        (hit,) = store.search("aardvark")
        assert "aardvark" in hit.snippet and hit.matches
        assert store.search("middlemost absent") == []
        _fts_check(store)


def test_indexing_happens_once_even_with_two_searchers(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with HistoryStore(path) as first, HistoryStore(path) as second:
        conv = first.create_conversation("t")
        reply = first.add_message(conv.id, "assistant", "", status="streaming")
        for n in range(10):
            first.append_pieces(reply.id, f"gnu{n} " * 100)
        assert first.index_pending() == 10
        assert second.index_pending() == 0  # nothing left: no piece is indexed twice
        assert [h.message_id for h in second.search("gnu7")] == [reply.id]
        first.append_pieces(reply.id, "gnu10 late")
        assert second.index_pending() == 1 and first.index_pending() == 0
        docs = first._db.execute("SELECT count(*) FROM pieces_fts_docsize").fetchone()[0]
        assert docs == 11
        _fts_check(first)


def test_deleting_unindexed_and_indexed_pieces_keeps_the_index_sound(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db") as store:
        conv = store.create_conversation("t")
        indexed = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(indexed.id, "wapiti one")
        assert store.index_pending() == 1
        pending = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(pending.id, "wapiti two")
        # An ordinary reply is folded into its row when it ends: its piece is never indexed.
        store.update_message(pending.id, status="complete")
        assert _pending(store) == 0
        other = store.create_conversation("u")
        kept = store.add_message(other.id, "assistant", "", status="streaming")
        store.append_pieces(kept.id, "wapiti three")
        gone = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(gone.id, "wapiti four")
        assert store.delete_conversation(conv.id)
        assert _pending(store) == 1  # only the kept reply's piece is left to index
        assert [h.message_id for h in store.search("wapiti")] == [kept.id]
        _fts_check(store)


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from chatterm.store import HistoryStore
    store = HistoryStore(Path(sys.argv[1]))
    conv = store.create_conversation("killed")
    for size in (int(sys.argv[2]), 10):
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(reply.id, "x " * size + "capybara" + str(size) + " ")
        store.append_pieces(reply.id, "tail" + str(size) + " " + "y " * size)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_replys_pieces_are_found_by_search(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    big = 600_000  # two pieces of 1.2 M characters: more than FOLD_LIMIT, kept in pieces
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), str(big)], timeout=120)
    assert proc.returncode == -9
    with HistoryStore(path) as store:  # opening repairs the killed replies
        rows = store._db.execute(
            "SELECT id, status, pieces FROM messages WHERE role = 'assistant' ORDER BY id"
        ).fetchall()
        assert [(status, pieces > 0) for _, status, pieces in rows] == [
            (INTERRUPTED, True), (INTERRUPTED, False),  # the small one was folded into its row
        ]
        for word, row in ((f"capybara{big}", 0), (f"tail{big}", 0), ("capybara10", 1), ("tail10", 1)):
            assert [h.message_id for h in store.search(word)] == [rows[row][0]], word
        assert _pending(store) == 0
        _fts_check(store)


def old_history(path: Path, version: int) -> sqlite3.Connection:
    """A history file as chatterm left it at schema ``version`` (its migrations only), with
    conversation 'c'; the open connection, for the caller's rows (close it)."""
    from chatterm.store import _MIGRATIONS, _split_sql

    db = sqlite3.connect(path, isolation_level=None)
    for script in _MIGRATIONS[:version]:
        for statement in _split_sql(script):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    db.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES ('c', 't', 1, 1)")
    return db


def test_a_version_3_history_keeps_its_indexed_pieces(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    db = old_history(path, 3)
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, content, status, created_at, pieces)"
        " VALUES (1, 'c', 'assistant', '', 'complete', 1, 1)"
    )
    db.execute("INSERT INTO message_pieces (message_id, content) VALUES (1, 'old margay')")
    db.close()
    with HistoryStore(path) as store:
        # Moved to the pieces file with the upgrade to schema 6, and indexed there once more.
        assert _pending(store) == 1
        assert [h.message_id for h in store.search("margay")] == [1]
        assert _pending(store) == 0
        _fts_check(store)
        assert store.delete_conversation("c")
        assert store.search("margay") == []
        _fts_check(store)


def test_a_scratch_history_never_indexes_pieces() -> None:
    """`ask -n` writes into ``:memory:``, which nothing searches: no index work at all."""
    with HistoryStore(Path(":memory:")) as store:
        conv = store.create_conversation("t")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        for _ in range(3):
            store.append_pieces(reply.id, "okapi " * 200_000)
        store.update_message(reply.id, status="complete")
        assert store._db.execute("SELECT count(*) FROM pieces_fts_docsize").fetchone()[0] == 0
        assert _pending(store) == 3


def test_a_version_4_history_gets_the_prefix_index_and_keeps_finding_everything(
    tmp_path: Path,
) -> None:
    """Migration 4 -> 5 remakes the messages' index with prefix indexes, on a real file."""
    path = tmp_path / "v4.db"
    db = old_history(path, 4)
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, content, status, created_at)"
        " VALUES (1, 'c', 'user', 'an old kumquat question', 'complete', 1),"
        " (2, 'c', 'assistant', ?, 'complete', 2)",
        (" ".join(f"tok{i}" for i in range(5000)),),
    )
    db.close()
    with HistoryStore(path) as store:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        sql = store._db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'messages_fts'"
        ).fetchone()[0]
        assert "prefix='1 2 3 4'" in sql
        store._db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
        # What was there before is found through the remade index, by every prefix length.
        for query in ("k", "ku", "kum", "kumq", "kumquat"):
            assert [h.message_id for h in store.search(query)] == [1], query
        for query in ("t", "tok4", "tok4999"):
            assert [h.message_id for h in store.search(query)] == [2], query
        # The triggers were remade with it: new, changed and deleted rows stay in step.
        new = store.add_message("c", "user", "a quince")
        assert [h.message_id for h in store.search("qui")] == [new.id]
        store.update_message(new.id, content="a medlar")
        assert store.search("qui") == [] and [h.message_id for h in store.search("med")] == [new.id]
        assert store.delete_conversation("c")
        assert store.search("k") == [] and store.search("med") == []
        store._db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")


def test_a_read_only_history_finds_text_in_pieces_not_yet_indexed(tmp_path: Path) -> None:
    """Pieces are indexed by the next search, which a read-only history cannot write: it
    indexes them in a private temporary index instead, once per connection."""
    path = tmp_path / "h.db"
    with HistoryStore(path) as writer:
        conv = writer.create_conversation("t")
        reply = writer.add_message(conv.id, "assistant", "", status="streaming")  # ours: live
        writer.append_pieces(reply.id, "lorem ipsum " * 10_000 + "a ripe Kümquat ")
        writer.append_pieces(reply.id, "next to a quince")
        assert _pending(writer) == 2  # nothing has searched yet
    with HistoryStore(path, readonly=True) as store:
        assert store.readonly
        (hit,) = store.search("kumquat")
        assert hit.message_id == reply.id
        assert [hit.snippet[a:b] for a, b in hit.matches] == ["Kümquat"]
        # Every word must appear in some piece of the reply, as for indexed pieces.
        assert [h.message_id for h in store.search("kumq quin")] == [reply.id]
        assert store.search("kumquat medlar") == []
        assert _pending(store) == 2  # the history itself is untouched
        done = store._db.execute("SELECT count(*) FROM temp.pieces_pending_done").fetchone()
        assert done == (2,)
        # A piece written meanwhile by another process is indexed at the next search.
        with HistoryStore(path) as other:
            other.append_pieces(reply.id, " and a medlar")
            assert _pending(other) == 3
        assert [h.message_id for h in store.search("medlar")] == [reply.id]
        assert [h.message_id for h in store.search("kumquat medlar")] == [reply.id]
        # Once a writable search has indexed everything, the history's own index answers.
        with HistoryStore(path) as other:
            assert [h.message_id for h in other.search("medlar")] == [reply.id]
            assert _pending(other) == 0
        assert [h.message_id for h in store.search("quince")] == [reply.id]
        assert store.search("okapi") == []


def test_a_read_only_version_4_history_is_read_and_searched_without_migrating(
    tmp_path: Path,
) -> None:
    """Migration 5 only adds prefix indexes: a history that cannot be migrated (read-only)
    is still read and searched as it is, not refused."""
    path = tmp_path / "v4.db"
    db = old_history(path, 4)
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, content, status, created_at)"
        " VALUES (1, 'c', 'user', 'an old kumquat question', 'complete', 1)"
    )
    db.close()
    with HistoryStore(path, readonly=True) as store:
        assert [m.content for m in store.all_messages("c")] == ["an old kumquat question"]
        assert [h.message_id for h in store.search("kum")] == [1]
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == 4
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 3")  # older than that: refused, as before
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="needs an upgrade but is read-only"):
        HistoryStore(path, readonly=True)
