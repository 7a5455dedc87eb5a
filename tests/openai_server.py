"""A real OpenAI-compatible HTTP server for tests, CLI subprocess tests and benchmarks.

It listens on 127.0.0.1 and writes real SSE bytes over a socket (chunked framing, or
connection-close framing where a scenario needs it), so the client under test exercises httpx,
TCP segmentation and our SSE decoder exactly as with vLLM, Ollama or ``transformers serve``.

The behaviour is chosen by the request's ``model`` name, so ``chatterm ask -m slow:50:20`` in a
subprocess can pick it. Anything after an ``@`` is a tag that only keeps counters and recorded
requests apart (``echo@test_options`` behaves like ``echo``). Scenarios:

* ``echo`` (and any unknown name): streams the last user message back in 4-character chunks:
  a role-only chunk, content chunks, a finish chunk, a ``choices: []`` usage chunk (only when
  ``stream_options.include_usage`` was asked), ``[DONE]``. ``max_tokens`` cuts the reply to
  that many chunks with ``finish_reason: "length"``.
* ``chunks:N`` / ``chunks:N:markdown``: N content chunks (a few chars each, or a markdown
  document with headings, lists, a table and code fences split across chunks), written as fast
  as the socket takes them. ``slow:N:MS``: N chunks ``MS`` milliseconds apart.
  ``bigline:N``: one content chunk of N characters of words, i.e. one SSE line of about N
  bytes, written in 64 KiB pieces (the size of a single-line reply must not cost quadratic time).
* quirks: ``no-done``, ``ping``, ``choices-null``, ``choices-empty``, ``reasoning_content``,
  ``reasoning``, ``reasoning-both``, ``crlf``, ``u2028``, ``split-utf8``, ``multiline-data``,
  ``id-then-comments``, ``no-trailing-blank``, ``burst``, ``padded`` (whitespace around each
  event's JSON, as JSON allows: the decoder's fast path must hand those to ``json.loads``),
  ``reject-stream-options``,
  ``ignore-usage``, ``json-reply`` (a whole chat.completion although a stream was asked for),
  ``not-sse`` (200 with a text/plain body), ``served-as:NAME`` (echo, but the chunks name
  model NAME: a server answering with another model than the one asked for).
* faults: ``error-event``, ``error-event-string``, ``error-field``, ``bad-json``, ``cut``
  (connection dropped mid chunked body), ``cut-eof`` (clean EOF before any finish_reason),
  ``http:CODE`` with optional ``-plain``, ``-detail``, ``-string``, ``-message``, ``-html``
  (``http:401``, ``http:500-plain``, ``http:422-detail`` ...), ``html-error`` (502 HTML page),
  ``http:CODE-always``, ``http:CODE-then-ok[:N[:RA]]`` (N failures, default 1, with
  ``Retry-After: RA``, default 0, ``none`` for no header; then one success; the cycle repeats
  per model name).

* history and endings (issue 8): ``strict`` (400 "Conversation roles must alternate" unless the
  messages alternate user/assistant after an optional system message and end with a user one,
  as Mistral- and Gemma-style chat templates demand; else ``echo``), ``idle:S`` (the partial
  text, then no byte for S seconds, then the finish), ``wait:S`` (200 and headers, then no byte
  for S seconds, then ``echo``), ``headers-then-cut`` (200, then the connection dropped before
  any text), ``content-number`` / ``content-list`` / ``content-nan`` / ``deep-nesting`` (the
  partial text, then a malformed event), ``llama-timings`` (``echo`` plus llama.cpp's
  ``timings`` on the last chunk), ``big:MB:KB`` (MB megabytes of text in KB-kilobyte pieces,
  pre-built, for benchmarks).
* hostile (terminal safety, see ``HOSTILE_PAYLOADS``): ``hostile`` (a reply carrying every
  control sequence, cut so an ESC ends one chunk and the rest of its sequence starts the next),
  ``hostile-reasoning`` (the same as reasoning, a pause, then as the answer),
  ``error-event-hostile`` (partial text, then an in-stream error carrying them),
  ``http:CODE-hostile`` (an error body carrying them); ``HOSTILE_MODEL_IDS`` for ``models=``.
  Every payload holds a marker (``PWN...``) so a test can tell payload bytes from chatterm's
  own styling. ``OpenAIServer.requests`` logs every request's headers (``.authorization``).

``GET /v1/models`` lists ``OpenAIServer.models``; ``stream: false`` gets one chat.completion.
Run as a script: ``python tests/openai_server.py --port 0`` prints ``READY <base_url>``.
"""

