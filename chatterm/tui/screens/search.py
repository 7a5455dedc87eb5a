"""Full-text search over every message of every conversation.

Why it is shaped this way: the store's FTS index answers in milliseconds, but a keystroke must
never wait for it, so each query runs after a short pause in typing on one thread of the
screen's own, with one connection for all its queries (what a search sets up once stays set
up: a read-only history's private index of pieces it could not index, the snippet table),
and a newer keystroke cancels the older query: its worker (``exclusive``) and, through
SQLite's progress handler, the statements it still runs. The matched words are highlighted in each hit; ↓
moves straight to the first hit (not just to the list), Enter opens the highlighted hit (the
first one from the query box). Choosing a hit returns ``(conversation_id, message_id)``; the
app opens that conversation scrolled to that message. Titles and snippets are user and model
text: sanitised (:mod:`chatterm.sanitize`), shown as Rich ``Text``, never markup.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from chatterm.sanitize import safe_inline
from chatterm.store import HistoryStore, SearchHit, StoreError
from chatterm.tui.screens.once import OnceModal

RESULT_LIMIT = 50
DEBOUNCE_S = 0.08
HINT = "↓ picks a hit · Enter opens it · Esc closes"


def match_pattern(query: str) -> re.Pattern[str] | None:
    """The words of the query as the store matches them: each a case-insensitive prefix."""
    words = [re.escape(w.strip('"')) for w in query.split() if w.strip('"')]
    if not words:
        return None
    return re.compile(r"\b(?:" + "|".join(words) + r")\w*", re.IGNORECASE)


def hit_text(hit: SearchHit, pattern: re.Pattern[str] | None = None) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(safe_inline(hit.conversation_title or "(untitled)"), style="bold")
    text.append("  ")
    text.append("you" if hit.role == "user" else safe_inline(hit.role), style="italic dim")
    text.append("\n")
    snippet = Text(safe_inline(" ".join(hit.snippet.split())), style="dim")
    if pattern is not None:
        snippet.highlight_regex(pattern, style="bold reverse")
    text.append_text(snippet)
    return text


def summary_text(count: int, query: str, limit: int = RESULT_LIMIT) -> str:
    if not query.strip():
        return "Type to search every message of every conversation."
    if not count:
        return "No message matches."
    more = "+" if count >= limit else ""
    noun = "match" if count == 1 and not more else "matches"
    return f"{count}{more} {noun} · {HINT}"


class SearchThread:
    """One thread and one history connection for the queries of one search screen.

    An SQLite connection belongs to the thread that opened it, so the connection is opened,
    used and closed on the thread. Each query gets a number; a query whose number is no longer
    the latest (a newer keystroke) is stopped by the progress handler at its next check and
    any statement it has left fails at once, so a stale query never holds the thread long.
    """

    CHECK_EVERY = 1000  # SQLite virtual-machine steps between checks

    def __init__(self, path: Path, readonly: bool) -> None:
        self._path = path
        self._readonly = readonly
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatterm-search")
        self._store: HistoryStore | None = None
        self._latest = 0

    async def search(self, query: str, limit: int) -> list[SearchHit]:
        self._latest += 1
        number = self._latest
        future = self._pool.submit(self._run, query, limit, number)
        return await asyncio.wrap_future(future)  # cancelled while queued: never runs

    def _run(self, query: str, limit: int, number: int) -> list[SearchHit]:
        if self._store is None:
            self._store = HistoryStore(self._path, readonly=self._readonly)
        self._store.set_progress_check(lambda: self._latest != number, self.CHECK_EVERY)
        return self._store.search(query, limit)

    def close(self) -> None:
        """Stop what runs, close the connection on its thread, let the thread end."""
        self._latest += 1

        def close() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        self._pool.submit(close)
        self._pool.shutdown(wait=False)


class SearchScreen(OnceModal[tuple[str, int] | None]):
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
        self.query_text = ""
        self.searches = 0  # queries that ran to the end (newer keystrokes cancel older ones)
        self._thread: SearchThread | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Search all messages", classes="search-title", markup=False)
            yield Input(self.initial_query, placeholder="words to find…", id="query")
            yield Static("", classes="search-summary", markup=False)
            yield OptionList(id="results")

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()
        self._show([], "")
        if self.initial_query:
            self.run_search(self.initial_query, debounce=False)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.run_search(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.query_text != event.value:
            # Enter before the debounced query ran: answer this one now, then open its hit.
            self.workers.cancel_group(self, "search")
            try:
                hits = self.store.search(event.value, RESULT_LIMIT) if event.value.strip() else []
            except StoreError as exc:
                self.query_one(".search-summary", Static).update(Text(safe_inline(exc.message)))
                return
            self._show(hits, event.value)
        if self.hits:
            self.choose(0)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def run_search(self, query: str, debounce: bool = True) -> None:
        """Query the store off the event loop; a newer call cancels this one."""
        if debounce:
            await asyncio.sleep(DEBOUNCE_S)
        hits: list[SearchHit] = []
        if query.strip():
            try:
                hits = await self._search_off_loop(query)
            except StoreError as exc:
                self.hits = []
                self.query_one(".search-summary", Static).update(Text(safe_inline(exc.message)))
                return
        self._show(hits, query)
        self.searches += 1

    async def _search_off_loop(self, query: str) -> list[SearchHit]:
        """The query on the screen's search thread (:class:`SearchThread`); an in-memory
        history can only be asked on the loop."""
        path = self.store.path
        if str(path) == ":memory:":
            return self.store.search(query, RESULT_LIMIT)
        if self._thread is None:
            self._thread = SearchThread(path, self.store.readonly)
        return await self._thread.search(query, RESULT_LIMIT)

    def on_unmount(self) -> None:
        if self._thread is not None:
            self._thread.close()
            self._thread = None

    def _show(self, hits: list[SearchHit], query: str) -> None:
        self.hits = hits
        self.query_text = query
        pattern = match_pattern(query)
        results = self.query_one("#results", OptionList)
        picked = results.highlighted if results.has_focus else None
        results.set_options(
            Option(hit_text(hit, pattern), id=str(index)) for index, hit in enumerate(hits)
        )
        if picked is not None and hits:
            # The user went to the hits (↓) before the last keystroke's answer came: they
            # stay on one, not on none. (Back in the query box, ↓ starts at the first.)
            results.highlighted = min(picked, len(hits) - 1)
        self.query_one(".search-summary", Static).update(Text(summary_text(len(hits), query)))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.choose(event.option_index)

    def choose(self, index: int) -> None:
        if 0 <= index < len(self.hits):
            hit = self.hits[index]
            self.dismiss((hit.conversation_id, hit.message_id))

    def action_focus_results(self) -> None:
        results = self.query_one("#results", OptionList)
        if not results.option_count:
            return
        results.focus()
        if results.highlighted is None:
            results.highlighted = 0

    def action_close(self) -> None:
        self.dismiss(None)
