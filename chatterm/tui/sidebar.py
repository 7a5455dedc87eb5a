"""The list of conversations, newest first, loaded a page at a time as the user scrolls.

Why lazily: a history of 10,000 conversations must open in well under a second, so only the
first page is read at start-up and the next page is read when the highlight or the scroll
position comes near the end of what is loaded. Titles are user text: they are shown as Rich
``Text`` objects, never parsed as markup.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from chatterm.store import Conversation, HistoryStore, StoreError

PAGE_SIZE = 100
# Load the next page when the highlight or the viewport is this close to the loaded end.
PREFETCH_ROWS = 20


def title_text(conversation: Conversation) -> Text:
    return Text(conversation.title or "(untitled)", no_wrap=True, overflow="ellipsis")


class ConversationList(OptionList):
    """An OptionList that asks for more rows when the user nears its end."""

    class NearEndReached(Message):
        """The highlight or the viewport came close to the last loaded conversation."""

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value + self.scrollable_content_region.height + PREFETCH_ROWS >= self.option_count:
            self.post_message(self.NearEndReached())

    def watch_highlighted(self, highlighted: int | None) -> None:
        super().watch_highlighted(highlighted)
        if highlighted is not None and highlighted + PREFETCH_ROWS >= self.option_count:
            self.post_message(self.NearEndReached())


class Sidebar(Vertical):
    """Conversations of the history. Posts :class:`Sidebar.ConversationSelected`."""

    DEFAULT_CSS = """
    Sidebar {
        width: 30;
        max-width: 40%;
        height: 1fr;
        background: $panel;
        border-right: vkey $border-blurred;
    }
    Sidebar > .sidebar-title {
        height: 1;
        padding: 0 1;
        color: $text-muted;
        text-style: bold;
    }
    Sidebar > ConversationList {
        height: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        border: none;
        background: $panel;
        padding: 0;
        scrollbar-size-vertical: 1;
    }
    Sidebar > ConversationList:focus {
        border: none;
        background-tint: $foreground 4%;
    }
    """

    class ConversationSelected(Message):
        """The user chose a conversation in the list."""

        def __init__(self, conversation_id: str) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def __init__(self, store: HistoryStore, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.loaded = 0
        self.exhausted = False
        self.total = 0
        self.current_id: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="sidebar-title", markup=False)
        yield ConversationList(id="conversation-list")

    @property
    def option_list(self) -> ConversationList:
        return self.query_one(ConversationList)

    def on_mount(self) -> None:
        self._guarded(self.reload)

    def reload(self, at_least: int = PAGE_SIZE) -> None:
        """Read the list again from the store (after a new, renamed or deleted conversation)."""
        at_least = max(at_least, self.loaded, PAGE_SIZE)
        self.total = self.store.count_conversations()
        rows = self.store.list_conversations(limit=at_least, offset=0)
        option_list = self.option_list
        option_list.set_options(Option(title_text(c), id=c.id) for c in rows)
        self.loaded = len(rows)
        self.exhausted = len(rows) < at_least
        self._update_title()
        self.mark_current(self.current_id)

    def load_more(self) -> None:
        if self.exhausted:
            return
        rows = self.store.list_conversations(limit=PAGE_SIZE, offset=self.loaded)
        known = {opt.id for opt in self.option_list.options}
        fresh = [c for c in rows if c.id not in known]
        self.option_list.add_options(Option(title_text(c), id=c.id) for c in fresh)
        self.loaded += len(rows)
        self.exhausted = len(rows) < PAGE_SIZE

    def _update_title(self) -> None:
        self.query_one(".sidebar-title", Static).update(Text(f"Conversations ({self.total})"))

    def mark_current(self, conversation_id: str | None) -> None:
        """Highlight the open conversation (if it is loaded), without opening it again."""
        self.current_id = conversation_id
        option_list = self.option_list
        if conversation_id is None:
            option_list.highlighted = None
            return
        try:
            index = option_list.get_option_index(conversation_id)
        except Exception:
            return
        with option_list.prevent(OptionList.OptionHighlighted):
            option_list.highlighted = index

    def on_conversation_list_near_end_reached(self, event: ConversationList.NearEndReached) -> None:
        event.stop()
        self._guarded(self.load_more)

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run ``step``; a store error becomes a notification instead of a crash."""
        try:
            step()
        except StoreError as exc:
            self.notify(exc.message, severity="error", markup=False)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.ConversationSelected(event.option.id))
