"""The history: one SQLite database shared by ``chatterm ask`` and the TUI.

Why it is shaped this way:

* WAL mode, a busy timeout and short ``BEGIN IMMEDIATE`` transactions let several chatterm
  processes write at once without losing anything.
* Schema changes are ordered migrations keyed on ``PRAGMA user_version``; a database written by
  a newer chatterm is refused instead of being silently damaged.
* Messages form a tree (``parent_id``) so editing a message branches instead of overwriting;
  a conversation remembers its active leaf. Reading one conversation touches only its rows
  (indexed by ``conversation_id``), never the whole history.
* A streaming reply is written as appended pieces (``message_pieces``), so one flush costs the
  size of what is new, never of the whole reply, and ending a reply rewrites nothing. Readers
  join a reply's pieces. A piece is indexed for search (``pieces_fts``) once, not while it
  streams: the next search indexes what is pending first (an ordinary reply is folded into
  its row when it ends and indexed there instead).
* The pieces live in a second file beside the history (``history.db-pieces``, attached as
  ``pieces``) kept in rollback-journal mode: a WAL writes every page twice (the log, then the
  database at each checkpoint, syncing both), while pages appended past the end of a
  rollback-journal database are not journaled, so a 100 MB reply's bytes are written once.
  SQLite commits attached files one by one, so no transaction relies on both committing
  together: a reply is marked as having pieces (``messages.pieces``) before its first piece
  is written, folded into its row before its pieces are deleted, and pieces that no longer
  belong to a marked reply are never read, folded or found, and are removed when a history
  is opened. A piece is written only while its reply still exists with the writer it had
  (another process may delete a conversation, and its ids are reused).
* Every streaming row records its writer (pid, process start time, boot id). Any chatterm that
  opens the history marks the rows of writers that are gone (kill -9, OOM, power loss) as
  interrupted, and never touches the rows of live ones (a reused pid has another start time).
* Storage faults (disk full, I/O error, read-only files, a damaged page) become one line that
  names the file and what to do; a read-only history still opens for reading.
* API keys never reach this module: messages record backend, model and options only, and a
  conversation's route (backend, profile, base URL without user info, model) never a key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatterm.snippets import Snippet, SnippetMaker
from urllib.parse import quote

_MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        system_prompt TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        active_leaf_id INTEGER,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX conversations_by_update ON conversations(updated_at DESC);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        reasoning TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'complete',
        error TEXT,
        backend TEXT,
        model TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        finish_reason TEXT,
        first_token_s REAL,
        duration_s REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='id', tokenize='unicode61'
    );
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    """,
    # 1 -> 2: a streamed reply is stored as the pieces it was flushed in, each indexed for
    # search once, as it is written (nothing is rewritten or re-indexed when the reply grows
    # or ends; search looks up each word on its own, so the index needs no positions:
    # detail='column' halves its cost); writers are recorded so dead ones can be found;
    # conversations remember where they were answered.
    """
    CREATE TABLE message_pieces (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        content TEXT NOT NULL DEFAULT '',
        reasoning TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX message_pieces_by_message ON message_pieces(message_id, id);
    CREATE VIRTUAL TABLE pieces_fts USING fts5(
        content, content='message_pieces', content_rowid='id', tokenize='unicode61',
        detail='column'
    );
    CREATE TRIGGER message_pieces_ai AFTER INSERT ON message_pieces BEGIN
        INSERT INTO pieces_fts(rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER message_pieces_ad AFTER DELETE ON message_pieces BEGIN
        INSERT INTO pieces_fts(pieces_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END;
    ALTER TABLE messages ADD COLUMN pieces INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN writer TEXT;
    ALTER TABLE conversations ADD COLUMN route TEXT;
    CREATE INDEX messages_streaming ON messages(id) WHERE status = 'streaming';
    """,
    # 2 -> 3: attachments (files and images sent with a message), stored once by content hash,
    # and the template a conversation was started from.
    """
    CREATE TABLE attachments (
        sha256 TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        mime TEXT NOT NULL,
        size INTEGER NOT NULL,
        data BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE message_attachments (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        sha256 TEXT NOT NULL REFERENCES attachments(sha256),
        name TEXT NOT NULL,
        PRIMARY KEY (message_id, position)
    );
    CREATE INDEX message_attachments_by_hash ON message_attachments(sha256);
    CREATE INDEX message_attachments_by_name ON message_attachments(name);
    ALTER TABLE conversations ADD COLUMN template TEXT;
    """,
    # 3 -> 4: a streamed piece is no longer indexed as it is written (indexing 100 MB cost a
    # third of writing it, on the writer's critical path); it is listed in pieces_unindexed and
    # indexed once, when the history is next searched (HistoryStore.index_pending). A piece
    # folded into its row at the end of an ordinary reply is never indexed as a piece at all.
    # Only pieces that were indexed are removed from the index when they are deleted.
    """
    DROP TRIGGER message_pieces_ai;
    DROP TRIGGER message_pieces_ad;
    CREATE TABLE pieces_unindexed (piece_id INTEGER PRIMARY KEY);
    CREATE TRIGGER message_pieces_ai AFTER INSERT ON message_pieces BEGIN
        INSERT OR REPLACE INTO pieces_unindexed(piece_id) VALUES (new.id);
    END;
    CREATE TRIGGER message_pieces_ad AFTER DELETE ON message_pieces BEGIN
        INSERT INTO pieces_fts(pieces_fts, rowid, content) SELECT 'delete', old.id, old.content
            WHERE NOT EXISTS (SELECT 1 FROM pieces_unindexed WHERE piece_id = old.id);
        DELETE FROM pieces_unindexed WHERE piece_id = old.id;
    END;
    """,
    # 4 -> 5: prefix indexes for 1- to 4-character prefixes on the messages' index. Every
    # search word is a prefix query, and without them FTS5 merges one list per distinct word
    # that starts with it: "tok" over one reply of 40,000 distinct words starting with "tok"
    # took 21 ms in FTS5 alone (the TUI searches at every keystroke, from one letter on).
    # With them a query word of up to 4 characters reads one list whatever it expands to.
    # They cost indexing time (a 20 KB message ~2.3 -> ~6 ms) and index size (~3.5x); the
    # pieces' index, which a search catches up on all at once, is left without them. FTS5
    # cannot add the option to a table, so the index is made again from the messages.
    """
    DROP TRIGGER messages_ai;
    DROP TRIGGER messages_ad;
    DROP TRIGGER messages_au;
    DROP TABLE messages_fts;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='id', tokenize='unicode61',
        prefix='1 2 3 4'
    );
    INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    """,
    # 5 -> 6: the pieces move to their own rollback-journal file (see the module docstring);
    # HistoryStore._copy_pieces_out copies them there, in a transaction committed before
    # this one.
    """
    DROP TRIGGER message_pieces_ai;
    DROP TRIGGER message_pieces_ad;
    DROP TABLE pieces_fts;
    DROP TABLE pieces_unindexed;
    DROP TABLE message_pieces;
    """,
)

