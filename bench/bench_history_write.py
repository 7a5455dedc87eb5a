"""The history's write path alone: a fast 100 MB reply through ChatSession into a fresh history.

    python bench/bench_history_write.py                      # this checkout, 5 runs
    BENCH_COMPARE=/tmp/old python bench/bench_history_write.py   # and another checkout, paired

A backend in the process yields 1,600 chunks of 64 KiB at 200 MB/s (``BENCH_RATE_MB``; no
network, no SSE, no terminal), so what is timed is what the history costs a fast reply:
the writer thread's pieces, their WAL checkpoints and syncs, and the end of the reply. Each run
is a fresh process and a fresh history file; with BENCH_COMPARE the two checkouts alternate,
run by run, so a change is judged against what it replaced under the same load. Printed: the
time from the first chunk to the end of ``send()`` plus closing the store, and the process's
CPU time (all threads); median (min-max).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, json, sys, tempfile, time
from pathlib import Path
from chatterm.backend import Backend, BackendConfig, Finish, TextDelta
from chatterm.chat import ChatSession
from chatterm.store import HistoryStore

CHUNK = ("lorem ipsum dolor sit amet " * 2500)[:65536]
RATE = float(sys.argv[1])


class Fast(Backend):
    name = "fast"

    def __init__(self):
        super().__init__(BackendConfig(model="fast"))

    async def stream(self, request):
        # At RATE bytes a second, as a fast server on loopback sends it (the bare httpx
        # client reads this reply in 0.4-0.5 s on an idle machine): a reply that arrived all at
        # once would leave nothing to overlap with.
        start = time.perf_counter()
        for i in range(1600):
            if i % 4 == 0:
                await asyncio.sleep(max(0.0, start + i * 65536 / RATE - time.perf_counter()))
            yield TextDelta(CHUNK)
        yield Finish("stop")


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore(Path(tmp) / "history.db")
        chat = ChatSession(store, Fast(), backend_name="fast", model="fast")
        start, cpu = time.perf_counter(), time.process_time()
        async for _ in chat.send("go"):
            pass
        store.close()
        seconds = time.perf_counter() - start
        with HistoryStore(Path(tmp) / "history.db") as check:
            reply = check.branch(chat.conversation.id)[-1]
            assert reply.status == "complete" and len(reply.content) == 1600 * 65536
        print(json.dumps({"seconds": seconds, "cpu": time.process_time() - cpu}))


asyncio.run(main())
"""


# How fast the reply arrives, in bytes a second (BENCH_RATE_MB, default 200 MB/s).
RATE = float(os.environ.get("BENCH_RATE_MB", "200")) * 1e6


def once(tree: Path) -> dict[str, float]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(str(tree / part) for part in ("", "backends", "themes")),
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(RATE)], env=env, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "5"))
    trees = {"this checkout": ROOT}
    if os.environ.get("BENCH_COMPARE"):
        trees[os.environ["BENCH_COMPARE"]] = Path(os.environ["BENCH_COMPARE"])
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    load = os.getloadavg()[0]
    for _ in range(repeats):
        for name, tree in trees.items():
            runs[name].append(once(tree))
    print(f"100 MB reply, 64 KiB chunks at {RATE / 1e6:.0f} MB/s, into a fresh history; "
          f"{repeats} runs, load average "
          f"{load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| checkout | time | CPU |")
    print("|---|---:|---:|")
    for name, values in runs.items():
        print(f"| {name} | {cell([v['seconds'] for v in values])} | "
              f"{cell([v['cpu'] for v in values])} |")


if __name__ == "__main__":
    main()
