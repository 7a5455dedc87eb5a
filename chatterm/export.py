"""Conversations as Markdown or JSON documents (CLI `sessions export` and the TUI)."""

from __future__ import annotations

import json
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
