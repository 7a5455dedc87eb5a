"""Conversations as Markdown or JSON documents (CLI `sessions export` and the TUI)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chatterm.store import COMPLETE, Conversation, HistoryStore, Message, StoredAttachment

# Attachments of each message, by message id (HistoryStore.attachments_for).
Attached = Mapping[int, Sequence[StoredAttachment]]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def attachment_json(item: StoredAttachment) -> dict[str, Any]:
    """Text files with their text, images with their bytes (base64); both with the hash."""
    data: dict[str, Any] = {
        "name": item.name, "kind": item.kind, "mime": item.mime, "size": item.size,
        "sha256": item.sha256,
    }
    if item.kind == "text":
        data["text"] = item.text
    else:
        data["data_base64"] = base64.b64encode(item.data).decode("ascii")
    return data


def message_json(message: Message, attachments: Sequence[StoredAttachment] = ()) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": message.id,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning or None,
        "status": message.status,
        "error": message.error,
        "backend": message.backend,
        "model": message.model,
        "options": message.options,
        "usage": {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
        },
        "finish_reason": message.finish_reason,
        "first_token_s": message.first_token_s,
        "duration_s": message.duration_s,
        "created_at": message.created_at,
    }
    if attachments:
        data["attachments"] = [attachment_json(a) for a in attachments]
    return data


def conversation_json(
    conversation: Conversation,
    messages: list[Message],
    attached: Attached | None = None,
    template: str | None = None,
) -> dict[str, Any]:
    attached = attached or {}
    data: dict[str, Any] = {
        "id": conversation.id,
        "title": conversation.title,
        "system_prompt": conversation.system_prompt,
        "options": conversation.options,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "messages": [message_json(m, attached.get(m.id, ())) for m in messages],
    }
    if template is not None:  # the [templates.NAME] that started it
        data["template"] = template
    return data


def to_json(
    conversation: Conversation,
    messages: list[Message],
    attached: Attached | None = None,
    template: str | None = None,
) -> str:
    return json.dumps(
        conversation_json(conversation, messages, attached, template), ensure_ascii=False,
        indent=2,
    )


def attachment_markdown(item: StoredAttachment) -> list[str]:
    """A file as the model saw it (fenced, named); an image as a reference by name and hash."""
    if item.kind == "text":
        from chatterm.attachments import render_file

        return [render_file(item.name, item.text), ""]
    return [f"*Image: {item.name} ({item.mime}, {item.size} bytes, sha256 {item.sha256})*", ""]


def to_markdown(
    conversation: Conversation,
    messages: list[Message],
    attached: Attached | None = None,
    template: str | None = None,
) -> str:
    attached = attached or {}
    started = f" · template {template}" if template else ""
    lines = [
        f"# {conversation.title}", "",
        f"*{conversation.id} · {_when(conversation.created_at)}{started}*", "",
    ]
    if conversation.system_prompt:
        lines += ["**System:**", "", conversation.system_prompt, ""]
    for message in messages:
        who = "You" if message.role == "user" else (message.model or message.role)
        note = "" if message.status == COMPLETE else f" ({message.status})"
        lines += [f"## {who}{note}", ""]
        for item in attached.get(message.id, ()):
            lines += attachment_markdown(item)
        lines += [message.content, ""]
    return "\n".join(lines)


def render(
    store: HistoryStore, conversation: Conversation, messages: list[Message], *, as_json: bool
) -> str:
    """The export document of ``messages`` of a stored conversation, with their attachments
    and the conversation's template: what ``sessions show/export`` and the TUI's export write.
    """
    attached = store.attachments_for(m.id for m in messages)
    template = store.template_of(conversation.id)
    if as_json:
        return to_json(conversation, messages, attached, template)
    return to_markdown(conversation, messages, attached, template)


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write an export that only its owner can read: a new file is created 0600.

    A conversation is as private as the history it came from. The mode is given to ``open``
    itself, so the file is never readable by others, not even for an instant; an existing file
    is overwritten and keeps its mode (the user chose it), and a FIFO or a device (``--output
    /dev/stdout``) is written as it is.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
