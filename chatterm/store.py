"""The history: one SQLite database shared by ``chatterm ask`` and the TUI.

Why it is shaped this way:

* WAL mode, a busy timeout and short ``BEGIN IMMEDIATE`` transactions let several chatterm
  processes write at once without losing anything.
* Schema changes are ordered migrations keyed on ``PRAGMA user_version``; a database written by
  a newer chatterm is refused instead of being silently damaged.
* Messages form a tree (``parent_id``) so editing a message branches instead of overwriting;
  a conversation remembers its active leaf. Reading one conversation touches only its rows
  (indexed by ``conversation_id``), never the whole history.
* API keys never reach this module: messages record backend, model and options only.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    # 1 -> 2: attachments (files and images sent with a message), stored once by content hash,
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
)

SCHEMA_VERSION = len(_MIGRATIONS)

# Message status values.
COMPLETE = "complete"
STREAMING = "streaming"
INTERRUPTED = "interrupted"
ERROR = "error"


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
class SearchHit:
    conversation_id: str
    conversation_title: str
    message_id: int
    role: str
    snippet: str
    created_at: float


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


_CONV_COLS = "id, title, system_prompt, options, active_leaf_id, created_at, updated_at"
_MSG_COLS = (
    "id, conversation_id, parent_id, role, content, reasoning, status, error, backend, model,"
    " options, prompt_tokens, completion_tokens, finish_reason, first_token_s, duration_s,"
    " created_at"
)


def _conversation(row: tuple[Any, ...]) -> Conversation:
    return Conversation(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])


def _message(row: tuple[Any, ...]) -> Message:
    values = list(row)
    values[10] = json.loads(values[10])
    return Message(*values)


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


def _tighten(path: Path) -> None:
    """Make the history and its WAL/SHM files user-only if they are readable by others."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
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
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {
        str(row[0])
        for row in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        if not str(row[0]).startswith(("sqlite_", "messages_fts"))
    }
    foreign = sorted(tables - _OUR_TABLES)
    if foreign and (version == 0 or not tables >= _OUR_TABLES):
        db.close()
        raise StoreError(
            f"{path} is not a chatterm history (it holds other tables: "
            f"{', '.join(foreign[:3])}); left untouched, point chatterm elsewhere"
        )


