"""A big reply streamed into the history: `chatterm ask` against a bare httpx client, same run.

    python bench/bench_history.py           # prints a table, writes bench/out/history.json
    BENCH_MB=20 BENCH_REPEATS=3 python bench/bench_history.py
    BENCH_COMPARE=/tmp/old python bench/bench_history.py   # also `ask` from another checkout
    BENCH_HISTORY_DIR=/dev/shm python bench/bench_history.py   # the history in memory

The suite's loopback server (tests/openai_server.py, scenario ``big:MB:KB``) sends MB megabytes
of text as one SSE event per KB-kilobyte piece, as fast as the socket takes them. Timed as whole
processes writing to /dev/null, interleaved: (a) a bare httpx loop that parses the SSE and
writes the text (with the same TLS set-up as chatterm: no CA bundle for an http:// URL) and
(b) `chatterm ask` with the history on (what streamed is appended as pieces on a writer thread,
indexed for search later, by the next search) and (c) `chatterm ask -n` (no history: the stream path
alone). Peak RSS is the child's own (``wait4``), compared with the
reply's size. Targets (issue 9): time ratio <= 1.3, peak RSS <= 3x the reply.
After each chatterm run the script checks that the stored reply is complete and whole.
CPU time (user + sys, all threads) is reported too: on a shared machine it moves less than the
wall-clock time. ``BENCH_COMPARE=DIR`` (a checkout of another commit, e.g. made with ``git
archive``) runs that checkout's `ask` in each round as well, so a change is measured against
what it replaced in the same run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from bench_common import BARE_LOOP, compile_sources  # noqa: E402  (bench/ is the script's folder)

sys.path.insert(0, str(ROOT / "tests"))

from openai_server import OpenAIServer, big_text  # noqa: E402

from chatterm.store import pieces_path  # noqa: E402

# Where the histories are made (``BENCH_HISTORY_DIR=/dev/shm``: in memory, to see what the
# disk's share of the time is); the system's temporary folder by default.
HISTORY_DIR = os.environ.get("BENCH_HISTORY_DIR") or None


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """(seconds, peak RSS in bytes, CPU seconds: user + sys, all threads) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed: {err[-500:]}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def check_history(home: str, expected: int) -> None:
    path = Path(home) / "chatterm" / "history.db"
    db = sqlite3.connect(path)
    try:
        pieces = pieces_path(path)  # where the pieces are since schema 6
        if pieces.exists():
            db.execute("ATTACH DATABASE ? AS pieces", (str(pieces),))
        message_id, status = db.execute(
            "SELECT id, status FROM messages WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        (length,) = db.execute(
            "SELECT sum(length(content)) FROM message_pieces WHERE message_id = ?", (message_id,)
        ).fetchone()
    finally:
        db.close()
    if (length, status) != (expected, "complete"):
        raise SystemExit(f"history holds {length} of {expected} chars, {status}")


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    compile_sources()
    repeats = int(os.environ.get("BENCH_REPEATS", "5"))
    megabytes = int(os.environ.get("BENCH_MB", "100"))
    kilobytes = int(os.environ.get("BENCH_KB", "64"))
    model = f"big:{megabytes}:{kilobytes}"
    expected = big_text(megabytes, kilobytes)
    bare_s: list[float] = []
    ask_s: list[float] = []
    nolog_s: list[float] = []
    bare_rss: list[float] = []
    ask_rss: list[float] = []
    bare_cpu: list[float] = []
    ask_cpu: list[float] = []
    nolog_cpu: list[float] = []
    compare = os.environ.get("BENCH_COMPARE")
    other_s: list[float] = []
    other_cpu: list[float] = []
    load_before = os.getloadavg()[0]
    with OpenAIServer() as server:
        for _ in range(repeats):
            home = tempfile.mkdtemp(prefix="chatterm-bench-history-", dir=HISTORY_DIR)
            env = dict(
                os.environ, XDG_DATA_HOME=home, XDG_CONFIG_HOME=home, XDG_STATE_HOME=home,
                OPENAI_BASE_URL=server.base_url, NO_PROXY="127.0.0.1",
                # This checkout's chatterm and backends, whatever is installed.
                PYTHONPATH=os.pathsep.join(
                    str(ROOT / part) for part in ("", "backends", "themes")
                ),
            )
            seconds, rss, cpu = run(
                [sys.executable, "-c", BARE_LOOP, server.base_url, model], env
            )
            bare_s.append(seconds)
            bare_rss.append(rss)
            bare_cpu.append(cpu)
            seconds, rss, cpu = run(
                [sys.executable, "-m", "chatterm", "ask", "-m", model, "go"], env
            )
            check_history(home, expected)
            ask_s.append(seconds)
            ask_rss.append(rss)
            ask_cpu.append(cpu)
            # The same without the history: what the stream path alone costs.
            seconds, _, cpu = run(
                [sys.executable, "-m", "chatterm", "ask", "-n", "-m", model, "go"], env
            )
            nolog_s.append(seconds)
            nolog_cpu.append(cpu)
            if compare:
                other = tempfile.mkdtemp(prefix="chatterm-bench-history-", dir=HISTORY_DIR)
                seconds, _, cpu = run(
                    [sys.executable, "-m", "chatterm", "ask", "-m", model, "go"],
                    dict(
                        env, XDG_DATA_HOME=other, XDG_CONFIG_HOME=other, XDG_STATE_HOME=other,
                        PYTHONPATH=os.pathsep.join(
                            str(Path(compare) / part) for part in ("", "backends", "themes")
                        ),
                    ),
                )
                check_history(other, expected)
                other_s.append(seconds)
                other_cpu.append(cpu)
    ratios = [a / b for a, b in zip(ask_s, bare_s, strict=True)]
    result: dict[str, Any] = {
        "python": sys.version.split()[0],
        "repeats": repeats,
        "reply_bytes": expected,
        "piece_bytes": kilobytes * 1024,
        "bare_httpx_s": spread(bare_s),
        "chatterm_s": spread(ask_s),
        "ratio": spread(ratios),
        "chatterm_no_log_s": spread(nolog_s),
        "no_log_ratio": spread([a / b for a, b in zip(nolog_s, bare_s, strict=True)]),
        "bare_peak_rss_mb": spread([r / 2**20 for r in bare_rss]),
        "chatterm_peak_rss_mb": spread([r / 2**20 for r in ask_rss]),
        "chatterm_rss_over_reply": spread([r / expected for r in ask_rss]),
        "bare_httpx_cpu_s": spread(bare_cpu),
        "chatterm_cpu_s": spread(ask_cpu),
        "chatterm_no_log_cpu_s": spread(nolog_cpu),
        # The machine may be shared: its 1-minute load average before and after the runs.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if compare:
        result["compare"] = {
            "tree": compare,
            "chatterm_s": spread(other_s),
            "ratio": spread([a / b for a, b in zip(other_s, bare_s, strict=True)]),
            "chatterm_cpu_s": spread(other_cpu),
        }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(result, indent=2))

    def cell(d: dict[str, float], fmt: str) -> str:
        return f"{d['median']:{fmt}} ({d['min']:{fmt}}–{d['max']:{fmt}})"

    print(f"{megabytes} MB reply in {kilobytes} KB pieces, history on; median (min–max) of "
          f"{repeats} interleaved runs; load average {result['load_average'][0]} before, "
          f"{result['load_average'][1]} after; histories in {HISTORY_DIR or tempfile.gettempdir()}")
    print("| measure | bare httpx | chatterm ask | target |")
    print("|---|---:|---:|---:|")
    print(f"| time (s) | {cell(result['bare_httpx_s'], '.2f')} | "
          f"{cell(result['chatterm_s'], '.2f')} | |")
    print(f"| ratio | | **{cell(result['ratio'], '.2f')}×** | ≤ 1.3× |")
    print(f"| `ask -n` (no history): time (s); ratio | | "
          f"{cell(result['chatterm_no_log_s'], '.2f')}; {cell(result['no_log_ratio'], '.2f')}× | |")
    print(f"| CPU, user + sys (s); `ask -n` | {cell(result['bare_httpx_cpu_s'], '.2f')} | "
          f"{cell(result['chatterm_cpu_s'], '.2f')}; "
          f"{cell(result['chatterm_no_log_cpu_s'], '.2f')} | |")
    print(f"| peak RSS (MB) | {cell(result['bare_peak_rss_mb'], '.0f')} | "
          f"{cell(result['chatterm_peak_rss_mb'], '.0f')} | |")
    print(f"| peak RSS / reply | | **{cell(result['chatterm_rss_over_reply'], '.2f')}×** | "
          f"≤ 3× |")
    if compare:
        other = result["compare"]
        print(f"| `ask` from {compare}: time (s); ratio; CPU (s) | | "
              f"{cell(other['chatterm_s'], '.2f')}; {cell(other['ratio'], '.2f')}×; "
              f"{cell(other['chatterm_cpu_s'], '.2f')} | |")


if __name__ == "__main__":
    main()
