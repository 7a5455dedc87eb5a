"""A conversation being continued with a backend: the one place that turns history into a request
and a streamed reply back into history.

Both front ends (``chatterm ask`` and the TUI) drive a :class:`ChatSession`, so they save the same
way: the user message is stored before anything is sent, the reply is flushed to the database as
it streams, and every exit path (finish, server error, Ctrl-C, Esc, a dropped connection) leaves
the partial reply stored and marked.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatterm.backend import (
    Backend,
    BackendError,
    ChatMessage,
    ChatRequest,
    Finish,
    ImagePart,
    Metadata,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)
from chatterm.store import (
    COMPLETE,
    ERROR,
    INTERRUPTED,
    STREAMING,
    Conversation,
    HistoryStore,
    Message,
    StoredAttachment,
    title_from_prompt,
)

# How often a streaming reply is written to the database. Short enough that a killed process
# loses little, long enough that the per-chunk path stays a list append.
FLUSH_INTERVAL_S = 0.5


@dataclass(slots=True)
class ReplyOutcome:
    """What happened to the last reply, for status lines, ``--json`` and ``--usage``."""

    message_id: int | None = None
    text: str = ""
    reasoning: str = ""
    status: str = STREAMING
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None
    backend: str | None = None
    first_token_s: float | None = None
    duration_s: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float | None:
        if not self.completion_tokens or self.duration_s is None:
            return None
        decode_s = self.duration_s - (self.first_token_s or 0.0)
        return self.completion_tokens / decode_s if decode_s > 0 else None


def _with_attachments(message: Message, items: list[StoredAttachment]) -> ChatMessage:
    """A user message with its files laid out in the prompt and its images as parts."""
    from chatterm.attachments import compose_with_files

    files = [(a.name, a.text) for a in items if a.kind == "text"]
    images = tuple(ImagePart(a.mime, a.data) for a in items if a.kind == "image")
    return ChatMessage("user", compose_with_files(message.content, files), images)


def memory_store() -> HistoryStore:
    """A throwaway store for ``--no-log``: same code path, nothing written to disk."""
    return HistoryStore(Path(":memory:"))


class ChatSession:
    """Continue one conversation (or start one on the first send) with one backend.

    The backend, model and options can be switched between replies; each stored reply records
    which backend and model wrote it.
    """

    def __init__(
        self,
        store: HistoryStore,
        backend: Backend,
        *,
        backend_name: str,
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        conversation: Conversation | None = None,
        system_prompt: str | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.backend_name = backend_name
        self.model = model
        self.options: dict[str, Any] = dict(options or {})
        self.conversation = conversation
        self._new_system_prompt = system_prompt
        self.last_outcome: ReplyOutcome | None = None
        if conversation is not None and system_prompt is not None:
            store.update_conversation_settings(conversation.id, system_prompt=system_prompt)
            self.conversation = store.get_conversation(conversation.id)

    # --- settings ------------------------------------------------------------------------

    def switch_backend(
        self,
        backend: Backend,
        *,
        backend_name: str,
        model: str | None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.backend_name = backend_name
        self.model = model
        if options is not None:
            self.options = dict(options)

    @property
    def system_prompt(self) -> str | None:
        if self.conversation is not None:
            return self.conversation.system_prompt
        return self._new_system_prompt

    def messages(self) -> list[Message]:
        """The active branch, oldest first."""
        if self.conversation is None:
            return []
        return self.store.branch(self.conversation.id)

    def refresh(self) -> None:
        if self.conversation is not None:
            self.conversation = self.store.get_conversation(self.conversation.id)

    # --- sending -------------------------------------------------------------------------

    def send(self, prompt: str, attachments: Sequence[Any] = ()) -> AsyncIterator[StreamEvent]:
        """Store ``prompt`` (and its attachments) as the next user message and stream the reply.

        ``attachments`` are :class:`chatterm.attachments.Attachment` values, already read and
        checked; they are stored with the message, so ``-c`` re-sends them as they were.
        """
        if self.conversation is None:
            names = ", ".join(a.name for a in attachments)
            self.conversation = self.store.create_conversation(
                title_from_prompt(prompt if prompt.strip() else names),
                system_prompt=self._new_system_prompt,
            )
            parent_id = None
        else:
            self.refresh()
            assert self.conversation is not None
            parent_id = self.conversation.active_leaf_id
        user = self.store.add_message(self.conversation.id, "user", prompt, parent_id=parent_id)
        if attachments:
            self.store.add_attachments(user.id, attachments)
        return self._reply_to(user)

    def regenerate(self) -> AsyncIterator[StreamEvent]:
        """Answer the last user message again; the old reply stays as a sibling branch."""
        branch = self.messages()
        users = [m for m in branch if m.role == "user"]
        if not users:
            raise BackendError("nothing to regenerate: the conversation has no prompt yet")
        return self._reply_to(users[-1])

    def edit(self, message_id: int, new_text: str) -> AsyncIterator[StreamEvent]:
        """Replace an earlier user message by branching from its parent and resending."""
        original = self.store.get_message(message_id)
        if self.conversation is None or original is None or original.role != "user":
            raise BackendError("only a user message of this conversation can be edited")
        user = self.store.add_message(
            self.conversation.id, "user", new_text, parent_id=original.parent_id
        )
        return self._reply_to(user)

    def build_request(self, upto: Message) -> ChatRequest:
        assert self.conversation is not None
        branch = self.store.branch(self.conversation.id, upto.id)
        chat: list[ChatMessage] = []
        if self.system_prompt:
            chat.append(ChatMessage("system", self.system_prompt))
        attached = self.store.attachments_for(m.id for m in branch if m.role == "user")
        for message in branch:
            if message.id in attached:
                chat.append(_with_attachments(message, attached[message.id]))
            elif message.role in ("user", "assistant") and (message.content or message.role == "user"):
                chat.append(ChatMessage(message.role, message.content))  # type: ignore[arg-type]
        return ChatRequest(chat, model=self.model, options=dict(self.options))

    async def _reply_to(self, user: Message) -> AsyncIterator[StreamEvent]:
        assert self.conversation is not None
        request = self.build_request(user)
        reply = self.store.add_message(
            self.conversation.id,
            "assistant",
            "",
            parent_id=user.id,
            status=STREAMING,
            backend=self.backend_name,
            model=self.model,
            options=self.options,
        )
        outcome = ReplyOutcome(
            message_id=reply.id, model=self.model, backend=self.backend_name
        )
        self.last_outcome = outcome
        pieces: list[str] = []
        thoughts: list[str] = []
        started = time.monotonic()
        next_flush = started + FLUSH_INTERVAL_S
        try:
            events = self.backend.stream(request)
            try:
                async for event in events:
                    if type(event) is TextDelta:
                        pieces.append(event.text)
                        if outcome.first_token_s is None:
                            outcome.first_token_s = time.monotonic() - started
                    elif type(event) is ReasoningDelta:
                        thoughts.append(event.text)
                        if outcome.first_token_s is None:
                            outcome.first_token_s = time.monotonic() - started
                    elif type(event) is Usage:
                        if event.prompt_tokens is not None:
                            outcome.prompt_tokens = event.prompt_tokens
                        if event.completion_tokens is not None:
                            outcome.completion_tokens = event.completion_tokens
                    elif type(event) is Finish:
                        outcome.finish_reason = event.reason
                    elif type(event) is Metadata:
                        outcome.metadata.update(event.values)
                        resolved = event.values.get("model")
                        if isinstance(resolved, str):
                            outcome.model = resolved
                    yield event
                    now = time.monotonic()
                    if now >= next_flush:
                        next_flush = now + FLUSH_INTERVAL_S
                        self.store.update_message(
                            reply.id, content="".join(pieces), reasoning="".join(thoughts)
                        )
            finally:
                # Closing the stream is what stops the backend's work (HTTP, decoding thread).
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
            outcome.status = COMPLETE
        except BackendError as exc:
            outcome.status = ERROR
            outcome.error = exc.message
            raise
        except Exception as exc:
            # A bug or a local failure (e.g. the database): keep what arrived, say what broke.
            outcome.status = ERROR
            outcome.error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"[:300]
            raise
        except BaseException:
            # Cancelled (Esc, Ctrl-C) or the consumer stopped reading: keep what arrived.
            outcome.status = INTERRUPTED
            outcome.error = "interrupted"
            raise
        finally:
            outcome.text = "".join(pieces)
            outcome.reasoning = "".join(thoughts)
            outcome.duration_s = time.monotonic() - started
            self.store.update_message(
                reply.id,
                content=outcome.text,
                reasoning=outcome.reasoning,
                status=outcome.status,
                error=outcome.error,
                model=outcome.model,
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                finish_reason=outcome.finish_reason,
                first_token_s=outcome.first_token_s,
                duration_s=outcome.duration_s,
            )
            self.refresh()
