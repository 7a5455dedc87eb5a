"""Streamed pieces live in their own rollback-journal file beside the history (issue 9: a
100 MB reply's bytes written once, not twice through the WAL). Real SQLite files on disk;
crashes between the two files' commits are made by stopping after the first of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from test_store import old_history

from chatterm.store import SCHEMA_VERSION, HistoryStore, pieces_path, writer_token


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def _pieces_of(path: Path, message_id: int) -> list[str]:
    db = sqlite3.connect(pieces_path(path))
    try:
        return [
            row[0]
            for row in db.execute(
                "SELECT content FROM message_pieces WHERE message_id = ? ORDER BY id",
                (message_id,),
            )
        ]
    finally:
        db.close()


def test_a_streamed_reply_goes_to_the_pieces_file_and_not_through_the_wal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    piece = "lorem ipsum dolor " * 120_000  # ~2 MB
    with HistoryStore(path) as store:
        conv = store.create_conversation("t")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        for _ in range(4):
            store.append_pieces(reply.id, piece)
        # 8 MB written, and the history's own log holds none of it: it went to the pieces
        # file once, which is in rollback-journal mode (appended pages are not journaled).
        assert Path(f"{path}-wal").stat().st_size < 1 << 20
        assert pieces_path(path).stat().st_size > 8_000_000
        assert Path(f"{pieces_path(path)}-journal").stat().st_size < 1 << 20
        assert store._db.execute("PRAGMA pieces.journal_mode").fetchone()[0] == "truncate"
        store.update_message(reply.id, status="complete")
    assert "message_pieces" not in _tables(path)
    with HistoryStore(path) as store:
        assert store.get_message(reply.id).content == piece * 4  # type: ignore[union-attr]
        assert [h.message_id for h in store.search("dolor")] == [reply.id]
    with HistoryStore(path, readonly=True) as store:
        assert store.get_message(reply.id).content == piece * 4  # type: ignore[union-attr]


def test_a_folded_reply_leaves_no_pieces_and_a_deleted_one_takes_them_along(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        conv = store.create_conversation("t")
        small = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(small.id, "a short ")
        store.append_pieces(small.id, "reply")
        store.update_message(small.id, status="complete")  # folded into its row
        assert store.get_message(small.id).content == "a short reply"  # type: ignore[union-attr]
        assert _pieces_of(path, small.id) == []
        big = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(big.id, "capybara " * 150_000)
        store.update_message(big.id, status="complete")  # over FOLD_LIMIT: stays in pieces
        assert len(_pieces_of(path, big.id)) == 1
        assert store.delete_conversation(conv.id)
        assert _pieces_of(path, big.id) == []
        assert store.search("capybara") == []


def test_pieces_left_by_a_crash_between_the_two_commits_are_never_shown_and_are_removed(
    tmp_path: Path,
) -> None:
    """The reply was folded (or its conversation deleted) and the process died before its
    pieces were deleted: they belong to no marked reply, are not read or found, and go at the
    next open; a new reply reusing a deleted one's id shows only its own text."""
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        conv = store.create_conversation("t")
        folded = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(folded.id, "wombat words")
        gone = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(gone.id, "secret quokka")
    # The first commits alone, as a crash after them leaves the files.
    db = sqlite3.connect(path)
    db.execute("UPDATE messages SET content = 'wombat words', pieces = 0 WHERE id = ?", (folded.id,))
    db.execute("DELETE FROM messages WHERE id = ?", (gone.id,))
    db.commit()
    db.close()
    assert _pieces_of(path, gone.id) == ["secret quokka"]
    with HistoryStore(path) as store:
        assert store.get_message(folded.id).content == "wombat words"  # type: ignore[union-attr]
        assert _pieces_of(path, folded.id) == [] and _pieces_of(path, gone.id) == []
        assert store.search("quokka") == []


