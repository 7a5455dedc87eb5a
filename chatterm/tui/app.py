"""The chatterm TUI: sidebar, conversation, prompt and status line over the shared history.

Why it is shaped this way: the conversation logic (which conversation is open, its session and
backend, send / stop / regenerate / edit / switch) is the headless
:class:`~chatterm.controller.ConversationController`; this app composes the widgets
(:mod:`chatterm.tui.widgets`), owns the bindings (:mod:`chatterm.tui.keys`), opens the screens
(:mod:`chatterm.tui.screens`) and turns the controller's events into widget updates. A reply
streams in one exclusive worker (group ``reply``) that runs the controller's ``run``, so Esc
cancels exactly that worker and the controller stores the partial reply as interrupted.

Failures never take the app down and never vanish: a domain error (store, backend, file)
becomes an error notification; anything else becomes "unexpected error (Type)" with the
traceback in the debug log (printed on exit with ``--debug``).

Entry points: :func:`build_app` (used by the CLI, the tests and the snapshots) and
:func:`run_tui` (what ``chatterm`` with no arguments runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import events, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult, ScreenError, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from chatterm import paths, state
from chatterm.backend import BackendError
from chatterm.backend_pool import BackendPool
from chatterm.config import Choice, Config
from chatterm.controller import BranchView, ControllerError, ConversationController, pass_loop
from chatterm.controller_events import (
    Reply,
    ReplyKind,
)
from chatterm.gc_policy import CollectorPolicy
from chatterm.markdown_blocks import FROZEN_CHARS
from chatterm.sanitize import safe_text
from chatterm.store import Conversation, HistoryStore, StoreError
from chatterm.tui import keys, themes
from chatterm.tui.commands import TEXTUAL_REPLACED, code_blocks, palette_commands
from chatterm.tui.presenter import ReplyPresenter
from chatterm.tui.screens.dialogs import ConfirmDialog, LineDialog, SettingsDialog, TextDialog
from chatterm.tui.screens.help import HelpScreen
from chatterm.tui.screens.model_dialog import ModelDialog
from chatterm.tui.screens.reader import ReaderScreen
from chatterm.tui.screens.search import SearchScreen
from chatterm.tui.widgets.attachment_chips import AttachDialog, AttachmentChips
from chatterm.tui.widgets.conversation_view import WELCOME, WINDOW, ConversationView
from chatterm.tui.widgets.download_panel import DownloadPanel
from chatterm.tui.widgets.key_footer import KeyFooter
from chatterm.tui.widgets.markdown_render import warm_up
from chatterm.tui.widgets.message_view import MessageView
from chatterm.tui.widgets.part_rows import prepare as prepare_parts
from chatterm.tui.widgets.prompt_input import PromptInput
from chatterm.tui.widgets.sidebar import Sidebar
from chatterm.tui.widgets.status_line import StatusLine
from chatterm.tui.widgets.streaming import ReplyRenderer
from chatterm.tui.widgets.title_bar import TitleBar
from chatterm.tui.widgets.welcome_panel import WelcomeFacts, WelcomePanel

# What the domain raises for conditions the user can act on; shown, never raised into Textual.
DOMAIN_ERRORS = (StoreError, BackendError, ControllerError, OSError)


def error_message(exc: BaseException) -> str:
    """One line for the user: the domain's ``message``, or an OSError's reason and path."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def export_filename(conversation: Conversation, fmt: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", conversation.title).strip("-").lower()[:40]
    return f"chatterm-{slug or 'conversation'}-{conversation.id[:8]}.{fmt}"


def default_export_dir(state_file: Path | None = None) -> Path:
    """The folder used last, else the user's documents folder, else the current one."""
    remembered = state.remembered("export_dir", state_file)
    if isinstance(remembered, str) and remembered and Path(remembered).is_dir():
        return Path(remembered)
    import platformdirs

    documents = Path(platformdirs.user_documents_dir())
    return documents if documents.is_dir() else Path.cwd()


# Imported lazily on the first request's path (the plain-HTTP transport and h11): imported on
# a thread after the first frame instead, so the first reply does not pay for them on the event
# loop while it streams. (https:// goes through httpcore, imported when its client opens.)
FIRST_REPLY_MODULES = ("h11", "chatterm_openai.http11")


def _preimport() -> None:
    for name in FIRST_REPLY_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


class MainScreen(Screen[Any]):
    """The app's own screen: the prompt has the focus from its first frame.

    Textual's default focuses the first focusable widget (the sidebar's filter), then the app
    moved it to the prompt: two focus changes, each styling its widgets again at start-up."""

    AUTO_FOCUS = "#prompt"


