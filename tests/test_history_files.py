"""The history file is private, and another application's database is left alone (real SQLite
files on disk, opened by HistoryStore and by the CLI)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from cli_run import assert_one_line_error, run_cli

from chatterm.paths import history_path
from chatterm.store import HistoryStore, StoreError


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_history_its_wal_shm_and_pieces_file_are_user_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "history.db"
    old = os.umask(0o022)
    try:
        with HistoryStore(path) as store:
            conv = store.create_conversation("t")
            store.add_message(conv.id, "user", "private words")
            reply = store.add_message(conv.id, "assistant", "", status="streaming")
            store.append_pieces(reply.id, "private reply")
            pieces = Path(f"{path}-pieces")
            for name in (
                path, Path(f"{path}-wal"), Path(f"{path}-shm"), pieces, Path(f"{pieces}-journal")
            ):
                assert name.exists() and _mode(name) == 0o600, name
    finally:
        os.umask(old)
    assert _mode(path.parent) == 0o700


def test_a_history_readable_by_others_is_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        store.create_conversation("t")
    os.chmod(path, 0o644)
    wal = Path(f"{path}-wal")
    wal.write_bytes(b"")
    os.chmod(wal, 0o666)
    with HistoryStore(path) as store:
        assert store.count_conversations() == 1
        assert _mode(path) == 0o600 and _mode(wal) == 0o600


def test_a_history_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        store.create_conversation("t")
    os.chmod(path, 0o644)
    before = path.read_bytes()
    owner = os.stat(path).st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)  # as if another user ran chatterm
    with pytest.raises(StoreError, match="belongs to another user"):
        HistoryStore(path)
    assert path.read_bytes() == before and _mode(path) == 0o644


def _foreign_database(path: Path, user_version: int = 0) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {user_version}")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users (name) VALUES ('ada')")
    db.commit()
    db.close()
    os.chmod(path, 0o644)
    return path.read_bytes()


@pytest.mark.parametrize("user_version", [0, 1, 7])
def test_another_applications_database_is_refused_untouched(
    tmp_path: Path, user_version: int
) -> None:
    path = tmp_path / "other.db"
    before = _foreign_database(path, user_version)
    with pytest.raises(StoreError, match="not a chatterm history") as caught:
        HistoryStore(path)
    assert "users" in caught.value.message and "\n" not in caught.value.message
    assert path.read_bytes() == before
    assert _mode(path) == 0o644  # not even its mode changed
    assert not Path(f"{path}-wal").exists()


def test_the_cli_refuses_a_foreign_history_with_one_line() -> None:
    path = history_path()
    before = _foreign_database(path)
    result = run_cli("sessions", "list")
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert "not a chatterm history" in result.stderr
    assert path.read_bytes() == before


def test_an_empty_file_and_a_chatterm_history_are_accepted(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with HistoryStore(empty) as store:
        store.create_conversation("first")
    with HistoryStore(empty) as store:  # our own schema: opened again without complaint
        assert store.count_conversations() == 1


def test_a_history_with_an_extra_table_of_the_users_is_still_ours(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        store.create_conversation("t")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE my_notes (x TEXT)")
    db.close()
    with HistoryStore(path) as store:
        assert store.count_conversations() == 1