def test_a_reused_id_never_inherits_a_deleted_replys_pieces(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        conv = store.create_conversation("t")
        gone = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(gone.id, "secret quokka ")
        # The row is deleted and the pieces are not (a crash between the two files' commits),
        # and this process goes on: the next message takes the same id.
        store._db.execute("DELETE FROM messages WHERE id = ?", (gone.id,))
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        assert reply.id == gone.id
        assert store.get_message(reply.id).content == ""  # type: ignore[union-attr]
        store.append_pieces(reply.id, "its own text")
        assert store.get_message(reply.id).content == "its own text"  # type: ignore[union-attr]
        assert store.search("quokka") == []


def _version_5_history(path: Path, pieces: list[str]) -> int:
    """A history as chatterm wrote it before the pieces file: one streamed reply in pieces."""
    db = old_history(path, 5)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(
        "INSERT INTO messages (id, conversation_id, role, content, status, created_at, pieces)"
        " VALUES (7, 'c', 'assistant', '', 'complete', 1, ?)",
        (len(pieces),),
    )
    for text in pieces:
        db.execute("INSERT INTO message_pieces (message_id, content) VALUES (7, ?)", (text,))
    db.close()
    return 7


def test_a_version_5_history_moves_its_pieces_into_the_pieces_file(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    message_id = _version_5_history(path, ["first ", "second ", "third pangolin"])
    with HistoryStore(path, readonly=True) as old:  # read as it is, without the upgrade
        assert old.get_message(message_id).content == "first second third pangolin"  # type: ignore[union-attr]
        assert [h.message_id for h in old.search("pangolin")] == [message_id]
    with HistoryStore(path) as store:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.get_message(message_id).content == "first second third pangolin"  # type: ignore[union-attr]
        assert [h.message_id for h in store.search("pangolin")] == [message_id]
    assert not {"message_pieces", "pieces_unindexed", "pieces_fts"} & _tables(path)
    assert _pieces_of(path, message_id) == ["first ", "second ", "third pangolin"]


def test_a_move_cut_short_by_a_crash_is_done_again_without_doubling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copied and committed, then killed before the old tables were dropped: the next open
    copies them again over the first copy."""
    path = tmp_path / "history.db"
    message_id = _version_5_history(path, ["alpha ", "beta"])

    class Crash(BaseException):
        pass

    original = HistoryStore._copy_pieces_out

    def copy_then_crash(self: HistoryStore) -> None:
        original(self)
        raise Crash

    monkeypatch.setattr(HistoryStore, "_copy_pieces_out", copy_then_crash)
    with pytest.raises(Crash):
        HistoryStore(path)
    assert _pieces_of(path, message_id) == ["alpha ", "beta"]
    monkeypatch.setattr(HistoryStore, "_copy_pieces_out", original)
    with HistoryStore(path) as store:
        assert store.get_message(message_id).content == "alpha beta"  # type: ignore[union-attr]
    assert _pieces_of(path, message_id) == ["alpha ", "beta"]


def _older_chatterm_between_copy_and_drop(
    monkeypatch: pytest.MonkeyPatch, path: Path, act: Callable[[sqlite3.Connection], object]
) -> list[int]:
    """Have ``act`` run once on a connection of its own (an older chatterm, writing the old
    tables) right after the pieces were copied; returns the copies made, one per call."""
    original = HistoryStore._copy_pieces_out
    calls: list[int] = []

    def copy_then_act(self: HistoryStore) -> None:
        original(self)
        if not calls:
            other = sqlite3.connect(path, isolation_level=None)
            act(other)
            other.close()
        calls.append(1)

    monkeypatch.setattr(HistoryStore, "_copy_pieces_out", copy_then_act)
    return calls


def test_a_piece_an_older_chatterm_writes_during_the_move_is_moved_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "history.db"
    message_id = _version_5_history(path, ["alpha "])

    def append_a_piece(other: sqlite3.Connection) -> None:
        other.execute(
            "INSERT INTO message_pieces (message_id, content) VALUES (?, 'late')", (message_id,)
        )

    calls = _older_chatterm_between_copy_and_drop(monkeypatch, path, append_a_piece)
    with HistoryStore(path) as store:
        assert store.get_message(message_id).content == "alpha late"  # type: ignore[union-attr]
    assert len(calls) == 2


def test_a_pieces_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    from chatterm.store import StoreError

    path = tmp_path / "history.db"
    other = sqlite3.connect(pieces_path(path))
    other.execute("CREATE TABLE accounts (x)")
    other.commit()
    other.close()
    with pytest.raises(StoreError, match="not a piece file"):
        HistoryStore(path)


# --- found in review: other processes deleting, folding, reusing ids; a crash journal -------


def test_a_new_reply_ended_before_any_piece_never_takes_strays_under_its_id(
    tmp_path: Path,
) -> None:
    """Strays under an id (a crash between the two files' commits) are not folded into the
    new reply that reuses the id when it ends without a piece of its own (an error at once)."""
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        conv = store.create_conversation("t")
        gone = store.add_message(conv.id, "assistant", "", status="streaming")
        store.append_pieces(gone.id, "SECRET words ")
        store._db.execute("DELETE FROM messages WHERE id = ?", (gone.id,))  # rows only
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        assert reply.id == gone.id
        store.update_message(reply.id, status="error", error="refused", pieces_chars=0)
        assert store.get_message(reply.id).content == ""  # type: ignore[union-attr]
        assert _pieces_of(path, reply.id) == []  # and the strays are gone


def test_a_writer_whose_reply_another_chatterm_deleted_stops_and_touches_no_other_reply(
    tmp_path: Path,
) -> None:
    from chatterm.store import StoreError

    path = tmp_path / "history.db"
    with HistoryStore(path) as writer, HistoryStore(path) as other:
        conv = writer.create_conversation("t")
        reply = writer.add_message(conv.id, "assistant", "", status="streaming")
        writer.append_pieces(reply.id, "SECRET-1 ")
        assert other.delete_conversation(conv.id)  # `sessions rm` in another process
        # Another process starts a reply that takes the id.
        conv2 = other.create_conversation("u")
        theirs = other.add_message(conv2.id, "assistant", "", status="streaming",
                                   writer="4242:1:boot")
        assert theirs.id == reply.id
        other.append_pieces(theirs.id, "B1 ")
        with pytest.raises(StoreError, match="deleted"):
            writer.append_pieces(reply.id, "SECRET-2 ")
        other.append_pieces(theirs.id, "B2")
        # Its ending (ChatSession passes its own writer) leaves the other reply alone.
        assert not writer.update_message(reply.id, status="complete", only_writer=writer_token())
        other.update_message(theirs.id, status="complete")
        assert other.get_message(theirs.id).content == "B1 B2"  # type: ignore[union-attr]


def test_a_reply_folded_by_another_chatterm_keeps_what_its_writer_adds_after(
    tmp_path: Path,
) -> None:
    """Another process took the live writer for dead and folded its reply into the row:
    the writer's next piece marks the reply again and is kept after the folded text."""
    path = tmp_path / "history.db"
    with HistoryStore(path) as writer, HistoryStore(path) as other:
        conv = writer.create_conversation("t")
        reply = writer.add_message(conv.id, "assistant", "", status="streaming")
        writer.append_pieces(reply.id, "first ")
        other.update_message(reply.id, status="interrupted", only_if_streaming=True)
        writer.append_pieces(reply.id, "second")
        writer.update_message(reply.id, status="complete")
    with HistoryStore(path) as store:
        assert store.get_message(reply.id).content == "first second"  # type: ignore[union-attr]


def test_a_read_only_open_never_reads_a_crash_journal_as_if_it_were_not_there(
    tmp_path: Path,
) -> None:
    """A pieces file copied mid-commit (its journal hot) in a writable folder: a read-only
    open refuses it (the next writer rolls the journal back) rather than read torn pages."""
    import shutil

    from chatterm.store import StoreError

    path = tmp_path / "a" / "history.db"
    with HistoryStore(path) as store:
        conv = store.create_conversation("t")
        reply = store.add_message(conv.id, "assistant", "", status="streaming")
        for i in range(30):
            store.append_pieces(reply.id, f"word{i} " * 2000)
    whole = "".join(f"word{i} " * 2000 for i in range(30))
    db = sqlite3.connect(pieces_path(path), isolation_level=None)
    db.execute("PRAGMA journal_mode = TRUNCATE")
    db.execute("PRAGMA cache_size = 1")  # pages spill to the file before the commit
    db.execute("BEGIN IMMEDIATE")
    db.execute("DELETE FROM message_pieces")
    copy = tmp_path / "b"
    shutil.copytree(path.parent, copy)  # as a crash would leave it
    db.execute("ROLLBACK")
    db.close()
    assert Path(f"{pieces_path(copy / 'history.db')}-journal").stat().st_size > 0
    try:
        with HistoryStore(copy / "history.db", readonly=True) as reader:
            assert reader.get_message(reply.id).content == whole  # type: ignore[union-attr]
    except StoreError:
        pass  # refused: fine, nothing torn was shown
    with HistoryStore(copy / "history.db") as store:  # a writer rolls the journal back
        assert store.get_message(reply.id).content == whole  # type: ignore[union-attr]
    with HistoryStore(copy / "history.db", readonly=True) as reader:
        assert reader.get_message(reply.id).content == whole  # type: ignore[union-attr]


def test_a_move_notices_other_pieces_with_the_same_count_and_last_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the copy and the drop an older chatterm folds reply 7 (its last piece goes)
    and streams reply 8, whose piece takes the freed id: same count, same last id."""
    path = tmp_path / "history.db"
    message_id = _version_5_history(path, ["alpha ", "beta"])

    def fold_7_then_stream_8(other: sqlite3.Connection) -> None:
        ids = [r[0] for r in other.execute("SELECT id FROM message_pieces ORDER BY id")]
        other.execute("DELETE FROM message_pieces WHERE message_id = 7")
        other.execute("UPDATE messages SET content = 'alpha beta', pieces = 0 WHERE id = 7")
        other.execute(
            "INSERT INTO messages (id, conversation_id, role, content, status, created_at,"
            " pieces) VALUES (8, 'c', 'assistant', '', 'complete', 3, 2)"
        )
        for piece_id, text in zip(ids, ("gamma ", "delta"), strict=True):
            other.execute(
                "INSERT INTO message_pieces (id, message_id, content) VALUES (?, 8, ?)",
                (piece_id, text),
            )

    calls = _older_chatterm_between_copy_and_drop(monkeypatch, path, fold_7_then_stream_8)
    with HistoryStore(path) as store:
        assert store.get_message(message_id).content == "alpha beta"  # type: ignore[union-attr]
        assert store.get_message(8).content == "gamma delta"  # type: ignore[union-attr]
    assert len(calls) == 2
