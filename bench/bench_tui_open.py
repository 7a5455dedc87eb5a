"""TUI: how fast long content opens (issue 9's "long content opens fast").

Three histories, each opened at its conversation (as ``chatterm --session ID``) in the real app,
headless: one 5 MB markdown reply, one 50 MB reply on a single line, and 2,000 messages. For each:
time from starting the app to its first frame (``ChattermApp.ready_at``), to the conversation
drawn (its messages mounted, every part on screen rendered, the render thread idle, a frame
drawn), whether it opened at its end, and the time one terminal resize (120 to 90 columns,
which also narrows the sidebar) takes until all that is true again, at once after it is drawn
and, back to 120 columns, once the app has settled (SETTLE_S: its start-up work in the
background is over; a user resizes later than the first instant). Headless, in-process, with
the collector policy ``chatterm`` runs (``BENCH_TUNE_GC=0``: Python's default collector). Medians with min-max over ``--repeat`` runs.
Targets: first frame <= 1 s, resize <= 200 ms, the 2,000-message conversation open at its end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "backends"), str(ROOT / "themes")]

from bench_common import compile_sources  # noqa: E402  (bench/ is the script's folder)

import chatterm.tui  # noqa: E402, F401  (before Textual: it sets the frame rate, as the app)

# isort: split
from textual.events import Resize  # noqa: E402
from textual.geometry import Size  # noqa: E402

from chatterm.backend import BackendConfig  # noqa: E402
from chatterm.config import Choice, Config  # noqa: E402
from chatterm.store import HistoryStore  # noqa: E402
from chatterm.tui.app import ChattermApp, build_app  # noqa: E402
from chatterm.tui.widgets.render_queue import QUEUE  # noqa: E402

SIZE = (120, 40)
TUNE_GC = os.environ.get("BENCH_TUNE_GC", "1") == "1"


def markdown_reply(size: int) -> str:
    block = (
        "## A heading\n\nSome *prose* with `code` and a [link](http://x).\n\n"
        "- item one\n- item two\n\n```python\nprint('hi')\n```\n\n"
    )
    return (block * (size // len(block) + 1))[:size]


def seed(store: HistoryStore, pairs: list[tuple[str, str]]) -> str:
    conv = store.create_conversation("bench")
    parent = None
    for prompt, answer in pairs:
        parent = store.add_message(conv.id, "user", prompt, parent_id=parent).id
        parent = store.add_message(conv.id, "assistant", answer, parent_id=parent,
                                   backend="openai", model="seeded").id
    return conv.id


CASES = {
    "5 MB markdown reply": lambda: [("long please", markdown_reply(5_000_000))],
    "50 MB single line": lambda: [("one line", "x" * 50_000_000)],
    "2,000 messages": lambda: [(f"question {i}", f"answer {i} " * 20) for i in range(1000)],
}


async def _drawn(app: ChattermApp, pilot: Any) -> None:
    """Until the screen is drawn with everything on it: the widgets' queues processed,
    workers done, every part on screen rendered (the render thread idle), then a frame.

    Not ``pilot.pause()``: that also waits until the whole process is idle (CPU time stops
    advancing), which counts background work the user does not wait for (the warm-up
    render, imports on a thread) and, on a loaded machine, the scheduler's mood."""
    for _ in range(3):  # a rendering that comes back can ask for one more layout and frame
        await pilot.pause(0)
        await app.workers.wait_for_complete()
        await QUEUE.idle()
    await pilot.pause(0)


async def _resize(app: ChattermApp, pilot: Any, width: int, height: int) -> None:
    """What ``pilot.resize_terminal`` does, without its wait for an idle process."""
    size = Size(width, height)
    driver = app._driver  # the headless driver reports this size from now on
    if driver is not None and hasattr(driver, "_size"):
        driver._size = size
    app.post_message(Resize(size, size))
    while app.screen.size != size:
        await pilot.pause(0)


# Before the second resize: long enough for the app's start-up work in the background (imports
# on a thread, the warm-up rendering, the collector after a big read) to be over.
SETTLE_S = 0.5


async def open_once(folder: Path, conv_id: str) -> tuple[float, float, float, float, bool]:
    store = HistoryStore(folder / "history.db")
    choice = Choice("openai", BackendConfig(base_url="http://127.0.0.1:9"), {}, None, None)
    app = build_app(choice, Config(path=folder / "config.toml"), store, session_id=conv_id,
                    state_file=folder / "state.json", user_themes_dir=folder / "themes",
                    tune_gc=TUNE_GC)  # the collector policy `chatterm` runs (chatterm.gc_policy)
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        while app.ready_at is None:
            await pilot.pause(0.005)
        first_frame = app.ready_at - started
        while not app.view.message_views():
            await pilot.pause(0.005)
        await _drawn(app, pilot)
        shown = time.perf_counter() - started
        at_end = app.view.scroll_y >= app.view.max_scroll_y
        resize_start = time.perf_counter()
        await _resize(app, pilot, SIZE[0] - 30, SIZE[1])
        await _drawn(app, pilot)
        resize = time.perf_counter() - resize_start
        await asyncio.sleep(SETTLE_S)  # then back to the first width, the app settled
        resize_start = time.perf_counter()
        await _resize(app, pilot, SIZE[0], SIZE[1])
        await _drawn(app, pilot)
        settled = time.perf_counter() - resize_start
    store.close()
    return first_frame, shown, resize, settled, at_end


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    compile_sources()  # as pip leaves an install: what the app imports on a thread is not compiled
    results = {}
    for name, pairs in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            with HistoryStore(folder / "history.db") as store:
                conv_id = seed(store, pairs())
            frames, shown, resizes, settled, at_end = [], [], [], [], []
            for _ in range(args.repeat):
                frame, drawn, resize, calm, end = asyncio.run(open_once(folder, conv_id))
                frames.append(frame)
                shown.append(drawn)
                resizes.append(resize)
                settled.append(calm)
                at_end.append(end)
            results[name] = {"first_frame_s": spread(frames), "conversation_drawn_s": spread(shown),
                             "resize_s": spread(resizes), "resize_settled_s": spread(settled),
                             "opened_at_end": all(at_end), "runs": args.repeat}
            print(f"{name}: first frame {statistics.median(frames):.2f} s "
                  f"({min(frames):.2f}-{max(frames):.2f}), conversation drawn "
                  f"{statistics.median(shown):.2f} s ({min(shown):.2f}-{max(shown):.2f}), "
                  f"at its end: {all(at_end)}, resize "
                  f"{statistics.median(resizes) * 1000:.0f} ms "
                  f"({min(resizes) * 1000:.0f}-{max(resizes) * 1000:.0f}), settled "
                  f"{statistics.median(settled) * 1000:.0f} ms "
                  f"({min(settled) * 1000:.0f}-{max(settled) * 1000:.0f})", flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
