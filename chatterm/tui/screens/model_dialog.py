"""Choosing where the next message goes: a profile, a backend, or a model.

Why one line of text: ``gpt-4o-mini`` (same backend, other model), ``local:Qwen/Qwen2.5-0.5B``
(another backend) and ``profile:work`` cover every switch, and the list below the line offers
the configured profiles, the models used recently, the models found in the Hugging Face cache
and, once the current server answers, its models (fetched in a worker: the dialog opens at
once). Typing filters the list. Model ids come from servers and files: shown sanitised.
Picking a suggestion fills the line; Enter switches. The reply history is untouched: each
message records the backend and model that wrote it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from chatterm.backend import BackendError
from chatterm.sanitize import safe_inline
from chatterm.tui.screens.dialogs import DIALOG_CSS, _Dialog

HINT = (
    "model (same backend) · backend:model · profile:NAME — type to filter, ↓ picks, "
    "Enter switches, Esc cancels"
)


class ModelDialog(_Dialog):
    """Returns the typed or picked target string, or None."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ModelDialog") + """
    ModelDialog OptionList { height: auto; max-height: 12; border: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "focus_list", "Suggestions", show=False),
    ]

    def __init__(
        self,
        current: str,
        suggestions: list[tuple[str, str]],
        fetch_models: Callable[[], Awaitable[list[str]]] | None = None,
    ) -> None:
        super().__init__()
        self.current = current
        self.suggestions = suggestions
        self.fetch_models = fetch_models
        self.server_models: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text(f"Switch model (now: {safe_inline(self.current)})"), classes="dialog-title",
                markup=False,
            )
            yield Input("", placeholder="e.g. gpt-4o-mini or local:/path/to/model", id="line")
            yield Static(Text(HINT), classes="dialog-hint", markup=False)
            yield OptionList(*[self._option(v, h) for v, h in self.suggestions], id="choices")

    @staticmethod
    def _option(value: str, help_text: str) -> Option:
        prompt = Text(safe_inline(value), style="bold")
        if help_text:
            prompt.append(f"  {safe_inline(help_text)}", style="dim")
        return Option(prompt, id=value)

    def on_mount(self) -> None:
        self.query_one("#line", Input).focus()
        if self.fetch_models is not None:
            self._load_models()

    @work(exclusive=True, exit_on_error=False)
    async def _load_models(self) -> None:
        assert self.fetch_models is not None
        try:
            models = await self.fetch_models()
        except BackendError:
            return
        self.server_models = [m for m in models[:200] if isinstance(m, str)]
        self._fill(self.query_one("#line", Input).value)

    def _all(self) -> list[tuple[str, str]]:
        known = {value for value, _ in self.suggestions}
        extra = [(m, "model of this server") for m in self.server_models if m not in known]
        return [*self.suggestions, *extra]

    def _fill(self, typed: str) -> None:
        wanted = typed.strip().lower()
        choices = self.query_one("#choices", OptionList)
        choices.set_options(
            self._option(value, help_text)
            for value, help_text in self._all()
            if not wanted or wanted in value.lower()
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._fill(event.value)

    def action_focus_list(self) -> None:
        choices = self.query_one("#choices", OptionList)
        if choices.option_count:
            choices.focus()
            if choices.highlighted is None:
                choices.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.dismiss(event.option.id)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        value = self.query_one("#line", Input).value.strip()
        self.dismiss(value or None)
