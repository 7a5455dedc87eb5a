"""The chatterm TUI: sidebar, conversation, prompt and status line over the shared history.

Why it is shaped this way: the app talks to the domain (HistoryStore, ChatSession, backends)
through plain calls; the domain never imports Textual. A reply streams in one exclusive async
worker (group ``reply``) that consumes ChatSession's event stream, so Esc cancels exactly that
worker and ChatSession's ``finally`` stores the partial reply as interrupted. This module
builds the window and opens conversations; the behaviour is split by topic into
:mod:`chatterm.tui.replies`, :mod:`chatterm.tui.actions` and :mod:`chatterm.tui.manage`.

Entry points: :func:`build_app` (used by the CLI, the tests and the snapshots) and
:func:`run_tui` (what ``chatterm`` with no arguments runs).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker

from chatterm import paths, state
from chatterm.chat import ChatSession
from chatterm.config import Choice, Config
from chatterm.store import Conversation, HistoryStore, StoreError
from chatterm.tui import keys, themes
from chatterm.tui.actions import NavigationActions
from chatterm.tui.backend_pool import BackendPool
from chatterm.tui.base import guarded
from chatterm.tui.commands import palette_commands
from chatterm.tui.conversation_view import ConversationView, branch_positions
from chatterm.tui.gc_policy import CollectorPolicy
from chatterm.tui.manage import ManageActions
from chatterm.tui.prompt_input import PromptInput
from chatterm.tui.replies import ReplyActions
from chatterm.tui.sidebar import Sidebar
from chatterm.tui.status_line import StatusLine
from chatterm.tui.streaming import ReplyStreamer


class ChattermApp(ReplyActions, ManageActions, NavigationActions):
    """One window onto the history; sends go to ``self.choice`` (switchable at any time)."""

    TITLE = "chatterm"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("app")
    CSS = """
    #main { height: 1fr; }
    #chat { width: 1fr; height: 1fr; }
    #title {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text;
        text-style: bold;
    }
    Footer { height: 1; }
    Screen.-narrow #sidebar { width: 22; }
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
    ) -> None:
        super().__init__()
        self.debug_mode = debug
        # See chatterm.tui.gc_policy: on for the real app, off in tests (it is process-wide).
        self.gc_policy = CollectorPolicy() if tune_gc else None
        self.choice = choice
        self.config = config
        self.store = store
        self.pool = BackendPool()
        self.keymap_overrides: dict[str, str] = dict(config.keys)
        self.conversation: Conversation | None = None
        self.session: ChatSession | None = None
        self.drafts: dict[str | None, str] = {}
        self.pending_settings: dict[str, Any] | None = None
        self.reply_worker: Worker[None] | None = None
        self.last_streamer: ReplyStreamer | None = None
        # The latest notifications (severity, text), for --debug and the tests.
        self.notices: deque[tuple[str, str]] = deque(maxlen=50)
        # When the first frame was shown (perf_counter), for the start-up benchmark.
        self.ready_at: float | None = None
        self._start = (continue_last, session_id)
        self._state_file = state_file
        self._remember_theme = False
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

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield Sidebar(self.store, id="sidebar")
            with Vertical(id="chat"):
                yield Static("", id="title", markup=False)
                yield ConversationView(id="conversation")
                yield PromptInput(id="prompt")
                yield StatusLine(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        unknown = sorted(set(self.keymap_overrides) - keys.known_ids())
        if unknown:
            self.warn(f"[keys] in the config names unknown binding ids: {', '.join(unknown)}")
        self.set_keymap(self.keymap_overrides)
        for problem in self.theme_problems:
            self.warn(problem)
        self._remember_theme = True
        self.status_line.set_target(self.choice.backend, self.choice.backend_config.model)
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

    def on_ready(self) -> None:
        self.ready_at = time.perf_counter()
        if self.gc_policy is not None:
            self.gc_policy.freeze_startup()

    def watch_theme(self, theme: str) -> None:
        if self._remember_theme:
            state.save_state({"theme": theme}, self._state_file)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from palette_commands(self)

    # --- conversations ------------------------------------------------------------------

    @guarded
    async def open_conversation(self, conv_id: str | None, *, reveal: int | None = None) -> None:
        """Show a conversation (None: a new one), keeping the draft of the one we leave."""
        current = self.conversation.id if self.conversation else None
        self.drafts[current] = self.prompt_input.text
        conversation = None
        if conv_id is not None:
            try:
                conversation = self.store.get_conversation(conv_id)
            except StoreError as exc:
                self.warn(exc.message)
                return
            if conversation is None:
                self.warn(f"conversation {conv_id} no longer exists")
                self.sidebar.reload()
                return
        self.conversation = conversation
        self.session = None
        self.pending_settings = None
        if not self.streaming:
            self.status_line.set_reply(state="ready")
        await self.reload_view()
        self.prompt_input.set_text(self.drafts.get(conv_id, ""))
        self.sidebar.mark_current(conv_id)
        if reveal is not None:
            self.call_after_refresh(self.view.reveal, reveal)
        else:
            self.view.follow()

    @guarded
    async def reload_view(self) -> None:
        """Show the active branch of the open conversation again (after a switch of
        conversation or branch), then reclaim the replaced widgets (chatterm.tui.gc_policy)."""
        await self._show_active_branch()
        if self.gc_policy is not None:
            self.set_timer(0.3, self._collect_full)

    async def _show_active_branch(self) -> None:
        conversation = self.conversation
        title = self.query_one("#title", Static)
        if conversation is None:
            title.update(Text("New conversation"))
            await self.view.show([])
            self.prompt_input.set_history([])
            return
        title.update(Text(conversation.title, no_wrap=True, overflow="ellipsis"))
        positions = branch_positions(self.store.all_messages(conversation.id))
        branch = self.store.branch(conversation.id)
        await self.view.show(branch, positions)
        self.prompt_input.set_history([m.content for m in branch if m.role == "user"])

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
    them elsewhere. ``tune_gc`` turns on chatterm.tui.gc_policy (run_tui does); ``debug``
    keeps the tracebacks of unexpected errors among the notices (run_tui prints them on exit).
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
        app = build_app(
            choice, config, store, continue_last=continue_last, session_id=session_id,
            tune_gc=True, debug=debug,
        )
        result = app.run()
        if debug:
            for severity, message in app.notices:
                print(f"chatterm: [{severity}] {message}", file=sys.stderr)
        return result if isinstance(result, int) else (app.return_code or 0)
    finally:
        store.close()


__all__ = ["ChattermApp", "build_app", "run_tui"]
