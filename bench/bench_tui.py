"""TUI speed: streaming a huge markdown reply, against a naive re-render, and start-up at scale.

Headless, in one run (``python bench/bench_tui.py``; figures printed and written to
``bench/out/tui.json``):

1. **Streaming**: a 20,000-chunk markdown reply from the loopback OpenAI-compatible server
   (tests/openai_server.py, in a process of its own as a real server is, model
   ``chunks:20000:markdown``) sent as fast as the
   socket takes it, through the real app (backend → controller → renderer → live segment).
   Reported (median, min-max over ``--repeat`` runs): the total time from Enter to the final
   render next to the same reply through ``chatterm ask`` into a pipe, the lag between the
   last chunk arriving and the final full render being done (target ≤ 1 s), the longest
   event-loop stall while the reply streams and including the final render, measured by a
   10 ms Textual interval timer recording how late it fires (target ≤ 50 ms, issue 9), and the p99
   latency of a keystroke pressed every 20 ms meanwhile (until the prompt holds it). Run twice:
   with chatterm's garbage-collector policy (chatterm.gc_policy, what ``chatterm`` runs)
   and with Python's default collector, and the one collection pause the policy takes after
   the reply is reported too.
1b. **Typing**: the same, over a reply long enough to type ~100 keys into while it streams
   (``--typing-chunks``, 200,000 chunks), pooled over ``--repeat`` runs: p50/p90/p99/worst
   latency from posting a key to the prompt holding it, and to the screen showing it (the
   compositor's next refresh after that). Target: keystroke-to-screen p99 ≤ 50 ms.
2. **Naive**: the same chunks fed through ``Markdown.update(full_text)`` per chunk (what elia
   does), stopped after ``--naive-cap`` seconds and extrapolated (the cost per chunk grows with
   the text, so the total grows with the square of the number of chunks).
3. **Start-up**: a history of 10,000 conversations; time from building the app to its first
   frame (Textual's ``Ready`` event), in-process and as a cold process (from spawning the
   interpreter: imports included), both for a new conversation and with ``-c`` (the latest
   conversation opened). Target ≤ 1 s.
4. **Search**: ``store.search`` over that history (target ≤ 0.1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench_common import compile_sources, server_process  # noqa: E402  (bench/ is the script's folder)
from openai_server import chunk_pieces  # noqa: E402

import chatterm.tui  # noqa: E402, F401  (before Textual: it sets the frame rate, as the app)

# isort: split
from textual.app import App, ComposeResult  # noqa: E402
from textual.containers import VerticalScroll  # noqa: E402
from textual.widgets import Markdown  # noqa: E402
from textual.worker import WorkerCancelled  # noqa: E402

from chatterm.backend import BackendConfig  # noqa: E402
from chatterm.config import Choice, Config  # noqa: E402
from chatterm.store import HistoryStore  # noqa: E402
from chatterm.tui.app import ChattermApp, build_app  # noqa: E402
from chatterm.tui.widgets.render_queue import QUEUE  # noqa: E402

SIZE = (120, 40)
TICK_S = 0.010


class StallMeter:
    """Records how late a 10 ms interval timer fires on the app's event loop."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, float]] = []  # (when, lateness)
        self._last: float | None = None

    def tick(self) -> None:
        now = time.monotonic()
        if self._last is not None:
            self.ticks.append((now, max(0.0, now - self._last - TICK_S)))
        self._last = now

    def worst(self, start: float, end: float) -> float:
        window = [late for when, late in self.ticks if start <= when <= end + TICK_S * 2]
        return max(window, default=0.0)


# --- 1. streaming through the real app -------------------------------------------------------


