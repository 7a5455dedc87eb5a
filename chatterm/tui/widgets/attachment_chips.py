"""Attachments in the TUI: chips under the prompt, an attach dialog that completes paths, and
the collapsed block a stored attachment shows as in the conversation.

Why it is shaped this way:

* Files are read and checked (:func:`chatterm.attachments.gather`) when they are attached, not
  when the prompt is sent, so a binary file or a missing path is reported in the dialog while
  the user can still fix it, and what the chips show is exactly what will be sent.
* Names and contents are untrusted (a file name may hold escape sequences, a file anything):
  every label is built from :func:`chatterm.sanitize.safe_inline` / ``safe_text`` into Rich
  ``Text`` or Textual ``Content``, never parsed as markup.
* Nothing here knows the app: the chips post :class:`AttachmentChips.Changed`, the dialog
  returns the attachments it read, so the prompt area that hosts them stays in charge.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Button, Collapsible, Input, Static

from chatterm.attachments import Attachment, AttachmentError, read_paths
from chatterm.sanitize import safe_inline, safe_text
from chatterm.tui.screens.dialogs import DIALOG_CSS, _Dialog


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} B"


def chip_label(attachment: Any) -> str:
    """``file notes.md · 2 KB`` / ``image shot.png · 80 KB``, one safe line."""
    return f"{attachment.kind} {safe_inline(attachment.name)} · {human_size(len(attachment.data))}"


# --- the chips under the prompt ----------------------------------------------------------


class AttachmentChip(Static, can_focus=True):
    """One pending attachment. Delete/Backspace (or a click on it) removes it."""

    DEFAULT_CSS = """
    AttachmentChip {
        width: auto;
        height: 1;
        margin: 0 1 0 0;
        padding: 0 1;
        background: $boost;
        color: $text;
    }
    AttachmentChip:focus {
        background: $primary;
        color: $text;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete,backspace", "remove", "Remove attachment", show=False),
    ]

    class Removed(Message):
        def __init__(self, chip: AttachmentChip) -> None:
            super().__init__()
            self.chip = chip

    def __init__(self, attachment: Attachment) -> None:
        super().__init__(Text(f"{chip_label(attachment)} ✕"), markup=False)
        self.attachment = attachment

    def action_remove(self) -> None:
        self.post_message(self.Removed(self))

    def on_click(self) -> None:
        self.post_message(self.Removed(self))


class AttachmentChips(Horizontal):
    """The attachments waiting to go with the next prompt; hidden while there are none.

    They belong to the conversation they were added in, as the typed draft does: switching
    conversations keeps them aside (:meth:`switch`) and brings them back on return, so they
    never go with a prompt sent somewhere else.
    """

    DEFAULT_CSS = """
    AttachmentChips {
        height: auto;
        min-height: 0;
        padding: 0 1;
        display: none;
    }
    AttachmentChips.-has-chips {
        display: block;
        height: 1;
    }
    """

    class Changed(Message):
        """The pending attachments changed (added, removed, cleared)."""

        def __init__(self, chips: AttachmentChips) -> None:
            super().__init__()
            self.chips = chips

        @property
        def control(self) -> AttachmentChips:
            return self.chips

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._pending: list[Attachment] = []
        # The chips of conversations not shown, by conversation id (None: a new one).
        self._kept: dict[str | None, list[Attachment]] = {}

    @property
    def attachments(self) -> list[Attachment]:
        return list(self._pending)

    def add(self, items: Sequence[Attachment]) -> None:
        """Add attachments, skipping one already pending under the same name and content."""
        have = {(a.name, a.sha256) for a in self._pending}
        new = [a for a in items if (a.name, a.sha256) not in have]
        if not new:
            return
        self._pending.extend(new)
        self.mount_all([AttachmentChip(a) for a in new])
        self._changed()

    def take(self) -> list[Attachment]:
        """The pending attachments, emptying the row (called when the prompt is sent)."""
        taken = self.attachments
        self.clear()
        return taken

    def switch(self, leaving: str | None, entering: str | None) -> None:
        """Keep the chips of the conversation we leave, show those kept for the one we enter."""
        if leaving == entering and (self._pending or entering not in self._kept):
            return  # the same conversation again (after a delete, the shown ones were cleared)
        if self._pending:
            self._kept[leaving] = self._pending
        restored = self._kept.pop(entering, [])
        if not self._pending and not restored:
            return
        self._pending = list(restored)
        self.remove_children()
        if restored:
            self.mount_all([AttachmentChip(a) for a in restored])
        self._changed()

    def forget(self, conversation_id: str | None) -> None:
        """Drop the chips kept for a conversation that is gone (deleted)."""
        self._kept.pop(conversation_id, None)

    def kept_for(self, conversation_id: str | None) -> list[Attachment]:
        """The chips kept aside for a conversation not shown."""
        return list(self._kept.get(conversation_id, ()))

    def drop(self, sent: Sequence[Attachment]) -> None:
        """Remove the chips of attachments that went with a prompt (others stay pending).
        A reply can be stored after the user switched away: its chips are kept aside then."""
        gone = {id(a) for a in sent}
        for conversation_id, kept in list(self._kept.items()):
            left = [a for a in kept if id(a) not in gone]
            if left:
                self._kept[conversation_id] = left
            else:
                del self._kept[conversation_id]
        keep = [a for a in self._pending if id(a) not in gone]
        if len(keep) == len(self._pending):
            return
        self._pending = keep
        for chip in list(self.query(AttachmentChip)):
            if id(chip.attachment) in gone:
                chip.remove()
        self._changed()

    def clear(self) -> None:
        if not self._pending:
            return
        self._pending.clear()
        self.remove_children()
        self._changed()

    def on_attachment_chip_removed(self, event: AttachmentChip.Removed) -> None:
        event.stop()
        self._pending = [a for a in self._pending if a is not event.chip.attachment]
        event.chip.remove()
        self._changed()

    def _changed(self) -> None:
        self.set_class(bool(self._pending), "-has-chips")
        self.post_message(self.Changed(self))