# The pieces file's schema (its own ``user_version``: 1). Piece ids are kept when pieces move
# in from an older history, so they stay in order; a moved piece is listed as not indexed yet.
# No foreign key: the messages are in the other file (see ``_remove_stray_pieces``).
_PIECES_SCHEMA = """
    CREATE TABLE pieces.message_pieces (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL,
        content TEXT NOT NULL DEFAULT '',
        reasoning TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX pieces.message_pieces_by_message ON message_pieces(message_id, id);
    CREATE VIRTUAL TABLE pieces.pieces_fts USING fts5(
        content, content='message_pieces', content_rowid='id', tokenize='unicode61',
        detail='column'
    );
    CREATE TABLE pieces.pieces_unindexed (piece_id INTEGER PRIMARY KEY);
    CREATE TRIGGER pieces.message_pieces_ai AFTER INSERT ON message_pieces BEGIN
        INSERT OR REPLACE INTO pieces_unindexed(piece_id) VALUES (new.id);
    END;
    CREATE TRIGGER pieces.message_pieces_ad AFTER DELETE ON message_pieces BEGIN
        INSERT INTO pieces_fts(pieces_fts, rowid, content) SELECT 'delete', old.id, old.content
            WHERE NOT EXISTS (SELECT 1 FROM pieces_unindexed WHERE piece_id = old.id);
        DELETE FROM pieces_unindexed WHERE piece_id = old.id;
    END;
"""
PIECES_VERSION = 1

# The schema whose migration moves the pieces out of the history's own file.
_PIECES_MOVED_AT = 5

# How much piece text one indexing transaction takes at most, so that a search catching up on
# a huge reply never holds the write lock for long (a streaming writer waits for it).
INDEX_BATCH_CHARS = 8 << 20

# The schema version is the number of migrations: adding one is appending one entry above.
SCHEMA_VERSION = len(_MIGRATIONS)

# The oldest schema a read-only history may have and still be read without migrating: what
# came after it changes no table or column this code reads (migration 5 only remade the
# search index with prefix indexes, so such a history is searched the slower way).
READABLE_FROM = 4

# Message status values.
COMPLETE = "complete"
STREAMING = "streaming"
INTERRUPTED = "interrupted"
ERROR = "error"

# What a reply whose process died is marked with, for `sessions show` and the TUI.
ORPHANED = "the process ended before the reply finished"

# A streamed reply up to this many characters is joined into its row when it ends; a bigger
# one stays in its pieces (joining it would cost its whole size once more, at the end).
FOLD_LIMIT = 1 << 20

# The page size of a new history (existing ones keep theirs).
PAGE_SIZE = 16384

# The keys a conversation's route may hold: where it was answered, never a secret.
ROUTE_KEYS = ("backend", "profile", "base_url", "model")


class StoreError(Exception):
    """The history cannot be used; ``message`` is one line for the user."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    title: str
    system_prompt: str | None
    options: dict[str, Any]
    active_leaf_id: int | None
    created_at: float
    updated_at: float
    # Where the last reply came from (see ROUTE_KEYS), so a continuation goes back there.
    route: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: str
    parent_id: int | None
    role: str
    content: str
    reasoning: str
    status: str
    error: str | None
    backend: str | None
    model: str | None
    options: dict[str, Any]
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    first_token_s: float | None
    duration_s: float | None
    created_at: float


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A conversation as a list shows it: with the model that last answered and its size."""

    conversation: Conversation
    last_model: str | None
    message_count: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    conversation_id: str
    conversation_title: str
    message_id: int
    role: str
    snippet: str
    created_at: float
    # Where the query's words are in ``snippet``: (start, end) character offsets, for UIs to
    # highlight (the snippet is untrusted text: sanitise each piece before showing it).
    matches: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class StoredAttachment:
    """A file or image as kept with a message: the name it was sent under and its bytes."""

    name: str
    kind: str  # "text" or "image"
    mime: str
    sha256: str
    size: int
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


_CONV_COLS = "id, title, system_prompt, options, active_leaf_id, created_at, updated_at, route"
_MSG_COLS = (
    "id, conversation_id, parent_id, role, content, reasoning, status, error, backend, model,"
    " options, prompt_tokens, completion_tokens, finish_reason, first_token_s, duration_s,"
    " created_at, pieces"
)
def _conversation(row: tuple[Any, ...]) -> Conversation:
    route = json.loads(row[7]) if row[7] else None
    return Conversation(
        row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6],
        route if isinstance(route, dict) else None,
    )


def title_from_prompt(prompt: str, limit: int = 60) -> str:
    """First non-empty line of the prompt, shortened: what users recognise in a list."""
    for line in prompt.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return "(empty)"


def _create_private_file(path: Path) -> None:
    """The history holds conversations: created user-only (0600), tightened if it is wider.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode, so they follow;
    existing ones are tightened too. A history owned by another user is refused: chatterm
    would be writing someone else's file (or reading a planted one).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise StoreError(
            f"history database {path} belongs to another user; refusing to use it "
            "(set XDG_DATA_HOME or move the file)"
        )


def pieces_path(path: Path) -> Path:
    """The file beside the history that holds streamed replies' pieces."""
    return Path(f"{path}-pieces")


def _tighten(path: Path) -> None:
    """Make the history and its WAL/SHM files user-only if they are readable by others."""
    pieces = pieces_path(path)
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), pieces, Path(f"{pieces}-journal")):
        try:
            mode = name.stat().st_mode
            if mode & 0o077:
                os.chmod(name, mode & 0o700)
        except FileNotFoundError:
            continue


_OUR_TABLES = frozenset(["conversations", "messages"])


def _refuse_foreign(db: sqlite3.Connection, path: Path) -> None:
    """A database with tables but no chatterm schema is another application's: leave it be.

    Foreign means: tables that are not ours, and either no chatterm schema version (0) or our
    tables missing (another application may set ``user_version`` too).
    """
    # One read transaction: another chatterm creating this history at the same moment
    # commits its migrations one by one, and a version read before them with tables read
    # after them looked like another application's database.
    db.execute("BEGIN")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            str(row[0])
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
            )
            if not str(row[0]).startswith(("sqlite_", "messages_fts"))
        }
    finally:
        db.execute("COMMIT")
    foreign = sorted(tables - _OUR_TABLES)
    if foreign and (version == 0 or not tables >= _OUR_TABLES):
        db.close()
        raise StoreError(
            f"{path} is not a chatterm history (it holds other tables: "
            f"{', '.join(foreign[:3])}); left untouched, point chatterm elsewhere"
        )


# --- writers -------------------------------------------------------------------------------
# A streaming row names its writer as "pid:start:boot". The start time (clock ticks after boot,
# field 22 of /proc/<pid>/stat) tells a reused pid from the original, and the boot id tells a
# pid from before a reboot (power loss) from one after it.


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None where there is no such entry."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = data.rpartition(")")[2].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


_BOOT_ID: str | None = None


def _boot_id() -> str:
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
                _BOOT_ID = handle.read().strip()
        except OSError:
            _BOOT_ID = ""
    return _BOOT_ID


def writer_token(pid: int | None = None) -> str:
    """How a streaming row names the process writing it."""
    pid = os.getpid() if pid is None else pid
    stat = _proc_stat(pid)
    return f"{pid}:{stat[1] if stat else ''}:{_boot_id()}"


