"""Conversations as Markdown or JSON documents (CLI `sessions export` and the TUI)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from chatterm.store import COMPLETE, Conversation, Message


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def message_json(message: Message) -> dict[str, Any]:
    return {
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


def conversation_json(conversation: Conversation, messages: list[Message]) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "system_prompt": conversation.system_prompt,
        "options": conversation.options,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "messages": [message_json(m) for m in messages],
    }


def to_json(conversation: Conversation, messages: list[Message]) -> str:
    return json.dumps(conversation_json(conversation, messages), ensure_ascii=False, indent=2)


def to_markdown(conversation: Conversation, messages: list[Message]) -> str:
    lines = [f"# {conversation.title}", "", f"*{conversation.id} · {_when(conversation.created_at)}*", ""]
    if conversation.system_prompt:
        lines += ["**System:**", "", conversation.system_prompt, ""]
    for message in messages:
        who = "You" if message.role == "user" else (message.model or message.role)
        note = "" if message.status == COMPLETE else f" ({message.status})"
        lines += [f"## {who}{note}", "", message.content, ""]
    return "\n".join(lines)


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
