"""The scrolling list of messages of the active branch of one conversation.

Why it diffs instead of rebuilding: after a send, an edit or a branch switch most of the branch
is unchanged; keeping the widgets of the common prefix keeps the view from flickering and keeps
long conversations cheap. The view is anchored (``anchor()``): it follows a streaming reply
only while the user is at the bottom, and stops following as soon as they scroll up.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from chatterm.store import Message
from chatterm.tui.widgets.message_view import MessageView

WELCOME = (
    "New conversation. Type below and press {send}.\n"
    "{help} keys and features · {command_palette} every command · {search} search all messages"
)


class ConversationView(VerticalScroll, can_focus=False):
    """Holds :class:`MessageView` widgets; knows nothing about the store."""

    DEFAULT_CSS = """
    ConversationView {
        height: 1fr;
        padding: 1 1 0 1;
        background: $background;
        scrollbar-size-vertical: 1;
    }
    ConversationView > .welcome {
        color: $text-muted;
        padding: 1 2;
    }
    """

    def __init__(self, *, id: str | None = None, welcome: str = WELCOME) -> None:
        super().__init__(id=id)
        self.welcome = welcome

    def on_mount(self) -> None:
        self.anchor()

    def message_views(self) -> list[MessageView]:
        return list(self.query_children(MessageView).results(MessageView))

    def find(self, message_id: int) -> MessageView | None:
        for view in self.message_views():
            if view.message_id == message_id:
                return view
        return None

    async def show(
        self,
        messages: list[Message],
        positions: dict[int, tuple[int, int]] | None = None,
        *,
        live: int | None = None,
    ) -> None:
        """Show ``messages`` (a branch, oldest first), reusing the views of a common prefix.

        ``live`` is the id of the reply being streamed: its view gets a live segment.
        """
        positions = positions or {}
        views = self.message_views()
        keep = 0
        for view, message in zip(views, messages, strict=False):
            if view.message_id != message.id or view.status != message.status or (
                view.live != (message.id == live)
            ):
                break
            keep += 1
        with self.app.batch_update():
            for view in views[keep:]:
                await view.remove()
            for view, message in zip(views[:keep], messages, strict=False):
                position = positions.get(message.id, (1, 1))
                if view.branch != position:
                    view.branch = position
                    view.refresh_header()
            new = [
                MessageView(
                    message, branch=positions.get(message.id, (1, 1)), live=message.id == live
                )
                for message in messages[keep:]
                if message.role in ("user", "assistant")
            ]
            await self.query_children(".welcome").remove()
            if new:
                await self.mount_all(new)
            if not messages:
                await self.mount(Static(Text(self.welcome), classes="welcome", markup=False))

    def follow(self) -> None:
        """Jump to the bottom and follow new content again (a new reply starts)."""
        self.anchor()

    def reveal(self, message_id: int) -> bool:
        """Scroll so a message is at the top and focus it (a search hit); stop following."""
        view = self.find(message_id)
        if view is None:
            return False
        self.release_anchor()
        self.scroll_to_widget(view, animate=False, top=True, immediate=True)
        view.focus(scroll_visible=False)
        return True
