"""The one-line status bar: which backend and model the next message goes to, and the reply.

Why it is throttled: during a fast stream the figures change per chunk; redrawing the line
per chunk would cost more than the reply itself. The streamer records numbers in plain
attributes and a 10 Hz timer redraws only when something changed.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

REFRESH_INTERVAL_S = 0.1


class StatusLine(Static):
    """Backend · model │ tokens · tokens/s │ state. Everything shown is plain text."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        color: $foreground-muted;
        padding: 0 1;
    }
    StatusLine.-busy {
        color: $foreground;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.backend = ""
        self.model = ""
        self.state = "ready"
        self.tokens: int | None = None
        self.tokens_estimated = False
        self.tokens_per_s: float | None = None
        self.detail = ""
        self._dirty = True

    def on_mount(self) -> None:
        self.set_interval(REFRESH_INTERVAL_S, self._refresh_if_dirty)
        self._refresh_if_dirty()

    def set_target(self, backend: str, model: str | None) -> None:
        self.backend, self.model = backend, model or "default model"
        self.mark()

    def set_reply(
        self,
        *,
        state: str,
        tokens: int | None = None,
        estimated: bool = False,
        tokens_per_s: float | None = None,
        detail: str = "",
    ) -> None:
        """Record the reply's figures; they are drawn on the next tick, not now."""
        self.state = state
        self.tokens = tokens
        self.tokens_estimated = estimated
        self.tokens_per_s = tokens_per_s
        self.detail = detail
        self._dirty = True

    def mark(self) -> None:
        self._dirty = True

    def render_text(self) -> Text:
        # State first: it is what changes, and it must survive an 80-column terminal.
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(self.state, style="italic")
        if self.detail:
            text.append(f" ({self.detail})")
        if self.tokens is not None:
            approx = "~" if self.tokens_estimated else ""
            text.append(f" · {approx}{self.tokens} tok")
            if self.tokens_per_s is not None:
                text.append(f" · {self.tokens_per_s:.1f} tok/s")
        text.append("  │  ")
        text.append(self.backend, style="bold")
        text.append(" · ")
        text.append(self.model)
        return text

    def _refresh_if_dirty(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        busy = self.state in {"connecting", "streaming", "stopping"}
        self.set_class(busy or self.state.startswith(("loading", "opening")), "-busy")
        self.update(self.render_text())
