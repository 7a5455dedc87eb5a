"""The one-line status bar: the reply's state and figures, then where the next message goes.

Why it reads the reply instead of being told: during a fast stream the figures change per
chunk; writing them per chunk would cost more than the reply itself. The status line holds a
reference to the controller's :class:`~chatterm.controller_events.Reply` (the one place the
figures live) and a 10 Hz timer draws from it when something may have changed.

It names the model that actually answers (what the backend reported, or its default), not
only the one asked for. Model names come from servers: sanitised, shown as plain text.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from chatterm.controller_events import Reply
from chatterm.sanitize import safe_inline

REFRESH_INTERVAL_S = 0.1
BUSY = {"connecting", "streaming", "stopping"}


class StatusLine(Static):
    """State · tokens · tokens/s │ profile · backend · model. Everything shown is plain text."""

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
        self.target = ""
        self.state = "ready"
        self.tokens: int | None = None
        self.tokens_estimated = False
        self.tokens_per_s: float | None = None
        self.detail = ""
        self.reply: Reply | None = None  # followed while it streams
        self._dirty = True

    def on_mount(self) -> None:
        self.set_interval(REFRESH_INTERVAL_S, self._refresh_if_dirty)
        self._refresh_if_dirty()

    def set_target(self, description: str) -> None:
        """Where the next message goes, e.g. ``profile work · openai · gpt-4o-mini``."""
        self.target = safe_inline(description)
        self._dirty = True

    def follow(self, reply: Reply | None) -> None:
        """Draw ``reply``'s figures on each tick until :meth:`set_reply` says it is over."""
        self.reply = reply
        if reply is not None:
            self.state = "streaming" if reply.stored else self.state
        self._dirty = True

    def set_reply(
        self,
        *,
        state: str,
        tokens: int | None = None,
        estimated: bool = False,
        tokens_per_s: float | None = None,
        detail: str = "",
    ) -> None:
        """Record the reply's state and figures; they are drawn on the next tick, not now."""
        self.state = state
        self.tokens = tokens
        self.tokens_estimated = estimated
        self.tokens_per_s = tokens_per_s
        self.detail = detail
        if state not in BUSY:
            self.reply = None
        self._dirty = True

    def _take_reply_figures(self) -> None:
        reply = self.reply
        if reply is None:
            return
        tokens = reply.completion_tokens if reply.completion_tokens is not None else reply.deltas
        self.tokens = tokens if (tokens or self.state != "connecting") else None
        self.tokens_estimated = reply.completion_tokens is None
        self.tokens_per_s = reply.rate(time.monotonic())

    def render_text(self) -> Text:
        # State first: it is what changes, and it must survive an 80-column terminal.
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(safe_inline(self.state), style="italic")
        if self.detail:
            text.append(f" ({safe_inline(self.detail)})")
        if self.tokens is not None:
            approx = "~" if self.tokens_estimated else ""
            text.append(f" · {approx}{self.tokens} tok")
            if self.tokens_per_s is not None:
                text.append(f" · {self.tokens_per_s:.1f} tok/s")
        text.append("  │  ")
        head, sep, rest = self.target.partition(" · ")
        text.append(head, style="bold")
        if sep:
            text.append(sep + rest)
        return text

    def _refresh_if_dirty(self) -> None:
        if self.reply is not None:
            self._take_reply_figures()
        elif not self._dirty:
            return
        self._dirty = False
        busy = self.state in BUSY
        self.set_class(busy or self.state.startswith(("loading", "opening")), "-busy")
        # Its size never changes (one row, the width it is given): no layout of the screen,
        # which a redraw ten times a second during a stream would otherwise cost each time.
        self.update(self.render_text(), layout=False)
