"""Why the pieces have a rollback-journal file of their own: 100 MB appended to SQLite as 25
pieces of 4 MB, in WAL mode against rollback-journal modes, on the same disk, interleaved.

    python bench/bench_pieces_journal.py              # 5 rounds, in the system's temp folder
    BENCH_HISTORY_DIR=/dev/shm python bench/bench_pieces_journal.py

Each round makes a fresh file per mode (16 KiB pages, as chatterm's), times the 25 commits
and the close (which runs WAL's last checkpoint), and deletes it. WAL writes each page twice
(the log, then the database at each checkpoint, syncing both); a rollback journal saves only
the pages a transaction changes, and pages appended past the end of the file are not
journaled. Printed: median (min-max) seconds per mode.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import tempfile
import time

PIECE = ("lorem ipsum dolor sit amet " * 160_000)[: 4 << 20]
MODES = (("WAL", "NORMAL"), ("TRUNCATE", "FULL"), ("DELETE", "FULL"), ("PERSIST", "FULL"))


def once(journal: str, synchronous: str, folder: str | None) -> float:
    where = tempfile.mkdtemp(dir=folder)
    try:
        db = sqlite3.connect(os.path.join(where, "pieces.db"), isolation_level=None)
        db.execute("PRAGMA page_size = 16384")
        db.execute(f"PRAGMA journal_mode = {journal}")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute("CREATE TABLE pieces (id INTEGER PRIMARY KEY, message_id INTEGER, content TEXT)")
        db.execute("CREATE INDEX pieces_by_message ON pieces(message_id, id)")
        start = time.perf_counter()
        for _ in range(25):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO pieces (message_id, content) VALUES (1, ?)", (PIECE,))
            db.execute("COMMIT")
        db.close()
        return time.perf_counter() - start
    finally:
        shutil.rmtree(where, ignore_errors=True)


def main() -> None:
    rounds = int(os.environ.get("BENCH_REPEATS", "5"))
    folder = os.environ.get("BENCH_HISTORY_DIR") or None
    times: dict[str, list[float]] = {f"{j} / synchronous {s}": [] for j, s in MODES}
    for _ in range(rounds):
        for journal, synchronous in MODES:
            times[f"{journal} / synchronous {synchronous}"].append(once(journal, synchronous, folder))
    print(f"100 MB as 25 pieces of 4 MB; median (min-max) of {rounds} interleaved rounds; "
          f"in {folder or tempfile.gettempdir()}")
    for mode, values in times.items():
        print(f"| {mode} | {statistics.median(values):.3f} s "
              f"({min(values):.3f}-{max(values):.3f}) |")


if __name__ == "__main__":
    main()