# --- the attach dialog -------------------------------------------------------------------


class PathSuggester(Suggester):
    """Completes the last part of a path from the folder it is in (folders get a ``/``).

    Hidden entries are offered only once the part typed starts with a dot, like a shell does.
    """

    def __init__(self, cwd: Path | None = None) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.cwd = cwd

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value, self.cwd)


def complete_path(value: str, cwd: Path | None = None) -> str | None:
    if not value:
        return None
    head, _, prefix = value.rpartition("/")
    folder_text = head + "/" if head or value.startswith("/") else ""
    folder = Path(os.path.expanduser(folder_text or "."))
    if not folder.is_absolute():
        folder = (cwd or Path.cwd()) / folder
    try:
        names = sorted(
            entry.name + ("/" if entry.is_dir() else "")
            for entry in os.scandir(folder)
            if entry.name.startswith(prefix) and (prefix.startswith(".") or entry.name[0] != ".")
        )
    except OSError:
        return None
    if not names:
        return None
    suggestion = folder_text + names[0]
    return suggestion if suggestion != value else None


class PathInput(Input):
    """An input whose Tab takes the suggested completion (Right at the end does too)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete path", show=False, priority=True),
    ]

    def action_complete(self) -> None:
        if self._suggestion and self._suggestion != self.value:
            self.value = self._suggestion
            self.cursor_position = len(self.value)


class AttachDialog(_Dialog):
    """Ask for a path, read it, and return the :class:`Gathered` attachments (None: cancel).

    A path that cannot be attached (missing, binary, too big, an empty folder) is reported in
    the dialog, which stays open so the path can be corrected.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="AttachDialog")

    def __init__(self, cwd: Path | None = None) -> None:
        super().__init__()
        self.cwd = cwd

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Attach a file, folder or image", classes="dialog-title", markup=False)
            yield PathInput(placeholder="path (Tab completes)", id="path",
                            suggester=PathSuggester(self.cwd))
            yield Static(
                "Text files go into the prompt; PNG, JPEG, WebP and GIF go as images.",
                classes="dialog-hint", markup=False,
            )
            yield Static("", id="error", classes="dialog-error", markup=False)
            with Horizontal():
                yield Button("Attach", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        value = self.query_one("#path", Input).value.strip()
        if not value:
            self.dismiss(None)
            return
        path = value if self.cwd is None or os.path.isabs(value) else str(self.cwd / value)
        try:
            gathered = read_paths([path])
        except AttachmentError as exc:
            self.query_one("#error", Static).update(Text(safe_inline(exc.message)))
            return
        if self.cwd is not None:  # names as the user typed them, not the absolute path
            gathered.attachments = [_renamed(a, path, value) for a in gathered.attachments]
        self.dismiss(gathered)


def _renamed(attachment: Attachment, full: str, typed: str) -> Attachment:
    name = attachment.name
    if name.startswith(full):
        name = typed.rstrip("/") + name[len(full.rstrip("/")):]
    return Attachment(name, attachment.kind, attachment.mime, attachment.data)


# --- in the conversation -----------------------------------------------------------------


class AttachmentBlock(Collapsible):
    """A stored attachment in the conversation, collapsed to one line until opened.

    A file shows its text (sanitised, as plain text); an image its type, size and hash.
    """

    DEFAULT_CSS = """
    AttachmentBlock {
        height: auto;
        margin: 0 0 0 0;
        padding: 0;
        border: none;
        background: transparent;
    }
    AttachmentBlock Contents {
        padding: 0 0 0 2;
    }
    """

    def __init__(self, attachment: Any) -> None:
        self.attachment = attachment
        size = human_size(len(attachment.data))
        if attachment.kind == "text":
            text = attachment.data.decode("utf-8", "replace")
            lines = len(text.splitlines())
            label = f"file {safe_inline(attachment.name)} · {lines} lines · {size}"
            body = Static(Text(safe_text(text)),
                          markup=False, classes="attachment-text")
        else:
            label = f"image {safe_inline(attachment.name)} · {attachment.mime} · {size}"
            body = Static(Text(f"{attachment.mime}, {size}, sha256 {attachment.sha256}"),
                          markup=False, classes="attachment-image")
        super().__init__(body, title=Content(label), collapsed=True)  # type: ignore[arg-type]