async def bench_stream(base_url: str, chunks: int, tmp: Path, tune_gc: bool,
                       run: int = 0, type_keys: bool = True) -> dict[str, Any]:
    """One 20,000-chunk reply through the real app, with a keystroke every 20 ms meanwhile."""
    store = HistoryStore(tmp / f"stream-{tune_gc}-{run}.db")
    choice = Choice("openai", BackendConfig(model=f"chunks:{chunks}:markdown",
                                            base_url=base_url), {}, None, None)
    app = build_app(choice, Config(path=tmp / "c.toml"), store,
                    state_file=tmp / "state.json", user_themes_dir=tmp / "themes",
                    tune_gc=tune_gc)
    meter = StallMeter()
    async with app.run_test(size=SIZE) as pilot:
        app.set_interval(TICK_S, meter.tick)
        while app.pool.cached(app.choice) is None:  # opened in the background at start
            await asyncio.sleep(0.01)
        await pilot.pause()
        started = time.monotonic()
        app.prompt_input.text = "write the report"
        app.post_message(app.prompt_input.Submitted(app.prompt_input, "write the report"))
        typed = await _type_while_streaming(app) if type_keys else []
        latencies = [to_prompt for to_prompt, _ in typed]
        while app.last_renderer is None or app.last_renderer.rendered_at is None:
            await asyncio.sleep(0.01)
        await QUEUE.idle()  # the parts on screen rendered on the render thread too
        drawn_at = time.monotonic()
        await _settle(app)
        await pilot.pause()
        done = time.monotonic()
        streamer = app.last_streamer  # the controller's Reply: text, counts, timings
        renderer = app.last_renderer  # what drew it: segments, when the final render ended
        assert streamer is not None and streamer.first_token_at and streamer.last_chunk_at
        assert renderer is not None and renderer.rendered_at is not None
        source = app.view.message_views()[-1].source
        result = {
            "chunks": streamer.deltas,
            "chars": len(streamer.text),
            "rendered_matches_reply": source == streamer.text,
            "markdown_segments": len(app.view.message_views()[-1].segments),
            "segments_frozen": renderer.segments,
            "stream_s": round(streamer.last_chunk_at - streamer.first_token_at, 3),
            "total_s": round(done - started, 3),
            "last_chunk_to_final_render_s": round(drawn_at - streamer.last_chunk_at, 3),
            "max_stall_during_stream_ms": round(
                1000 * meter.worst(streamer.first_token_at, streamer.last_chunk_at), 1),
            "max_stall_including_final_render_ms": round(
                1000 * meter.worst(streamer.first_token_at, drawn_at), 1),
            "keystrokes": len(latencies),
            "keystroke_latencies_s": typed,  # (to the prompt, to the screen) per key
            "keystroke_latency_p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
            "keystroke_latency_max_ms": round(1000 * max(latencies, default=0.0), 1),
            "gc_policy": tune_gc,
            "longest_gc_checkpoint_ms": round(
                1000 * app.gc_policy.longest_checkpoint_s, 1) if app.gc_policy else None,
        }
        await app.pool.aclose()
    store.close()
    return result


async def _type_while_streaming(app: ChattermApp) -> list[tuple[float, float]]:
    """Press a key every 20 ms while the reply streams. For each: how long until the prompt
    holds it (its ``Changed`` message is posted) and until the screen shows it (the end of
    the screen's next refresh after that). Both instants are taken where they happen, on the
    app's own tasks, so this loop's own waits for the event loop are not counted."""
    from textual import events
    from textual.widgets import TextArea

    typed: list[tuple[float, float]] = []
    prompt = app.prompt_input
    loop = asyncio.get_running_loop()
    changed: list[asyncio.Future[float]] = []
    shown: list[asyncio.Future[float]] = []
    post = prompt.post_message

    def watching(message: Any) -> bool:  # the prompt's own post_message, instrumented
        if isinstance(message, TextArea.Changed) and changed and not changed[-1].done():
            changed[-1].set_result(time.monotonic())
            prompt.call_after_refresh(_mark_shown, shown[-1])
        return post(message)

    prompt.post_message = watching  # type: ignore[method-assign]
    while not app.streaming:
        await asyncio.sleep(0.001)
    backspace = False
    while app.streaming:
        changed.append(loop.create_future())
        shown.append(loop.create_future())
        sent = time.monotonic()
        # Type a letter, then delete it: the prompt stays one line, as when someone types.
        key = events.Key("backspace", None) if backspace else events.Key("x", "x")
        backspace = not backspace
        app.post_message(key)
        try:
            in_prompt = await asyncio.wait_for(changed[-1], 5)
            on_screen = await asyncio.wait_for(shown[-1], 5)
        except TimeoutError:
            break
        typed.append((in_prompt - sent, on_screen - sent))
        await asyncio.sleep(0.02)
    prompt.post_message = post  # type: ignore[method-assign]
    return typed


def _mark_shown(shown: asyncio.Future[float]) -> None:
    if not shown.done():
        shown.set_result(time.monotonic())


