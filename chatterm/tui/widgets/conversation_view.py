"""The scrolling list of messages of the active branch of one conversation.

Why it diffs instead of rebuilding: after a send, an edit or a branch switch most of the branch
is unchanged; keeping the widgets of the common prefix keeps the view from flickering and keeps
long conversations cheap. The view is anchored (``anchor()``): it follows a streaming reply
only while the user is at the bottom, and stops following as soon as they scroll up.

Why it mounts lazily: Textual lays out every mounted widget, so a conversation of hundreds of
long messages would take seconds to open. Only the newest ``WINDOW`` messages are mounted at
first; older ones are mounted a window at a time when the user scrolls to the top (or when a
search hit among them is revealed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import Static

from chatterm.store import Message
from chatterm.tui.widgets import repeated_rows
from chatterm.tui.widgets.message_view import MessageView
from chatterm.tui.widgets.scroll_gauge import ScrollGauge

WELCOME = (
    "New conversation. Type below and press {send}.\n"
    "{help} keys and features · {command_palette} every command · {search} search all messages"
)
# At most this many messages are mounted when a conversation opens, and per step when
# scrolling up past them; fewer when they fill ``SCREENS`` screens already (every mounted
# widget costs time in each layout: opening 2,000 short messages at 40 took 3 s to draw; a
# resize with two screens' worth took 250 ms, with one and a half 200). What the estimate
# says fills them may not (a link's address is not shown): then older ones are mounted
# until the view can scroll (_fill).
WINDOW = 40
SCREENS = 1.5
MIN_WINDOW = 4

# The stored attachments of some messages, by id (the controller's ``attachments_for``).
AttachmentLookup = Callable[[Iterable[int]], Mapping[int, Sequence[Any]]]


class ConversationView(VerticalScroll, can_focus=False):
    """Holds :class:`MessageView` widgets; knows nothing about the store."""

    DEFAULT_CSS = """
    ConversationView {
        height: 1fr;
        padding: 1 0 0 0;
        background: $background;
        scrollbar-size-vertical: 0;  /* its ScrollGauge draws the bar */
    }
    ConversationView > .welcome {
        color: $text-muted;
        padding: 1 3 1 3;
    }
    ConversationView > .older {
        color: $text-muted;
        padding: 0 3 1 3;
    }
    """

    def __init__(
        self,
        *,
        id: str | None = None,
        welcome: str = WELCOME,
        attachments: AttachmentLookup | None = None,
    ) -> None:
        super().__init__(id=id)
        self.welcome = welcome
        self.attachments = attachments
        self.hidden: list[Message] = []  # older messages of the branch, not mounted yet
        self.positions: dict[int, tuple[int, int]] = {}
        self._loading = False
        # True from a show() until its layout is done: the scroll position moves then (new
        # content, the anchor), which is not the user scrolling up to see older messages.
        self._settling = False
        self.gauge = ScrollGauge()  # the scroll bar (Textual's own is sized 0)

    def compose(self) -> ComposeResult:
        yield self.gauge

    def on_mount(self) -> None:
        self.anchor()

    def watch_virtual_size(self) -> None:
        self.gauge.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        # Its own rows are alike; it scrolls at every frame of a streaming reply.
        return repeated_rows.render_lines(self, crop, super().render_lines)

    def _attached(self, messages: Sequence[Message]) -> Mapping[int, Sequence[Any]]:
        """The attachments of the user messages about to be mounted (one query)."""
        ids = [m.id for m in messages if m.role == "user"]
        if self.attachments is None or not ids:
            return {}
        return self.attachments(ids)

    def _window(self, messages: Sequence[Message]) -> int:
        """How many of the newest ``messages`` to mount: enough for ``SCREENS`` screens
        (estimated from their length), at least ``MIN_WINDOW``, at most ``WINDOW``."""
        width = max(20, (self.size.width or self.app.size.width) - 8)
        wanted = SCREENS * max(10, self.size.height or self.app.size.height)
        rows = 0
        count = 0
        for message in reversed(messages):
            if count >= WINDOW or (count >= MIN_WINDOW and rows >= wanted):
                break
            text = message.content
            rows += 3 + text.count("\n", 0, 20_000) + min(len(text), 20_000) // width
            count += 1
        return count

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
        prepared: Mapping[int, list[Any]] | None = None,
    ) -> None:
        """Show ``messages`` (a branch, oldest first), reusing the views of a common prefix.

        ``live`` is the id of the reply being streamed: its view gets a live segment.
        ``prepared``: long replies' parts, made off the event loop (part_rows.prepare).
        """
        prepared = prepared or {}
        self.positions = positions = positions or {}
        shown = [m for m in messages if m.role in ("user", "assistant")]
        views = self.message_views()
        # Keep the mounted window where it starts (a send adds at the end), else the newest.
        start = len(shown) - self._window(shown)
        if views:
            first = views[0].message_id
            index = next((i for i, m in enumerate(shown) if m.id == first), None)
            if index is not None and len(shown) - index <= WINDOW * 4:
                start = index
        self.hidden = shown[:start]
        shown = shown[start:]
        keep = 0
        for view, message in zip(views, shown, strict=False):
            if view.message_id != message.id or view.status != message.status or (
                view.live != (message.id == live)
            ):
                break
            keep += 1
        self._settling = True
        self.call_after_refresh(self._settled)
        with self.app.batch_update():
            for view in views[keep:]:
                await view.remove()
            for view, message in zip(views[:keep], shown, strict=False):
                position = positions.get(message.id, (1, 1))
                if view.branch != position:
                    view.branch = position
                    view.refresh_header()
            attached = self._attached(shown[keep:])
            new = [
                MessageView(
                    message, branch=positions.get(message.id, (1, 1)), live=message.id == live,
                    attachments=attached.get(message.id, ()), parts=prepared.get(message.id),
                )
                for message in shown[keep:]
            ]
            await self.query_children(".welcome").remove()
            await self._sync_older_note()
            if new:
                await self.mount_all(new)
            if not messages:
                await self.mount(Static(Text(self.welcome), classes="welcome", markup=False))
        self.call_after_refresh(self._fill)

    async def _sync_older_note(self) -> None:
        notes = list(self.query_children(".older"))
        if not self.hidden:
            for note in notes:
                await note.remove()
            return
        label = Text(f"↑ {len(self.hidden)} earlier messages (scroll up to show them)")
        views = self.message_views()  # the note goes above the first (the gauge is docked)
        if notes:
            note = notes[0]
            assert isinstance(note, Static)
            note.update(label)
            if views and self.children.index(note) > self.children.index(views[0]):
                self.move_child(note, before=views[0])
        else:
            note = Static(label, classes="older", markup=False)
            await self.mount(note, before=views[0] if views else None)

    async def load_older(self, down_to: int | None = None) -> None:
        """Mount the previous window of hidden messages (or all of them down to an id)."""
        if not self.hidden or self._loading:
            return
        self._loading = True
        try:
            count = self._window(self.hidden)
            if down_to is not None:
                ids = [m.id for m in self.hidden]
                if down_to in ids:
                    count = max(count, len(ids) - ids.index(down_to))
            batch, self.hidden = self.hidden[-count:], self.hidden[:-count]
            attached = self._attached(batch)
            views = [
                MessageView(m, branch=self.positions.get(m.id, (1, 1)),
                            attachments=attached.get(m.id, ()))
                for m in batch
            ]
            anchor = self.message_views()
            with self.app.batch_update():
                if anchor:
                    await self.mount_all(views, before=anchor[0])
                else:
                    await self.mount_all(views)
                await self._sync_older_note()
        finally:
            self._loading = False
        self.call_after_refresh(self._fill)

    def _settled(self) -> None:
        self._settling = False

    def _fill(self) -> None:
        """Mount older messages while the mounted ones do not fill the view: with nothing to
        scroll, the user could never scroll up to them. Asked after the layout of what was
        just mounted (before it, the view's height is the last conversation's); not while
        another screen is on top (no layout happens then: the height read would be stale).
        A taller window needs no asking: the view scrolls to its top then (watch_scroll_y)."""
        if (
            self.hidden and not self._loading and self.size.height > 0
            and self.screen.is_current and self.max_scroll_y <= 0
        ):
            self.call_later(self.load_older)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if int(old_value * 8) != int(new_value * 8):  # the bar moves in eighths of a row
            self.gauge.refresh()
        if (
            new_value <= 0 and old_value > 0 and self.hidden
            and not self._loading and not self._settling
        ):
            self.call_later(self.load_older)

    def follow(self) -> None:
        """Jump to the bottom and follow new content again (a new reply starts)."""
        self.anchor()

    def reveal(self, message_id: int) -> bool:
        """Scroll so a message is at the top and focus it (a search hit); stop following.

        A hit among the older, unmounted messages is mounted first.
        """
        view = self.find(message_id)
        if view is None:
            if any(m.id == message_id for m in self.hidden):
                self.call_later(self._reveal_hidden, message_id)
                return True
            return False
        self.release_anchor()
        self.scroll_to_widget(view, animate=False, top=True, immediate=True)
        view.focus(scroll_visible=False)
        return True

    async def _reveal_hidden(self, message_id: int) -> None:
        await self.load_older(down_to=message_id)
        self.call_after_refresh(self.reveal, message_id)
