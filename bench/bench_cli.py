"""Start-up and streaming speed of `chatterm ask`, as ratios against baselines in the same run.

    python bench/bench_cli.py            # prints a table, writes bench/out/cli.json

Streaming: the suite's loopback OpenAI-compatible server (tests/openai_server.py) sends N chunks
as fast as it can; we time, as whole processes writing to a pipe, (a) a bare httpx loop that
parses the SSE and writes the text and (b) `chatterm ask` (history on, default settings).
Targets: ratio <= 1.3 at 2,000 chunks and <= 1.5 at 20,000; `chatterm --help` <= 0.15 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE_LOOP = r"""
import json, sys, httpx
url, model = sys.argv[1], sys.argv[2]
out = sys.stdout
body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}
with httpx.stream("POST", url + "/chat/completions", json=body, timeout=60) as response:
    buffer = b""
    for raw in response.iter_bytes():
        buffer += raw
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    out.write(text)
                    out.flush()
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "openai_server.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
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


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "5"))
    home = tempfile.mkdtemp(prefix="chatterm-bench-")
    env = dict(os.environ, XDG_DATA_HOME=home, XDG_CONFIG_HOME=home, XDG_STATE_HOME=home)
    server, url = start_server()
    env["OPENAI_BASE_URL"] = url
    chatterm = [sys.executable, "-m", "chatterm"]
    results: dict[str, object] = {"python": sys.version.split()[0], "repeats": repeats}
    try:
        help_times = [timed([*chatterm, "--help"], env)[0] for _ in range(repeats * 2)]
        bare_python = [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(repeats * 2)]
        results["help_s"] = statistics.median(help_times)
        results["python_startup_s"] = statistics.median(bare_python)
        rows = []
        for chunks in (2000, 20000):
            model = f"chunks:{chunks}"
            bare, ours = [], []
            for _ in range(repeats):  # interleaved so drift hits both alike
                t, n_bare = timed([sys.executable, "-c", BARE_LOOP, url, model], env)
                bare.append(t)
                t, n_ours = timed([*chatterm, "ask", "-m", model, "go"], env)
                ours.append(t)
            if abs(n_ours - n_bare) > 1:
                raise SystemExit(f"output differs: bare {n_bare} bytes, chatterm {n_ours}")
            row = {
                "chunks": chunks,
                "bare_httpx_s": statistics.median(bare),
                "chatterm_s": statistics.median(ours),
            }
            row["ratio"] = row["chatterm_s"] / row["bare_httpx_s"]
            rows.append(row)
        results["streaming"] = rows
    finally:
        server.terminate()
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "cli.json").write_text(json.dumps(results, indent=2))
    print(f"chatterm --help: {results['help_s']:.3f} s "
          f"(python -c pass: {results['python_startup_s']:.3f} s)")
    print("| chunks | bare httpx loop | chatterm ask | ratio |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['chunks']:,} | {row['bare_httpx_s']:.3f} s | {row['chatterm_s']:.3f} s "
              f"| {row['ratio']:.2f}× |")


if __name__ == "__main__":
    main()
