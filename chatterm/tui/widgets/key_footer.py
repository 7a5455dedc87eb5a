"""The key hints at the bottom of the screen, drawn by one widget.

Why not Textual's ``Footer``: it mounts a widget per key and mounts them all again whenever
the focus moves or a binding's state changes. Each of those widgets is a node in every layout
of the screen and an edge the compositor cuts each frame at: seven of the 25 widgets on
screen while a reply streams, and styling them again and again took a tenth of the cold
start. Here the hints are one row of text; clicking one presses its key, as in Textual's.

Same look as Textual's default footer (its ``$footer-*`` colours): `` key description `` per
binding shown, one per action, the command palette's key on the right behind a thin bar.
Key labels and descriptions come from chatterm's key table, never from outside: no
sanitising needed, and they are plain text (``Text``), never markup.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget

# The command palette's hint sits on the right, found by its action.
PALETTE_ACTION = "command_palette"


class KeyHint(NamedTuple):
    """One hint: what it shows and the key a click presses."""

    key: str
    label: str  # the key as shown (the app's key display, the user's keymap applied)
    description: str
    enabled: bool
    tooltip: str


class KeyFooter(Widget, can_focus=False):
    """The active bindings' hints (``show=True``) of the screen it is on, in one row."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {
        "key-footer--key", "key-footer--description", "key-footer--hover", "key-footer--bar",
    }
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .key-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .key-footer--hover { background: $block-hover-background; }
        .key-footer--bar { color: $foreground 20%; }
        &:hover { pointer: pointer; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hints: list[KeyHint] = []
        self.palette: KeyHint | None = None
        # Each hint's columns, from the last render: what a click or the pointer is over.
        self._spans: list[tuple[int, int, KeyHint]] = []
        self._hover: str | None = None  # the key of the hint under the pointer

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        # As Textual's footer: not while the terminal is unfocused (the focus is cleared
        # then, and the hints would flicker to the app's alone and back).
        if not screen.app.app_focus or screen is not self.screen:
            return
        hints, palette = self._active_hints(screen)
        if hints != self.hints or palette != self.palette:
            self.hints, self.palette = hints, palette
            self.refresh()

    def _active_hints(self, screen: Screen[Any]) -> tuple[list[KeyHint], KeyHint | None]:
        app = self.app
        hints: list[KeyHint] = []
        palette: KeyHint | None = None
        actions: set[str] = set()
        for _node, binding, enabled, tooltip in screen.active_bindings.values():
            hint = KeyHint(binding.key, app.get_key_display(binding), binding.description,
                           enabled, tooltip or binding.tooltip)
            # Found by its action: the key may be remapped ([keys]).
            if (binding.action == PALETTE_ACTION and app.ENABLE_COMMAND_PALETTE
                    and palette is None):
                palette = hint._replace(tooltip=hint.tooltip or binding.description)
            if not binding.show or binding.action in actions:
                continue  # one hint per action: its first key
            actions.add(binding.action)
            hints.append(hint)
        return hints, palette

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-footer--key")
        text_style = self.get_component_rich_style("key-footer--description")
        hover = self.get_component_rich_style("key-footer--hover")
        line = Text(no_wrap=True, overflow="crop", end="")
        spans: list[tuple[int, int, KeyHint]] = []

        def add(hint: KeyHint, key: str, description: str) -> None:
            start = line.cell_len
            extra = hover if hint.key == self._hover else Style()
            dim = Style() if hint.enabled else Style(dim=True)
            line.append(key, key_style + extra + dim)
            line.append(description, text_style + extra + dim)
            spans.append((start, line.cell_len, hint))

        for hint in self.hints:
            add(hint, f" {hint.label} ", f"{hint.description} ")
        if self.palette is not None:
            tail = f" {self.palette.description} "
            tail_width = 1 + cell_len(self.palette.label + tail)
            gap = self.size.width - line.cell_len - tail_width
            if gap >= 0:  # no room: the hints on the left win, as they name the focused keys
                line.append(" " * gap)
                line.append("▏", self.get_component_rich_style("key-footer--bar"))
                add(self.palette, self.palette.label, tail)
        self._spans = spans
        return line

    def hint_at(self, x: int) -> KeyHint | None:
        for start, end, hint in self._spans:
            if start <= x < end:
                return hint
        return None

    def on_mouse_move(self, event: events.MouseMove) -> None:
        hint = self.hint_at(event.x)
        key = hint.key if hint is not None else None
        if key != self._hover:
            self._hover = key
            self.tooltip = (hint.tooltip or None) if hint is not None else None
            self.refresh()

    def on_leave(self, event: events.Leave) -> None:
        if self._hover is not None:
            self._hover = None
            self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        hint = self.hint_at(event.x)
        if hint is None:
            return
        if hint.enabled:
            self.app.simulate_key(hint.key)
        else:
            self.app.bell()