def typing_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Keystroke latency over all the keys of all the runs (one run's p99 is its worst key or
    two), to the prompt and to the screen: p50, p90, p99 and the worst."""
    typed = [pair for run in runs for pair in run["keystroke_latencies_s"]]
    summary: dict[str, Any] = {"runs": len(runs), "keys": len(typed),
                               "chunks": runs[0]["chunks"] if runs else 0,
                               "stream_s": spread(runs, "stream_s") if runs else None}
    for index, name in ((0, "to_prompt_ms"), (1, "to_screen_ms")):
        values = [pair[index] for pair in typed]
        summary[name] = {f"p{round(q * 100)}": round(1000 * _percentile(values, q), 1)
                         for q in (0.5, 0.9, 0.99)}
        summary[name]["max"] = round(1000 * max(values, default=0.0), 1)
    return summary


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def spread(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Median with min and max over the runs: one run on a shared machine says little."""
    values = [float(r[key]) for r in runs]
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def bench_ask_pipe(base_url: str, chunks: int, repeat: int) -> dict[str, Any]:
    """The same reply through ``chatterm ask`` into a pipe: the floor the TUI is compared to."""
    walls = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "backends"), str(ROOT / "themes")])}
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "chatterm", "ask", "--no-log", "--backend", "openai",
             "--base-url", base_url, "-m", f"chunks:{chunks}:markdown", "write the report"],
            check=True, capture_output=True, env=env, cwd=ROOT,
        )
        walls.append({"wall_s": time.perf_counter() - started})
    return {"runs": repeat, "wall_s": spread(walls, "wall_s")}


async def _settle(app: ChattermApp) -> None:
    for _ in range(5):
        try:
            await app.workers.wait_for_complete()
            return
        except WorkerCancelled:
            continue


# --- 2. the naive way: a full re-render per chunk --------------------------------------------


class NaiveApp(App[None]):
    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown("")


async def bench_naive(chunks: int, cap_s: float) -> dict[str, Any]:
    pieces = chunk_pieces(chunks, True)
    app = NaiveApp()
    meter = StallMeter()
    async with app.run_test(size=SIZE) as pilot:
        app.set_interval(TICK_S, meter.tick)
        markdown = app.query_one(Markdown)
        text = ""
        started = time.monotonic()
        done = 0
        for piece in pieces:
            text += piece
            await markdown.update(text)
            done += 1
            if time.monotonic() - started > cap_s:
                break
        elapsed = time.monotonic() - started
        await pilot.pause()
    fraction = done / chunks
    return {
        "chunks_rendered": done,
        "of_chunks": chunks,
        "elapsed_s": round(elapsed, 2),
        "chars_rendered": len(text),
        "extrapolated_total_s": round(elapsed / (fraction * fraction), 1),
        "extrapolation": "quadratic: each full render costs in proportion to the text so far",
        "extrapolated_total_s_linear_lower_bound": round(elapsed / fraction, 1),
        "max_stall_ms": round(1000 * max((late for _, late in meter.ticks), default=0.0), 1),
    }


# --- 3. start-up over a big history ----------------------------------------------------------


def build_history(path: Path, conversations: int) -> float:
    started = time.perf_counter()
    store = HistoryStore(path)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    for i in range(conversations):
        conv = store.create_conversation(f"conversation {i}: {words[i % 8]} question")
        user = store.add_message(conv.id, "user", f"question {i} about {words[i % 8]} {i % 97}")
        store.add_message(conv.id, "assistant", f"**answer** {i}\n\n```python\nx = {i}\n```\n"
                          f"- {words[(i + 3) % 8]}\n", parent_id=user.id,
                          backend="openai", model="gpt-4o-mini")
    store.close()
    return time.perf_counter() - started


async def startup_in_process(path: Path, tmp: Path, continue_last: bool) -> dict[str, float]:
    started = time.perf_counter()
    store = HistoryStore(path)
    choice = Choice("openai", BackendConfig(model="gpt-4o-mini"), {}, None, None)
    app = build_app(choice, Config(path=tmp / "c.toml"), store, continue_last=continue_last,
                    state_file=tmp / "state.json", user_themes_dir=tmp / "themes")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.ready_at is not None
        first_frame = app.ready_at - started
        loaded = app.sidebar.loaded
    store.close()
    return {"first_frame_s": round(first_frame, 3), "sidebar_rows_loaded": loaded}


COLD = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from chatterm.backend import BackendConfig
from chatterm.config import Choice, Config
from chatterm.store import HistoryStore
from chatterm.tui.app import build_app
store = HistoryStore(Path(sys.argv[1]))
app = build_app(Choice("openai", BackendConfig(model="m"), {}, None, None),
                Config(path=Path(sys.argv[2]) / "c.toml"), store,
                continue_last=sys.argv[3] == "1", state_file=Path(sys.argv[2]) / "s.json",
                user_themes_dir=Path(sys.argv[2]) / "themes")
