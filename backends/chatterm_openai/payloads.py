"""Reading the JSON payloads that are not stream chunks: whole replies and model lists.

Kept apart from the backend so the shapes servers disagree on (``data`` vs ``models``, where the
context length hides) are plain functions, testable without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatterm.backend import (
    ChatMessage,
    Finish,
    Metadata,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)

_CONTEXT_KEYS = ("context_length", "max_model_len", "context_window", "max_context_length")


def message_payload(message: ChatMessage) -> dict[str, Any]:
    """One message as the API wants it: a plain string, or content parts when it has images.

    Images go as ``image_url`` parts with a base64 ``data:`` URL (every OpenAI-compatible
    server that takes images accepts that; none can fetch a file from this machine), after the
    text part, as OpenAI's own examples order them.
    """
    if not message.images:
        return {"role": message.role, "content": message.content}
    import base64

    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for image in message.images:
        encoded = base64.b64encode(image.data).decode("ascii")
        parts.append(
            {"type": "image_url", "image_url": {"url": f"data:{image.mime};base64,{encoded}"}}
        )
    return {"role": message.role, "content": parts}


def usage_of(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from an OpenAI ``usage`` object, ignoring fields that are not ints."""
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    return Usage(
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def completion_events(reply: Mapping[str, Any]) -> list[StreamEvent]:
    """The events of one non-streamed ``chat.completion`` (raises on a malformed one)."""
    events: list[StreamEvent] = []
    if reply.get("model"):
        events.append(Metadata({"model": reply["model"]}))
    choice = (reply.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    content = message.get("content")
    for text in (reasoning, content):
        if text and not isinstance(text, str):
            raise TypeError("reply text is not a string")
    if reasoning:
        events.append(ReasoningDelta(reasoning))
    if content:
        events.append(TextDelta(content))
    if reply.get("usage"):
        events.append(usage_of(reply["usage"]))
    if isinstance(reply.get("timings"), dict):  # llama.cpp's own speed figures
        events.append(Metadata({"timings": reply["timings"]}))
    if choice.get("finish_reason"):
        events.append(Finish(str(choice["finish_reason"])))
    return events


def model_entries(listing: Any) -> list[dict[str, Any]]:
    """Entries of a ``/models`` answer, each a dict with an ``id``, in the server's order.

    OpenAI shape is ``{"data": [{"id": ...}]}``; a bare list, or a list of names, is taken too.
    """
    items = listing
    if isinstance(listing, dict):
        items = listing.get("data")
        if items is None:
            items = listing.get("models", [])
    if not isinstance(items, list):
        raise TypeError("model list is not a list")
    entries: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            entries.append({"id": item})
        elif isinstance(item, dict) and (item.get("id") or item.get("name")):
            entries.append(item if item.get("id") else {**item, "id": item["name"]})
    return entries


def context_length_of(entry: Mapping[str, Any]) -> int | None:
    """The context window a ``/models`` entry states (vLLM, LM Studio, llama.cpp), if any."""
    for key in _CONTEXT_KEYS:
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    meta = entry.get("meta")
    if isinstance(meta, dict):
        value = meta.get("n_ctx_train")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
