"""One message in the conversation view: a header, optional reasoning, and the text.

Why two renderings: the user's text is shown exactly as typed (a ``Static`` of a Rich ``Text``,
so ``[bold]`` or ``[/mnt/data]`` are characters, never markup), while the model's text is
Markdown (headings, tables, highlighted code). Reasoning is kept apart in a section that is open
while it streams (so it can be read live) and collapsed once the reply ends, so the answer
stays readable. Everything shown passes through :mod:`chatterm.sanitize` first (model names,
errors, reasoning and both texts): the stored text stays byte-exact, what reaches the terminal
cannot drive it. A message can take the focus so it can be edited, copied or switched
to a sibling branch from the keyboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.geometry import Region
from textual.message import Message as TextualMessage
from textual.strip import Strip
from textual.widgets import Collapsible, Static

from chatterm.sanitize import safe_inline, safe_text
from chatterm.store import COMPLETE, ERROR, INTERRUPTED, STREAMING, Message
from chatterm.tui import keys
from chatterm.tui.widgets import repeated_rows
from chatterm.tui.widgets.attachment_chips import AttachmentBlock
from chatterm.tui.widgets.frozen_markdown import FrozenMarkdown


def author_label(message: Message | None, backend: str | None, model: str | None) -> str:
    if message is not None and message.role == "user":
        return "You"
    if message is not None and message.role == "system":
        return "System"
    return safe_inline(model or backend or "assistant")


class LiveMarkdown(FrozenMarkdown):
    """The segment a reply is streaming into: one widget, its text drawn again per batch.

    Why not Textual's ``Markdown`` with ``MarkdownStream``: every append re-parses the last
    block and mounts fresh block widgets, and each mount costs a stylesheet match and a
    layout of the screen. At thousands of chunks a second that work (not the chunks) was what
    the reply waited for (bench/bench_tui.py: 55 s for a reply ``ask`` writes in 1 s). This
    segment is a few hundred characters (chatterm.markdown_blocks), so drawing it whole from a
    fresh parse at most ``FLUSH_INTERVAL_S`` apart is cheap, and never wrong across deltas.
    It is rendered on the render thread; the previous batch's rendering stays on screen until
    the new one is back, so the event loop never waits for Rich while a reply streams.
    """

    def __init__(self, source: str, *, classes: str | None = None) -> None:
        super().__init__(source, classes=classes)
        self.rows.background = True

    def extend(self, source: str) -> None:
        """Append a batch of deltas: cut anywhere, so the segment is drawn again whole (unless
        it is past PLAIN_CHARS with no safe cut: then only the batch is added, see
        PartRows.append_plain)."""
        if not source:
            return
        if self.rows.append_plain(source):
            self.refresh(layout=True)
        else:
            self.replace(self.source + source)


class MessageView(Vertical, can_focus=True):
    """A stored (or streaming) message. ``message`` is None until the reply is stored."""

    # The message spans the conversation view's width and its children indent themselves
    # (padding, not the message's): every widget edge on a row is a cut the compositor
    # divides each layer's row at, at every frame, and a streaming reply redraws every row.
    DEFAULT_CSS = """
    MessageView {
        height: auto;
        padding: 0;
        margin: 0 0 1 0;
    }
    MessageView:focus {
        background: $boost;
        border-left: outer $primary;
    }
    MessageView > .header {
        height: 1;
        color: $text-muted;
        padding: 0 2 0 2;
    }
    MessageView:focus > .header {
        padding: 0 2 0 1;
    }
    MessageView.-user > .header {
        color: $text-primary;
    }
    MessageView.-assistant > .header {
        color: $text-secondary;
    }
    MessageView > .user-text {
        height: auto;
        padding: 0 2 0 4;
    }
    MessageView > .reply-body {
        height: auto;
        padding: 0 2 0 4;
    }
    MessageView:focus > .user-text, MessageView:focus > .reply-body,
    MessageView:focus > .problem {
        padding: 0 2 0 3;
    }
    MessageView > FrozenMarkdown.reply-body {
        margin: 0;
        background: transparent;
    }
    MessageView > .problem {
        height: auto;
        color: $text-warning;
        padding: 0 2 0 4;
    }
    MessageView.-error > .problem {
        color: $text-error;
    }
    MessageView > Collapsible {
        margin: 0 2 0 4;
        padding: 0;
        border-top: none;
        background: transparent;
    }
    MessageView:focus > Collapsible {
        margin: 0 2 0 3;
    }
    MessageView > Collapsible > Contents {
        padding: 0 0 0 2;
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("message")

    class EditRequested(TextualMessage):
        """The user asked to edit this (user) message and resend it."""

        def __init__(self, view: MessageView) -> None:
            super().__init__()
            self.view = view

    class CopyRequested(TextualMessage):
        """The user asked to copy this message, or (``code=True``) its last code block."""

        def __init__(self, view: MessageView, code: bool) -> None:
            super().__init__()
            self.view = view
            self.code = code

    class ReadRequested(TextualMessage):
        """The user asked to read this reply whole, full screen."""

        def __init__(self, view: MessageView) -> None:
            super().__init__()
            self.view = view

    class BranchRequested(TextualMessage):
        """The user asked to show a sibling branch of this message (``step`` is ±1)."""

        def __init__(self, view: MessageView, step: int) -> None:
            super().__init__()
            self.view = view
            self.step = step

    def __init__(
        self,
        message: Message | None,
        *,
        role: str = "assistant",
        backend: str | None = None,
        model: str | None = None,
        branch: tuple[int, int] = (1, 1),
        live: bool = False,
        attachments: Sequence[Any] = (),
        parts: list[Any] | None = None,
    ) -> None:
        self.role = message.role if message is not None else role
        super().__init__(classes=f"-{self.role}")
        self.message = message
        self.backend = message.backend if message is not None else backend
        self.model = message.model if message is not None else model
        self.branch = branch
        self.status = message.status if message is not None else STREAMING
        self.text = message.content if message is not None else ""
        self.reasoning = message.reasoning if message is not None else ""
        self.error = message.error if message is not None else None
        # True while this view shows the reply being streamed: it gets a live segment.
        self.live = live or message is None
        # The files and images stored with this (user) message, shown collapsed above it.
        self.attachments = list(attachments)
        # The reply's parts when they were prepared off the event loop (part_rows.prepare).
        self.parts = parts

    @property
    def message_id(self) -> int | None:
        return self.message.id if self.message is not None else None

    def compose(self) -> ComposeResult:
        yield Static(self.header_text(), classes="header", markup=False)
        if self.role != "user":
            if self.reasoning or self.live:
                # Only a reply with (or streaming, so perhaps with) reasoning has the section:
                # fewer widgets per message make every layout of a long conversation cheaper.
                yield self._reasoning_section()
            # The whole reply as one widget that renders what is on screen (see
            # chatterm.tui.widgets.markdown_render); a streaming reply has its live segment
            # after it (its finished segments go into the first). No container around them:
            # every widget, and every layer of widgets, costs time in each layout and each
            # frame (a streaming reply draws ten frames a second).
            frozen = FrozenMarkdown(
                "" if self.live else self.text, classes="segment reply-body",
                parts=None if self.live else self.parts,
            )
            self.parts = None
            frozen.display = not self.live
            frozen.rows.background = self.live
            if self.is_attached:
                keymap = getattr(self.app, "keymap_overrides", {})
                frozen.notice_key = keys.key_label("message_read", keymap)
            yield frozen
            if self.live:
                yield LiveMarkdown("", classes="segment live reply-body")  # about to stream
        else:
            for attachment in self.attachments:
                yield AttachmentBlock(attachment)
            yield Static(Text(safe_text(self.text)), classes="user-text", markup=False)
        if self.status in {ERROR, INTERRUPTED}:  # mounted when needed (refresh_header)
            yield Static(self.problem_text(), classes="problem", markup=False)

    def _reasoning_section(self) -> Collapsible:
        section = Collapsible(
            Static(Text(safe_text(self.reasoning)), classes="reasoning", markup=False),
            title="Reasoning",
            collapsed=not self.live,
            classes="reasoning-section",
        )
        section.display = bool(self.reasoning)
        return section

    def on_mount(self) -> None:
        self._sync_extras()

    def render_lines(self, crop: Region) -> list[Strip]:
        # Its own rows are alike; a streaming reply's view grows at every batch.
        return repeated_rows.render_lines(self, crop, super().render_lines)

    # --- rendering ----------------------------------------------------------------------

    def header_text(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(author_label(self.message, self.backend, self.model), style="bold")
        if self.role == "assistant" and self.backend and self.model:
            text.append(f" · {safe_inline(self.backend)}", style="dim")
        index, count = self.branch
        if count > 1:
            text.append(f"  ‹ {index}/{count} ›", style="dim")
        if self.status == STREAMING:
            text.append("  streaming…", style="italic")
        elif self.status == INTERRUPTED:
            text.append("  interrupted", style="bold")
        elif self.status == ERROR:
            text.append("  failed", style="bold")
        return text

    def problem_text(self) -> Text:
        if self.status == ERROR and self.error:
            text = Text(f"⚠ {safe_inline(self.error)}")
            if self.role == "assistant":
                # A failed turn is kept but not sent as context; answering it again is one key.
                keymap = getattr(self.app, "keymap_overrides", {}) if self.is_attached else {}
                text.append(f"  · {keys.key_label('regenerate', keymap)} retries", style="dim")
            return text
        if self.status == INTERRUPTED:
            return Text("■ stopped; the text above is what arrived")
        return Text("")

    def _sync_extras(self) -> None:
        self.set_class(self.status == ERROR, "-error")
        for problem in self.query(".problem").results(Static):
            problem.display = self.status in {ERROR, INTERRUPTED}
        for section in self.query(".reasoning-section"):
            section.display = bool(self.reasoning)

    def refresh_header(self) -> None:
        self.query_one(".header", Static).update(self.header_text())
        problems = list(self.query(".problem").results(Static))
        if problems:
            problems[0].update(self.problem_text())
        elif self.status in {ERROR, INTERRUPTED}:
            self.mount(Static(self.problem_text(), classes="problem", markup=False))
        self._sync_extras()

    def show_reasoning(self, reasoning: str) -> None:
        """Show the reasoning so far (open while the reply streams, see :meth:`finish`)."""
        self.reasoning = reasoning
        shown = list(self.query(".reasoning").results(Static))
        if shown:
            shown[0].update(Text(safe_text(reasoning)))
        elif reasoning:
            self.mount(self._reasoning_section(), after=self.query_one(".header"))
        self._sync_extras()

    @property
    def segments(self) -> list[FrozenMarkdown]:
        """The widgets that together show the reply (see chatterm.markdown_blocks)."""
        return [w for w in self.children if isinstance(w, FrozenMarkdown)]

    @property
    def source(self) -> str:
        """The Markdown text currently shown."""
        return "".join(segment.source for segment in self.segments)

    def _frozen(self) -> FrozenMarkdown:
        frozen = self.segments[0]
        frozen.display = True
        return frozen

    async def freeze(self, live: LiveMarkdown) -> FrozenMarkdown:
        """The live segment's whole text joins the frozen rendering; the live one goes."""
        frozen = self._frozen()
        shown = live.rows.shown()
        taken = live.rows.take_plain()  # a huge plain segment moves whole, not cut again
        with self.app.batch_update():
            frozen.extend_parts([] if taken else [live.source], shown, taken)
            await live.remove()
        return frozen

    async def freeze_before(
        self, live: LiveMarkdown, ending: str, finished: list[str], rest: str
    ) -> None:
        """The stream passed safe cuts: the live segment's text and ``ending`` make a
        finished segment, and with ``finished`` ones join the frozen rendering (rendered only
        if and when they are drawn); the live one keeps only ``rest``. No widget is mounted
        or removed per cut."""
        shown = live.rows.shown()
        if live.rows.append_plain(ending):  # a huge plain segment: it grows, then moves whole
            self._frozen().extend_parts(finished, shown, live.rows.take_plain())
        else:
            self._frozen().extend_parts([live.source + ending, *finished], shown)
        live.replace(rest, keep_shown=False)  # what it showed went into the frozen part

    def finish(self, message: Message) -> None:
        """Take the stored outcome of a reply (status, model, error) after streaming."""
        self.message = message
        self.backend, self.model = message.backend, message.model
        self.status = message.status or COMPLETE
        self.error = message.error
        self.text = message.content
        self.live = False
        for segment in self.segments:
            segment.rows.background = False  # small parts render when drawn again
        if message.reasoning:
            self.show_reasoning(message.reasoning)
        for section in self.query(Collapsible):
            section.collapsed = True
        self.refresh_header()

    # --- actions ------------------------------------------------------------------------

    def action_edit(self) -> None:
        self.post_message(self.EditRequested(self))

    def action_copy(self) -> None:
        self.post_message(self.CopyRequested(self, code=False))

    def action_copy_code(self) -> None:
        self.post_message(self.CopyRequested(self, code=True))

    def on_frozen_markdown_notice_clicked(self, event: FrozenMarkdown.NoticeClicked) -> None:
        event.stop()
        self.action_read()

    def action_read(self) -> None:
        if self.role != "user":
            self.post_message(self.ReadRequested(self))

    def action_branch(self, step: int) -> None:
        self.post_message(self.BranchRequested(self, step))
