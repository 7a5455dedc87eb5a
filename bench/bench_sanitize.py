"""What sanitising costs `chatterm ask --raw` on a terminal, per reply and per chunk.

    python bench/bench_sanitize.py [--runs 9] [--chunks 20000]   # table + bench/out/sanitize.json

In one process, a 20,000-chunk reply (the loopback server's ``chunks:N`` pieces, plain words and
markdown) goes through ``RawSink`` (chatterm/cli/render.py), with the sanitiser on (what a
terminal gets) and off (what a pipe gets), one write and flush per chunk (as the sink does
outside an event loop; inside ``ask``'s loop it writes once per network read, so the write cost
here is an upper bound and the sanitiser's share of it a lower one), into two targets: a real pseudo-terminal (drained by a thread, as a terminal emulator
would) and /dev/null (no terminal cost at all, so the sanitiser's share is as large as it can
be). Runs alternate on/off; the figures are medians with min-max over the runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from openai_server import chunk_pieces  # noqa: E402

from chatterm.cli.render import RawSink  # noqa: E402
from chatterm.sanitize import StreamSanitizer  # noqa: E402


@contextmanager
def pty_stream() -> Iterator[io.TextIOWrapper]:
    """A text stream on a pty's terminal side; a thread reads the other side as it fills."""
    controller, terminal = pty.openpty()
    done = threading.Event()

    def drain() -> None:
        while not done.is_set():
            try:
                if not os.read(controller, 1 << 16):
                    break
            except OSError:
                break

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stream = open(terminal, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
    try:
        yield stream
    finally:
        stream.close()
        done.set()
        os.close(controller)
        reader.join(timeout=5)


@contextmanager
def devnull_stream() -> Iterator[io.TextIOWrapper]:
    with open(os.devnull, "w", encoding="utf-8") as stream:
        yield stream


def time_sink(pieces: tuple[str, ...], target: Callable, sanitize: bool) -> float:  # type: ignore[type-arg]
    with target() as stream:
        sink = RawSink(stream, sanitize=sanitize)
        started = time.perf_counter()
        for piece in pieces:
            sink.text(piece)
        sink.close()
        return time.perf_counter() - started


def time_sanitizer_alone(pieces: tuple[str, ...]) -> float:
    clean = StreamSanitizer()
    started = time.perf_counter()
    for piece in pieces:
        clean.feed(piece)
    clean.flush()
    return time.perf_counter() - started


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--chunks", type=int, default=20_000)
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for kind, pieces in (
        ("words", chunk_pieces(args.chunks)),
        ("markdown", chunk_pieces(args.chunks, True)),
    ):
        for name, target in (("pty", pty_stream), ("devnull", devnull_stream)):
            times: dict[str, list[float]] = {"off": [], "on": []}
            time_sink(pieces, target, True)  # warm-up
            for _ in range(args.runs):
                for mode in ("off", "on"):
                    times[mode].append(time_sink(pieces, target, mode == "on"))
            results[f"{kind}/{name}"] = {mode: summary(v) for mode, v in times.items()}
        alone = [time_sanitizer_alone(pieces) for _ in range(args.runs)]
        results[f"{kind}/sanitizer-alone"] = {"on": summary(alone)}

    print(f"{args.chunks} chunks, {args.runs} runs each: median (min–max), seconds")
    print(f"{'reply/target':<26}{'sanitise off':>24}{'sanitise on':>24}{'extra per chunk':>18}")
    for key, modes in results.items():
        on = modes["on"]
        off = modes.get("off")
        cell_on = f"{on['median']:.4f} ({on['min']:.4f}–{on['max']:.4f})"
        if off is None:
            per_chunk = on["median"] / args.chunks * 1e6
            print(f"{key:<26}{'':>24}{cell_on:>24}{per_chunk:>15.2f} µs")
            continue
        cell_off = f"{off['median']:.4f} ({off['min']:.4f}–{off['max']:.4f})"
        extra = (on["median"] - off["median"]) / args.chunks * 1e6
        print(f"{key:<26}{cell_off:>24}{cell_on:>24}{extra:>15.2f} µs")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "sanitize.json").write_text(
        json.dumps({"chunks": args.chunks, "runs": args.runs, "results": results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