class ChattermApp(App[int]):
    """One window onto the history; sends go to the controller's choice (switchable)."""

    TITLE = "chatterm"
    # The longest a streaming reply waits for typed input to be drawn (see _show_input).
    INPUT_SHOWN_S = 0.1
    # The full collection after a conversation is replaced (chatterm.gc_policy) walks every
    # object of the process, 50-100 ms on a modest machine: it waits until the user has left
    # the app alone (no key, no mouse, no resize) this long, and for no reply to be streaming.
    FULL_PASS_QUIET_S = 1.0
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("app")
    CSS = """
    #main { height: 1fr; }
    #chat { width: 1fr; height: 1fr; }
    """

    def __init__(
        self,
        choice: Choice,
        config: Config,
        store: HistoryStore,
        *,
        continue_last: bool = False,
        session_id: str | None = None,
        state_file: Path | None = None,
        user_themes_dir: Path | None = None,
        tune_gc: bool = False,
        debug: bool = False,
        handle_signals: bool = False,
        follow_routes: bool | None = None,
    ) -> None:
        super().__init__()
        self.debug_mode = debug
        # SIGTERM / SIGHUP end the app through its normal exit (see _install_signal_handlers);
        # on for the real app, off in tests (handlers are process-wide).
        self.handle_signals = handle_signals
        # See chatterm.gc_policy: on for the real app, off in tests (it is process-wide).
        self.gc_policy = CollectorPolicy() if tune_gc else None
        self.config = config
        self.store = store
        self.presenter = ReplyPresenter(self)
        # Set when a key or click is posted (from the driver's thread too), taken by the
        # streaming loop (ConversationController.input_pending), which then hands the event
        # loop over until the input is on screen: typing never waits for a fast stream.
        self._input_posted = False
        # How many input events were posted, and how many of them are known to be on screen
        # (input_on_screen: the streaming reply's batches and renderings wait for them).
        self._input_count = 0
        self._drawn_count = 0
        self.last_input_at: float | None = None
        self._last_activity_at = 0.0  # any input (mouse moves too) or a resize: FULL_PASS_QUIET_S
        self._full_pass: Timer | None = None  # a full collection is waiting for quiet
        self.controller = ConversationController(
            store, config, choice, pool=BackendPool(), listener=self.presenter,
            follow_routes=follow_routes, input_pending=self._input_pending,
        )
        self.keymap_overrides: dict[str, str] = dict(config.keys)
        self.reply_worker: Worker[None] | None = None
        # The latest notifications (severity, text), for --debug and the tests.
        self.notices: deque[tuple[str, str]] = deque(maxlen=50)
        # When the first frame was shown (perf_counter), for the start-up benchmark.
        self.ready_at: float | None = None
        self._start = (continue_last, session_id)
        self._state_file = state_file
        self._remember_theme = False
        self._prewarm_task: asyncio.Future[Any] | None = None
        self._exit_code: int | None = None
        self.prewarm_error: str | None = None
        loaded = themes.load_themes(user_themes_dir)
        self.theme_problems = loaded.problems
        for theme in loaded.themes:
            self.register_theme(theme)
        self.theme = self._initial_theme()

    def _initial_theme(self) -> str:
        wanted = [state.remembered("theme", self._state_file), self.config.tui.get("theme")]
        for name in wanted:
            if isinstance(name, str) and name in self.available_themes:
                return name
            if isinstance(name, str) and name:
                self.theme_problems.append(f"unknown theme {name!r}; ignored")
        return themes.DEFAULT_DARK

    # --- the controller's state, for callers that knew the old app ----------------------

    @property
    def choice(self) -> Choice:
        return self.controller.choice

    @choice.setter
    def choice(self, choice: Choice) -> None:
        self.controller.choice = choice
        for status in self.query(StatusLine):  # none before the screen is composed
            status.set_target(self.controller.describe_target())

    @property
    def conversation(self) -> Conversation | None:
        return self.controller.conversation

    @property
    def pool(self) -> BackendPool:
        return self.controller.pool

    @property
    def pending_settings(self) -> dict[str, Any] | None:
        return self.controller.pending_settings

    @pending_settings.setter
    def pending_settings(self, value: dict[str, Any] | None) -> None:
        self.controller.pending_settings = value

    @property
    def streaming(self) -> bool:
        return self.controller.streaming

    @property
    def last_streamer(self) -> Reply | None:
        """The latest reply (its ``deltas`` and timings), streaming or not."""
        return self.controller.last_reply

    @property
    def last_renderer(self) -> ReplyRenderer | None:
        """What drew the latest reply (its segments, when its final render ended)."""
        return self.presenter.last_renderer

    def _opening_state(self) -> str:
        return self.controller.opening_state()

    # --- widgets ------------------------------------------------------------------------

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
    def attachment_chips(self) -> AttachmentChips:
        return self.query_one("#chips", AttachmentChips)

    @property
    def status_line(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @property
    def title_bar(self) -> TitleBar:
        return self.query_one("#title", TitleBar)

    # --- notifications ------------------------------------------------------------------

    def say(self, message: str, severity: SeverityLevel = "information") -> None:
        """Notify (never as markup, always sanitised: messages quote user and server text)."""
        shown = safe_text(message)
        self.notices.append((severity, shown))
        timeout = {"information": 4, "warning": 8, "error": 10}[severity]
        self.notify(shown, severity=severity, markup=False, timeout=timeout)

    def debug_log(self, text: str) -> None:
        """Keep ``text`` (a traceback) for the --debug report on exit; never shown on screen."""
        if self.debug_mode:
            self.notices.append(("debug", text.rstrip()))

    def warn(self, message: str) -> None:
        self.say(message, "warning")

    def fail(self, message: str) -> None:
        self.say(message, "error")

    def tell(self, message: str) -> None:
        self.say(message)

    def report_unexpected(self, exc: BaseException, what: str = "") -> None:
        """A bug: say so without the exception's text (it may quote a secret), log the rest."""
        where = f" while {what}" if what else ""
        self.fail(f"unexpected error ({type(exc).__name__}){where}; run with --debug for details")
        self.debug_log("".join(traceback.format_exception(exc)))

    def _report(self, exc: BaseException) -> None:
        if isinstance(exc, DOMAIN_ERRORS):
            self.fail(error_message(exc))
        else:
            self.report_unexpected(exc)

    def _main_only(self) -> None:
        """App keys step aside on a dialog or the reader (a priority binding would otherwise
        take them)."""
        if isinstance(self.screen, ModalScreen | ReaderScreen):
            raise SkipAction()

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        label = lambda name: keys.key_label(name, self.keymap_overrides)  # noqa: E731
        welcome = WELCOME.format(
            send=label("send"), help=label("help"),
            command_palette=label("command_palette"), search=label("search"),
        )
        placeholder = (
            f"Message… ({label('send')} sends · {label('newline')} newline · ↑ history)"
        )
        with Horizontal(id="main"):
            yield Sidebar(self.store, id="sidebar")
            with Vertical(id="chat"):
                yield TitleBar(id="title")
                yield self._welcome_panel()
                yield ConversationView(id="conversation", welcome=welcome,
                                       attachments=self.controller.attachments_for)
                yield DownloadPanel(id="download")
                yield PromptInput(id="prompt", placeholder=placeholder)
                yield AttachmentChips(id="chips")
                yield StatusLine(id="status")
        yield KeyFooter(id="footer")

    def _welcome_panel(self) -> WelcomePanel:
        """Who answers the first message and why; shown only while the history is empty."""
        try:
            count = self.store.count_conversations()
        except StoreError:
            count = 0
        facts = WelcomeFacts.gather(
            self.choice, model_key=keys.key_label("switch_model", self.keymap_overrides)
        )
        return WelcomePanel(facts, conversations=count, id="welcome")

    def conversations_changed(self) -> None:
        """A conversation was created or deleted: the welcome panel shows only while none."""
        try:
            count = self.store.count_conversations()
        except StoreError:
            return
        for panel in self.query(WelcomePanel):
            panel.conversations_changed(count)

    def post_message(self, message: Message) -> bool:
        if isinstance(message, events.InputEvent):
            self._input_posted = True
            if not isinstance(message, events.MouseMove):  # a move draws nothing new
                self._input_count += 1  # on the loop (the driver posts through it)
            self.last_input_at = time.monotonic()  # the streaming reply draws less often
            self._last_activity_at = self.last_input_at
        elif isinstance(message, events.Resize):
            self._last_activity_at = time.monotonic()
        return super().post_message(message)

    def _input_pending(self) -> Awaitable[None] | None:
        if not self._input_posted:
            return None
        self._input_posted = False
        return self._show_input()

    def input_on_screen(self) -> Awaitable[None] | None:
        """For the streaming reply's next batch, or a rendering of it coming back: None when
        no input waits to be drawn, else what to await until it is (at most INPUT_SHOWN_S).
        Why: either moves every row of the conversation, and the frame that draws that costs
        tens of milliseconds; drawn first, the key shows in a frame of its own that costs a
        few."""
        if self._input_count <= self._drawn_count:
            return None
        return self._show_input()

    async def _show_input(self) -> None:
        """Until posted input is on screen: it reaches its widget (a few passes of the loop),
        then the screen is drawn; at most INPUT_SHOWN_S, so a stream never waits on a stuck
        screen."""
        posted = self._input_count
        try:
            async with asyncio.timeout(self.INPUT_SHOWN_S):
                await pass_loop()
                # Until it has been through every queue it passes: the app, the screen, the
                # focused widget and, for a key that is a binding of another widget, each
                # ancestor it bubbles through back to the app. Four passes were not enough,
                # and the stream, let go early, took slices while the key was on its way.
                while self._input_in_transit():
                    await pass_loop(1)
                posted = self._input_count  # all of it is past the queues: the next frame
                await self.screen.wait_for_refresh()
        except (TimeoutError, AssertionError, ScreenError):
            pass  # no screen running (starting, closing): the passes above were enough
        self._drawn_count = max(self._drawn_count, posted)

    def _input_in_transit(self) -> bool:
        try:
            focused = self.focused
            pumps = [self, self.screen, *(focused.ancestors_with_self if focused else ())]
        except ScreenError:
            return False
        return any(pump.message_queue_size for pump in pumps)

    async def on_mount(self) -> None:
        unknown = sorted(set(self.keymap_overrides) - keys.known_ids())
        if unknown:
            self.warn(f"[keys] in the config names unknown binding ids: {', '.join(unknown)}")
        self.set_keymap(self.keymap_overrides)
        for problem in self.theme_problems:
            self.warn(problem)
        self._remember_theme = True
        self.status_line.set_target(self.controller.describe_target())
        continue_last, session_id = self._start
        target: Conversation | None = None
        try:
            if session_id:
                target = self.store.get_conversation(session_id)
                if target is None:
                    self.warn(f"no conversation {session_id!r} in the history")
            elif continue_last:
                target = self.store.latest_conversation()
        except StoreError as exc:
            self.warn(exc.message)
        await self.open_conversation(target.id if target else None)
        self.prompt_input.focus()
        self._prewarm()
        if self.handle_signals:
            self._install_signal_handlers()

    def _install_signal_handlers(self) -> None:
        """SIGTERM (exit 143), SIGHUP (129, the terminal went away) and SIGINT (130) stop the
        reply, store its partial text as interrupted and leave through Textual's exit path,
        which restores the terminal (alternate screen, mouse, cursor). The process-wide
        handler is chatterm.endings'; the app attaches to it while it runs."""
        from chatterm import endings

        endings.install()
        endings.attach(
            asyncio.get_running_loop(),
            lambda signum: self._on_signal(endings.EXIT_CODES.get(signum, 128 + signum)),
        )

    def _on_signal(self, code: int) -> None:
        if self._exit_code is None:
            self._exit_code = code
            self.run_worker(self._leave(code), group="exit", exit_on_error=False)

    async def _leave(self, code: int) -> None:
        await self.stop_reply()
        if self._prewarm_task is not None:
            self._prewarm_task.cancel()
        await self.pool.aclose()
        if self.handle_signals:
            from chatterm import endings

            endings.detach()
        self.exit(code)

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(id="_default")

    def on_ready(self) -> None:
        self.ready_at = time.perf_counter()
        if self.gc_policy is not None:
            self.gc_policy.freeze_startup()
        warm_up(self)
        threading.Thread(target=_preimport, name="chatterm-preimport", daemon=True).start()

    def watch_theme(self, theme: str) -> None:
        if self._remember_theme:
            state.save_state({"theme": theme}, self._state_file)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title not in TEXTUAL_REPLACED:
                yield command
        yield from palette_commands(self)

    def _prewarm(self) -> None:
        """Open the chosen backend in the background, so Enter stores the prompt at once.

        A plain task, not a worker: a backend that takes its time to open must not hold up
        anything that waits for the app's workers. Its failure is the next send's to report.
        """
        if self._prewarm_task is not None and not self._prewarm_task.done():
            self._prewarm_task.cancel()

        async def prewarm() -> None:
            try:
                await self.controller.prewarm()
            except Exception as exc:
                # Not shown, not logged here: the send that meets it again reports it (once),
                # and its text may quote a secret.
                self.prewarm_error = type(exc).__name__
                return
            for status in self.query(StatusLine):  # none once the app is closing
                status.set_target(self.controller.describe_target())

        self._prewarm_task = asyncio.ensure_future(prewarm())

    # --- conversations ------------------------------------------------------------------

    async def open_conversation(self, conv_id: str | None, *, reveal: int | None = None) -> None:
        """Show a conversation (None: a new one), keeping the draft of the one we leave."""
        current = self.conversation.id if self.conversation else None
        before = self.controller.choice
        try:
            self.controller.open(conv_id)
        except ControllerError as exc:
            self.warn(exc.message)
            self.sidebar.reload()
            return
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return
        self.prompt_input.switch_draft(current, conv_id)
        self.attachment_chips.switch(current, conv_id)  # chips belong to their conversation
        if self.controller.choice is not before:  # it goes back to where it was answered
            self.status_line.set_target(self.controller.describe_target())
            self._prewarm()
        if not self.streaming:
            self.status_line.set_reply(state="ready")
        await self.reload_view()
        self.sidebar.mark_current(conv_id)
        if reveal is not None:
            self.call_after_refresh(self.view.reveal, reveal)
        else:
            self.view.follow()

    async def reload_view(self) -> None:
        """Show the active branch of the open conversation again (after a switch of
        conversation or branch), then reclaim the replaced widgets (chatterm.gc_policy)."""
        self.title_bar.show(self.conversation)
        wanted = self.conversation.id if self.conversation else None
        try:
            view, prepared = await self.read_view()
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return
        current = self.conversation.id if self.conversation else None
        if view.conversation_id != wanted or current != wanted:
            return  # another conversation was opened meanwhile: its own read shows it
        await self.view.show(view.branch, view.positions, prepared=prepared)
        self.prompt_input.set_history(view.prompt_history)
        if self.gc_policy is not None and self._full_pass is None:
            self._full_pass = self.set_timer(self.FULL_PASS_QUIET_S, self._collect_full)

    async def read_view(self, prepare: bool = True) -> tuple[BranchView, dict[int, list[Any]]]:
        """The open conversation, read in a thread on a read-only connection of its own (an
        SQLite connection belongs to its thread), with its long replies cut into parts there
        too (chatterm.tui.widgets.part_rows; not with ``prepare=False``: the views are
        mounted already), so a long history never holds the loop."""
        path = self.store.path
        if str(path) == ":memory:":
            return self.controller.read_view(), {}

        def read() -> tuple[BranchView, dict[int, list[Any]]]:
            with HistoryStore(path, readonly=True) as store:
                view = self.controller.read_view(store)
            if not prepare:
                return view, {}
            # Only the messages the view can mount now (at most its window, the newest).
            prepared = {
                message.id: prepare_parts(message.content)
                for message in view.branch[-2 * WINDOW:]
                if message.role == "assistant" and len(message.content) > FROZEN_CHARS
            }
            return view, prepared

        return await asyncio.to_thread(read)

    def _collect_full(self) -> None:
        """Reclaim widgets that were frozen and have since been replaced (gc_policy), once
        the app has been quiet for FULL_PASS_QUIET_S and nothing streams; until then, later."""
        self._full_pass = None
        if self.gc_policy is None:
            return
        wait = self.FULL_PASS_QUIET_S - (time.monotonic() - self._last_activity_at)
        if self.streaming or wait > 0:  # streaming: look again in a quiet period's time
            wait = self.FULL_PASS_QUIET_S if self.streaming else max(wait, 0.05)
            self._full_pass = self.set_timer(wait, self._collect_full)
            return
        self.gc_policy.full()

    async def on_sidebar_conversation_selected(self, event: Sidebar.ConversationSelected) -> None:
        event.stop()
        await self.open_conversation(event.conversation_id)

    # --- sending ------------------------------------------------------------------------

    def on_prompt_input_submitted(self, event: PromptInput.Submitted) -> None:
        event.stop()
        pending = self.attachment_chips.attachments
        if not event.text.strip() and not pending:
            return
        try:  # the chips and the text's @paths, read and checked before anything is stored
            text, attachments = self.controller.prepare_prompt(event.text, pending)
        except ControllerError as exc:
            self.fail(exc.message)  # nothing sent: the text and the chips stay to be fixed
            return
        self.start_reply("send", text, attachments=attachments, typed=event.text)

    def start_reply(
        self,
        kind: ReplyKind,
        text: str = "",
        message_id: int | None = None,
        *,
        attachments: list[Any] | None = None,
        typed: str | None = None,
    ) -> None:
        """Store the turn now (when the backend is open) and stream the reply in a worker."""
        try:
            reply = self.controller.start(
                kind, text, message_id, attachments=attachments or (), typed=typed
            )
        except ControllerError as exc:
            self.warn(exc.message)
            return
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return
        if reply.stored and kind == "send":
            self.prompt_taken(reply.box_text, reply.attachments)
        self.status_line.set_reply(state="connecting")
        self.reply_worker = self.run_reply(reply)

    def prompt_taken(self, text: str, attachments: list[Any] | None = None) -> None:
        """The prompt is stored: empty the box (unless retyped) and drop the chips it took."""
        self.prompt_input.remember(text)
        if self.prompt_input.text == text:
            self.prompt_input.set_text("")
        if attachments:
            self.attachment_chips.drop(attachments)

    # --- attachments and templates ------------------------------------------------------

    def action_attach(self) -> None:
        self._main_only()

        def done(result: Any) -> None:
            if result is None:
                return
            self.attachment_chips.add(result.attachments)
            for notice in result.notices:
                self.warn(notice)
            self.prompt_input.focus()

        self.push_screen(AttachDialog(), done)

    async def new_from_template(self, name: str) -> None:
        """A new conversation from ``[templates.NAME]`` (the palette), as ``ask -t NAME``."""
        await self.open_conversation(None)
        try:
            template = self.controller.use_template(name)
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return
        self.status_line.set_target(self.controller.describe_target())
        self.tell(f"New conversation from template {template.name}; next message goes to "
                  f"{self.controller.describe_target()}")
        self._prewarm()
        self.prompt_input.focus()

    @work(exclusive=True, group="reply", exit_on_error=False)
    async def run_reply(self, reply: Reply) -> None:
        """The one worker Esc cancels: the controller opens, streams and stores."""
        try:
            await self.controller.run(reply)
        except asyncio.CancelledError:
            if not reply.stored:  # Esc while the backend was still opening or loading
                self.status_line.set_reply(state="stopped")
                from chatterm import download_progress

                download_progress.cancel()  # a download for it stops too (what arrived is kept)
            raise
        except Exception as exc:  # one failed reply must never take the app down
            self.status_line.set_reply(state="error")
            self._report(exc)

    # --- stopping and quitting ----------------------------------------------------------

    def action_stop(self) -> None:
        self._main_only()
        panel = self.query_one(DownloadPanel)
        if panel.downloading:
            # A reply waiting for its model cannot stop the download by itself.
            panel.action_cancel_download()
        if self.streaming:
            self.controller.stop()
            self.status_line.set_reply(state="stopping")
            if self.reply_worker is not None:
                self.reply_worker.cancel()
        else:
            self.prompt_input.focus()

    async def stop_reply(self) -> None:
        """Cancel the streaming reply and wait until its partial text is stored."""
        reply = self.controller.reply
        worker = self.reply_worker
        if worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            self.controller.stop()
            worker.cancel()
            # Expected: we cancelled it; a failure was already reported by the worker itself.
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()
        if reply is not None:
            try:
                self.controller.abandon(reply)
            except DOMAIN_ERRORS as exc:
                self.fail(error_message(exc))

    async def action_quit(self) -> None:
        await self._leave(0)

    # --- simple actions -----------------------------------------------------------------

    async def action_new_conversation(self) -> None:
        self._main_only()
        await self.open_conversation(None)
        self.prompt_input.focus()

    def action_toggle_sidebar(self) -> None:
        self.sidebar.display = not self.sidebar.display

    def action_filter_sidebar(self) -> None:
        self._main_only()
        self.sidebar.focus_filter()

    def action_focus_prompt(self) -> None:
        self._main_only()
        self.prompt_input.focus()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.keymap_overrides))

    def action_change_theme(self) -> None:
        self.search_themes()

    # --- search -------------------------------------------------------------------------

    def action_search(self) -> None:
        self._main_only()
        self.push_screen(SearchScreen(self.store), self._search_done)

    async def _search_done(self, hit: tuple[str, int] | None) -> None:
        if hit is not None:
            await self.open_at(*hit)

    async def open_at(self, conv_id: str, message_id: int) -> None:
        """Open a conversation scrolled to a message, switching to its branch if needed."""
        try:
            self.controller.open_at(conv_id, message_id)
        except DOMAIN_ERRORS as exc:
            self.warn(error_message(exc))
            return
        await self.open_conversation(conv_id, reveal=message_id)

    # --- branches, edit, regenerate, copy -----------------------------------------------

    def _target_message(self, want: str | None = None) -> MessageView | None:
        focused = self.focused
        if (
            isinstance(focused, MessageView)
            and focused.message is not None
            and (want is None or focused.role == want)
        ):
            return focused
        for view in reversed(self.view.message_views()):
            if view.message is not None and (want is None or view.role == want):
                return view
        return None

    async def action_branch(self, step: int) -> None:
        self._main_only()
        focused = self.focused
        target = focused if isinstance(focused, MessageView) else None
        if target is None:
            target = next(
                (v for v in reversed(self.view.message_views()) if v.branch[1] > 1), None
            )
        await self._step_branch(target, step)

    async def on_message_view_branch_requested(self, event: MessageView.BranchRequested) -> None:
        event.stop()
        await self._step_branch(event.view, event.step)

    async def _step_branch(self, target: MessageView | None, step: int) -> None:
        if target is None or target.message is None:
            self.tell("no other branch here")
            return
        try:
            sibling = self.controller.step_branch(target.message.id, step)
        except ControllerError as exc:
            self.tell(exc.message)
            return
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return
        await self.reload_view()
        shown = self.view.find(sibling.id)
        if shown is not None:
            shown.focus()

    def action_edit_last(self) -> None:
        self._main_only()
        target = self._target_message("user")
        if target is None:
            self.tell("no prompt to edit yet")
            return
        self._edit(target)

    def on_message_view_edit_requested(self, event: MessageView.EditRequested) -> None:
        event.stop()
        if event.view.role != "user":
            self.tell("only your prompts can be edited; regenerate a reply with "
                      f"{keys.key_label('regenerate', self.keymap_overrides)}")
            return
        self._edit(event.view)

    def _edit(self, target: MessageView) -> None:
        if target.message is None:
            return
        if self.streaming:
            self.warn("a reply is streaming; press "
                      f"{keys.key_label('stop', self.keymap_overrides)} to stop it first")
            return
        message_id = target.message.id

        def done(text: str | None) -> None:
            if text is not None and text.strip():
                self.start_reply("edit", text, message_id)

        self.push_screen(
            TextDialog("Edit the prompt; sending branches, the old branch stays", target.text),
            done,
        )

    def action_regenerate(self) -> None:
        self._main_only()
        self.start_reply("regenerate")

    def action_copy_reply(self) -> None:
        self._main_only()
        target = self._target_message("assistant")
        if target is None or not target.text:
            self.tell("no reply to copy yet")
            return
        self._copy(target.text, "the reply")

    def action_copy_code(self) -> None:
        self._main_only()
        for view in reversed(self.view.message_views()):
            if view.role == "assistant" and (blocks := code_blocks(view.text)):
                self._copy(blocks[-1], "the code block")
                return
        self.tell("no code block to copy")

    def on_message_view_copy_requested(self, event: MessageView.CopyRequested) -> None:
        event.stop()
        if not event.code:
            self._copy(event.view.text, "the message")
            return
        blocks = code_blocks(event.view.text)
        if blocks:
            self._copy(blocks[-1], "the code block")
        else:
            self.tell("this message has no code block")

    def on_message_view_read_requested(self, event: MessageView.ReadRequested) -> None:
        event.stop()
        if event.view.segments:
            self.push_screen(ReaderScreen(event.view))

    def _copy(self, text: str, what: str) -> None:
        # The terminal receives it base64-encoded (OSC 52): byte-exact, and it cannot act.
        self.copy_to_clipboard(text)
        self.tell(f"Copied {what} ({len(text)} characters)")

    # --- conversation management --------------------------------------------------------

    def action_rename(self) -> None:
        self._main_only()
        conversation = self.conversation
        if conversation is None:
            self.tell("send a first message; a new conversation has no title yet")
            return

        def done(title: str | None) -> None:
            if title is not None and title.strip():
                self._rename(conversation.id, title)

        self.push_screen(LineDialog("Rename conversation", conversation.title), done)

    def _rename(self, conv_id: str, title: str) -> None:
        try:
            if self.conversation is None or self.conversation.id != conv_id:
                self.controller.open(conv_id)
            conversation = self.controller.rename(title)
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return
        self.title_bar.show(conversation)
        self.sidebar.reload()

    def action_delete(self) -> None:
        self._main_only()
        conversation = self.conversation
        if conversation is None:
            self.tell("nothing to delete: this conversation is new")
            return
        if self.controller.streaming_in(conversation.id):
            self.warn("a reply is streaming here; press "
                      f"{keys.key_label('stop', self.keymap_overrides)} to stop it first")
            return
        neighbour = self.sidebar.neighbour(conversation.id)

        async def done(yes: bool | None) -> None:
            if yes:
                await self._delete(neighbour)

        self.push_screen(
            ConfirmDialog(f"Delete “{conversation.title}” and all its messages?",
                          yes="Delete", no="Cancel"),
            done,
        )

    async def _delete(self, neighbour: str | None) -> None:
        try:
            deleted = self.controller.delete()
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return
        self.prompt_input.forget_draft(deleted.id)
        self.attachment_chips.forget(deleted.id)
        self.attachment_chips.clear()  # they were the deleted conversation's
        self.prompt_input.set_text("")
        self.sidebar.reload()
        self.conversations_changed()
        await self.open_conversation(neighbour)
        self.tell(f"Deleted “{deleted.title}”")

    def action_export(self, fmt: str = "md") -> None:
        self._main_only()
        conversation = self.conversation
        if conversation is None:
            self.tell("nothing to export: this conversation is empty")
            return
        try:
            folder = default_export_dir(self._state_file)
        except OSError:
            folder = Path.cwd()
        default = str(folder / export_filename(conversation, fmt))

        def done(path_text: str | None) -> None:
            if not path_text or not path_text.strip():
                return
            path = Path(path_text.strip()).expanduser()
            if path.exists():
                def overwrite(yes: bool | None) -> None:
                    if yes:
                        self.export_to(conversation.id, path)

                self.push_screen(
                    ConfirmDialog(f"{path} exists. Replace it?", yes="Replace", no="Cancel"),
                    overwrite,
                )
                return
            self.export_to(conversation.id, path)

        self.push_screen(
            LineDialog("Export to file (.json writes JSON, anything else Markdown)", default),
            done,
        )

    def export_to(self, conv_id: str, path: Path) -> Path | None:
        try:
            written = self.controller.export_to(path, conv_id)
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return None
        state.save_state({"export_dir": str(written.resolve().parent)}, self._state_file)
        self.tell(f"Exported to {written.resolve()}")
        return written

    def action_settings(self) -> None:
        self._main_only()
        system, options = self.controller.settings()

        def done(result: dict[str, Any] | None) -> None:
            if result is None:
                return
            try:
                saved = self.controller.save_settings(result["system_prompt"], result["options"])
            except DOMAIN_ERRORS as exc:
                self.fail(error_message(exc))
                return
            self.tell("Conversation settings saved" if saved
                      else "Settings will apply to this new conversation")

        self.push_screen(SettingsDialog(system, dict(options)), done)

    # --- models -------------------------------------------------------------------------

    def action_switch_model(self) -> None:
        self._main_only()
        self.push_screen(
            ModelDialog(
                self.controller.describe_target(),
                self.controller.model_suggestions(),
                self.controller.server_models,
            ),
            self._model_chosen,
        )

    def _model_chosen(self, target: str | None) -> None:
        if target:
            self.switch_to(target)

    def switch_to(self, target: str) -> None:
        """Send the next message to ``target`` (see ``choice_for_target``)."""
        try:
            self.controller.switch_to(target)
        except DOMAIN_ERRORS as exc:
            self.fail(error_message(exc))
            return
        description = self.controller.describe_target()
        self.status_line.set_target(description)
        self.tell(f"Next message goes to {description}")
        self._prewarm()


