"""What the benchmarks share: the bare httpx client they compare against, byte-compiling the
checkout so chatterm and the baseline start on equal terms, and the loopback server in a
process of its own."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A bare client: stream one reply with httpx and write its text, nothing else. Run as
# `python -c BARE_LOOP URL MODEL`.
BARE_LOOP = r"""
import json, ssl, sys
sys.modules["httpx._main"] = None  # as chatterm does: no httpx CLI (rich, click) imported
import httpx
url, model = sys.argv[1], sys.argv[2]
out = sys.stdout
body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}
# The TLS set-up chatterm uses for an http:// URL: a context with no CA bundle loaded.
verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if url.startswith("http://") else True
with httpx.Client(verify=verify, timeout=60) as client:
    with client.stream("POST", url + "/chat/completions", json=body) as response:
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


def compile_sources() -> None:
    """Byte-compile this checkout as ``pip install`` does: with PYTHONDONTWRITEBYTECODE set (as
    in some sandboxes) every chatterm process would otherwise compile its modules from source,
    ~50 ms the bare client never pays (its httpx came from pip with .pyc files)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "chatterm", "backends", "themes", "tests"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def server_process() -> Iterator[str]:
    """The suite's loopback server (tests/openai_server.py) in a process of its own; yields
    its base URL. Why not its in-process thread: a bench that times work in this process
    (the TUI) would share the GIL with the server writing 20,000 chunks a second, which a
    user's server (vLLM, llama.cpp, Ollama) never takes from chatterm."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "openai_server.py")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"the loopback server did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(10)