def writer_alive(token: str | None) -> bool:
    """Whether the process a streaming row names is still running (and is the same process)."""
    if not token:
        return False  # written before writers were recorded: no process can still own it
    pid_text, _, rest = token.partition(":")
    start, _, boot = rest.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if boot and _boot_id() and boot != _boot_id():
        return False
    stat = _proc_stat(pid)
    if stat is not None:
        state, started = stat
        return state not in ("Z", "X") and (not start or started == start)
    if start and os.path.isdir("/proc/self"):
        return False  # /proc works here and has no such process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _permission_problem(exc: BaseException) -> bool:
    """An error that a read-only file or folder causes (and that read-only access avoids)."""
    if isinstance(exc, PermissionError):
        return True
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc).lower()
    return (
        name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"))
        or "readonly" in text
        or "unable to open" in text
    )


class HistoryStore:
    """All reads and writes of the history database. Not shared across threads.

    ``readonly`` opens for reading only; a history that cannot be written (read-only file or
    folder) is also opened that way, and then :attr:`readonly` is True and writes fail with a
    one-line :class:`StoreError`.
    """

    # Replies this connection marked as having pieces, with the writer their row recorded.
    _marked: dict[int, str | None]

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._pending_indexed = False  # whether temp.pieces_pending_fts exists
        self._marked = {}
        memory = str(path) == ":memory:"
        try:
            if readonly:
                self._db = self._connect_readonly()
            else:
                try:
                    if not memory:
                        _create_private_file(path)
                    self._db = self._connect_writable()
                except (sqlite3.OperationalError, PermissionError) as exc:
                    if memory or not _permission_problem(exc) or not path.exists():
                        raise
                    self._db = self._connect_readonly()
                    self.readonly = True
            self._migrate()
            if not self.readonly:
                self.repair_orphans()
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc, "open") from exc
        except OSError as exc:
            raise StoreError(
                f"cannot open history database {path}: {exc.strerror or exc}; "
                "check that its folder exists and is writable"
            ) from exc

    def _connect_writable(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db = db
        self._marked = {}
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            if str(self.path) != ":memory:":  # before anything writes: WAL, migrations
                _refuse_foreign(db, self.path)
                _tighten(self.path)
                if os.path.getsize(self.path) == 0:
                    # A new history: 16 KiB pages. Replies are long text; bigger pages mean
                    # shorter overflow chains, and writing a big reply costs ~25 % less.
                    db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            self._enable_wal()
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            self._attach_pieces(writable=True)
        except BaseException:
            db.close()
            raise
        return db

    def _attach_pieces(self, *, writable: bool) -> None:
        """Attach the pieces file as ``pieces`` (see the module docstring). Its journal mode
        is not stored in the file: every connection sets it. FULL sync, as a rollback journal
        needs to survive power loss (WAL's NORMAL is as safe there)."""
        db = self._db
        if str(self.path) == ":memory:":
            db.execute("ATTACH DATABASE ':memory:' AS pieces")
            return
        path = pieces_path(self.path)
        if writable:
            _create_private_file(path)
            created = os.path.getsize(path) == 0
            db.execute("ATTACH DATABASE ? AS pieces", (str(path),))
            if created:
                db.execute(f"PRAGMA pieces.page_size = {PAGE_SIZE}")
            db.execute("PRAGMA pieces.journal_mode = TRUNCATE")
            db.execute("PRAGMA pieces.synchronous = FULL")
            return
        if not path.exists():
            # Nothing streamed was kept (or the history predates the file): an empty stand-in.
            db.execute("ATTACH DATABASE ':memory:' AS pieces")
            self._create_pieces_schema()
            return
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        for suffix in ("", "&immutable=1"):
            try:
                db.execute("ATTACH DATABASE ? AS pieces", (uri + suffix,))
                db.execute("SELECT count(*) FROM pieces.sqlite_master").fetchone()
                return
            except sqlite3.OperationalError as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("DETACH DATABASE pieces")
                # A journal left by a crash cannot be rolled back in a read-only folder; the
                # file is then read as it is (nobody can write there either). Anywhere else
                # the error stands: the next writer rolls the journal back.
                if suffix or not _cannot_open_index(exc) or os.access(path.parent, os.W_OK):
                    raise

    def _create_pieces_schema(self) -> None:
        for statement in _split_sql(_PIECES_SCHEMA):
            self._db.execute(statement)
        self._db.execute(f"PRAGMA pieces.user_version = {PIECES_VERSION}")

    def _migrate_pieces(self) -> None:
        """Give a new pieces file its schema; refuse one that is not ours or is newer."""
        db = self._db
        if db.execute("PRAGMA pieces.user_version").fetchone()[0] == PIECES_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA pieces.user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM pieces.sqlite_master").fetchone()[0]
            if version > PIECES_VERSION or (version == 0 and tables):
                raise StoreError(
                    f"{pieces_path(self.path)} is not a piece file this chatterm can use "
                    f"(schema {version}, tables {tables}); upgrade chatterm or move the file"
                )
            if version < PIECES_VERSION:
                self._create_pieces_schema()
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _connect_readonly(self) -> sqlite3.Connection:
        """Read-only access; in a read-only folder the WAL index cannot be created, so the file
        is then read as immutable (nobody can write there either)."""
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        for suffix in ("", "&immutable=1"):
            db = sqlite3.connect(uri + suffix, uri=True, timeout=30.0, isolation_level=None)
            try:
                db.execute("PRAGMA busy_timeout = 30000")
                db.execute("PRAGMA user_version").fetchone()
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                _refuse_foreign(db, self.path)
                self._db = db
                self._attach_pieces(writable=False)
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                # Only a history that cannot be opened for its WAL index (a read-only folder)
                # is read as immutable: anything else (busy, locked) would read it without
                # its WAL, that is, without what was written last.
                if suffix or not _cannot_open_index(exc):
                    raise
        raise AssertionError("unreachable")

    # --- lifecycle ---------------------------------------------------------------------

    def set_progress_check(self, stop: Callable[[], bool] | None, every: int = 1000) -> None:
        """Have SQLite call ``stop`` every ``every`` steps of a statement and abandon the
        statement when it returns True (it then fails as interrupted: a :class:`StoreError`).
        For a caller that must be able to give up a long read, e.g. a search made stale by a
        newer keystroke. None removes the check. Call it on the connection's own thread."""
        self._db.set_progress_handler(None if stop is None else lambda: int(stop()), every)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enable_wal(self) -> None:
        """Switch to WAL once. The switch needs an exclusive lock and SQLite does not apply the
        busy timeout to it, so two processes creating the database at once retry here."""
        deadline = time.monotonic() + 30.0
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal" and str(self.path) != ":memory:":
                    self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"history database {self.path} was written by a newer chatterm (schema "
                f"{version}, this one knows {SCHEMA_VERSION}); upgrade chatterm to use it"
            )
        if version < SCHEMA_VERSION and self.readonly:
            if version >= READABLE_FROM:
                return  # nothing this version reads is missing there: read it as it is
            if version == 0 and not self._db.execute(
                "SELECT count(*) FROM sqlite_master"
            ).fetchone()[0]:
                raise StoreError(f"no history yet at {self.path}, and it cannot be created there")
            raise StoreError(
                f"history database {self.path} needs an upgrade but is read-only: make it and "
                "its folder writable once"
            )
        if self.readonly:
            return
        self._migrate_pieces()
        while version < SCHEMA_VERSION:
            if version == _PIECES_MOVED_AT:
                # Pieces move out in a transaction committed before the one that drops them.
                self._copy_pieces_out()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                current = self._db.execute("PRAGMA user_version").fetchone()[0]
                if current == version == _PIECES_MOVED_AT and not self._all_moved():
                    self._db.execute("ROLLBACK")  # an older chatterm wrote since: copy again
                    continue
                if current == version:
                    for statement in _split_sql(_MIGRATIONS[version]):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {version + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            version = self._db.execute("PRAGMA user_version").fetchone()[0]

    def _has_old_pieces(self) -> bool:
        """Whether the history's own file still has the pieces table (schema 5 and older)."""
        return self._db.execute(
            "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'message_pieces'"
        ).fetchone() is not None

    def _all_moved(self) -> bool:
        """Whether every piece still in the history's own file is in the pieces file under
        the same id and reply (an older chatterm may have folded a reply and written new
        pieces since the copy: the same count and last id, other pieces)."""
        if not self._has_old_pieces():
            return True
        missing = self._db.execute(
            "SELECT 1 FROM main.message_pieces m LEFT JOIN pieces.message_pieces p"
            " ON p.id = m.id AND p.message_id = m.message_id WHERE p.id IS NULL LIMIT 1"
        ).fetchone()
        return missing is None

    def _copy_pieces_out(self) -> None:
        """Copy the pieces of an older history into the pieces file, ids kept, each listed as
        not indexed yet (the next search indexes them there), and commit. Run again after a
        crash, it copies them again."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._has_old_pieces():
                db.execute(
                    "DELETE FROM pieces.message_pieces WHERE id IN"
                    " (SELECT id FROM main.message_pieces)"
                )
                db.execute(
                    "INSERT INTO pieces.message_pieces (id, message_id, content, reasoning)"
                    " SELECT id, message_id, content, reasoning FROM main.message_pieces"
                    " ORDER BY id"
                )
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _pieces_schema(self) -> str:
        """Where the pieces are: their own file, or (a read-only history too old to have been
        migrated) the history's."""
        return "main" if self._has_old_pieces() else "pieces"

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it does on a full disk)."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _explain(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """One line naming the file, what went wrong and what to do about it."""
        name = str(getattr(exc, "sqlite_errorname", "") or "")
        text = " ".join(str(exc).split())
        lower = text.lower()
        path = self.path
        if name.startswith("SQLITE_FULL") or "disk is full" in lower:
            reason = "the disk is full; free some space (or use -n to ask without saving)"
        elif name.startswith("SQLITE_READONLY") or "readonly" in lower:
            reason = (
                "it is read-only; make it and its folder writable (or use -n to ask "
                "without saving)"
            )
        elif name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or (
            "malformed" in lower or "not a database" in lower
        ):
            reason = (
                f"the file is damaged ({text}); recover what it holds with "
                f"`sqlite3 {path} .recover > recovered.sql` (see sqlite3 history.db .recover)"
            )
        elif name.startswith("SQLITE_IOERR") or "i/o error" in lower:
            detail = "" if lower == "disk i/o error" else f" ({text})"
            reason = (
                f"disk I/O error{detail}; check the disk and its free space, then retry (or "
                "use -n to ask without saving)"
            )
        elif name.startswith("SQLITE_CANTOPEN") or "unable to open" in lower:
            reason = "the file cannot be opened; check that it and its folder are accessible"
        elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in lower:
            reason = "another chatterm process held it locked too long; retry"
        else:
            reason = text
        return StoreError(f"cannot {doing} history database {path}: {reason}")

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """One statement in its own short write transaction."""
        self._check_writable()
        try:
            return self._db.execute(sql, tuple(params))
        except sqlite3.DatabaseError as exc:
            self._rollback()
            raise self._explain(exc, "write") from exc

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc, "read") from exc

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(
                f"cannot write history database {self.path}: it is read-only; make it and its "
                "folder writable (or use -n to ask without saving)"
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A short ``BEGIN IMMEDIATE`` transaction; storage errors become one-line errors."""
        self._check_writable()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc, "write") from exc

    # --- conversations -------------------------------------------------------------------

    def create_conversation(
        self,
        title: str,
        system_prompt: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Conversation:
        now = time.time()
        conv_id = secrets.token_hex(6)
        self._write(
            "INSERT INTO conversations (id, title, system_prompt, options, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (conv_id, title, system_prompt, json.dumps(dict(options or {})), now, now),
        )
        return Conversation(conv_id, title, system_prompt, dict(options or {}), None, now, now)

    def get_conversation(self, conv_id: str) -> Conversation | None:
        """Look up by full id or by a unique prefix (users type short ids)."""
        rows = self._read(f"SELECT {_CONV_COLS} FROM conversations WHERE id = ?", (conv_id,))
        row = rows[0] if rows else None
        if row is None and conv_id:
            rows = self._read(
                f"SELECT {_CONV_COLS} FROM conversations WHERE id >= ? AND id < ? LIMIT 2",
                (conv_id, conv_id + "\U0010ffff"),
            )
            if len(rows) > 1:
                raise StoreError(
                    f"conversation id {conv_id!r} is ambiguous; give more of it", exit_code=2
                )
            row = rows[0] if rows else None
        return _conversation(row) if row else None

    def latest_conversation(self) -> Conversation | None:
        rows = self._read(
            f"SELECT {_CONV_COLS} FROM conversations ORDER BY updated_at DESC LIMIT 1"
        )
        return _conversation(rows[0]) if rows else None

    def list_conversations(self, limit: int = 50, offset: int = 0) -> list[Conversation]:
        rows = self._read(
            f"SELECT {_CONV_COLS} FROM conversations ORDER BY updated_at DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_conversation(r) for r in rows]

    def count_conversations(self) -> int:
        return int(self._read("SELECT count(*) FROM conversations")[0][0])

    def rename_conversation(self, conv_id: str, title: str) -> None:
        self._write("UPDATE conversations SET title = ? WHERE id = ?", (title, conv_id))

    def update_conversation_settings(
        self,
        conv_id: str,
        *,
        system_prompt: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if system_prompt is not None:
            self._write(
                "UPDATE conversations SET system_prompt = ? WHERE id = ?",
                (system_prompt or None, conv_id),
            )
        if options is not None:
            self._write(
                "UPDATE conversations SET options = ? WHERE id = ?",
                (json.dumps(dict(options)), conv_id),
            )

    def set_route(self, conv_id: str, route: Mapping[str, Any]) -> None:
        """Remember where the conversation was last answered (only the keys in ROUTE_KEYS)."""
        kept = {k: route.get(k) for k in ROUTE_KEYS if route.get(k) is not None}
        self._write(
            "UPDATE conversations SET route = ? WHERE id = ?", (json.dumps(kept), conv_id)
        )

    def set_active_leaf(self, conv_id: str, message_id: int | None) -> None:
        self._write(
            "UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (message_id, conv_id)
        )

    def delete_conversation(self, conv_id: str) -> bool:
        with self._transaction() as db:
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM messages WHERE conversation_id = ?", (conv_id,)
                )
            ]
            db.execute("DELETE FROM messages WHERE conversation_id = ?", (conv_id,))
            cur = db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))
            db.execute(  # attachments no other conversation uses go with it
                "DELETE FROM attachments WHERE sha256 NOT IN"
                " (SELECT DISTINCT sha256 FROM message_attachments)"
            )
        # Then the replies' pieces, in the other file (a crash in between leaves pieces that
        # belong to no reply: never read, never found, removed at the next open).
        self._delete_pieces(ids)
        return cur.rowcount > 0

    def _delete_pieces(self, message_ids: Iterable[int]) -> None:
        """Delete the pieces of these replies, unless one is marked as having pieces again by
        the time this transaction holds the lock (its id reused by a new streaming reply)."""
        ids = list(message_ids)
        if not ids:
            return
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM message_pieces WHERE message_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM messages WHERE id = ? AND pieces != 0)",
                [(i, i) for i in ids],
            )

    # --- messages ------------------------------------------------------------------------

    def add_message(
        self,
        conv_id: str,
        role: str,
        content: str,
        *,
        parent_id: int | None = None,
        status: str = COMPLETE,
        backend: str | None = None,
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        writer: str | None = None,
    ) -> Message:
        """Append a message as a child of ``parent_id`` and make it the active leaf.

        A ``streaming`` message records its writer (this process unless ``writer`` says
        otherwise), so that it can be marked interrupted should the process die.
        """
        now = time.time()
        if status == STREAMING and writer is None:
            writer = writer_token()
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, status,"
                " backend, model, options, created_at, writer)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conv_id, parent_id, role, content, status, backend, model,
                    json.dumps(dict(options or {})), now, writer,
                ),
            )
            message_id = int(cur.lastrowid or 0)
            db.execute(
                "UPDATE conversations SET active_leaf_id = ?, updated_at = ? WHERE id = ?",
                (message_id, now, conv_id),
            )
        self._marked.pop(message_id, None)  # a new row, whatever an old one of that id had
        return Message(
            message_id, conv_id, parent_id, role, content, "", status, None, backend, model,
            dict(options or {}), None, None, None, None, None, now,
        )

    def append_pieces(self, message_id: int, content: str, reasoning: str = "") -> None:
        """Add what streamed since the last flush to a reply (indexed for search later, see
        :meth:`index_pending`).

        The cost is that of the new text only; the reply's text is the join of its pieces.
        """
        if not content and not reasoning:
            return
        for _ in range(2):
            if message_id not in self._marked:
                self._mark_pieces(message_id)
            with self._transaction() as db:  # writes the pieces file only
                # Checked under the lock: another chatterm may have deleted the reply (its id
                # may then belong to a new one) or folded it into its row, unmarking it.
                row = db.execute(
                    "SELECT pieces, writer FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
                if row is None or row[1] != self._marked[message_id]:
                    raise self._reply_gone()
                if row[0]:
                    db.execute(
                        "INSERT INTO message_pieces (message_id, content, reasoning)"
                        " VALUES (?, ?, ?)",
                        (message_id, content, reasoning),
                    )
                    return
            del self._marked[message_id]  # folded meanwhile: mark it again, then write
        raise StoreError(f"cannot write history database {self.path}: the reply keeps changing")

    def _mark_pieces(self, message_id: int) -> None:
        """Mark a reply as having pieces, committed before its first piece is written (the two
        files commit separately). A reply not marked yet has no pieces of its own: any found
        under its id are strays of a deleted reply whose id it reuses, and go first."""
        rows = self._read("SELECT pieces, writer FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise self._reply_gone()
        if not rows[0][0]:
            if self._read(
                "SELECT 1 FROM message_pieces WHERE message_id = ? LIMIT 1", (message_id,)
            ):
                self._delete_pieces([message_id])
            self._write("UPDATE messages SET pieces = 1 WHERE id = ?", (message_id,))
        self._marked[message_id] = rows[0][1]

    def _reply_gone(self) -> StoreError:
        return StoreError(
            f"cannot write history database {self.path}: the reply being written was deleted "
            "(by another chatterm?)"
        )

    def piece_writer(
        self,
        message_id: int,
        source: PieceSource,
        interval: float,
        pending: Callable[[], int] | None = None,
    ) -> PieceWriter:
        """What writes a streaming reply (see :class:`PieceWriter`)."""
        return PieceWriter(self, message_id, source, interval, pending)

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        reasoning: str | None = None,
        status: str | None = None,
        error: str | None = None,
        model: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        finish_reason: str | None = None,
        first_token_s: float | None = None,
        duration_s: float | None = None,
        only_if_streaming: bool = False,
        pieces_chars: int | None = None,
        only_writer: str | None = None,
    ) -> bool:
        """Record the outcome of a reply; None leaves a field as is.

        ``content`` (or ``reasoning``) given replaces the text, pieces included.
        ``only_if_streaming`` changes nothing unless the row is still streaming; ``only_writer``
        nothing unless the row records that writer (a reply deleted by another process while
        this one wrote it may have left its id to someone else's message).
        ``pieces_chars``: how many characters the reply's pieces hold, from the writer that
        wrote them all (else they are measured, which reads the first MB of them). Returns
        whether a row was changed.
        """
        fields = {
            "content": content, "reasoning": reasoning, "status": status, "error": error,
            "model": model, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "finish_reason": finish_reason,
            "first_token_s": first_token_s, "duration_s": duration_s,
        }
        sets = {k: v for k, v in fields.items() if v is not None}
        replace = content is not None or reasoning is not None
        if not sets:
            return False
        assignments = [f"{k} = ?" for k in sets]
        finishing = status is not None and status != STREAMING
        if finishing and not replace and not (
            pieces_chars > FOLD_LIMIT
            if pieces_chars is not None
            else self._pieces_exceed(message_id, FOLD_LIMIT)
        ):
            # A reply of ordinary size ends up whole in its row, as every other message is
            # (cheap: at most FOLD_LIMIT characters); a big one stays in its pieces.
            replace = True
        if replace:
            # The pieces hold both texts: keep the one not replaced by folding it in.
            for column, given in (("content", content), ("reasoning", reasoning)):
                if given is None:
                    # Only a marked reply's: pieces under an unmarked id are strays (below).
                    assignments.append(
                        f"{column} = {column} || CASE WHEN pieces = 0 THEN '' ELSE"
                        f" coalesce((SELECT group_concat({column}, '') FROM (SELECT {column}"
                        " FROM message_pieces WHERE message_id = messages.id ORDER BY id)), '')"
                        " END"
                    )
            assignments.append("pieces = 0")
        where = " AND status = 'streaming'" if only_if_streaming else ""
        if only_writer is not None:
            where += " AND writer = ?"
        with self._transaction() as db:
            cur = db.execute(
                f"UPDATE messages SET {', '.join(assignments)} WHERE id = ?{where}",
                (*sets.values(), message_id, *(() if only_writer is None else (only_writer,))),
            )
            changed = cur.rowcount > 0
        if changed and replace:
            # Folded and committed first; its pieces are then no longer read. Should deleting
            # them fail, the next open removes them (the reply itself is saved).
            self._marked.pop(message_id, None)
            with contextlib.suppress(StoreError):
                self._delete_pieces([message_id])
        return changed

    def _pieces_exceed(self, message_id: int, limit: int) -> bool:
        """Whether a reply's pieces hold more than ``limit`` characters. Stops at the first
        piece past the limit: length() of a text reads all of it, and summing a 100 MB
        reply's pieces cost 0.17 s at its end."""
        try:
            cursor = self._db.execute(
                "SELECT length(content) + length(reasoning) FROM message_pieces"
                " WHERE message_id = ? ORDER BY id",
                (message_id,),
            )
            total = 0
            for (size,) in cursor:
                total += size
                if total > limit:
                    cursor.close()
                    return True
            return False
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc, "read") from exc

    def repair_orphans(self) -> list[int]:
        """Mark replies whose writing process is gone as interrupted; return their ids.

        Rows of live writers (this process or another chatterm) are left alone. Best effort:
        a history that cannot be written right now is repaired by a later run.
        """
        with contextlib.suppress(StoreError):
            self._remove_stray_pieces()
        try:
            rows = self._read("SELECT id, writer FROM messages WHERE status = 'streaming'")
        except StoreError:
            return []
        repaired: list[int] = []
        for message_id, writer in rows:
            if writer_alive(writer):
                continue
            try:
                if self.update_message(
                    message_id, status=INTERRUPTED, error=ORPHANED, only_if_streaming=True
                ):
                    repaired.append(message_id)
            except StoreError:
                break
        return repaired

    def _remove_stray_pieces(self) -> None:
        """Delete pieces no marked reply owns: left by a crash between the two files' commits
        (a reply folded or deleted, its pieces not yet). Reads only the pieces' index."""
        owners = [row[0] for row in self._read("SELECT DISTINCT message_id FROM message_pieces")]
        stray = [
            message_id
            for message_id in owners
            if not self._read(
                "SELECT 1 FROM messages WHERE id = ? AND pieces != 0", (message_id,)
            )
        ]
        self._delete_pieces(stray)

    def _load(self, rows: list[tuple[Any, ...]]) -> list[Message]:
        """Messages from rows; a streamed reply's text is the join of its pieces."""
        messages = []
        for row in rows:
            values = list(row)
            pieces = values.pop()
            values[10] = json.loads(values[10])
            if pieces:
                found = self._read(
                    "SELECT content, reasoning FROM message_pieces WHERE message_id = ?"
                    " ORDER BY id",
                    (values[0],),
                )
                if found:
                    values[4] += "".join(p[0] for p in found)
                    values[5] += "".join(p[1] for p in found)
            messages.append(Message(*values))
        return messages

    def get_message(self, message_id: int) -> Message | None:
        rows = self._read(f"SELECT {_MSG_COLS} FROM messages WHERE id = ?", (message_id,))
        return self._load(rows)[0] if rows else None

    def all_messages(self, conv_id: str) -> list[Message]:
        """Every message of a conversation, all branches, oldest first."""
        return self._load(
            self._read(
                f"SELECT {_MSG_COLS} FROM messages WHERE conversation_id = ? ORDER BY id",
                (conv_id,),
            )
        )

    def branch(self, conv_id: str, leaf_id: int | None = None) -> list[Message]:
        """The messages from the root to ``leaf_id`` (default: the active leaf), in order."""
        if leaf_id is None:
            conv = self.get_conversation(conv_id)
            if conv is None:
                return []
            leaf_id = conv.active_leaf_id
        if leaf_id is None:
            return []
        by_id = {m.id: m for m in self.all_messages(conv_id)}
        path: list[Message] = []
        current = by_id.get(leaf_id)
        while current is not None:
            path.append(current)
            current = by_id.get(current.parent_id) if current.parent_id is not None else None
        path.reverse()
        return path

    def children(self, message_id: int) -> list[Message]:
        return self._load(
            self._read(
                f"SELECT {_MSG_COLS} FROM messages WHERE parent_id = ? ORDER BY id",
                (message_id,),
            )
        )

    # --- summaries for lists (the TUI's sidebar, its model dialog, its prompt history) ----

    def conversation_summaries(
        self, limit: int = 100, offset: int = 0, title_filter: str = ""
    ) -> list[ConversationSummary]:
        """Conversations newest first, each with its last model and message count.

        ``title_filter`` keeps the titles that contain it (case-insensitive). Each row costs
        two index lookups, so a page of a 10,000-conversation history stays a millisecond job.
        """
        where = ""
        params: list[object] = [limit, offset]
        if title_filter.strip():
            escaped = title_filter.strip().replace("\\", "\\\\")
            escaped = escaped.replace("%", "\\%").replace("_", "\\_")
            where = "WHERE c.title LIKE ? ESCAPE '\\'"
            params = [f"%{escaped}%", limit, offset]
        rows = self._db.execute(
            f"SELECT {', '.join('c.' + c.strip() for c in _CONV_COLS.split(','))},"
            " (SELECT m.model FROM messages m WHERE m.conversation_id = c.id"
            "  AND m.role = 'assistant' ORDER BY m.id DESC LIMIT 1),"
            " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)"
            f" FROM conversations c {where} ORDER BY c.updated_at DESC LIMIT ? OFFSET ?",
            params,
        ).fetchall()
        n = len(_CONV_COLS.split(","))
        return [ConversationSummary(_conversation(r[:n]), r[n], int(r[n + 1])) for r in rows]

    def count_matching(self, title_filter: str) -> int:
        """How many conversations :meth:`conversation_summaries` would list for the filter."""
        if not title_filter.strip():
            return self.count_conversations()
        escaped = title_filter.strip().replace("\\", "\\\\")
        escaped = escaped.replace("%", "\\%").replace("_", "\\_")
        row = self._db.execute(
            "SELECT count(*) FROM conversations WHERE title LIKE ? ESCAPE '\\'",
            (f"%{escaped}%",),
        ).fetchone()
        return int(row[0])

    def recent_models(self, limit: int = 10) -> list[tuple[str, str]]:
        """(backend, model) pairs that wrote replies, most recently used first."""
        rows = self._db.execute(
            "SELECT backend, model, max(id) AS last FROM messages"
            " WHERE role = 'assistant' AND backend IS NOT NULL AND model IS NOT NULL"
            " GROUP BY backend, model ORDER BY last DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def recent_prompts(self, limit: int = 200) -> list[str]:
        """The user's latest prompts across every conversation, oldest first (for ↑)."""
        rows = self._db.execute(
            "SELECT content FROM messages WHERE role = 'user' ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [r[0] for r in reversed(rows)]

    # --- attachments ---------------------------------------------------------------------

    def add_attachments(self, message_id: int, items: Iterable[Any]) -> None:
        """Link files/images (``name``, ``kind``, ``mime``, ``data``) to a message, in order.

        Content is stored once per sha256: the same file sent twice, or in two conversations,
        is one row, and :meth:`delete_conversation` removes it when nothing uses it any more.
        """
        rows = list(items)
        if not rows:
            return
        now = time.time()
        with self._transaction() as db:
            for position, item in enumerate(rows):
                data = bytes(item.data)
                digest = hashlib.sha256(data).hexdigest()
                db.execute(
                    "INSERT OR IGNORE INTO attachments (sha256, kind, mime, size, data, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (digest, item.kind, item.mime, len(data), data, now),
                )
                db.execute(
                    "INSERT INTO message_attachments (message_id, position, sha256, name)"
                    " VALUES (?, ?, ?, ?)",
                    (message_id, position, digest, item.name),
                )

    def attachments_for(self, message_ids: Iterable[int]) -> dict[int, list[StoredAttachment]]:
        """The attachments of each given message that has any, in the order they were sent."""
        ids = list(message_ids)
        found: dict[int, list[StoredAttachment]] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            batch = ids[start : start + 500]
            marks = ", ".join("?" * len(batch))
            rows = self._read(
                "SELECT ma.message_id, ma.name, a.kind, a.mime, a.sha256, a.size, a.data"
                " FROM message_attachments ma JOIN attachments a ON a.sha256 = ma.sha256"
                f" WHERE ma.message_id IN ({marks}) ORDER BY ma.message_id, ma.position",
                batch,
            )
            for row in rows:
                found.setdefault(row[0], []).append(
                    StoredAttachment(row[1], row[2], row[3], row[4], row[5], bytes(row[6]))
                )
        return found

    def attachment_count(self) -> int:
        return int(self._read("SELECT count(*) FROM attachments")[0][0])

    # --- templates -----------------------------------------------------------------------

    def set_template(self, conv_id: str, template: str | None) -> None:
        """Record which ``[templates.NAME]`` started the conversation."""
        self._write("UPDATE conversations SET template = ? WHERE id = ?", (template, conv_id))

    def template_of(self, conv_id: str) -> str | None:
        rows = self._read("SELECT template FROM conversations WHERE id = ?", (conv_id,))
        return rows[0][0] if rows else None

    # --- search --------------------------------------------------------------------------

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search over message content; each word must appear (prefix match).

        FTS5 finds and ranks the hits; each hit's snippet is made from a bounded window of its
        text (:mod:`chatterm.snippets`), so the time does not grow with the size of a message
        or the number of its matches, and no message is read whole.
        """
        query = _fts_query(text)
        if not query:
            return []
        self._index_pending_quietly()
        rows = self._read(
            "SELECT m.id, m.conversation_id, c.title, m.role, m.created_at"
            " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
            (query, limit),
        )
        from chatterm.snippets import SnippetMaker

        maker = SnippetMaker(self._db, "messages", "content", "unicode61")
        snippets = self._snippets(maker, [row[0] for row in rows], text.split())
        hits = []
        for message_id, conv_id, title, role, created_at in rows:
            snip = snippets.get(message_id)
            hits.append(
                SearchHit(
                    conv_id, title, message_id, role, snip.text if snip else "", created_at,
                    snip.matches if snip else (),
                )
            )
        if len(hits) < limit:
            hits += self._piece_hits(text.split(), limit - len(hits))
        if len(hits) < limit:
            hits += self._attachment_hits(text.split(), limit - len(hits))
        return hits

    def index_pending(self) -> int:
        """Index every streamed piece not yet indexed; return how many were.

        Each piece is indexed once: it leaves ``pieces_unindexed`` in the transaction that
        indexes it, so a second caller (another process searching at the same moment) finds
        nothing left to do. Transactions hold at most ``INDEX_BATCH_CHARS`` of text, so a
        streaming writer is never kept waiting long; the cost is linear in what was pending.
        """
        done = 0
        while True:
            with self._transaction() as db:
                rows = db.execute(
                    "SELECT u.piece_id, coalesce(length(p.content), 0) FROM pieces_unindexed u"
                    " LEFT JOIN message_pieces p ON p.id = u.piece_id ORDER BY u.piece_id"
                    " LIMIT 256"
                ).fetchall()
                if not rows:
                    return done
                size = 0
                for piece_id, length in rows:
                    if size and size + length > INDEX_BATCH_CHARS:
                        break
                    size += length
                    db.execute(
                        "INSERT INTO pieces_fts(rowid, content)"
                        " SELECT id, content FROM message_pieces WHERE id = ?",
                        (piece_id,),
                    )
                    db.execute("DELETE FROM pieces_unindexed WHERE piece_id = ?", (piece_id,))
                    done += 1

    def _index_pending_quietly(self) -> None:
        """Catch the index up before a search. A history that cannot be written now (read-only,
        locked, disk full) is searched as it is, and the pieces still pending are found
        through a private index of this connection (see :meth:`_pending_index`)."""
        if self.readonly:
            return
        with contextlib.suppress(StoreError):
            self.index_pending()

    def _pending_index(self) -> bool:
        """Index the pieces the history lists as pending in a temporary full-text index of
        this connection (``temp.pieces_pending_fts``), when they cannot be indexed in the
        history itself; return whether it holds any.

        The temporary database is private and writable even when the history is opened
        read-only, the tokenizer and options are those of ``pieces_fts`` (so both find the
        same words), and the index is contentless (the text stays in ``message_pieces``).
        Each piece is indexed once per connection (the TUI's searches reuse it): the cost is
        that of the pending text, the same as :meth:`index_pending` pays to index it for good.
        """
        try:
            if not self._db.execute("SELECT 1 FROM pieces_unindexed LIMIT 1").fetchone():
                return False  # what was pending has been indexed in the history since
            if not self._pending_indexed:
                self._db.execute(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.pieces_pending_fts USING fts5("
                    "content, content='', tokenize='unicode61', detail='column')"
                )
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS temp.pieces_pending_done"
                    " (piece_id INTEGER PRIMARY KEY)"
                )
                self._pending_indexed = True
            self._db.execute("SAVEPOINT chatterm_pending")
            try:
                self._db.execute(
                    "INSERT INTO temp.pieces_pending_fts(rowid, content)"
                    " SELECT p.id, p.content FROM pieces_unindexed u"
                    " JOIN message_pieces p ON p.id = u.piece_id"
                    " WHERE u.piece_id NOT IN (SELECT piece_id FROM temp.pieces_pending_done)"
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO temp.pieces_pending_done(piece_id)"
                    " SELECT piece_id FROM pieces_unindexed"
                )
                self._db.execute("RELEASE chatterm_pending")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK TO chatterm_pending")
                    self._db.execute("RELEASE chatterm_pending")
                raise
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc, "read") from exc
        return True

    def _attachment_hits(self, words: list[str], limit: int) -> list[SearchHit]:
        """Messages whose attached file names contain every word (case-insensitive)."""
        if not words:
            return []
        where = " AND ".join("ma.name LIKE ? ESCAPE '\\'" for _ in words)
        params = [
            "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            for w in words
        ]
        rows = self._read(
            "SELECT m.conversation_id, c.title, m.id, m.role, 'attached: ' || ma.name,"
            " m.created_at FROM message_attachments ma JOIN messages m ON m.id = ma.message_id"
            f" JOIN conversations c ON c.id = m.conversation_id WHERE {where}"
            " ORDER BY m.created_at DESC LIMIT ?",
            (*params, limit),
        )
        return [SearchHit(*row) for row in rows]

    def _piece_hits(self, words: list[str], limit: int) -> list[SearchHit]:
        """Streamed replies, whose text is in pieces: each word must appear in some piece of
        the same reply (a flush never cuts a word, see chatterm.chat)."""
        # A word such as app.py or shared_notes is several index tokens, i.e. a phrase, which
        # a detail='column' index refuses: look its tokens up one by one instead.
        words = [token for word in words for token in re.findall(r"[^\W_]+", word)]
        # The history's own index, and the pieces it has not indexed yet (a read-only or
        # locked history, which this search could not catch up).
        indexes = ["pieces_fts"] + (["pieces_pending_fts"] if self._pending_index() else [])
        # One query per word gives the replies holding it and, for each, the first piece that
        # does: the first piece holding any word is the least of those (each lookup expands
        # the word's prefix over the whole index once, never once per reply).
        found: set[int] | None = None
        firsts_any: dict[int, int] = {}
        for word in words:
            query = _fts_query(word)
            if not query:
                continue
            first: dict[int, int] = {}
            for index in indexes:
                for message_id, piece_id in self._read(
                    f"SELECT p.message_id, min(p.id) FROM {index}"
                    f" JOIN message_pieces p ON p.id = {index}.rowid"
                    " JOIN messages m ON m.id = p.message_id AND m.pieces != 0"
                    f" WHERE {index} MATCH ? GROUP BY p.message_id",
                    (query,),
                ):
                    first[message_id] = min(piece_id, first.get(message_id, piece_id))
            found = set(first) if found is None else found & set(first)
            if not found:
                return []
            for message_id, piece_id in first.items():
                firsts_any[message_id] = min(piece_id, firsts_any.get(message_id, piece_id))
        # A snippet made from a bounded window of each reply's first matching piece (FTS5's
        # snippet() over a whole piece took tens of seconds).
        from chatterm.snippets import SnippetMaker

        hits: list[SearchHit] = []
        firsts = {m: firsts_any[m] for m in sorted(found or (), reverse=True)[:limit]}
        maker = SnippetMaker(
            self._db, "message_pieces", "content", "unicode61", schema=self._pieces_schema()
        )
        snippets = self._snippets(maker, list(firsts.values()), words)
        for message_id, piece_id in firsts.items():
            rows = self._read(
                "SELECT m.conversation_id, c.title, m.role, m.created_at FROM messages m"
                " JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?",
                (message_id,),
            )
            snip = snippets.get(piece_id)
            for conv_id, title, role, created_at in rows:
                hits.append(
                    SearchHit(
                        conv_id, title, message_id, role, snip.text if snip else "", created_at,
                        snip.matches if snip else (),
                    )
                )
        return hits

    def _snippets(
        self, maker: SnippetMaker, rowids: list[int], words: list[str]
    ) -> dict[int, Snippet]:
        """Snippets for hits; a storage fault is one line, as for every read."""
        try:
            return maker.make(rowids, words)
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc, "read") from exc


PieceSource = Callable[[bool], tuple[str, str] | None]

# How often a threaded writer looks at how much is pending, and how much makes it write at once
# instead of at its interval: a fast stream (100 MB in a fraction of a second) is then written,
# and its WAL checkpoints synced, while it streams, not all after it ended.
EAGER_POLL_S = 0.05
EAGER_CHARS = 2 << 20


class PieceWriter:
    """Writes a streaming reply's pieces, in order, taking them from ``source`` as they come.

    ``source(final)`` returns the next (text, reasoning) piece to write, or None when there is
    nothing new. For a file, a thread with its own connection pulls every ``interval`` seconds
    (and at the end): SQLite releases the GIL while it writes and syncs, so a fast stream is
    not held up by its own history, and only one piece is in flight at a time. Given
    ``pending`` (how many characters are waiting), the thread also looks every
    ``EAGER_POLL_S`` and writes as soon as ``EAGER_CHARS`` are waiting, so the history keeps
    pace with a fast stream. For ``:memory:`` the caller runs :meth:`poll` on its own timer.
    :meth:`finish` writes the rest and raises the storage error, if a write failed (nothing
    after it is written).
    """

    def __init__(
        self,
        store: HistoryStore,
        message_id: int,
        source: PieceSource,
        interval: float,
        pending: Callable[[], int] | None = None,
    ) -> None:
        self._store = store
        self._message_id = message_id
        self._source = source
        self._interval = interval
        self._pending = pending
        self.error: StoreError | None = None
        self.threaded = str(store.path) != ":memory:"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.threaded:
            self._thread = threading.Thread(
                target=self._run, name="chatterm-history-writer", daemon=True
            )
            self._thread.start()

    def poll(self, final: bool = False) -> None:
        """Write what is new (the unthreaded case: on the caller's timer)."""
        if self.error is not None:
            return
        try:
            self._drain(self._store, final)
        except StoreError as exc:
            self.error = exc

    def stop_and_wait(self) -> None:
        """Have the thread write the rest and end, and wait for it (no error raised: that is
        :meth:`finish`'s). Run off the event loop (``asyncio.to_thread``): a fast 20 MB reply
        leaves the writer a few hundred milliseconds behind, which the loop must not wait."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join()

    def finish(self) -> None:
        """Write the rest, stop, and raise the first storage error if there was one."""
        if self._thread is not None:
            self.stop_and_wait()
            self._thread = None
        else:
            self.poll(final=True)
        if self.error is not None:
            raise self.error

    def _drain(self, store: HistoryStore, final: bool, eager: bool = False) -> None:
        """Write what is new; ``eager`` (written early, before the interval ended): only while
        a piece's worth is waiting, so a fast stream is written in big pieces, not many small
        transactions."""
        while True:
            piece = self._source(final)
            if piece is None:
                return
            store.append_pieces(self._message_id, *piece)
            if eager and self._pending is not None and self._pending() < EAGER_CHARS:
                return

    def _run(self) -> None:
        writer: HistoryStore | None = None
        pending = self._pending
        step = self._interval if pending is None else min(EAGER_POLL_S, self._interval)
        due = time.monotonic() + self._interval
        try:
            while True:
                # Never past ``due``: what streamed is written at least every ``interval``.
                stopping = self._stop.wait(max(0.0, min(step, due - time.monotonic())))
                early = not stopping and pending is not None and time.monotonic() < due
                if early and pending is not None and pending() < EAGER_CHARS:
                    continue  # not due yet, and not enough waiting to write early
                if self.error is None:
                    if writer is None:
                        writer = HistoryStore.__new__(HistoryStore)
                        writer.path = self._store.path
                        writer.readonly = self._store.readonly
                        writer._db = writer._connect_writable()
                    self._drain(writer, stopping, eager=early)
                if not early:
                    due = time.monotonic() + self._interval
                if stopping:
                    return
        except StoreError as exc:
            self.error = exc
        except sqlite3.Error as exc:
            self.error = self._store._explain(exc, "write")
        except BaseException as exc:  # never die silently: the reply would look saved
            self.error = StoreError(f"cannot write history database {self._store.path}: {exc}")
        finally:
            if writer is not None:
                writer.close()
            if self.error is not None:
                self._stop.wait()  # keep the error for finish(); write nothing more


def _cannot_open_index(exc: sqlite3.OperationalError) -> bool:
    """The error SQLite gives when a read-only folder keeps it from the WAL index."""
    text = str(exc).lower()
    return "unable to open" in text or "readonly" in text or "read-only" in text


def _fts_query(text: str) -> str:
    """Quote every word so user text is never parsed as FTS syntax."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"*' for w in words if w)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    current: list[str] = []
    in_trigger = False
    for line in script.strip().splitlines():
        current.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            in_trigger = True
        if (in_trigger and stripped == "END;") or (not in_trigger and stripped.endswith(";")):
            statements.append("\n".join(current))
            current = []
            in_trigger = False
    if any(s.strip() for s in current):
        statements.append("\n".join(current))
    return statements
