"""What the conversation controller tells a front end, and the one object a reply lives in.

Why plain dataclasses: the controller (:mod:`chatterm.controller`) is headless, so it cannot
touch widgets; it hands these to a listener, and the TUI turns each into widget updates. A
test can collect them in a list and read them back.

:class:`Reply` is the one place a streaming reply's state lives: its text and reasoning are
the :class:`~chatterm.chat.ReplyOutcome`'s piece lists that ChatSession appends to (not a
copy), its counts and timings are plain attributes read by the status line.

This is a core module: no Textual.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from chatterm.chat import ChatSession, ReplyOutcome
from chatterm.store import COMPLETE, STREAMING, Message

ReplyKind = Literal["send", "regenerate", "edit"]


@dataclass(eq=False)
class Reply:
    """One send / regenerate / edit, from Enter to the stored outcome."""

    kind: ReplyKind
    prompt: str = ""
    edit_of: int | None = None
    backend: str = ""
    model: str | None = None
    conversation_id: str | None = None
    user_message_id: int | None = None
    session: ChatSession | None = None
    events: Any = None  # the session's async generator, once the rows are stored
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_chunk_at: float | None = None
    deltas: int = 0
    completion_tokens: int | None = None
    error: str | None = None
    ended: bool = False
    stop_requested: bool = False
    # Files and images sent with the prompt (chatterm.attachments.Attachment), stored with it.
    attachments: list[Any] = field(default_factory=list)
    # What the prompt box held when it differs from ``prompt`` (``@path`` written as ``path``,
    # a template's pattern filled in): the box is cleared, or refilled, with this.
    typed: str | None = None

    @property
    def box_text(self) -> str:
        """The text the prompt box held for this reply."""
        return self.typed if self.typed is not None else self.prompt

    @property
    def stored(self) -> bool:
        """True once the prompt and the reply's row are in the history."""
        return self.events is not None

    @property
    def outcome(self) -> ReplyOutcome | None:
        return self.session.last_outcome if self.session is not None else None

    @property
    def message_id(self) -> int | None:
        outcome = self.outcome
        return outcome.message_id if outcome is not None and self.stored else None

    @property
    def text(self) -> str:
        outcome = self.outcome
        return outcome.live_text() if outcome is not None and self.stored else ""

    @property
    def reasoning(self) -> str:
        outcome = self.outcome
        return outcome.live_reasoning() if outcome is not None and self.stored else ""

    @property
    def status(self) -> str:
        outcome = self.outcome
        if outcome is None or not self.stored:
            return STREAMING if not self.ended else COMPLETE
        return outcome.status

    def rate(self, now: float | None = None) -> float | None:
        """Tokens (or chunks, while the server has not said) per second since the first."""
        if self.first_token_at is None:
            return None
        elapsed = (now or time.monotonic()) - self.first_token_at
        count = self.completion_tokens or self.deltas
        return count / elapsed if elapsed > 0.2 else None


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opening:
    """The backend for ``reply`` is being opened (``state`` says what, for the status line)."""

    reply: Reply
    state: str


@dataclass(frozen=True, slots=True)
class ReplyStarted:
    """The prompt and an empty reply row are stored; the stream starts now."""

    reply: Reply
    branch: list[Message]
    positions: dict[int, tuple[int, int]]
    new_conversation: bool


@dataclass(frozen=True, slots=True)
class TextArrived:
    reply: Reply
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningArrived:
    reply: Reply
    text: str


@dataclass(frozen=True, slots=True)
class ModelResolved:
    """The backend said which model actually answers (it may differ from the one asked)."""

    reply: Reply
    model: str


@dataclass(frozen=True, slots=True)
class ReplyEnded:
    """The reply is over and stored (complete, interrupted or error); ``message`` is its row."""

    reply: Reply
    message: Message | None


@dataclass(frozen=True, slots=True)
class SendFailed:
    """Nothing was stored: the backend could not be opened or the options were refused."""

    reply: Reply
    message: str


@dataclass(frozen=True, slots=True)
class Told:
    """Something to tell the user (a backend notice, a warning); never part of the reply."""

    message: str
    severity: Literal["information", "warning", "error"] = "information"


ControllerEvent = (
    Opening | ReplyStarted | TextArrived | ReasoningArrived | ModelResolved | ReplyEnded
    | SendFailed | Told
)
