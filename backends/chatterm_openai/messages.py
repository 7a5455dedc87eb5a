"""Turning whatever a server sends on failure into one line a user can act on.

Servers disagree on the shape of an error: OpenAI and vLLM send ``{"error": {"message"}}``,
Ollama ``{"error": "text"}``, FastAPI apps (transformers serve) ``{"detail": ...}``, old vLLM a
bare ``{"message"}``, and proxies plain text or an HTML page. All of them end up here so the CLI
and the TUI can show a single line; none of this is on the per-token path.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

MESSAGE_LIMIT = 300

_HIDDEN_HTML = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BODY_HTML = re.compile(r"<body\b[^>]*>(.*?)(?:</body\s*>|$)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Collapse every kind of whitespace (newlines, U+2028 ...) and cut to ``limit`` chars."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def strip_html(text: str) -> str:
    """The readable text of an HTML error page (a proxy's 502, say), tags and scripts gone."""
    body = _BODY_HTML.search(text)
    if body is not None:
        text = body.group(1)
    text = _HIDDEN_HTML.sub(" ", text)
    return html.unescape(_TAG.sub(" ", text))


def message_from_json(value: Any) -> str:
    """The human part of a JSON error payload, whatever its dialect."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("error", "detail", "message"):
            if key not in value or value[key] in (None, "", [], {}):
                continue
            inner = value[key]
            if isinstance(inner, str):
                return inner
            if isinstance(inner, dict):
                return message_from_json(inner)
            if isinstance(inner, list):
                return "; ".join(_detail_item(item) for item in inner)
            return str(inner)
    return json.dumps(value, ensure_ascii=False)


def _detail_item(item: Any) -> str:
    """One entry of FastAPI's validation list: ``{"loc": [...], "msg": ...}``."""
    if isinstance(item, dict) and "msg" in item:
        loc = item.get("loc")
        if isinstance(loc, list) and loc:
            return f"{item['msg']} ({'.'.join(str(part) for part in loc)})"
        return str(item["msg"])
    return message_from_json(item)


def message_from_body(body: bytes, content_type: str) -> str:
    """The message of an error response body (JSON, plain text or HTML), already one line."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return ""
    if "json" in content_type or text[:1] in '{["':
        try:
            return one_line(message_from_json(json.loads(text)))
        except ValueError:
            pass
    if "html" in content_type or text[:1] == "<":
        text = strip_html(text)
    return one_line(text)


def message_from_event(text: str) -> str:
    """The message of an in-stream error (a JSON ``error`` payload or llama.cpp's field)."""
    try:
        value = json.loads(text)
    except ValueError:
        return one_line(text) or "unknown error"
    return one_line(message_from_json(value)) or "unknown error"


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


def format_seconds(seconds: float) -> str:
    """``1s``, ``0.5s``: short enough for a one-line notice."""
    return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
