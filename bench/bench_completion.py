"""What shell completion costs: `chatterm --help` and `ask` start-up, and one completion query.

    python bench/bench_completion.py                  # this checkout
    python bench/bench_completion.py --root /path     # another checkout, e.g. before the change

Each figure is the median wall time of whole processes (``python -m chatterm ...``) with the
code under ``--root`` first on ``PYTHONPATH``, history and config in a temporary folder, and
``ask`` talking to the suite's loopback server (tests/openai_server.py) and writing to a pipe.
Run it twice against the two checkouts in the same session and compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

# In one process: the fastest of many builds of the click command, with and without the two
# completion options typer adds (the only start-up work completion brings).
BUILD = r"""
import time, typer.main as tm
from chatterm.cli import app
def best(flag):
    app._add_completion = flag
    times = []
    for _ in range(300):
        start = time.perf_counter(); tm.get_command(app); times.append(time.perf_counter() - start)
    return min(times) * 1000
print(f"{best(True):.2f} {best(False):.2f}")
"""


def timed(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """(fastest, median) of ``runs`` runs: on a busy machine the fastest is the steadier one."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0 or not proc.stdout:
            raise SystemExit(f"{cmd} failed: {proc.stderr.decode()[-500:]}")
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE, help="checkout whose code to time")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    root = args.root.resolve()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "tests" / "openai_server.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None
    base_url = server.stdout.readline().split(" ", 1)[1].strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(str(root / p) for p in ("", "backends", "themes")),
                "XDG_DATA_HOME": f"{tmp}/data", "XDG_CONFIG_HOME": f"{tmp}/config",
                "XDG_STATE_HOME": f"{tmp}/state", "NO_PROXY": "127.0.0.1",
            }
            env.pop("OPENAI_API_KEY", None)
            chatterm = [sys.executable, "-m", "chatterm"]
            help_s = timed([*chatterm, "--help"], env, args.runs)
            ask_s = timed([*chatterm, "ask", "--base-url", base_url, "-m", "echo", "hi"], env,
                          args.runs)
            complete_env = {**env, "_CHATTERM_COMPLETE": "complete_bash",
                            "COMP_WORDS": "chatterm ask --profile ", "COMP_CWORD": "3"}
            try:
                complete_s: tuple[float, float] | None = timed(chatterm, complete_env, args.runs)
            except SystemExit:
                complete_s = None  # completion switched off in that checkout
            built = subprocess.run([sys.executable, "-c", BUILD], env=env, capture_output=True,
                                   text=True, check=True).stdout.split()
    finally:
        server.terminate()
        server.wait()
    print(f"root: {root}   (fastest / median of {args.runs}, ms)")
    print(f"chatterm --help           {_ms(help_s)}")
    print(f"chatterm ask (pipe)       {_ms(ask_s)}")
    print(f"completion query (bash)   {_ms(complete_s) if complete_s else 'n/a (switched off)'}")
    print(f"click command built with / without completion options: {built[0]} / {built[1]} ms")


def _ms(pair: tuple[float, float]) -> str:
    return f"{pair[0] * 1000:7.1f} / {pair[1] * 1000:7.1f}"


if __name__ == "__main__":
    main()
