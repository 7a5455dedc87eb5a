"""What every part of the app shares: its state, its widgets, and how it notifies.

Why a base class: the app's behaviour is split by topic (:mod:`chatterm.tui.actions`
navigation and editing, :mod:`chatterm.tui.manage` conversation management and models,
:mod:`chatterm.tui.replies` streaming); each is a class over this one, and
:class:`chatterm.tui.app.ChattermApp` combines them. Methods the combination provides are
declared here so each part type-checks on its own.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from textual.app import App
from textual.notifications import SeverityLevel

from chatterm.chat import ChatSession
from chatterm.config import Choice, Config
from chatterm.store import Conversation, HistoryStore
from chatterm.tui.backend_pool import BackendPool
from chatterm.tui.conversation_view import ConversationView
from chatterm.tui.prompt_input import PromptInput
from chatterm.tui.sidebar import Sidebar
from chatterm.tui.status_line import StatusLine


class ChattermBase(App[int]):
    """The state, widgets and notifications every part of the app uses."""

    store: HistoryStore
    config: Config
    choice: Choice
    pool: BackendPool
    conversation: Conversation | None
    session: ChatSession | None
    keymap_overrides: dict[str, str]
    drafts: dict[str | None, str]
    pending_settings: dict[str, Any] | None

    # --- provided by the app ------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        raise NotImplementedError

    async def open_conversation(self, conv_id: str | None, *, reveal: int | None = None) -> None:
        raise NotImplementedError

    async def reload_view(self) -> None:
        raise NotImplementedError

    def start_reply(self, kind: str, text: str = "", message_id: int | None = None) -> None:
        raise NotImplementedError

    # --- widgets and notifications ------------------------------------------------------

    @property
    def sidebar(self) -> Sidebar:
        return self.query_one("#sidebar", Sidebar)

    @property
    def view(self) -> ConversationView:
        return self.query_one("#conversation", ConversationView)

    @property
    def prompt_input(self) -> PromptInput:
        return self.query_one("#prompt", PromptInput)

    @property
    def status_line(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    def say(self, message: str, severity: SeverityLevel = "information") -> None:
        """Notify (never as markup: messages quote user text and server errors)."""
        notices: deque[tuple[str, str]] | None = getattr(self, "notices", None)
        if notices is not None:
            notices.append((severity, message))
        timeout = {"information": 4, "warning": 8, "error": 10}[severity]
        self.notify(message, severity=severity, markup=False, timeout=timeout)

    def warn(self, message: str) -> None:
        self.say(message, "warning")

    def fail(self, message: str) -> None:
        self.say(message, "error")

    def tell(self, message: str) -> None:
        self.say(message)

    def _busy(self) -> bool:
        if self.streaming:
            self.warn("a reply is streaming; press Esc to stop it first")
        return self.streaming