from __future__ import annotations

import argparse
import functools
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODELS = ("echo", "chunks:100", "reasoning_content", "slow:20:50")
REASONING = "The user greets me. I should greet back."
ANSWER = "Hello! How can I help?"
PARTIAL = "Partial answer "
U2028_TEXT = "line one\u2028line two\u0085line three\u2029end"
UTF8_TEXT = "héllo wörld, 日本語 and 🎉 ok"
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "elit", "sed", "do", "tempor", "magna")
DONE = b"data: [DONE]\n\n"

# --- hostile payloads: (sequence before the marker, marker, sequence after) ---------------------
# A terminal acting on any of these would be driven by the server: clipboard (OSC 52), window
# title (OSC 0/2), hyperlinks (OSC 8), screen and cursor (CSI), DCS/APC/PM/SOS strings, 8-bit C1
# (U+009B CSI, U+009D OSC), BEL, backspace and a bare CR overwriting what was shown, bidi
# overrides reordering it. No markdown syntax around them, so a rendered reply shows them as is.
HOSTILE_PAYLOADS: dict[str, tuple[str, str, str]] = {
    "osc52": ("\x1b]52;c;", "PWNCLIP", "\x07"),
    "osc0": ("\x1b]0;", "PWNTITLE", "\x07"),
    "osc2": ("\x1b]2;", "PWNTITLETWO", "\x1b\\ "),
    "osc8": ("\x1b]8;;http://evil.example/", "PWNLINK", "\x1b\\ click \x1b]8;;\x1b\\ "),
    "csi-clear": ("\x1b[2J", "PWNCLEAR", "\x1b[H"),
    "csi-cursor": ("\x1b[10;10H", "PWNCURSOR", "\x1b[6n"),
    "dcs": ("\x1bP1$r", "PWNDCS", "\x1b\\ "),
    "apc": ("\x1b_", "PWNAPC", "\x1b\\ "),
    "pm": ("\x1b^", "PWNPM", "\x1b\\ "),
    "sos": ("\x1bX", "PWNSOS", "\x1b\\ "),
    "c1-csi": ("\x9b31m", "PWNCSIEIGHT", "\x9b0m"),
    "c1-osc": ("\x9d0;", "PWNOSCEIGHT", "\x9c"),
    "bel": ("\x07\x07", "PWNBEL", "\x07"),
    "backspace": ("safe\b\b\b\b", "PWNBS", "\b\b"),
    "bare-cr": ("echo ok\r", "PWNCR", " rm -rf /"),
    "bidi": ("\u202e", "PWNBIDI", "\u202c \u2066txt.exe\u2069"),
}
# The reply: one payload per paragraph, so wrapping never cuts a stand-in.
HOSTILE_TEXT = "Hostile reply.\n\n" + "".join(
    f"{name}: {before}{marker}{after} end\n\n" for name, (before, marker, after) in
    HOSTILE_PAYLOADS.items()
) + "Last line."
# For error messages (one line, cut at 300 characters): the escape-based payloads.
HOSTILE_LINE = "bad " + " ".join(
    f"{HOSTILE_PAYLOADS[n][0]}{HOSTILE_PAYLOADS[n][1]}{HOSTILE_PAYLOADS[n][2]}"
    for n in ("osc52", "osc0", "osc8", "csi-clear", "dcs", "c1-csi", "c1-osc", "bidi")
)
HOSTILE_MODEL_IDS = (
    "plain-model",
    "\x1b]0;PWNMODEL\x07evil",
    "\x1b]52;c;PWNMODELCLIP\x07",
    "m\x9b2JPWNMODELCSI",
    "\u202ePWNMODELBIDI",
)


def hostile_pieces(text: str, size: int = 5) -> list[str]:
    """``text`` in chunks, cut right after every ESC, C1 character and CR (and every ``size``
    characters), so each sequence is split across two chunks."""
    pieces, current = [], ""
    for ch in text:
        current += ch
        if ch in "\x1b\r" or 0x80 <= ord(ch) <= 0x9F or len(current) >= size:
            pieces.append(current)
            current = ""
    return [*pieces, current] if current else pieces
ABORT = object()  # in a scenario's writes: drop the connection here


