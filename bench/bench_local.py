"""Benchmark the local backend against bare transformers, and multi-turn KV-cache reuse.

Two measurements on the same model and device, in one run:

1. Decode speed: chatterm's ``LocalBackend`` (worker thread, incremental detokenizer, asyncio
   hand-off) against a bare ``model.generate`` with a ``TextIteratorStreamer`` on a thread; same
   prompt, greedy, the same number of tokens (``min_tokens`` = ``max_tokens``). Target: ratio
   >= 0.95.
2. Time to first token (first ``TextDelta``) for turns 1..N of a conversation whose history grows
   to about 2,000 tokens (each turn ~100 tokens of user text and a 100-token reply), with KV-cache
   reuse and without (``-o reuse_cache false``). Target with reuse: last turn <= 1.5x turn 1.

The model is random (built offline by ``tests/tiny_model.py``, hidden 512, 8 layers unless told
otherwise), so its replies are nonsense; speed does not depend on that. Run::

    python bench/bench_local.py [--device cuda] [--hidden 512 --layers 8] [--model DIR]

Prints a markdown table and writes the figures to ``bench/out/local.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "backends"))
sys.path.insert(0, str(ROOT))

from chatterm_local import LocalBackend  # noqa: E402
from chatterm_local.loader import get_model  # noqa: E402

from chatterm.backend import (  # noqa: E402
    BackendConfig,
    ChatMessage,
    ChatRequest,
    Metadata,
    TextDelta,
    Usage,
)

WORDS = str.split(
    "the terminal keeps a history of every conversation so a model can continue where it "
    "stopped cache reuse means only the new part of the prompt is processed again while "
    "streaming shows each piece of the reply as soon as it is decoded"
)


def user_text(rng: random.Random, tokenizer: Any, tokens: int) -> str:
    """Roughly ``tokens`` tokens of plain words (measured with the model's tokenizer)."""
    words: list[str] = []
    while len(tokenizer.encode(" ".join(words), add_special_tokens=False)) < tokens:
        words.append(rng.choice(WORDS))
    return " ".join(words)


async def chatterm_run(
    backend: LocalBackend, messages: list[ChatMessage], options: dict[str, Any]
) -> dict[str, Any]:
    request = ChatRequest(messages, options=backend.validate_options(options))
    start = time.perf_counter()
    first: float | None = None
    text: list[str] = []
    usage: Usage | None = None
    cached = 0
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            if first is None:
                first = time.perf_counter()
            text.append(event.text)
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Metadata) and "cached_tokens" in event.values:
            cached = int(event.values["cached_tokens"])
    end = time.perf_counter()
    return {
        "total_s": end - start,
        "ttft_s": (first or end) - start,
        "text": "".join(text),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "cached_tokens": cached,
    }


def bare_run(loaded: Any, prompt_ids: list[int], tokens: int) -> dict[str, Any]:
    """What a user of transformers alone would write: generate on a thread + iterator streamer."""
    import torch
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    input_ids = torch.tensor([prompt_ids], device=loaded.device)
    kwargs = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "max_new_tokens": tokens,
        "min_new_tokens": tokens,
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "streamer": streamer,
    }
    start = time.perf_counter()
    worker = threading.Thread(target=loaded.model.generate, kwargs=kwargs)
    worker.start()
    first: float | None = None
    pieces = []
    for piece in streamer:
        if piece and first is None:
            first = time.perf_counter()
        pieces.append(piece)
    worker.join()
    end = time.perf_counter()
    return {"total_s": end - start, "ttft_s": (first or end) - start, "text": "".join(pieces)}


def decode_speed(
    backend: LocalBackend, loaded: Any, base: dict[str, Any], tokens: int, repeats: int
) -> dict[str, Any]:
    from chatterm_local.prompt import build_prompt

    messages = [ChatMessage("user", "write a long story about a terminal chat client")]
    options = {
        **base,
        "temperature": 0,
        "max_tokens": tokens,
        "min_tokens": tokens,
        "reuse_cache": False,
    }
    prompt = build_prompt(
        loaded.tokenizer,
        messages,
        system_role=loaded.system_role,
        context_length=loaded.context_length,
        reply_budget=tokens,
    )
    ours, bare = [], []
    asyncio.run(chatterm_run(backend, messages, options))  # warm-up
    bare_run(loaded, prompt.ids, tokens)
    for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
        result = asyncio.run(chatterm_run(backend, messages, options))
        assert result["completion_tokens"] == tokens, result["completion_tokens"]
        ours.append(tokens / result["total_s"])
        bare.append(tokens / bare_run(loaded, prompt.ids, tokens)["total_s"])
    ours_tps, bare_tps = statistics.median(ours), statistics.median(bare)
    return {
        "tokens": tokens,
        "prompt_tokens": len(prompt.ids),
        "repeats": repeats,
        "chatterm_tokens_per_s": round(ours_tps, 2),
        "bare_generate_tokens_per_s": round(bare_tps, 2),
        "ratio": round(ours_tps / bare_tps, 3),
        "target_ratio": 0.95,
    }