async def pilot(p):
    await p.pause()
    p.app.exit((p.app.ready_at - t0, time.time() - (time.perf_counter() - p.app.ready_at)))
first, ready_wall = app.run(headless=True, size=(120, 40), auto_pilot=pilot)
print(first, ready_wall)
"""


def startup_cold(path: Path, tmp: Path, continue_last: bool) -> dict[str, float]:
    """A fresh interpreter: from spawning it (wall clock) to the app's first frame."""
    spawned = time.time()
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", COLD, str(path), str(tmp), "1" if continue_last else "0"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    wall = time.perf_counter() - started
    first, ready_wall = (float(x) for x in out.stdout.strip().splitlines()[-1].split())
    return {"first_frame_s_in_process_clock": round(first, 3),
            "first_frame_s_whole_process": round(ready_wall - spawned, 3),
            "process_wall_s": round(wall, 3)}


def bench_search(path: Path) -> dict[str, Any]:
    store = HistoryStore(path)
    timings = {}
    for query in ("charlie", "question 42", "python", "zzz-not-there"):
        started = time.perf_counter()
        hits = store.search(query)
        timings[query] = {"s": round(time.perf_counter() - started, 4), "hits": len(hits)}
    store.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--typing-chunks", type=int, default=200_000,
                        help="the reply typed over (long enough for ~100 keys a run)")
    parser.add_argument("--naive-cap", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median, min-max)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "tui.json")
    args = parser.parse_args(argv)
    compile_sources()
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with server_process() as base_url:
            runs = [asyncio.run(bench_stream(base_url, args.chunks, tmp, True, i))
                    for i in range(args.repeat)]
            results["stream_runs"] = runs
            results["stream"] = {
                key: spread(runs, key) for key in (
                    "total_s", "stream_s", "last_chunk_to_final_render_s",
                    "max_stall_during_stream_ms", "max_stall_including_final_render_ms",
                    "keystroke_latency_p99_ms",
                )
            }
            results["stream"]["rendered_matches_reply"] = all(
                r["rendered_matches_reply"] for r in runs)
            print("stream:", json.dumps(results["stream"], indent=2))
            typing_runs = [
                asyncio.run(bench_stream(base_url, args.typing_chunks, tmp, True, 100 + i))
                for i in range(args.repeat)
            ]
            results["typing"] = typing_summary(typing_runs)
            print("typing:", json.dumps(results["typing"], indent=2))
            results["ask_to_pipe"] = bench_ask_pipe(base_url, args.chunks, args.repeat)
            print("ask to a pipe:", json.dumps(results["ask_to_pipe"], indent=2))
            results["stream_default_gc"] = asyncio.run(
                bench_stream(base_url, args.chunks, tmp, tune_gc=False))
            print("stream, default gc:", json.dumps(results["stream_default_gc"], indent=2))
        results["naive_full_rerender"] = asyncio.run(bench_naive(args.chunks, args.naive_cap))
        print("naive:", json.dumps(results["naive_full_rerender"], indent=2))
        history = tmp / "big.db"
        build_s = build_history(history, args.conversations)
        colds = [startup_cold(history, tmp, True) for _ in range(args.repeat)]
        results["startup"] = {
            "conversations": args.conversations,
            "history_build_s": round(build_s, 1),
            "new_conversation": asyncio.run(startup_in_process(history, tmp, False)),
            "continue_last": asyncio.run(startup_in_process(history, tmp, True)),
            "cold_process_new": startup_cold(history, tmp, False),
            "cold_process_continue_last": {
                key: spread(colds, key) for key in (
                    "first_frame_s_whole_process", "first_frame_s_in_process_clock",
                    "process_wall_s",
                )
            },
        }
        print("startup:", json.dumps(results["startup"], indent=2))
        results["search"] = bench_search(history)
        print("search:", json.dumps(results["search"], indent=2))
    stream = results["stream"]
    results["targets"] = {
        "final_render_lag_le_1s": stream["last_chunk_to_final_render_s"]["median"] <= 1.0,
        "stall_including_final_render_le_50ms":
            stream["max_stall_including_final_render_ms"]["median"] <= 50,
        "keystroke_to_screen_p99_le_50ms": results["typing"]["to_screen_ms"]["p99"] <= 50,
        "startup_le_1s": results["startup"]["continue_last"]["first_frame_s"] <= 1.0,
        "search_le_100ms": all(v["s"] <= 0.1 for v in results["search"].values()),
    }
    print("targets:", json.dumps(results["targets"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
