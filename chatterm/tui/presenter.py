"""From the conversation controller's events to the widgets: the app's listener.

Why a class of its own: the controller (:mod:`chatterm.controller`) knows nothing of widgets;
something must turn "the reply started / text arrived / it ended" into the view, the status
line, the sidebar and the prompt. Keeping that here leaves the app with composing, bindings
and actions. Per chunk, :class:`TextArrived` takes the short path (one type check, one call
into the :class:`~chatterm.tui.widgets.streaming.ReplyRenderer`); the other events go through
one dispatch table.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chatterm.controller_events import (
    ControllerEvent,
    ModelResolved,
    Opening,
    ReasoningArrived,
    ReplyEnded,
    ReplyStarted,
    SendFailed,
    TextArrived,
    Told,
)
from chatterm.tui.widgets.streaming import ReplyRenderer

if TYPE_CHECKING:
    from chatterm.tui.app import ChattermApp


class ReplyPresenter:
    """Draws what the controller reports; holds the renderer of the reply being drawn."""

    def __init__(self, app: ChattermApp) -> None:
        self.app = app
        self.renderer: ReplyRenderer | None = None
        self.last_renderer: ReplyRenderer | None = None  # for the benchmark and the tests
        self._handlers: dict[type, Callable[[Any], Awaitable[None] | None]] = {
            Opening: self._on_opening,
            ReplyStarted: self._on_reply_started,
            ReasoningArrived: self._on_reasoning,
            ModelResolved: self._on_model_resolved,
            ReplyEnded: self._on_reply_ended,
            SendFailed: self._on_send_failed,
            Told: self._on_told,
        }

    def __call__(self, event: ControllerEvent) -> Awaitable[None] | None:
        if type(event) is TextArrived:  # per chunk: the short path
            renderer = self.renderer
            if renderer is not None and renderer.reply is event.reply:
                renderer.write(event.text)  # a list append: drawn by the renderer's timer
            return None
        handler = self._handlers.get(type(event))
        return handler(event) if handler is not None else None

    def _on_opening(self, event: Opening) -> None:
        self.app.status_line.set_reply(state=event.state)

    async def _on_reply_started(self, event: ReplyStarted) -> None:
        reply = event.reply
        if reply.kind == "send":
            self.app.prompt_taken(reply.box_text, reply.attachments)
        if event.new_conversation:
            self.app.prompt_input.forget_draft(None)
        self.app.status_line.set_reply(state="connecting")
        self.app.status_line.follow(reply)
        shown = self.app.conversation
        if shown is None or shown.id != reply.conversation_id:
            return
        self.app.title_bar.show(shown)
        await self.app.view.show(event.branch, event.positions, live=reply.message_id)
        self.app.view.follow()
        view = self.app.view.find(reply.message_id) if reply.message_id is not None else None
        if view is not None:
            checkpoint = self.gc_checkpoint if self.app.gc_policy else None
            self.renderer = self.last_renderer = ReplyRenderer(reply, view, checkpoint)
        if event.new_conversation:
            self.app.sidebar.reload()
            self.app.sidebar.mark_current(shown.id)
            self.app.conversations_changed()

    def _on_reasoning(self, event: ReasoningArrived) -> None:
        if self.app.status_line.state == "connecting":
            self.app.status_line.state = "streaming"
        renderer = self.renderer
        if renderer is not None and renderer.reply is event.reply:
            renderer.reasoning()

    def _on_model_resolved(self, event: ModelResolved) -> None:
        renderer = self.renderer
        if renderer is not None and renderer.reply is event.reply:
            renderer.model(event.model)
        self.app.status_line.set_target(self.app.controller.describe_target())

    def _on_told(self, event: Told) -> None:
        self.app.say(event.message, event.severity)

    def _on_send_failed(self, event: SendFailed) -> None:
        self.app.status_line.set_reply(state="ready")
        if event.message:
            self.app.fail(event.message)

    async def _on_reply_ended(self, event: ReplyEnded) -> None:
        reply, message = event.reply, event.message
        renderer = self.renderer
        if renderer is not None and renderer.reply is reply:
            self.renderer = None
            await renderer.finish()
            if message is not None and renderer.view.is_attached:
                renderer.view.finish(message)
        outcome = reply.outcome
        self.app.status_line.set_reply(
            state=message.status if message is not None else "ready",
            tokens=(outcome.completion_tokens if outcome else None) or reply.deltas,
            estimated=not (outcome and outcome.completion_tokens),
            tokens_per_s=outcome.tokens_per_second if outcome else None,
        )
        self.app.status_line.set_target(self.app.controller.describe_target())
        if reply.error:
            self.app.fail(reply.error)
            if reply.kind == "send" and not reply.text and not self.app.prompt_input.text:
                self.app.prompt_input.set_text(reply.box_text)
        shown = self.app.conversation
        if shown is not None and shown.id == reply.conversation_id:
            # Read in a thread: the branch holds the reply just streamed, whatever its size.
            view, _ = await self.app.read_view(prepare=False)
            branch, positions = view.branch, view.positions
            if message is not None and not any(
                m.id == message.id and m.status == message.status for m in branch
            ):
                # The other connection did not see the end written: read it here.
                branch, positions = self.app.controller.branch(), self.app.controller.positions()
            current = self.app.conversation
            if (
                view.conversation_id == shown.id
                and current is not None
                and current.id == shown.id
                and not self.app.streaming  # a new reply started meanwhile: it shows itself
            ):
                await self.app.view.show(branch, positions)
        self.app.sidebar.reload()
        if shown is not None:
            self.app.sidebar.mark_current(shown.id)
        if self.app.gc_policy is not None:
            await self.gc_checkpoint()

    async def gc_checkpoint(self) -> None:
        """A chatterm.gc_policy checkpoint, after the next refresh: until then the compositor
        still holds removed widgets, and freezing them would keep them alive."""
        if self.app.gc_policy is None:
            return
        refreshed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def mark() -> None:
            if not refreshed.done():
                refreshed.set_result(None)

        self.app.call_after_refresh(mark)
        # No refresh within half a second (the screen is busy): collect anyway.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(refreshed, timeout=0.5)
        self.app.gc_policy.checkpoint()
