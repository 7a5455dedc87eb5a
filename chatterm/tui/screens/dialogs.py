"""Small modal dialogs: ask for a line, edit a text, confirm, conversation settings.

Why modal screens that return a value (``dismiss``): the app's actions stay short
(``push_screen(dialog, callback)``), and Escape always backs out without changing anything.
Every label that may contain user text is a Rich ``Text`` of sanitised text
(:mod:`chatterm.sanitize`), never markup; fields pre-filled with user or model text hold the
sanitised text too (a control character in a title must not reach the terminal from an Input).
Every dialog is an :class:`~chatterm.tui.screens.once.OnceModal`: two quick Enters close it once.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static, TextArea

from chatterm.backend import COMMON_OPTIONS, OptionError
from chatterm.sanitize import safe_inline, safe_text
from chatterm.tui.screens.once import OnceModal

DIALOG_CSS = """
    {name} {{
        align: center middle;
        background: $background 60%;
    }}
    {name} > Vertical {{
        width: 80%;
        max-width: 90;
        height: auto;
        max-height: 90%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }}
    {name} .dialog-title {{
        text-style: bold;
        color: $text-primary;
        padding: 0 0 1 0;
    }}
    {name} .dialog-hint {{
        color: $text-muted;
    }}
    {name} .dialog-error {{
        color: $text-error;
        height: auto;
    }}
    {name} Horizontal {{
        height: auto;
        align-horizontal: right;
    }}
    {name} Button {{
        margin: 0 0 0 1;
        min-width: 10;
    }}
"""


class _Dialog(OnceModal[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.submit()
        else:
            self.dismiss(None)

    def submit(self) -> None:
        raise NotImplementedError


class _FieldDialog(_Dialog):
    """A title, one field, an optional hint and OK / Cancel: the shape of the edit dialogs."""

    def __init__(self, title: str, value: str = "", *, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.hint = hint

    def field(self) -> Input | TextArea:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(safe_inline(self.title_text)), classes="dialog-title",
                         markup=False)
            yield self.field()
            if self.hint:
                yield Static(Text(safe_inline(self.hint)), classes="dialog-hint", markup=False)
            with Horizontal():
                yield Button("OK", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")


class LineDialog(_FieldDialog):
    """Ask for one line of text (a title, a file path, a model). Returns it or None."""

    DEFAULT_CSS = DIALOG_CSS.format(name="LineDialog")

    def field(self) -> Input:
        return Input(safe_inline(self.value), id="line")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        self.dismiss(self.query_one("#line", Input).value)


class TextDialog(_FieldDialog):
    """Edit a multi-line text (an earlier prompt). Ctrl+S or OK returns it; Esc cancels."""

    DEFAULT_CSS = DIALOG_CSS.format(name="TextDialog") + """
    TextDialog TextArea { height: 12; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+s", "submit", "Save", show=False)]

    def __init__(self, title: str, value: str, *, hint: str = "Ctrl+S or OK to send") -> None:
        super().__init__(title, value, hint=hint)

    def field(self) -> TextArea:
        return TextArea(safe_text(self.value), id="text", soft_wrap=True)

    def action_submit(self) -> None:
        self.submit()

    def submit(self) -> None:
        self.dismiss(self.query_one("#text", TextArea).text)


class ConfirmDialog(_Dialog):
    """Yes / no. Returns True, or None when cancelled.

    The focus starts on the button that does what the user asked for (they pressed Delete or
    Export on purpose; Enter confirms); Esc or ``n`` backs out.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmDialog")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "cancel", "No", show=False),
        Binding("y", "confirm", "Yes", show=False),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "Cancel") -> None:
        super().__init__()
        self.question = question
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(safe_text(self.question)), classes="dialog-title", markup=False)
            with Horizontal():
                yield Button(self.yes, id="ok", variant="error")
                yield Button(self.no, id="cancel")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def action_confirm(self) -> None:
        self.submit()

    def submit(self) -> None:
        self.dismiss(True)


class SettingsDialog(_Dialog):
    """The conversation's system prompt, temperature and max tokens.

    Returns ``{"system_prompt": str, "options": dict}``; an empty field means "not set".
    Values are checked with the same option specs backends use, so a bad value is reported
    here instead of at the next send.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="SettingsDialog") + """
    SettingsDialog TextArea { height: 6; }
    SettingsDialog Input { width: 1fr; }
    SettingsDialog .field { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+s", "submit", "Save", show=False)]

    def __init__(self, system_prompt: str | None, options: dict[str, Any]) -> None:
        super().__init__()
        self.system_prompt = system_prompt or ""
        self.options = dict(options)

    def compose(self) -> ComposeResult:
        temperature = self.options.get("temperature")
        max_tokens = self.options.get("max_tokens")
        with Vertical():
            yield Static("Conversation settings", classes="dialog-title", markup=False)
            yield Static("System prompt", classes="dialog-hint", markup=False)
            yield TextArea(safe_text(self.system_prompt), id="system", soft_wrap=True)
            yield Static("Temperature (0–2, empty = backend default)", classes="dialog-hint")
            yield Input("" if temperature is None else str(temperature), id="temperature")
            yield Static("Max tokens (empty = backend default)", classes="dialog-hint")
            yield Input("" if max_tokens is None else str(max_tokens), id="max_tokens")
            yield Static("", classes="dialog-error", markup=False)
            with Horizontal():
                yield Button("Save", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def action_submit(self) -> None:
        self.submit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        options = {
            k: v for k, v in self.options.items() if k not in ("temperature", "max_tokens")
        }
        try:
            for name in ("temperature", "max_tokens"):
                raw = self.query_one(f"#{name}", Input).value.strip()
                if raw:
                    options[name] = COMMON_OPTIONS[name].parse(raw)
        except OptionError as exc:
            self.query_one(".dialog-error", Static).update(Text(exc.message))
            return
        system = self.query_one("#system", TextArea).text
        self.dismiss({"system_prompt": system, "options": options})
