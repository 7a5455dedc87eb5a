"""Cost at size: a 50 MB single-line reply, search over a huge reply, export of a big conversation.

    python bench/bench_scale.py                  # all three; tables printed, bench/out/scale.json
    python bench/bench_scale.py --only search    # one of: sse, search, export
    BENCH_REPEATS=5 python bench/bench_scale.py  # runs per figure (default 3; search: 7 x 5 calls)

1. **SSE, 50 MB single line** (``--mb``): the loopback server (tests/openai_server.py, model
   ``bigline:N``) sends one content chunk of N characters (one SSE line) in 64 KiB writes. Timed
   as whole processes writing to a pipe, interleaved: a bare httpx client that buffers
   linearly (a bytearray, searched only in the new bytes; the same TLS set-up as chatterm) and
   `chatterm ask`, with the history on (default) and with ``--no-log``. Peak RSS of each
   process is reported too. Target: `ask` <= 1.5x the bare client. Then, in-process, the SSE
   decoder alone on the same line at a quarter, half and the whole size (it must double).
2. **Search**: a history of 200 ordinary conversations plus one 40,000-word reply in which
   every word matches the query (``tok0 tok1 ...``, the issue's case; also queried by 1-, 4-
   and 5-letter prefixes and two words), and the same with a 40,000-word reply of ordinary
   words; ``HistoryStore.search`` in-process, in ms. Target: <= 20 ms. The reply's size is
   then doubled twice to show the time does not follow it. Then the cases the design bounds
   differently: 40,000 distinct words sharing a 5-letter prefix (beyond the prefix index),
   60 messages in which every token matches (snippet cost), and replies of 40,000 and
   1,000,000 words kept in pieces, as a streamed reply over 1 MB stays (``tok1`` matches
   nothing else, so the pieces' own index is what is searched).
3. **Export**: a conversation of 2,000 messages (~1 KB each) and one 20 MB reply; `chatterm
   sessions export` to a file (md and json), whole process, against a bare script that reads
   the same rows with sqlite3 and writes their text.

Every figure is the median with the min-max over the runs, never the best run. The
whole-process parts run first: a child's peak RSS counts what the benchmark process held when
it started the child, and the in-process parts hold big strings.
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

from bench_common import compile_sources  # noqa: E402  (bench/ is the script's folder)

sys.path.insert(0, str(ROOT / "tests"))

from chatterm.store import HistoryStore  # noqa: E402

BARE_LINEAR = r"""
import json, ssl, sys
sys.modules["httpx._main"] = None  # as chatterm does: no httpx CLI (rich, click) imported
import httpx
url, model = sys.argv[1], sys.argv[2]
out = sys.stdout
body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}
verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if url.startswith("http://") else True
with httpx.Client(verify=verify, timeout=600) as client:
    with client.stream("POST", url + "/chat/completions", json=body) as response:
        buffer = bytearray()
        done = False
        for raw in response.iter_bytes():
            searched = len(buffer)
            buffer += raw
            if buffer.find(b"\n", searched) < 0:
                continue
            *lines, rest = bytes(buffer).split(b"\n")
            buffer = bytearray(rest)
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        out.write(text)
                        out.flush()
            if done:
                break
"""

BARE_EXPORT = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with open(sys.argv[3], "w", encoding="utf-8") as out:
    for (content,) in db.execute(
        "SELECT content FROM messages WHERE conversation_id = ? ORDER BY id", (sys.argv[2],)
    ):
        out.write(content)
        out.write("\n\n")
"""


def spread(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def fmt(s: dict[str, Any], unit: str = "s", digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def run_process(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, bytes on stdout, peak RSS in MB) of one whole process."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env,
                                stdin=subprocess.DEVNULL)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[:6]} failed ({proc.returncode}): {err.decode()[-500:]}")
        size = out.seek(0, os.SEEK_END)
    return elapsed, size, usage.ru_maxrss // 1024


