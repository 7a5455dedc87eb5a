"""Every key and what it does, as currently mapped, with the id to remap it.

Why generated from the binding table: a help screen written by hand drifts from the real
bindings; this one reads :mod:`chatterm.tui.keys` and the user's ``[keys]`` overrides (in the
table *and* in the feature lines), so what it shows is what the keys do.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from chatterm.tui import keys
from chatterm.tui.screens.once import OnceModal


def keys_table(keymap: dict[str, str]) -> Table:
    """Key, action and id; nothing is cut: long key lists and actions wrap."""
    table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
    table.add_column(Text("Key"), ratio=3, overflow="fold")
    table.add_column(Text("Action"), ratio=6, overflow="fold")
    table.add_column(Text("Id (for [keys])"), ratio=3, style="dim", overflow="fold")
    for scope, title in keys.SCOPES.items():
        table.add_row(Text(title, style="bold italic"), Text(""), Text(""))
        for spec in keys.KEYS:
            if spec.scope == scope:
                table.add_row(
                    Text(keys.pretty_key(keys.effective_key(spec, keymap))),
                    Text(spec.description),
                    Text(spec.id),
                )
        table.add_row(Text(""), Text(""), Text(""))
    return table


class HelpScreen(OnceModal[None]):
    """Keys and features; any of Esc, F1 or q closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
    }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 110;
        height: 90%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen .help-title {
        text-style: bold;
        color: $text-primary;
    }
    HelpScreen .help-features {
        color: $text-muted;
        padding: 0 0 1 0;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "close", "Close", show=False),
    ]

    def __init__(self, keymap: dict[str, str]) -> None:
        super().__init__()
        self.keymap = dict(keymap)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("chatterm — keys and features", classes="help-title", markup=False)
            yield Static(
                Text("\n".join(f"• {line}" for line in keys.features(self.keymap))),
                classes="help-features",
                markup=False,
            )
            yield Static(keys_table(self.keymap), markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