class HistoryStore:
    """All reads and writes of the history database. Not shared across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private = str(path) != ":memory:"
            if private:
                _create_private_file(path)
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            if private:  # before anything writes: WAL, migrations
                _refuse_foreign(self._db, path)
                _tighten(path)
            self._enable_wal()
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open history database {path}: {exc}") from exc

    # --- lifecycle ---------------------------------------------------------------------

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
        while version < SCHEMA_VERSION:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                current = self._db.execute("PRAGMA user_version").fetchone()[0]
                if current == version:
                    for statement in _split_sql(_MIGRATIONS[version]):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {version + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            version = self._db.execute("PRAGMA user_version").fetchone()[0]

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """One statement in its own short write transaction."""
        try:
            return self._db.execute(sql, tuple(params))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot write history database {self.path}: {exc}") from exc

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
        row = self._db.execute(
            f"SELECT {_CONV_COLS} FROM conversations WHERE id = ?", (conv_id,)
        ).fetchone()
        if row is None and conv_id:
            rows = self._db.execute(
                f"SELECT {_CONV_COLS} FROM conversations WHERE id >= ? AND id < ? LIMIT 2",
                (conv_id, conv_id + "\U0010ffff"),
            ).fetchall()
            if len(rows) > 1:
                raise StoreError(
                    f"conversation id {conv_id!r} is ambiguous; give more of it", exit_code=2
                )
            row = rows[0] if rows else None
        return _conversation(row) if row else None

    def latest_conversation(self) -> Conversation | None:
        row = self._db.execute(
            f"SELECT {_CONV_COLS} FROM conversations ORDER BY updated_at DESC LIMIT 1"
        ).fetchone()
        return _conversation(row) if row else None

    def list_conversations(self, limit: int = 50, offset: int = 0) -> list[Conversation]:
        rows = self._db.execute(
            f"SELECT {_CONV_COLS} FROM conversations ORDER BY updated_at DESC LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [_conversation(r) for r in rows]

    def count_conversations(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM conversations").fetchone()[0])

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

    def set_active_leaf(self, conv_id: str, message_id: int | None) -> None:
        self._write(
            "UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (message_id, conv_id)
        )

    def delete_conversation(self, conv_id: str) -> bool:
        self._write("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ?", (conv_id,))
            cur = self._db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))
            self._delete_unused_attachments()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return cur.rowcount > 0

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
    ) -> Message:
        """Append a message as a child of ``parent_id`` and make it the active leaf."""
        now = time.time()
        self._write("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, status,"
                " backend, model, options, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conv_id, parent_id, role, content, status, backend, model,
                    json.dumps(dict(options or {})), now,
                ),
            )
            message_id = int(cur.lastrowid or 0)
            self._db.execute(
                "UPDATE conversations SET active_leaf_id = ?, updated_at = ? WHERE id = ?",
                (message_id, now, conv_id),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return Message(
            message_id, conv_id, parent_id, role, content, "", status, None, backend, model,
            dict(options or {}), None, None, None, None, None, now,
        )

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
    ) -> None:
        """Record streaming progress or the outcome of a reply; None leaves a field as is."""
        fields = {
            "content": content, "reasoning": reasoning, "status": status, "error": error,
            "model": model, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "finish_reason": finish_reason,
            "first_token_s": first_token_s, "duration_s": duration_s,
        }
        sets = {k: v for k, v in fields.items() if v is not None}
        if not sets:
            return
        assignments = ", ".join(f"{k} = ?" for k in sets)
        self._write(
            f"UPDATE messages SET {assignments} WHERE id = ?", (*sets.values(), message_id)
        )

    def get_message(self, message_id: int) -> Message | None:
        row = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        return _message(row) if row else None

    def all_messages(self, conv_id: str) -> list[Message]:
        """Every message of a conversation, all branches, oldest first."""
        rows = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE conversation_id = ? ORDER BY id",
            (conv_id,),
        ).fetchall()
        return [_message(r) for r in rows]

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
        rows = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE parent_id = ? ORDER BY id", (message_id,)
        ).fetchall()
        return [_message(r) for r in rows]

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
        self._write("BEGIN IMMEDIATE")
        try:
            for position, item in enumerate(rows):
                data = bytes(item.data)
                digest = hashlib.sha256(data).hexdigest()
                self._db.execute(
                    "INSERT OR IGNORE INTO attachments (sha256, kind, mime, size, data, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (digest, item.kind, item.mime, len(data), data, now),
                )
                self._db.execute(
                    "INSERT INTO message_attachments (message_id, position, sha256, name)"
                    " VALUES (?, ?, ?, ?)",
                    (message_id, position, digest, item.name),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def attachments_for(self, message_ids: Iterable[int]) -> dict[int, list[StoredAttachment]]:
        """The attachments of each given message that has any, in the order they were sent."""
        ids = list(message_ids)
        found: dict[int, list[StoredAttachment]] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            batch = ids[start : start + 500]
            marks = ", ".join("?" * len(batch))
            rows = self._db.execute(
                "SELECT ma.message_id, ma.name, a.kind, a.mime, a.sha256, a.size, a.data"
                " FROM message_attachments ma JOIN attachments a ON a.sha256 = ma.sha256"
                f" WHERE ma.message_id IN ({marks}) ORDER BY ma.message_id, ma.position",
                batch,
            ).fetchall()
            for row in rows:
                found.setdefault(row[0], []).append(
                    StoredAttachment(row[1], row[2], row[3], row[4], row[5], bytes(row[6]))
                )
        return found

    def attachment_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM attachments").fetchone()[0])

    def _delete_unused_attachments(self) -> None:
        self._db.execute(
            "DELETE FROM attachments WHERE sha256 NOT IN"
            " (SELECT DISTINCT sha256 FROM message_attachments)"
        )

    # --- templates -----------------------------------------------------------------------

    def set_template(self, conv_id: str, template: str | None) -> None:
        """Record which ``[templates.NAME]`` started the conversation."""
        self._write("UPDATE conversations SET template = ? WHERE id = ?", (template, conv_id))

    def template_of(self, conv_id: str) -> str | None:
        row = self._db.execute(
            "SELECT template FROM conversations WHERE id = ?", (conv_id,)
        ).fetchone()
        return row[0] if row else None

    # --- search --------------------------------------------------------------------------

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Full-text search over message content; each word must appear (prefix match)."""
        query = _fts_query(text)
        if not query:
            return []
        rows = self._db.execute(
            "SELECT m.conversation_id, c.title, m.id, m.role,"
            " snippet(messages_fts, 0, '', '', '…', 12), m.created_at"
            " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
            (query, limit),
        ).fetchall()
        hits = [SearchHit(*row) for row in rows]
        if len(hits) < limit:
            hits += self._search_attachment_names(text, limit - len(hits))
        return hits

    def _search_attachment_names(self, text: str, limit: int) -> list[SearchHit]:
        """Messages whose attached file names contain every word (case-insensitive)."""
        words = text.split()
        if not words:
            return []
        where = " AND ".join("ma.name LIKE ? ESCAPE '\\'" for _ in words)
        params = [
            "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            for w in words
        ]
        rows = self._db.execute(
            "SELECT m.conversation_id, c.title, m.id, m.role, 'attached: ' || ma.name,"
            " m.created_at FROM message_attachments ma JOIN messages m ON m.id = ma.message_id"
            f" JOIN conversations c ON c.id = m.conversation_id WHERE {where}"
            " ORDER BY m.created_at DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [SearchHit(*row) for row in rows]


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
