"""Sending and streaming: the reply worker, and stopping it.

Why one exclusive worker (group ``reply``): Esc cancels exactly that worker, cancellation
reaches ChatSession's event stream, and its ``finally`` stores the partial reply as
interrupted. The worker builds the backend off the event loop (BackendPool), shows the turn,
and hands the event stream to :class:`chatterm.tui.streaming.ReplyStreamer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback

from rich.text import Text
from textual import work
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from chatterm.backend import BackendError
from chatterm.chat import ChatSession
from chatterm.store import Message, StoreError
from chatterm.tui.base import DOMAIN_ERRORS, ChattermBase, error_message
from chatterm.tui.conversation_view import branch_positions
from chatterm.tui.gc_policy import CollectorPolicy
from chatterm.tui.prompt_input import PromptInput
from chatterm.tui.streaming import ReplyStreamer


class ReplyActions(ChattermBase):
    """Send, regenerate and edit go through :meth:`start_reply`; Esc is :meth:`action_stop`."""

    reply_worker: Worker[None] | None
    last_streamer: ReplyStreamer | None
    gc_policy: CollectorPolicy | None

    @property
    def streaming(self) -> bool:
        worker = self.reply_worker
        return worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    # --- sending ------------------------------------------------------------------------

    def on_prompt_input_submitted(self, event: PromptInput.Submitted) -> None:
        event.stop()
        if not event.text.strip():
            return
        self.start_reply("send", event.text)

    def start_reply(self, kind: str, text: str = "", message_id: int | None = None) -> None:
        if self.streaming:
            self.warn("a reply is still streaming; press Esc to stop it first")
            return
        self.reply_worker = self.run_reply(kind, text, message_id)

    def _opening_state(self) -> str:
        """What the status line says while the backend is being opened: building a local
        backend loads (maybe downloads) the model, which can take minutes."""
        if self.pool.cached(self.choice) is not None:
            return "connecting"
        if self.choice.backend == "local":
            return f"loading model {self.choice.backend_config.model or '(default)'}…"
        return f"opening {self.choice.backend}…"

    async def ready_session(self) -> ChatSession:
        """The session for the open conversation, pointed at the current choice."""
        backend, options = await self.pool.get(self.choice)
        settings = self.conversation.options if self.conversation else {}
        if self.conversation is None and self.pending_settings:
            settings = self.pending_settings.get("options", {})
        options.update(backend.validate_options(settings))
        model = self.choice.backend_config.model or backend.default_model
        session = self.session
        same = (
            session is not None
            and self.conversation is not None
            and session.conversation is not None
            and session.conversation.id == self.conversation.id
        )
        if session is not None and same:
            session.switch_backend(
                backend, backend_name=self.choice.backend, model=model, options=options
            )
            return session
        system = None
        if self.conversation is None:
            system = self.choice.system_prompt
            if self.pending_settings and self.pending_settings.get("system_prompt"):
                system = self.pending_settings["system_prompt"]
        self.session = ChatSession(
            self.store, backend, backend_name=self.choice.backend, model=model,
            options=options, conversation=self.conversation, system_prompt=system,
        )
        return self.session

    @work(exclusive=True, group="reply", exit_on_error=False)
    async def run_reply(self, kind: str, text: str, message_id: int | None) -> None:
        """Send / regenerate / edit, then stream the reply (the one worker Esc cancels)."""
        try:
            await self._reply(kind, text, message_id)
        except DOMAIN_ERRORS as exc:
            self.status_line.set_reply(state="error")
            self.fail(error_message(exc))
        except Exception as exc:  # one failed reply must never take the app down
            self.status_line.set_reply(state="error")
            # Only the type: a plugin's exception text or repr may quote a secret.
            self.fail(f"unexpected error ({type(exc).__name__}); run with --debug for details")
            self.debug_log("".join(traceback.format_exception(exc)))

    async def _reply(self, kind: str, text: str, message_id: int | None) -> None:
        status = self.status_line
        status.set_reply(state=self._opening_state())
        try:
            session = await self.ready_session()
            # Load the model before the prompt is stored: a model that cannot be loaded then
            # leaves no empty conversation behind (the prompt stays in the box).
            await session.backend.prepare(session.model, session.options)
            if kind == "send":
                events = session.send(text)
            elif kind == "regenerate":
                events = session.regenerate()
            else:
                assert message_id is not None
                events = session.edit(message_id, text)
        except (BackendError, StoreError) as exc:
            status.set_reply(state="ready")
            self.fail(exc.message)
            return
        except asyncio.CancelledError:  # Esc while the backend was still loading
            status.set_reply(state="stopped")
            from chatterm import download_progress

            download_progress.cancel()  # a download for it stops too (what arrived is kept)
            raise
        if kind == "send":
            self.prompt_input.remember(text)
            if self.prompt_input.text == text:
                self.prompt_input.set_text("")
        await self._show_turn(session, kind)
        view = await self.view.add_reply(session.backend_name, session.model)
        checkpoint = self._gc_checkpoint if self.gc_policy else None
        streamer = self.last_streamer = ReplyStreamer(view, status, self.warn, checkpoint)
        try:
            await streamer.run(events)
        finally:
            await self._finish_turn(session, streamer, kind, text)
            if checkpoint is not None:
                await checkpoint()

    async def _gc_checkpoint(self) -> None:
        """A chatterm.tui.gc_policy checkpoint, after the next refresh: until then the
        compositor still holds removed widgets, and freezing them would keep them alive."""
        if self.gc_policy is None:
            return
        refreshed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def mark() -> None:
            if not refreshed.done():
                refreshed.set_result(None)

        self.call_after_refresh(mark)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(refreshed, timeout=0.5)
        self.gc_policy.checkpoint()

    def _collect_full(self) -> None:
        """Reclaim widgets that were frozen and have since been replaced (gc_policy)."""
        if self.gc_policy is not None and not self.streaming:
            self.gc_policy.full()

    async def _show_turn(self, session: ChatSession, kind: str) -> None:
        """Bring the view to the message being answered (a new, edited or retried prompt)."""
        new_conversation = self.conversation is None
        self.conversation = session.conversation
        assert self.conversation is not None
        if new_conversation and self.pending_settings:
            options = self.pending_settings.get("options")
            if options:
                self.store.update_conversation_settings(self.conversation.id, options=options)
            self.pending_settings = None
        if new_conversation:
            self.drafts.pop(None, None)
        branch = self.store.branch(self.conversation.id)
        if kind == "regenerate":
            while branch and branch[-1].role != "user":
                branch.pop()
        positions = branch_positions(self.store.all_messages(self.conversation.id))
        await self.view.show(branch, positions)
        self.view.follow()
        if new_conversation:
            self.query_one("#title", Static).update(Text(self.conversation.title))
            self.sidebar.reload()
            self.sidebar.mark_current(self.conversation.id)

    async def _finish_turn(
        self, session: ChatSession, streamer: ReplyStreamer, kind: str, text: str
    ) -> None:
        outcome = session.last_outcome
        with contextlib.suppress(Exception):
            message: Message | None = None
            if outcome is not None and outcome.message_id is not None:
                message = self.store.get_message(outcome.message_id)
            if message is not None and streamer.view.is_attached:
                streamer.view.finish(message)
            state_name = outcome.status if outcome is not None else "ready"
            self.status_line.set_reply(
                state=state_name,
                tokens=(outcome.completion_tokens if outcome else None) or streamer.deltas,
                estimated=not (outcome and outcome.completion_tokens),
                tokens_per_s=outcome.tokens_per_second if outcome else None,
            )
            if streamer.error:
                self.fail(streamer.error)
                if kind == "send" and not streamer.text and not self.prompt_input.text:
                    self.prompt_input.set_text(text)
            conv = session.conversation
            if conv is not None and self.conversation and conv.id == self.conversation.id:
                positions = branch_positions(self.store.all_messages(conv.id))
                await self.view.show(self.store.branch(conv.id), positions)
            self.sidebar.reload()
            if self.conversation is not None:
                self.sidebar.mark_current(self.conversation.id)

    # --- stopping and quitting ----------------------------------------------------------

    def action_stop(self) -> None:
        if self.streaming and self.reply_worker is not None:
            self.status_line.set_reply(state="stopping")
            self.reply_worker.cancel()
        else:
            self.prompt_input.focus()

    async def stop_reply(self) -> None:
        """Cancel the streaming reply and wait until its partial text is stored."""
        worker = self.reply_worker
        if worker is not None and self.streaming:
            worker.cancel()
            with contextlib.suppress(Exception):
                await worker.wait()

    async def action_quit(self) -> None:
        await self.stop_reply()
        await self.pool.aclose()
        self.exit(0)
