"""The download panel: a model being fetched, shown as files, bytes, speed and ETA; Esc cancels.

It listens to :mod:`chatterm.download_progress`, which the local backend's loader feeds from
huggingface_hub's progress hooks. Updates arrive on the downloading thread and are handed to
the UI with ``post_message`` (thread-safe), at most ten times a second, so the event loop stays
free while gigabytes arrive. The panel shows itself when a download starts, stays up with the
outcome when it is cancelled or fails, and hides when it is done.

Cancelling keeps what arrived: the next start resumes the download. An app that binds Esc to
"stop the reply" should also call :func:`chatterm.download_progress.cancel` there, because a
reply waiting for its model cannot stop the download by itself.

Model ids and file names come from the hub: untrusted, shown as plain text through
:func:`chatterm.sanitize.safe_inline`, never as markup.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ProgressBar, Static

from chatterm import download_progress
from chatterm.download_progress import (
    CANCELLED,
    DONE,
    DOWNLOADING,
    FAILED,
    DownloadUpdate,
    describe,
    format_bytes,
)
from chatterm.sanitize import safe_inline


class DownloadPanel(Vertical, can_focus=True):
    """Shown while a model downloads; focus it (it takes focus when one starts) and Esc cancels."""

    DEFAULT_CSS = """
    DownloadPanel {
        height: auto;
        display: none;
        border: round $accent;
        padding: 0 1;
        background: $panel;
    }
    DownloadPanel.-shown {
        display: block;
    }
    DownloadPanel.-ended {
        border: round $warning;
    }
    DownloadPanel ProgressBar {
        width: 1fr;
    }
    DownloadPanel #download-title, DownloadPanel #download-detail {
        width: 1fr;
    }
    """

    BINDINGS = [Binding("escape", "cancel_download", "Cancel the download", show=True)]

    class Progress(Message):
        """A download moved on (posted from the downloading thread)."""

        def __init__(self, update: DownloadUpdate) -> None:
            super().__init__()
            self.update = update

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.last: DownloadUpdate | None = None
        self.cancelling = False
        self._unsubscribe: Callable[[], None] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="download-title", markup=False)
        yield ProgressBar(total=None, show_eta=False, show_percentage=True, id="download-bar")
        yield Static("", id="download-detail", markup=False)

    def on_mount(self) -> None:
        self._unsubscribe = download_progress.subscribe(self._heard)

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _heard(self, update: DownloadUpdate) -> None:
        self.post_message(self.Progress(update))  # from the downloading thread

    def on_download_panel_progress(self, message: Progress) -> None:
        message.stop()
        self.show(message.update)

    def show(self, update: DownloadUpdate) -> None:
        """Draw ``update``: title, bar, one line of figures."""
        starting = self.last is None or self.last.state != DOWNLOADING
        self.last = update
        model = safe_inline(update.model)
        title = self.query_one("#download-title", Static)
        detail = self.query_one("#download-detail", Static)
        bar = self.query_one("#download-bar", ProgressBar)
        if update.bytes_total:
            bar.update(total=update.bytes_total, progress=update.bytes_done)
        if update.state == DOWNLOADING:
            self.cancelling = self.cancelling and not starting
            self.set_class(False, "-ended")
            self.add_class("-shown")
            state = "cancelling…" if self.cancelling else "Esc cancels"
            title.update(Text(f"Downloading {model} ({state})"))
            detail.update(Text(safe_inline(describe(update))))
            if starting:
                self.focus()
        elif update.state == DONE:
            self.remove_class("-shown")
            self.cancelling = False
        else:
            self.add_class("-shown", "-ended")
            self.cancelling = False
            done = format_bytes(update.bytes_done)
            if update.state == CANCELLED:
                title.update(Text(f"Download of {model} cancelled"))
                detail.update(Text(f"{done} kept; the next start resumes the download"))
            elif update.state == FAILED:
                title.update(Text(f"Download of {model} failed"))
                detail.update(Text(f"{done} kept; the next start resumes the download"))

    @property
    def downloading(self) -> bool:
        return self.last is not None and self.last.state == DOWNLOADING

    def action_cancel_download(self) -> None:
        """Esc: stop the running download (what arrived is kept)."""
        if self.last is None or not self.downloading:
            self.remove_class("-shown")
            return
        if download_progress.cancel(self.last.model):
            self.cancelling = True
            self.show(self.last)
