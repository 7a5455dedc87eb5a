"""Navigating and editing: new conversation, search, branches, edit, regenerate, copy.

Why here: each action is a plain call into the store followed by a view refresh; failures
are notifications, never exceptions into Textual. Streaming itself is in
:mod:`chatterm.tui.replies`.
"""

from __future__ import annotations

from chatterm.store import Message
from chatterm.tui.base import ChattermBase, guarded
from chatterm.tui.commands import code_blocks
from chatterm.tui.dialogs import TextDialog
from chatterm.tui.help_screen import HelpScreen
from chatterm.tui.message_view import MessageView
from chatterm.tui.search_screen import SearchScreen
from chatterm.tui.sidebar import Sidebar


class NavigationActions(ChattermBase):
    """Actions on the open conversation and moving between conversations."""

    # --- simple actions -----------------------------------------------------------------

    async def action_new_conversation(self) -> None:
        await self.open_conversation(None)
        self.prompt_input.focus()

    def action_toggle_sidebar(self) -> None:
        self.sidebar.display = not self.sidebar.display

    def action_focus_prompt(self) -> None:
        self.prompt_input.focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.keymap_overrides))

    def action_change_theme(self) -> None:
        self.search_themes()

    async def on_sidebar_conversation_selected(self, event: Sidebar.ConversationSelected) -> None:
        event.stop()
        await self.open_conversation(event.conversation_id)

    # --- search -------------------------------------------------------------------------

    def action_search(self) -> None:
        self.push_screen(SearchScreen(self.store), self._search_done)

    @guarded
    async def _search_done(self, hit: tuple[str, int] | None) -> None:
        if hit is None:
            return
        conv_id, message_id = hit
        await self.open_at(conv_id, message_id)

    @guarded
    async def open_at(self, conv_id: str, message_id: int) -> None:
        """Open a conversation scrolled to a message, switching to its branch if needed."""
        message = self.store.get_message(message_id)
        if message is None:
            self.warn("that message no longer exists")
            return
        conversation = self.store.get_conversation(conv_id)
        on_branch = conversation is not None and any(
            m.id == message_id for m in self.store.branch(conv_id)
        )
        if conversation is not None and not on_branch and not self._streaming_in(conv_id):
            self.store.set_active_leaf(conv_id, self._newest_leaf(message).id)
        await self.open_conversation(conv_id, reveal=message_id)

    def _streaming_in(self, conv_id: str) -> bool:
        return self.streaming and self.conversation is not None and self.conversation.id == conv_id

    def _newest_leaf(self, message: Message) -> Message:
        current = message
        while children := self.store.children(current.id):
            current = children[-1]
        return current

    # --- branches, edit, copy -----------------------------------------------------------

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

    @guarded
    async def _step_branch(self, target: MessageView | None, step: int) -> None:
        if target is None or target.message is None or self.conversation is None:
            self.tell("no other branch here")
            return
        if self._busy():
            return
        message = target.message
        if message.parent_id is None:
            siblings = [m for m in self.store.all_messages(message.conversation_id)
                        if m.parent_id is None]
        else:
            siblings = self.store.children(message.parent_id)
        ids = [m.id for m in siblings]
        index = ids.index(message.id) + step if message.id in ids else -1
        if not 0 <= index < len(siblings):
            self.tell("no other branch here" if len(ids) < 2 else "no more branches that way")
            return
        self.store.set_active_leaf(self.conversation.id, self._newest_leaf(siblings[index]).id)
        await self.reload_view()
        shown = self.view.find(siblings[index].id)
        if shown is not None:
            shown.focus()

    def action_edit_last(self) -> None:
        target = self._target_message("user")
        if target is None:
            self.tell("no prompt to edit yet")
            return
        self._edit(target)

    def on_message_view_edit_requested(self, event: MessageView.EditRequested) -> None:
        event.stop()
        if event.view.role != "user":
            self.tell("only your prompts can be edited; regenerate a reply with Ctrl+R")
            return
        self._edit(event.view)

    def _edit(self, target: MessageView) -> None:
        if self._busy() or target.message is None:
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
        if self.conversation is None:
            self.tell("nothing to regenerate yet")
            return
        self.start_reply("regenerate")

    def action_copy_reply(self) -> None:
        target = self._target_message("assistant")
        if target is None or not target.text:
            self.tell("no reply to copy yet")
            return
        self._copy(target.text, "the reply")

    def action_copy_code(self) -> None:
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

    def _copy(self, text: str, what: str) -> None:
        self.copy_to_clipboard(text)
        self.tell(f"Copied {what} ({len(text)} characters)")