def conversation(
    backend: LocalBackend,
    loaded: Any,
    base: dict[str, Any],
    args: argparse.Namespace,
    reuse: bool,
) -> list[dict[str, Any]]:
    """One conversation of ``args.turns`` turns; TTFT per turn, starting from an empty cache."""
    with loaded.lock:
        loaded.kv = None
    rng = random.Random(0)
    history = [ChatMessage("system", "You are a helpful assistant in a terminal.")]
    options = {
        **base,
        "temperature": 0,
        "max_tokens": args.reply_tokens,
        "min_tokens": args.reply_tokens,
        "reuse_cache": reuse,
    }
    rows = []
    for turn in range(1, args.turns + 1):
        history.append(ChatMessage("user", user_text(rng, loaded.tokenizer, args.user_tokens)))
        result = asyncio.run(chatterm_run(backend, history, options))
        history.append(ChatMessage("assistant", result["text"]))
        rows.append(
            {
                "turn": turn,
                "prompt_tokens": result["prompt_tokens"],
                "prefilled_tokens": result["prompt_tokens"] - result["cached_tokens"],
                "ttft_ms": result["ttft_s"] * 1000,
                "text": result["text"],
            }
        )
    return rows


def ttft_study(
    model: str, base: dict[str, Any], args: argparse.Namespace, repeats: int
) -> dict[str, Any]:
    """Turns 1..N with and without reuse; each conversation run ``repeats`` times and the
    fastest TTFT per turn kept, to take scheduler noise on a small machine out."""
    loaded = get_model(model, args.device, args.dtype)
    backend = LocalBackend(BackendConfig(model=model))
    asyncio.run(chatterm_run(backend, [ChatMessage("user", "warm")], {**base, "max_tokens": 2}))
    runs: dict[bool, list[list[dict[str, Any]]]] = {True: [], False: []}
    for _ in range(repeats):
        for reuse in (True, False):
            runs[reuse].append(conversation(backend, loaded, base, args, reuse))
    reuse_rows, fresh_rows = runs[True][0], runs[False][0]
    same = all(
        a["text"] == b["text"]
        for rows in runs[True] + runs[False][1:]
        for a, b in zip(rows, fresh_rows, strict=True)
    )
    turns = []
    for i, a in enumerate(reuse_rows):
        turns.append(
            {
                "turn": a["turn"],
                "prompt_tokens": a["prompt_tokens"],
                "prefilled_with_reuse": a["prefilled_tokens"],
                "ttft_ms_reuse": round(min(r[i]["ttft_ms"] for r in runs[True]), 1),
                "ttft_ms_no_reuse": round(min(r[i]["ttft_ms"] for r in runs[False]), 1),
            }
        )
    return {
        "turns": turns,
        "reuse_last_over_first": round(turns[-1]["ttft_ms_reuse"] / turns[0]["ttft_ms_reuse"], 2),
        "no_reuse_last_over_first": round(
            turns[-1]["ttft_ms_no_reuse"] / turns[0]["ttft_ms_no_reuse"], 2
        ),
        "target_last_over_first": 1.5,
        "replies_identical_with_and_without_reuse": same,
    }


