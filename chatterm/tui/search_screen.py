"""Full-text search over every message of every conversation.

Why it searches as you type: the store's FTS index answers in milliseconds even for a large
history, so there is no search button and no debounce. Choosing a hit returns
``(conversation_id, message_id)``; the app opens that conversation scrolled to that message.
Titles and snippets are user and model text: shown as Rich ``Text``, never markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from chatterm.store import HistoryStore, SearchHit, StoreError

RESULT_LIMIT = 50


def hit_text(hit: SearchHit) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(hit.conversation_title or "(untitled)", style="bold")
    text.append("  ")
    text.append("you" if hit.role == "user" else hit.role, style="italic dim")
    text.append("\n")
    text.append(" ".join(hit.snippet.split()), style="dim")
    return text


class SearchScreen(ModalScreen[tuple[str, int] | None]):
    """A search box over the whole history; dismissed with the chosen hit or None."""

    DEFAULT_CSS = """
    SearchScreen {
        align: center top;
        background: $background 60%;
    }
    SearchScreen > Vertical {
        width: 90%;
        max-width: 110;
        height: 80%;
        margin-top: 2;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    SearchScreen .search-title {
        text-style: bold;
        color: $text-primary;
    }
    SearchScreen .search-summary {
        color: $text-muted;
        height: 1;
    }
    SearchScreen OptionList {
        height: 1fr;
        border: none;
        background: $surface;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", show=False),
        Binding("down", "focus_results", "Results", show=False),
    ]

    def __init__(self, store: HistoryStore, query: str = "") -> None:
        super().__init__()
        self.store = store
        self.initial_query = query
        self.hits: list[SearchHit] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Search all messages", classes="search-title", markup=False)
            yield Input(self.initial_query, placeholder="words to find…", id="query")
            yield Static("", classes="search-summary", markup=False)
            yield OptionList(id="results")

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()
        if self.initial_query:
            self.run_search(self.initial_query)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.run_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.hits:
            self.choose(0)

    def run_search(self, query: str) -> None:
        try:
            self.hits = self.store.search(query, limit=RESULT_LIMIT) if query.strip() else []
        except StoreError as exc:
            self.hits = []
            self.query_one(".search-summary", Static).update(Text(exc.message))
            return
        results = self.query_one("#results", OptionList)
        results.set_options(
            Option(hit_text(hit), id=str(index)) for index, hit in enumerate(self.hits)
        )
        if not query.strip():
            summary = "Type to search every message of every conversation."
        elif not self.hits:
            summary = "No message matches."
        else:
            more = "+" if len(self.hits) == RESULT_LIMIT else ""
            summary = f"{len(self.hits)}{more} matches · ↓ to pick, Enter opens"
        self.query_one(".search-summary", Static).update(Text(summary))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.choose(event.option_index)

    def choose(self, index: int) -> None:
        hit = self.hits[index]
        self.dismiss((hit.conversation_id, hit.message_id))

    def action_focus_results(self) -> None:
        self.query_one("#results", OptionList).focus()

    def action_close(self) -> None:
        self.dismiss(None)
