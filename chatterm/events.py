"""One dispatch for a backend's stream events, shared by every front end.

Why: the CLI, the TUI and the conversation controller each consumed the same six event types
with their own ``type(event) is X`` chain, and each chain drifted (one forgot notices, one
forgot the resolved model). A front end now implements the handler methods it cares about
(:class:`EventHandler`, every method optional through :class:`NullHandler`) and calls
:func:`dispatch` per event. The lookup is one dict access on the event's exact type, cheap
enough for a 20,000-chunk reply.

This is a core module: no Textual, no rich.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from chatterm.backend import (
    Finish,
    Metadata,
    Notice,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)


class EventHandler(Protocol):
    """What a front end does with each kind of stream event. Methods may be async."""

    def on_text(self, text: str) -> Any: ...

    def on_reasoning(self, text: str) -> Any: ...

    def on_usage(self, usage: Usage) -> Any: ...

    def on_finish(self, finish: Finish) -> Any: ...

    def on_notice(self, message: str) -> Any: ...

    def on_metadata(self, values: dict[str, Any]) -> Any: ...


class NullHandler:
    """Every handler method, doing nothing: subclass it and override what you need."""

    def on_text(self, text: str) -> Any:
        return None

    def on_reasoning(self, text: str) -> Any:
        return None

    def on_usage(self, usage: Usage) -> Any:
        return None

    def on_finish(self, finish: Finish) -> Any:
        return None

    def on_notice(self, message: str) -> Any:
        return None

    def on_metadata(self, values: dict[str, Any]) -> Any:
        return None


# The exact event type -> (handler method name, how to get its argument from the event).
_ROUTES: dict[type, tuple[str, Callable[[Any], Any]]] = {
    TextDelta: ("on_text", lambda e: e.text),
    ReasoningDelta: ("on_reasoning", lambda e: e.text),
    Usage: ("on_usage", lambda e: e),
    Finish: ("on_finish", lambda e: e),
    Notice: ("on_notice", lambda e: e.message),
    Metadata: ("on_metadata", lambda e: dict(e.values)),
}


def dispatch(event: StreamEvent, handler: EventHandler) -> Any:
    """Call the handler method for ``event``; returns what it returns (maybe an awaitable).

    An event type this module does not know (a newer backend) is ignored, not an error.
    """
    route = _ROUTES.get(type(event))
    if route is None:
        return None
    name, argument = route
    return getattr(handler, name)(argument(event))


async def dispatch_async(event: StreamEvent, handler: EventHandler) -> None:
    """:func:`dispatch`, awaiting the handler's result when it is a coroutine."""
    result = dispatch(event, handler)
    if isinstance(result, Awaitable):
        await result


__all__ = ["EventHandler", "NullHandler", "dispatch", "dispatch_async"]
