"""Start-up and streaming speed of `chatterm ask`, as ratios against baselines in the same run.

    python bench/bench_cli.py                          # prints tables, writes bench/out/cli.json
    python bench/bench_cli.py --typer /tmp/typer029    # also start-up with another typer
    BENCH_REPEATS=15 python bench/bench_cli.py         # more runs (default 9)

Streaming: the suite's loopback OpenAI-compatible server (tests/openai_server.py) sends N chunks
as fast as it can; we time, as whole processes writing to a pipe, (a) a bare httpx loop that
parses the SSE and writes the text and (b) `chatterm ask` (history on, default settings). Runs
are interleaved so drift on a shared machine hits both alike. Every figure is the median with
the min-max over the runs, never the best run.

Fair baseline: for an ``http://`` URL chatterm gives httpx an SSL context with no CA bundle
loaded (TLS is never used; see chatterm_openai.transport.tls_context), and the bare loop gets
exactly the same context. A default ``httpx.Client()`` loads the certifi bundle (~20-50 ms),
which would flatter chatterm. Both also skip httpx's optional command-line client (``import
httpx`` imports rich, click and pygments for it when they are installed, ~100 ms here):
chatterm blocks that import, so the bare loop does too.

``--typer DIR``: DIR holds another typer (``pip install --target DIR --no-deps 'typer>=0.29'``);
``chatterm --help`` and `ask` start-up are then measured with it first on PYTHONPATH too.

Targets: ratio <= 1.3 at 2,000 chunks and <= 1.2 at 20,000; `chatterm --help` <= 0.15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from bench_common import BARE_LOOP, compile_sources  # noqa: E402  (bench/ is the script's folder)


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "openai_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed: {proc.stderr.decode()[-500:]}")
    return elapsed, len(proc.stdout)


def spread(values: list[float]) -> dict[str, Any]:
    """Median and range of some runs: what is published (never the best run alone)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def fmt(s: dict[str, Any], unit: str = "s") -> str:
    return f"{s['median']:.3f} {unit} ({s['min']:.3f}–{s['max']:.3f})"


def with_path(env: dict[str, str], extra: str | None) -> dict[str, str]:
    if not extra:
        return env
    return dict(env, PYTHONPATH=os.pathsep.join(p for p in (extra, env.get("PYTHONPATH")) if p))


def typer_version(env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", "import typer; print(typer.__version__)"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()


def startup(chatterm: list[str], envs: list[dict[str, str]], repeats: int) -> list[dict[str, Any]]:
    """`--help`, a one-chunk `ask` and the same with ``-n`` (the start-up a user feels on every
    question), for each environment (typer version), interleaved so drift hits all alike."""
    names = ("help_s", "ask_s", "ask_no_log_s")
    commands = (["--help"], ["ask", "-m", "chunks:1", "go"], ["ask", "-n", "-m", "chunks:1", "go"])
    times: list[dict[str, list[float]]] = [{n: [] for n in names} for _ in envs]
    for _ in range(repeats):
        for env, got in zip(envs, times, strict=True):
            for name, args in zip(names, commands, strict=True):
                got[name].append(timed([*chatterm, *args], env)[0])
    return [
        {"typer": typer_version(env), **{n: spread(got[n]) for n in names}}
        for env, got in zip(envs, times, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--typer", metavar="DIR", help="a directory holding another typer")
    args = parser.parse_args()
    compile_sources()
    repeats = int(os.environ.get("BENCH_REPEATS", "9"))
    home = tempfile.mkdtemp(prefix="chatterm-bench-")
    env = dict(os.environ, XDG_DATA_HOME=home, XDG_CONFIG_HOME=home, XDG_STATE_HOME=home)
    server, url = start_server()
    env["OPENAI_BASE_URL"] = url
    chatterm = [sys.executable, "-m", "chatterm"]
    bare_ask = [sys.executable, "-c", BARE_LOOP, url]
    results: dict[str, Any] = {"python": sys.version.split()[0], "repeats": repeats, "url": url}
    try:
        results["python_startup_s"] = spread(
            [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(repeats)]
        )
        results["bare_httpx_one_chunk_s"] = spread(
            [timed([*bare_ask, "chunks:1"], env)[0] for _ in range(repeats)]
        )
        envs = [env, with_path(env, args.typer)] if args.typer else [env]
        results["startup"] = startup(chatterm, envs, repeats)
        rows: list[dict[str, Any]] = []
        for chunks in (2000, 20000):
            model = f"chunks:{chunks}"
            bare, ours, ratios = [], [], []
            for _ in range(repeats):  # interleaved so drift hits both alike
                t_bare, n_bare = timed([*bare_ask, model], env)
                t_ours, n_ours = timed([*chatterm, "ask", "-m", model, "go"], env)
                if abs(n_ours - n_bare) > 1:
                    raise SystemExit(f"output differs: bare {n_bare} bytes, chatterm {n_ours}")
                bare.append(t_bare)
                ours.append(t_ours)
                ratios.append(t_ours / t_bare)
            rows.append(
                {
                    "chunks": chunks,
                    "bare_httpx_s": spread(bare),
                    "chatterm_s": spread(ours),
                    "ratio_of_medians": statistics.median(ours) / statistics.median(bare),
                    "ratio_per_pair": spread(ratios),
                }
            )
        results["streaming"] = rows
    finally:
        server.terminate()
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "cli.json").write_text(json.dumps(results, indent=2))
    print(f"{repeats} runs each; median (min–max)")
    print(f"python -c pass: {fmt(results['python_startup_s'])}; "
          f"bare httpx, 1 chunk: {fmt(results['bare_httpx_one_chunk_s'])}")
    print("| typer | `chatterm --help` | `chatterm ask`, 1 chunk | `ask -n` (no history) |")
    print("|---|---:|---:|---:|")
    for row in results["startup"]:
        print(f"| {row['typer']} | {fmt(row['help_s'])} | {fmt(row['ask_s'])} "
              f"| {fmt(row['ask_no_log_s'])} |")
    print("| chunks | bare httpx loop | chatterm ask | ratio of medians (per-pair min–max) |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        pair = row["ratio_per_pair"]
        print(f"| {row['chunks']:,} | {fmt(row['bare_httpx_s'])} | {fmt(row['chatterm_s'])} "
              f"| {row['ratio_of_medians']:.2f}× ({pair['min']:.2f}–{pair['max']:.2f}) |")


if __name__ == "__main__":
    main()