def bench_sse(env: dict[str, str], repeats: int, mb: int) -> dict[str, Any]:
    from openai_server import OpenAIServer

    n = mb * 1_000_000
    model = f"bigline:{n}"
    with OpenAIServer() as server:
        env = dict(env, OPENAI_BASE_URL=server.base_url)
        chatterm = [sys.executable, "-m", "chatterm", "ask", "-m", model]
        commands = {
            "bare_httpx": [sys.executable, "-c", BARE_LINEAR, server.base_url, model],
            "chatterm_ask": [*chatterm, "go"],
            "chatterm_ask_no_log": [*chatterm, "--no-log", "go"],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        rss: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(repeats):  # interleaved so drift hits all alike
            for name, cmd in commands.items():
                elapsed, size, peak = run_process(cmd, env)
                if abs(size - n) > 1:
                    raise SystemExit(f"{name}: {size} bytes on stdout, expected {n}")
                times[name].append(elapsed)
                rss[name].append(peak)
    bare = statistics.median(times["bare_httpx"])
    return {
        "reply_bytes": n,
        **{name: {"s": spread(times[name]), "peak_rss_mb": spread(rss[name])} for name in commands},
        "ratio": statistics.median(times["chatterm_ask"]) / bare,
        "ratio_no_log": statistics.median(times["chatterm_ask_no_log"]) / bare,
    }


def bench_decoder(repeats: int, mb: int) -> dict[str, Any]:
    """In-process: the SSE decoder plus json.loads on one N-byte line fed in 64 KiB reads, at
    N/4, N/2 and N (linear: the time doubles with the size), against a bare bytearray loop."""
    import json as json_module

    from chatterm_openai.sse import SSEDecoder

    rows = []
    for size in (mb * 250_000, mb * 500_000, mb * 1_000_000):
        text = ("lorem ipsum " * (size // 12 + 1))[:size]
        body = b"data: " + json_module.dumps({"choices": [{"delta": {"content": text}}]}).encode()
        body += b"\n\ndata: [DONE]\n\n"
        reads = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        ours, bare = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            decoder = SSEDecoder()
            events = [e for r in reads for e in decoder.feed(r)] + decoder.close()
            got = json_module.loads(events[0])["choices"][0]["delta"]["content"]
            ours.append(time.perf_counter() - start)
            assert got == text and events[1] == "[DONE]"
            start = time.perf_counter()
            buffer = bytearray()
            lines: list[bytes] = []
            for r in reads:
                searched = len(buffer)
                buffer += r
                if buffer.find(b"\n", searched) >= 0:
                    *done, rest = bytes(buffer).split(b"\n")
                    lines += done
                    buffer = bytearray(rest)
            json_module.loads(lines[0][6:])
            bare.append(time.perf_counter() - start)
        rows.append({"bytes": len(body), "decoder_s": spread(ours), "bare_s": spread(bare)})
    return {"rows": rows}


def build_search_history(path: Path, reply: str, in_pieces: bool = False) -> None:
    with HistoryStore(path) as store:
        for i in range(200):
            conv = store.create_conversation(f"conversation {i}")
            q = store.add_message(conv.id, "user", f"question {i} about tokens and sorting")
            store.add_message(conv.id, "assistant", f"an answer {i} with a token or two",
                              parent_id=q.id)
        conv = store.create_conversation("the huge one")
        q = store.add_message(conv.id, "user", "go")
        if not in_pieces:
            store.add_message(conv.id, "assistant", reply, parent_id=q.id)
            return
        # As a big streamed reply stays: in the pieces it was flushed in (1 MB each here).
        m = store.add_message(conv.id, "assistant", "", parent_id=q.id, status="streaming")
        cut = 0
        while cut < len(reply):
            end = reply.find(" ", cut + 1_000_000)
            end = len(reply) if end < 0 else end + 1
            store.append_pieces(m.id, reply[cut:end])
            cut = end


def time_search(path: Path, query: str, repeats: int) -> dict[str, Any]:
    with HistoryStore(path) as store:
        store.search(query)  # first use: the page cache, the snippet table
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(5):
                hits = store.search(query)
            runs.append((time.perf_counter() - start) / 5 * 1000)
    return {"query": query, "ms": spread(runs), "hits": len(hits),
            "snippet_chars": max((len(h.snippet) for h in hits), default=0)}


def build_dense_history(path: Path, messages: int, words: int) -> None:
    """``messages`` messages of ``t t t …``: every token of every one a match for ``t``."""
    with HistoryStore(path) as store:
        conv = store.create_conversation("dense")
        for _ in range(messages):
            store.add_message(conv.id, "user", "t " * words)


def bench_search(tmp: Path, repeats: int) -> dict[str, Any]:
    words = ("lorem", "ipsum", "dolor", "sit", "amet", "elit", "sed", "tokens", "tempor", "magna")
    rows: list[dict[str, Any]] = []

    def measure(label: str, n: int, path: Path, queries: tuple[str, ...]) -> None:
        for query in queries:
            rows.append({"reply": label, "words": n, **time_search(path, query, repeats)})

    distinct = "every word matches, each a distinct word (tok0 tok1 ...)"
    for label, make in (
        (distinct, lambda n: " ".join(f"tok{i}" for i in range(n))),
        ("ordinary words, 1 in 10 matches", lambda n: " ".join(words[i % 10] for i in range(n))),
    ):
        for n in (40_000, 80_000, 160_000):
            path = tmp / f"search-{len(rows)}.db"
            build_search_history(path, make(n))
            # Shorter and longer prefixes, and two words, for the case at 40,000 words.
            extra = ("t", "tok1", "tok12", "tok1 tok2") if label == distinct and n == 40_000 else ()
            measure(label, n, path, ("tok", *extra))
    # What the prefix index (1-4 characters) does not cover: distinct words sharing a longer
    # prefix, queried by it ("token" expands to 40,000 words, one list each).
    n = 40_000
    path = tmp / "search-shared.db"
    build_search_history(path, " ".join(f"token{i}" for i in range(n)))
    measure("distinct words sharing 5 letters (token0 token1 ...)", n, path, ("token", "token1"))
    # Every token a match in 60 messages of 4,000 words each: snippet() is quadratic in the
    # matches of the text it is given.
    path = tmp / "search-dense.db"
    build_dense_history(path, 60, 4000)
    measure("60 messages of 4,000 words, all 't'", 4000, path, ("t",))
    # A reply kept in its pieces (a streamed reply over 1 MB stays so): 'tok1' matches nothing
    # else, so the pieces' own index is searched ('tok' is answered by 50 message hits first).
    for n in (40_000, 1_000_000):
        path = tmp / f"search-pieces-{n}.db"
        build_search_history(path, " ".join(f"tok{i}" for i in range(n)), in_pieces=True)
        measure("every word matches, kept in pieces", n, path, ("tok1", "tok"))
    return {"rows": rows}


def bench_export(tmp: Path, env: dict[str, str], repeats: int) -> dict[str, Any]:
    path = tmp / "export.db"
    with HistoryStore(path) as store:
        conv = store.create_conversation("a long conversation")
        parent = None
        for i in range(1000):
            q = store.add_message(conv.id, "user", f"question {i} " + "word " * 200, parent_id=parent)
            a = store.add_message(conv.id, "assistant", f"answer {i} " + "text " * 200,
                                  parent_id=q.id)
            parent = a.id
        store.add_message(conv.id, "assistant", "huge " * 4_000_000, parent_id=parent)
        conv_id = conv.id
    env = dict(env, XDG_DATA_HOME=str(tmp / "data"))
    history = tmp / "data" / "chatterm" / "history.db"
    history.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.replace(f"{path}{suffix}", f"{history}{suffix}")
    results: dict[str, Any] = {}
    out = tmp / "out"
    commands = {
        "bare_sqlite_read_write": [sys.executable, "-c", BARE_EXPORT, str(history), conv_id,
                                   str(out)],
        "chatterm_export_md": [sys.executable, "-m", "chatterm", "sessions", "export", conv_id,
                               "--format", "md", "--output", str(out)],
        "chatterm_export_json": [sys.executable, "-m", "chatterm", "sessions", "export", conv_id,
                                 "--format", "json", "--output", str(out)],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    rss: dict[str, list[float]] = {k: [] for k in commands}
    sizes: dict[str, int] = {}
    for _ in range(repeats):
        for name, cmd in commands.items():
            elapsed, _, peak = run_process(cmd, env)
            times[name].append(elapsed)
            rss[name].append(peak)
            sizes[name] = out.stat().st_size
    for name in commands:
        results[name] = {"s": spread(times[name]), "peak_rss_mb": spread(rss[name]),
                         "bytes": sizes[name]}
    bare = statistics.median(times["bare_sqlite_read_write"])
    results["ratio_md"] = statistics.median(times["chatterm_export_md"]) / bare
    results["ratio_json"] = statistics.median(times["chatterm_export_json"]) / bare
    results["messages"] = 2001
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sse", "decoder", "search", "export"))
    parser.add_argument("--mb", type=int, default=50, help="size of the single-line reply")
    args = parser.parse_args()
    compile_sources()
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    tmp = Path(tempfile.mkdtemp(prefix="chatterm-scale-"))
    env = dict(os.environ, XDG_DATA_HOME=str(tmp), XDG_CONFIG_HOME=str(tmp),
               XDG_STATE_HOME=str(tmp), NO_PROXY="127.0.0.1,localhost")
    results: dict[str, Any] = {"python": sys.version.split()[0], "repeats": repeats}
    if args.only in (None, "sse"):
        results["sse"] = sse = bench_sse(env, repeats, args.mb)
        print(f"\n{args.mb} MB single-line reply, {repeats} runs, median (min–max):")
        print("| client | time | peak RSS |")
        print("|---|---:|---:|")
        for name in ("bare_httpx", "chatterm_ask", "chatterm_ask_no_log"):
            print(f"| {name} | {fmt(sse[name]['s'])} | {fmt(sse[name]['peak_rss_mb'], 'MB', 0)} |")
        print(f"ratio: {sse['ratio']:.2f}× (history on), {sse['ratio_no_log']:.2f}× (--no-log)")
    if args.only in (None, "export"):
        results["export"] = export = bench_export(tmp, env, repeats)
        print("\nexport of 2,001 messages incl. one 20 MB reply, median (min–max):")
        print("| command | time | peak RSS | bytes |")
        print("|---|---:|---:|---:|")
        for name in ("bare_sqlite_read_write", "chatterm_export_md", "chatterm_export_json"):
            row = export[name]
            print(f"| {name} | {fmt(row['s'])} | {fmt(row['peak_rss_mb'], 'MB', 0)} "
                  f"| {row['bytes']:,} |")
        print(f"ratio: md {export['ratio_md']:.2f}×, json {export['ratio_json']:.2f}×")
    if args.only in (None, "sse", "decoder"):
        results["decoder"] = decoder = bench_decoder(max(repeats, 5), args.mb)
        print("\nin-process: SSE decoder + json.loads of one line, 64 KiB reads, median (min–max):")
        print("| bytes | chatterm_openai.sse | bare bytearray loop |")
        print("|---:|---:|---:|")
        for row in decoder["rows"]:
            print(f"| {row['bytes']:,} | {fmt(row['decoder_s'], 's', 3)} | {fmt(row['bare_s'], 's', 3)} |")
    if args.only in (None, "search"):
        results["search"] = search = bench_search(tmp, max(repeats, 7))
        runs = max(repeats, 7)
        print(f"\nsearch, in-process, median (min–max) of {runs} runs, each the mean of 5 calls:")
        print("| reply | words | query | time | hits | longest snippet |")
        print("|---|---:|---|---:|---:|---:|")
        for row in search["rows"]:
            print(f"| {row['reply']} | {row['words']:,} | `{row['query']}` "
                  f"| {fmt(row['ms'], 'ms', 1)} | {row['hits']} | {row['snippet_chars']} |")
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "scale.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
