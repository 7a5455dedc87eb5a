"""What every part of the app shares: its state, its widgets, and how it notifies.

Why a base class: the app's behaviour is split by topic (:mod:`chatterm.tui.actions`
navigation and editing, :mod:`chatterm.tui.manage` conversation management and models,
:mod:`chatterm.tui.replies` streaming); each is a class over this one, and
:class:`chatterm.tui.app.ChattermApp` combines them. Methods the combination provides are
declared here so each part type-checks on its own.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from textual.app import App
from textual.notifications import SeverityLevel

from chatterm.backend import BackendError
from chatterm.chat import ChatSession
from chatterm.config import Choice, Config
from chatterm.store import Conversation, HistoryStore, StoreError
from chatterm.tui.backend_pool import BackendPool
from chatterm.tui.conversation_view import ConversationView
from chatterm.tui.prompt_input import PromptInput
from chatterm.tui.sidebar import Sidebar
from chatterm.tui.status_line import StatusLine

# What the domain raises for conditions the user can act on; shown, never raised into Textual.
DOMAIN_ERRORS = (StoreError, BackendError, OSError)

F = TypeVar("F", bound=Callable[..., Any])


def error_message(exc: BaseException) -> str:
    """One line for the user: the domain's ``message``, or an OSError's reason and path."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def guarded(method: F) -> F:
    """Run an app method (sync or async) under :meth:`ChattermBase.guard`: a domain error
    becomes an error notification and the method returns None."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def run_async(self: ChattermBase, *args: Any, **kwargs: Any) -> Any:
            with self.guard():
                return await method(self, *args, **kwargs)
            return None

        return run_async  # type: ignore[return-value]

    @functools.wraps(method)
    def run_sync(self: ChattermBase, *args: Any, **kwargs: Any) -> Any:
        with self.guard():
            return method(self, *args, **kwargs)
        return None

    return run_sync  # type: ignore[return-value]


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
    # With --debug, tracebacks of unexpected errors go to the notices printed on exit.
    debug_mode: bool = False

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

    def debug_log(self, text: str) -> None:
        """Keep ``text`` (a traceback) for the --debug report on exit; never shown on screen."""
        notices: deque[tuple[str, str]] | None = getattr(self, "notices", None)
        if self.debug_mode and notices is not None:
            notices.append(("debug", text.rstrip()))

    def warn(self, message: str) -> None:
        self.say(message, "warning")

    def fail(self, message: str) -> None:
        self.say(message, "error")

    def tell(self, message: str) -> None:
        self.say(message)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a domain error (store, backend, file system) into an error notification, so
        an action or dialog callback never takes the app down. See also :func:`guarded`."""
        try:
            yield
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))

    def _busy(self) -> bool:
        if self.streaming:
            self.warn("a reply is streaming; press Esc to stop it first")
        return self.streaming
