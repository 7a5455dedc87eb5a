"""The list of conversations, newest first, loaded a page at a time as the user scrolls.

Why lazily: a history of 10,000 conversations must open in well under a second, so only the
first page is read at start-up and the next page is read when the highlight or the scroll
position comes near the end of what is loaded. Each row shows the title, then when the
conversation was last used, the model that last answered and how many messages it has, so ten
conversations called ``hi`` can be told apart. The filter box above the list narrows it by title
as you type (one indexed query per pause in typing, a page at a time again).

Titles and model names are user and server text: sanitised (:mod:`chatterm.sanitize`) and
shown as Rich ``Text`` objects, never parsed as markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option, OptionDoesNotExist

from chatterm.sanitize import safe_inline
from chatterm.store import ConversationSummary, HistoryStore, StoreError

PAGE_SIZE = 100
# Load the next page when the highlight or the viewport is this close to the loaded end.
PREFETCH_ROWS = 20
FILTER_DEBOUNCE_S = 0.15


def when_text(timestamp: float, now: float | None = None) -> str:
    """``14:05`` today, ``Mar 04`` this year, ``2025-03-04`` before."""
    moment = time.localtime(timestamp)
    today = time.localtime(now if now is not None else time.time())
    if moment[:3] == today[:3]:
        return time.strftime("%H:%M", moment)
    if moment.tm_year == today.tm_year:
        return time.strftime("%b %d", moment)
    return time.strftime("%Y-%m-%d", moment)


def title_text(summary: ConversationSummary, now: float | None = None) -> Text:
    conversation = summary.conversation
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(safe_inline(conversation.title) or "(untitled)")
    text.append("\n")
    # The model last: it is the part a narrow sidebar cuts.
    details = [when_text(conversation.updated_at, now), f"{summary.message_count} msg"]
    if summary.last_model:
        details.append(safe_inline(summary.last_model.rsplit("/", 1)[-1]))
    text.append(" · ".join(details), style="dim")
    return text


class ConversationList(OptionList):
    """An OptionList that asks for more rows when the user nears its end."""

    class NearEndReached(Message):
        """The highlight or the viewport came close to the last loaded conversation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drawing = False
        self._drawn_in: tuple[bool, bool, Region] | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        # The list's scrollable region is asked for three times per row drawn (the OptionList
        # checks its line cache for each row), and each answer walks up to the screen and
        # through its compositor: a third of drawing the sidebar, 5 ms of each resize. While
        # the rows are drawn it changes only if a scroll bar comes or goes (the OptionList
        # updates its size first thing), so it is kept for the scroll bars it was made with.
        self._drawing = True
        try:
            return super().render_lines(crop)
        finally:
            self._drawing, self._drawn_in = False, None

    @property
    def scrollable_content_region(self) -> Region:
        if not self._drawing:
            return super().scrollable_content_region
        bars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
        kept = self._drawn_in
        if kept is None or kept[:2] != bars:
            kept = self._drawn_in = (*bars, super().scrollable_content_region)
        return kept[2]

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        rows = self.option_count * 2  # two lines per conversation
        if new_value + self.scrollable_content_region.height + PREFETCH_ROWS >= rows:
            self.post_message(self.NearEndReached())

    def watch_highlighted(self, highlighted: int | None) -> None:
        super().watch_highlighted(highlighted)
        if highlighted is not None and highlighted + PREFETCH_ROWS >= self.option_count:
            self.post_message(self.NearEndReached())