def words_only_copy(src: Path, dest: Path) -> Path:
    """A copy of the random model that may only emit whole words (" cache", " the", ...).

    A random model picks arbitrary tokens, and re-tokenizing their text gives different ids, so
    the next prompt differs from the cached ids from the first reply token on and the whole
    previous reply is prefilled again. A trained model emits the tokenizer's own segmentation
    almost always; restricting the random model to single-token words (via the standard
    ``suppress_tokens`` generation setting) makes its replies re-tokenize the same way.
    """
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(src, dest)
    tokenizer = AutoTokenizer.from_pretrained(dest)
    allowed = set()
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        word = text[1:]
        if (
            text.startswith(" ")
            and word.isascii()
            and word.isalpha()
            and tokenizer.encode(text, add_special_tokens=False) == [token_id]
        ):
            allowed.add(token_id)
    config_path = dest / "generation_config.json"
    config = json.loads(config_path.read_text())
    eos = config.get("eos_token_id")
    allowed.update(eos if isinstance(eos, list) else [eos])
    config["suppress_tokens"] = [i for i in range(len(tokenizer)) if i not in allowed]
    config_path.write_text(json.dumps(config, indent=2))
    return dest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    parser.add_argument("--dtype", default=None, help="auto (default), float32, bfloat16, ...")
    parser.add_argument("--model", default=None, help="an existing model folder or hub id")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument(
        "--intermediate", type=int, default=None, help="MLP width (default: Llama's 8/3 x hidden)"
    )
    parser.add_argument("--tokens", type=int, default=200, help="decode-speed reply length")
    parser.add_argument("--repeats", type=int, default=5, help="decode-speed runs (median)")
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--user-tokens", type=int, default=100)
    parser.add_argument("--reply-tokens", type=int, default=100)
    parser.add_argument(
        "--conv-repeats", type=int, default=3, help="runs per conversation, fastest kept"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "local.json")
    args = parser.parse_args(argv)
    base = {k: v for k, v in (("device", args.device), ("dtype", args.dtype)) if v}

    with tempfile.TemporaryDirectory(prefix="chatterm-bench-") as tmp:
        studies: dict[str, str] = {}
        if args.model:
            model, description = args.model, args.model
            studies["model's own replies"] = model
        else:
            from tiny_model import build_tiny_model

            # Llama proportions (8/3 x hidden, rounded up to 64): the MLP-to-attention cost
            # balance, and so how TTFT grows with history, is then like a real model's.
            intermediate = args.intermediate or -(-args.hidden * 8 // 3 // 64) * 64
            folder = build_tiny_model(
                Path(tmp) / "random",
                hidden_size=args.hidden,
                num_layers=args.layers,
                intermediate_size=intermediate,
                heads=8,
                kv_heads=4,
                max_positions=4096,
            )
            model = str(folder)
            description = (
                f"random llama, hidden {args.hidden}, MLP {intermediate}, {args.layers} layers"
            )
            studies["word replies (re-tokenize like a trained model's)"] = str(
                words_only_copy(folder, Path(tmp) / "words")
            )
            studies["random-token replies (re-tokenize differently)"] = model
        loaded = get_model(model, args.device, args.dtype)
        backend = LocalBackend(BackendConfig(model=model))
        speed = decode_speed(backend, loaded, base, args.tokens, args.repeats)
        # The first study carries the target; the random-token one only shows the pitfall, so
        # it runs once to keep the whole benchmark within a few minutes on a small CPU.
        ttft = {
            name: ttft_study(path, base, args, args.conv_repeats if i == 0 else 1)
            for i, (name, path) in enumerate(studies.items())
        }

    report = {
        "model": description,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "decode": speed,
        "ttft": ttft,
        "conversation_repeats": args.conv_repeats,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nwrote {args.out}")


def render(report: dict[str, Any]) -> str:
    d = report["decode"]
    lines = [
        f"model: {report['model']} on {report['device']} ({report['dtype']})",
        "",
        f"| decode, {d['tokens']} tokens greedy (median of {d['repeats']}) | tokens/s |",
        "|---|---:|",
        f"| chatterm LocalBackend | {d['chatterm_tokens_per_s']} |",
        f"| bare generate + TextIteratorStreamer | {d['bare_generate_tokens_per_s']} |",
        f"| ratio (target >= {d['target_ratio']}) | {d['ratio']} |",
    ]
    for name, t in report["ttft"].items():
        lines += [
            "",
            f"time to first token, {name}:",
            "",
            "| turn | prompt tokens | prefilled with reuse | TTFT reuse (ms) | TTFT no reuse (ms) |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in t["turns"]:
            lines.append(
                f"| {row['turn']} | {row['prompt_tokens']} | {row['prefilled_with_reuse']} | "
                f"{row['ttft_ms_reuse']} | {row['ttft_ms_no_reuse']} |"
            )
        lines += [
            "",
            f"last turn / first turn: with reuse {t['reuse_last_over_first']} "
            f"(target <= {t['target_last_over_first']}), without {t['no_reuse_last_over_first']}; "
            f"replies identical with and without reuse: "
            f"{t['replies_identical_with_and_without_reuse']}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