def build_app(
    choice: Choice,
    config: Config,
    store: HistoryStore,
    *,
    continue_last: bool = False,
    session_id: str | None = None,
    state_file: Path | None = None,
    user_themes_dir: Path | None = None,
    tune_gc: bool = False,
    debug: bool = False,
) -> ChattermApp:
    """The app over ``store``; the CLI, the tests and the snapshot tests all build it here.

    ``state_file`` and ``user_themes_dir`` default to the user's (chatterm.paths); tests point
    them elsewhere. ``tune_gc`` turns on chatterm.gc_policy (run_tui does); ``debug`` keeps the
    tracebacks of unexpected errors among the notices (run_tui prints them on exit).
    """
    return ChattermApp(
        choice, config, store, continue_last=continue_last, session_id=session_id,
        state_file=state_file, user_themes_dir=user_themes_dir, tune_gc=tune_gc,
        debug=debug,
    )


def run_tui(
    choice: Choice,
    config: Config,
    *,
    continue_last: bool = False,
    session_id: str | None = None,
    debug: bool = False,
    follow_routes: bool | None = None,
) -> int:
    """Open the TUI over the user's history; returns the process exit code.

    A ``--session`` id that matches nothing (or several) is reported before the screen opens
    (exit code 2). With ``debug``, the notifications shown during the session are printed to
    stderr on exit, so an error message can be copied.
    """
    try:
        store = HistoryStore(paths.history_path())
    except StoreError as exc:
        print(f"chatterm: {exc.message}", file=sys.stderr)
        return 1
    try:
        if session_id:
            try:
                found = store.get_conversation(session_id)
            except StoreError as exc:
                print(f"chatterm: {exc.message}", file=sys.stderr)
                return 2
            if found is None:
                print(f"chatterm: no conversation {session_id!r} in the history", file=sys.stderr)
                return 2
            session_id = found.id
        app = ChattermApp(
            choice, config, store, continue_last=continue_last, session_id=session_id,
            tune_gc=True, debug=debug, handle_signals=True, follow_routes=follow_routes,
        )
        result = app.run()
        if debug:
            for severity, message in app.notices:
                print(f"chatterm: [{severity}] {message}", file=sys.stderr)
        return result if isinstance(result, int) else (app.return_code or 0)
    finally:
        store.close()


__all__ = ["ChattermApp", "build_app", "run_tui"]