class Sidebar(Vertical):
    """Conversations of the history. Posts :class:`Sidebar.ConversationSelected`."""

    # Its width is 30 % of the terminal's, 22 to 30 columns: a rule of the CSS, so a
    # resize lays the screen out once. (Restyling it from a resize handler laid the screen out
    # at the old width and again at the new: twice the work, 0.1 s each with a long reply
    # open; a Textual breakpoint class restyles every widget of the screen, 0.2 s.)
    DEFAULT_CSS = """
    Sidebar {
        width: 30%;
        min-width: 22;
        max-width: 30;
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
    Sidebar > Input {
        height: 1;
        border: none;
        padding: 0 1;
        background: $surface;
    }
    Sidebar > Input:focus {
        border: none;
        background-tint: $foreground 6%;
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
        self.filter_text = ""
        self._filter_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="sidebar-title", markup=False)
        yield Input(placeholder="filter titles…", id="sidebar-filter", compact=True)
        yield ConversationList(id="conversation-list")

    @property
    def option_list(self) -> ConversationList:
        return self.query_one(ConversationList)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#sidebar-filter", Input)

    def on_mount(self) -> None:
        self._guarded(self.reload)

    def _rows(self, limit: int, offset: int) -> list[ConversationSummary]:
        return self.store.conversation_summaries(limit, offset, self.filter_text)

    def reload(self, at_least: int = PAGE_SIZE) -> None:
        """Read the list again from the store (after a new, renamed or deleted conversation)."""
        at_least = max(at_least, self.loaded, PAGE_SIZE)
        self.total = self.store.count_matching(self.filter_text)
        rows = self._rows(at_least, 0)
        now = time.time()
        self.option_list.set_options(
            Option(title_text(r, now), id=r.conversation.id) for r in rows
        )
        self.loaded = len(rows)
        self.exhausted = len(rows) < at_least
        self._update_title()
        self.mark_current(self.current_id)

    def load_more(self) -> None:
        if self.exhausted:
            return
        rows = self._rows(PAGE_SIZE, self.loaded)
        option_list = self.option_list
        now = time.time()
        fresh = []
        for row in rows:
            try:
                option_list.get_option(row.conversation.id)
            except OptionDoesNotExist:
                fresh.append(Option(title_text(row, now), id=row.conversation.id))
        option_list.add_options(fresh)
        self.loaded += len(rows)
        self.exhausted = len(rows) < PAGE_SIZE

    def _update_title(self) -> None:
        label = f"Conversations ({self.total})"
        if self.filter_text:
            label = f"Matching “{safe_inline(self.filter_text)}” ({self.total})"
        self.query_one(".sidebar-title", Static).update(Text(label))

    def mark_current(self, conversation_id: str | None) -> None:
        """Highlight the open conversation (if it is loaded), without opening it again."""
        self.current_id = conversation_id
        option_list = self.option_list
        if conversation_id is None:
            option_list.highlighted = None
            return
        try:
            index = option_list.get_option_index(conversation_id)
        except OptionDoesNotExist:
            return
        with option_list.prevent(OptionList.OptionHighlighted):
            option_list.highlighted = index

    def neighbour(self, conversation_id: str) -> str | None:
        """The conversation listed after ``conversation_id`` (or before, at the end)."""
        option_list = self.option_list
        try:
            index = option_list.get_option_index(conversation_id)
        except OptionDoesNotExist:
            return None
        for candidate in (index + 1, index - 1):
            if 0 <= candidate < option_list.option_count:
                return option_list.get_option_at_index(candidate).id
        return None

    def focus_filter(self) -> None:
        self.display = True
        self.filter_input.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._filter_timer is not None:
            self._filter_timer.stop()
        value = event.value
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE_S, lambda: self.apply_filter(value))

    def apply_filter(self, value: str) -> None:
        """Show only the conversations whose title contains ``value`` (now, no debounce)."""
        self._filter_timer = None
        self.filter_text = value.strip()
        self.loaded = 0
        self._guarded(self.reload)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply_filter(event.value)
        if self.option_list.option_count:
            self.option_list.focus()
            self.option_list.highlighted = 0

    def on_conversation_list_near_end_reached(self, event: ConversationList.NearEndReached) -> None:
        event.stop()
        self._guarded(self.load_more)

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run ``step``; a store error becomes a notification instead of a crash."""
        try:
            step()
        except StoreError as exc:
            self.notify(safe_inline(exc.message), severity="error", markup=False)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.ConversationSelected(event.option.id))