def split_text(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def markdown_document(min_chars: int) -> str:
    """A deterministic markdown document at least ``min_chars`` long."""
    sections: list[str] = []
    total, i = 0, 0
    while total < min_chars or not sections:
        i += 1
        section = (
            f"## Section {i}\n\nSome **bold** text, some *italic*, and `inline code` {i}.\n\n"
            f"- first item\n- second item with [a link](https://example.com/{i})\n"
            f"  - nested item\n\n1. one\n2. two\n\n"
            f"| name | value |\n|------|------:|\n| alpha | {i} |\n| beta | {i * 2} |\n\n"
            f"```python\ndef f{i}(x):\n    return x * {i}\n```\n\n> a quote {i}\n\n"
        )
        sections.append(section)
        total += len(section)
    return "# Report\n\n" + "".join(sections)


@functools.lru_cache(maxsize=2)
def bigline_text(n: int) -> str:
    """The reply of ``bigline:N``: N characters of words, no line break."""
    unit = " ".join(WORDS) + " "
    return (unit * (n // len(unit) + 1))[:n]


@functools.lru_cache(maxsize=16)
def chunk_pieces(n: int, markdown: bool = False) -> tuple[str, ...]:
    """The N content pieces of ``chunks:N`` (``markdown``: of ``chunks:N:markdown``)."""
    if not markdown:
        return tuple(f"{WORDS[i % len(WORDS)]} " for i in range(n))
    doc = markdown_document(4 * n)
    bounds = [round(k * len(doc) / n) for k in range(n + 1)]
    return tuple(doc[bounds[k] : bounds[k + 1]] for k in range(n))


def content_text(content: Any) -> str:
    """A message's text: the string, or the text parts of a content-part list (images go)."""
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return str(content or "")


def last_user_message(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """What the server reports as ``prompt_tokens``: words across all messages."""
    return sum(len(content_text(m.get("content")).split()) for m in body.get("messages") or [])


def scenario_text(model: str, body: dict[str, Any] | None = None) -> str:
    """The full reply text a streaming scenario sends (for assertions)."""
    name, args = _parse(model)
    if name == "chunks":
        return "".join(chunk_pieces(int(args[0]), args[1:2] == ["markdown"]))
    if name == "slow":
        return "".join(f"tok{i} " for i in range(int(args[0])))
    if name == "bigline":
        return bigline_text(int(args[0]))
    if name.startswith("reasoning"):
        return ANSWER
    if name in ("hostile", "hostile-reasoning"):
        return HOSTILE_TEXT
    return {"u2028": U2028_TEXT, "split-utf8": UTF8_TEXT}.get(name, last_user_message(body or {}))


def _parse(model: str) -> tuple[str, list[str]]:
    """``"slow:10:20@tag"`` -> ``("slow", ["10", "20"])``."""
    name, *args = model.split("@", 1)[0].split(":")
    return name, args


@dataclass
class RecordedRequest:
    """One request the server received. ``headers`` has lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    client: tuple[str, int] | None = None  # the client's address: same port = reused connection
    disconnected: bool = False  # the client went away before the reply was fully written
    received_at: float = 0.0  # time.monotonic() when the request was read (gaps between retries)

    def __getitem__(self, key: str) -> Any:
        """``request["body"]``, ``request["headers"]``: the same fields, dict-style."""
        if key not in ("method", "path", "headers", "body", "client", "disconnected", "received_at"):
            raise KeyError(key)
        return getattr(self, key)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class _Reply:
    """A stream reply: the writes to make, and how to frame the body."""

    writes: list[Any]  # bytes (one TCP write each), float (sleep seconds) or ABORT
    chunked: bool = True
    content_type: str = "text/event-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def _chunk(model: str, delta: dict[str, Any] | None = None, finish: str | None = None) -> bytes:
    return _sse(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        }
    )


def _usage_chunk(model: str, body: dict[str, Any], completion: int, choices: Any = ()) -> bytes:
    return _sse(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": list(choices) if choices is not None else None,
            "usage": _usage(body, completion),
        }
    )


def _usage(body: dict[str, Any], completion: int) -> dict[str, int]:
    prompt = prompt_tokens(body)
    total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _standard(
    model: str,
    body: dict[str, Any],
    pieces: list[str],
    key: str = "content",
    usage: bool | None = None,
    done: bool = True,
) -> list[bytes]:
    """Role chunk, one chunk per piece, finish chunk, usage chunk (if asked), [DONE]."""
    limit = body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and len(pieces) > limit:
        pieces, finish = pieces[:limit], "length"
    writes = [_chunk(model, {"role": "assistant", "content": ""})]
    writes += [_chunk(model, {key: piece}) for piece in pieces]
    writes.append(_chunk(model, {}, finish))
    if usage is None:
        usage = _wants_usage(body)
    if usage:
        writes.append(_usage_chunk(model, body, len(pieces)))
    if done:
        writes.append(DONE)
    return writes


@functools.lru_cache(maxsize=8)
def _fast_chunks(model: str, n: int, markdown: bool, usage_json: str | None) -> tuple[bytes, ...]:
    """``chunks:N`` bytes, pre-built and grouped into ~8 KiB writes (benchmarks repeat it)."""
    parts = [_chunk(model, {"role": "assistant", "content": ""})]
    parts += [_chunk(model, {"content": piece}) for piece in chunk_pieces(n, markdown)]
    parts.append(_chunk(model, {}, "stop"))
    if usage_json is not None:
        parts.append(b"data: " + usage_json.encode() + b"\n\n")
    parts.append(DONE)
    writes, current, size = [], [], 0
    for part in parts:
        current.append(part)
        size += len(part)
        if size >= 8192:
            writes.append(b"".join(current))
            current, size = [], 0
    if current:
        writes.append(b"".join(current))
    return tuple(writes)


LLAMA_TIMINGS = {"prompt_n": 5, "predicted_n": 7, "predicted_per_second": 42.5}
ALTERNATE_ERROR = "Conversation roles must alternate user/assistant/user/assistant/..."


def alternates(messages: list[Any]) -> bool:
    """What strict chat templates accept: [system], user, assistant, user, ..., user."""
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if roles[:1] == ["system"]:
        roles = roles[1:]
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
    return bool(roles) and roles == expected and roles[-1] == "user"


@functools.lru_cache(maxsize=2)
def _big_writes(model: str, megabytes: int, kilobytes: int) -> tuple[bytes, ...]:
    """``big:MB:KB``: one SSE event per piece, each piece KB kilobytes of words."""
    piece = ("lorem ipsum dolor sit amet " * (kilobytes * 1024 // 27 + 1))[: kilobytes * 1024]
    count = megabytes * 1024 // kilobytes
    event = _chunk(model, {"content": piece})
    return (_chunk(model, {"role": "assistant", "content": ""}), *([event] * count),
            _chunk(model, {}, "stop"), DONE)


def big_text(megabytes: int, kilobytes: int) -> int:
    """How many characters ``big:MB:KB`` streams."""
    return (megabytes * 1024 // kilobytes) * kilobytes * 1024


def _history_scenario(model: str, body: dict[str, Any]) -> _Reply | None:
    """The scenarios of issue 8 (see the module docstring); None: not one of them."""
    name, args = _parse(model)
    std = functools.partial(_standard, model, body)
    echo = split_text(last_user_message(body))
    if name == "strict":
        if not alternates(body.get("messages") or []):
            return _error_reply(400, {"error": {"message": ALTERNATE_ERROR, "code": 400}})
        return _Reply(std(echo))
    if name == "idle":
        start = std(split_text(PARTIAL), usage=False)
        return _Reply([*start[:-2], float(args[0]), *start[-2:]])
    if name == "wait":
        return _Reply([float(args[0]), *std(echo)])
    if name == "headers-then-cut":
        return _Reply([ABORT])
    malformed = {
        "content-number": b'data: {"choices": [{"delta": {"content": 42}}]}\n\n',
        "content-list": b'data: {"choices": [{"delta": {"content": ["a", "b"]}}]}\n\n',
        "content-nan": b'data: {"choices": [{"delta": {"content": NaN}}]}\n\n',
        "deep-nesting": b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n",
    }
    if name in malformed:
        start = std(split_text(PARTIAL), usage=False)[:-2]
        return _Reply([*start, malformed[name]])
    if name == "llama-timings":
        writes = std(echo, usage=False, done=False)
        finish = json.loads(writes[-1][6:])
        finish["timings"] = LLAMA_TIMINGS
        return _Reply([*writes[:-1], _sse(finish), DONE])
    if name == "big":
        return _Reply(list(_big_writes(model, int(args[0]), int(args[1]))))
    return None


def _stream_reply(model: str, body: dict[str, Any]) -> _Reply:
    name, args = _parse(model)
    echo = split_text(last_user_message(body))
    std = functools.partial(_standard, model, body)
    special = _history_scenario(model, body)
    if special is not None:
        return special
    if name == "chunks":
        n, markdown = int(args[0]), args[1:2] == ["markdown"]
        usage = None
        if _wants_usage(body):
            usage = json.dumps(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": 1700000000,
                    "model": model,
                    "choices": [],
                    "usage": _usage(body, n),
                }
            )
        return _Reply(list(_fast_chunks(model, n, markdown, usage)))
    if name == "bigline":
        body_bytes = b"".join(std([bigline_text(int(args[0]))]))
        return _Reply([body_bytes[i : i + 65536] for i in range(0, len(body_bytes), 65536)])
    if name == "slow":
        n, delay = int(args[0]), int(args[1]) / 1000
        writes: list[Any] = []
        for part in std([f"tok{i} " for i in range(n)]):
            writes += [part, delay] if b'"tok' in part else [part]
        return _Reply(writes)
    if name == "no-done":  # transformers serve: usage on the finish chunk, no [DONE]
        writes = std(echo, usage=False, done=False)
        finish = json.loads(writes[-1][6:])
        finish["usage"] = _usage(body, len(echo))
        return _Reply([*writes[:-1], _sse(finish)])
    if name == "ping":
        writes = [b": OPENROUTER PROCESSING\n\n"]
        for part in std(echo):
            writes += [b": ping\n\n", part, b":\n\n"]
        return _Reply(writes)
    if name == "choices-null":
        bare = _sse({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model})
        null = _sse({"id": "chatcmpl-test", "model": model, "choices": None})
        writes = std(echo, usage=False)
        return _Reply(
            [writes[0], bare, null, *writes[1:-1], _usage_chunk(model, body, len(echo), None), DONE]
        )
    if name == "choices-empty":
        empty = _sse({"id": "chatcmpl-test", "model": model, "choices": []})
        writes = []
        for part in std(echo):
            writes += [part, empty]
        return _Reply(writes)
    if name in ("reasoning_content", "reasoning", "reasoning-both"):
        keys = ("reasoning_content", "reasoning") if name == "reasoning-both" else (name,)
        writes = std(split_text(ANSWER), usage=True)
        thinking = [
            _chunk(model, {"content": None, **{k: p for k in keys}})
            for p in split_text(REASONING, 8)
        ]
        return _Reply([writes[0], *thinking, *writes[1:]])
    if name == "crlf":
        return _Reply([part.replace(b"\n", b"\r\n") for part in std(echo)])
    if name == "u2028":
        return _Reply(std(["line one\u2028", "line two\u0085", "line three\u2029", "end"]))
    if name == "split-utf8":
        writes = []
        for part in std(split_text(UTF8_TEXT, 3)):
            cut = next((i for i, b in enumerate(part) if b >= 0xC0), len(part) // 2) + 1
            writes += [part[:cut], 0.002, part[cut:], 0.002]
        return _Reply(writes)
    if name == "multiline-data":
        writes = []
        for i, part in enumerate(std(echo)):
            if part == DONE:
                writes.append(part)
                continue
            lines = json.dumps(json.loads(part[6:]), indent=1, ensure_ascii=False).split("\n")
            prefix = "data:" if i % 2 else "data: "
            writes.append("".join(f"{prefix}{line}\n" for line in lines).encode() + b"\n")
        return _Reply(writes)
    if name == "id-then-comments":
        writes = [b"retry: 3000\n\n"]
        for i, part in enumerate(std(echo)):
            writes += [
                b"id: %d\n: keep-alive\n\n" % i,
                b": keep-alive\n\n",
                b"id: %d\nevent: message\n" % i + part,
            ]
        return _Reply(writes)
    if name == "no-trailing-blank":
        writes = std(echo, usage=False, done=False)
        finish = json.loads(writes[-1][6:])
        finish["usage"] = _usage(body, len(echo))
        return _Reply([*writes[:-1], _sse(finish)[:-1]])  # one "\n", no blank line
    if name == "burst":
        return _Reply([b"".join(std(echo))])
    if name == "padded":
        writes = []
        for i, part in enumerate(std(echo)):
            if part == DONE:
                writes.append(part)
                continue
            payload = part[6:-2]  # between "data: " and the blank line
            before, after = (b" \t", b" \t") if i % 2 else (b"", b"\t ")  # around the JSON
            writes.append(b"data: " + before + payload + after + b"\n\n")
        return _Reply(writes)
    if name == "reject-stream-options" and "stream_options" in body:
        return _error_reply(
            400,
            {
                "error": {
                    "message": "Unrecognized request argument supplied: stream_options",
                    "type": "invalid_request_error",
                    "param": "stream_options",
                    "code": None,
                }
            },
        )
    if name == "ignore-usage":
        return _Reply(std(echo, usage=False))
    if name in ("error-event", "error-event-string", "error-field", "bad-json", "cut", "cut-eof"):
        start = std(split_text(PARTIAL), usage=False)[:-2]  # role + partial text, no finish
        tail: Any = {
            "error-event": _sse(
                {
                    "error": {
                        "message": "model overloaded:\n  please retry later",
                        "type": "server_error",
                        "code": 500,
                    }
                }
            ),
            "error-event-string": _sse({"error": "CUDA out of memory"}),
            "error-field": b'error: {"code": 500, "message": "llama.cpp: failed to decode",'
            b' "type": "server_error"}\n\n',
            "bad-json": b'data: {"choices": [{"delta": {"content": "x"\n\n',
            "cut": ABORT,
            "cut-eof": b"",
        }[name]
        return _Reply([*start, tail], chunked=name != "cut-eof")
    if name == "hostile":
        return _Reply(std(hostile_pieces(HOSTILE_TEXT)))
    if name == "hostile-reasoning":
        writes = std(hostile_pieces(HOSTILE_TEXT), usage=True)
        thinking = [
            _chunk(model, {"content": None, "reasoning_content": p})
            for p in hostile_pieces(HOSTILE_LINE)
        ]
        return _Reply([writes[0], *thinking, 0.4, *writes[1:]])
    if name == "error-event-hostile":
        start = std(split_text(PARTIAL), usage=False)[:-2]
        error = {"error": {"message": HOSTILE_LINE, "type": "server_error", "code": 500}}
        return _Reply([*start, _sse(error)])
    if name == "json-reply":
        return _error_reply(200, _completion(model, body))
    if name == "not-sse":
        return _Reply([b"hello from a proxy\n"], content_type="text/plain; charset=utf-8")
    if name == "served-as":  # the server answers with another model than the one asked for
        return _Reply(_standard(args[0] if args else "served-model", body, echo))
    return _Reply(std(echo))


def _completion(model: str, body: dict[str, Any]) -> dict[str, Any]:
    name, _ = _parse(model)
    message: dict[str, Any] = {"role": "assistant", "content": scenario_text(model, body)}
    if name.startswith("reasoning"):
        message["reasoning_content"] = REASONING
    reply = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(body, len(split_text(message["content"]))),
    }
    if name == "llama-timings":
        reply["timings"] = LLAMA_TIMINGS
    return reply


def _error_reply(
    status: int,
    payload: Any,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> _Reply:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return _Reply(
        [data], chunked=False, content_type=content_type, status=status, headers=headers or {}
    )


_MESSAGES = {
    400: "Bad request",
    401: "Incorrect API key provided: {key}",
    403: "Project does not have access to model {model}",
    404: "The model `{model}` does not exist",
    422: "Unprocessable entity",
    429: "Rate limit reached for requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service temporarily overloaded",
}


def _http_reply(code: int, variant: str, model: str, key: str, retry_after: str | None) -> _Reply:
    text = _MESSAGES.get(code, f"HTTP {code}").format(key=key, model=model)
    if code == 401 and not key:
        text = "You didn't provide an API key."
    if variant == "hostile":
        text, variant = HOSTILE_LINE, ""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    if variant == "plain":
        return _error_reply(code, f"{text}\n".encode(), "text/plain; charset=utf-8", headers)
    if variant == "html":
        page = (
            f"<html><head><title>{code} {text}</title><style>body{{color:red}}</style>"
            f"</head><body><center><h1>{code} {text}</h1></center><hr><center>nginx"
            f"</center></body></html>"
        )
        return _error_reply(code, page.encode(), "text/html", headers)
    payload: Any = {"error": {"message": text, "type": "invalid_request_error", "code": code}}
    if variant == "detail":
        payload = {
            "detail": [
                {
                    "loc": ["body", "top_k"],
                    "msg": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                }
            ]
        }
    elif variant == "string":
        payload = {"error": text}
    elif variant == "message":
        payload = {"object": "error", "message": text, "type": "BadRequestError", "code": code}
    return _error_reply(code, payload, headers=headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        record = self._record(None)
        if self.path.rstrip("/") != "/v1/models":
            return self._send(_error_reply(404, {"detail": "Not Found"}), record)
        owner = self.server.owner
        if owner.api_key and record.authorization != f"Bearer {owner.api_key}":
            return self._send(_http_reply(401, "", "", self._key(record), None), record)
        data = [
            {
                "id": m,
                "object": "model",
                "created": 0,
                "owned_by": "chatterm-tests",
                "max_model_len": 4096,
            }
            for m in owner.models
        ]
        return self._send(_error_reply(200, {"object": "list", "data": data}), record)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = self._record(body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(_error_reply(404, {"detail": "Not Found"}), record)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._send(_error_reply(500, b"Internal Server Error", "text/plain"), record)
        owner = self.server.owner
        if owner.api_key and record.authorization != f"Bearer {owner.api_key}":
            return self._send(_http_reply(401, "", "", self._key(record), None), record)
        model = str(body.get("model") or "echo")
        reply = self._http_scenario(model, record)
        if reply is None:
            try:
                if body.get("stream"):
                    reply = _stream_reply(model, body)
                elif _parse(model)[0] == "strict" and not alternates(body["messages"]):
                    reply = _error_reply(400, {"error": {"message": ALTERNATE_ERROR}})
                else:
                    reply = _error_reply(200, _completion(model, body))
            except (ValueError, IndexError):
                message = f"bad test scenario {model!r} (see tests/openai_server.py)"
                reply = _error_reply(400, {"error": {"message": message}})
        self._send(reply, record)

    def _http_scenario(self, model: str, record: RecordedRequest) -> _Reply | None:
        name, args = _parse(model)
        if name == "html-error":
            name, args = "http", ["502-html"]
        if name != "http" or not args:
            return None
        code_text, _, variant = args[0].partition("-")
        code = int(code_text)
        retry_after: str | None = "0" if code == 429 else None
        if variant == "then-ok":
            failures = int(args[1]) if len(args) > 1 else 1
            retry_after = args[2] if len(args) > 2 else "0"
            if self.server.owner.bump(model) % (failures + 1) == failures:
                return None
            variant = ""
        elif variant == "always":
            variant = ""
        if retry_after == "none":
            retry_after = None
        return _http_reply(code, variant, model, self._key(record), retry_after)

    @staticmethod
    def _key(record: RecordedRequest) -> str:
        return (record.authorization or "").removeprefix("Bearer ")

    def _record(self, body: Any) -> RecordedRequest:
        record = RecordedRequest(
            self.command,
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            (self.client_address[0], self.client_address[1]),
            received_at=time.monotonic(),
        )
        self.server.owner.requests.append(record)
        return record

    def _send(self, reply: _Reply, record: RecordedRequest) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if not reply.chunked and reply.content_type == "text/event-stream":
            self.send_header("Connection", "close")  # body framed by closing the connection
            self.close_connection = True
        elif not reply.chunked:
            self.send_header("Content-Length", str(sum(len(w) for w in reply.writes)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        write = self.wfile.write
        try:
            for item in reply.writes:
                if item is ABORT:
                    self.close_connection = True
                    return
                if isinstance(item, float):
                    time.sleep(item)
                elif reply.chunked:
                    if item:
                        write(b"%x\r\n%s\r\n" % (len(item), item))
                else:
                    write(item)
            if reply.chunked:
                write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            record.disconnected = True
            self.close_connection = True
            self.server.owner.disconnected.set()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OpenAIServer:
    """The server, on a background thread. Use as a context manager or ``start()``/``stop()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
        api_key: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.models = list(models)
        self.api_key = api_key  # when set, requests without "Bearer <api_key>" get 401
        self.requests: list[RecordedRequest] = []
        self.disconnected = threading.Event()  # set when a client left mid-reply
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> OpenAIServer:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            name="openai-server",
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def bump(self, key: str) -> int:
        """How many times ``key`` was seen before (per-scenario counters for then-ok)."""
        with self._lock:
            count = self._counters.get(key, 0)
            self._counters[key] = count + 1
            return count

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
            self.requests.clear()
            self.disconnected.clear()

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible server for chatterm.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    server = OpenAIServer(args.host, args.port, api_key=args.api_key)
    httpd = _HTTPServer((server.host, server.port), _Handler)
    httpd.owner = server
    server.port = httpd.server_address[1]
    print(f"READY {server.base_url}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
