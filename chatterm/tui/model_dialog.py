"""Choosing where the next message goes: a profile, a backend, or a model.

Why one line of text: ``gpt-4o-mini`` (same backend, other model), ``local:Qwen/Qwen2.5-0.5B``
(another backend) and ``profile:work`` cover every switch, and the list below the line offers
the configured profiles, the installed backends and, once the backend answers, its models.
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
from chatterm.tui.dialogs import DIALOG_CSS, _Dialog

HINT = "model (same backend) · backend:model · profile:NAME — Enter switches, Esc cancels"


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

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text(f"Switch model (now: {self.current})"), classes="dialog-title",
                markup=False,
            )
            yield Input("", placeholder="e.g. gpt-4o-mini or local:/path/to/model", id="line")
            yield Static(Text(HINT), classes="dialog-hint", markup=False)
            yield OptionList(*[self._option(v, h) for v, h in self.suggestions], id="choices")

    @staticmethod
    def _option(value: str, help_text: str) -> Option:
        prompt = Text(value, style="bold")
        if help_text:
            prompt.append(f"  {help_text}", style="dim")
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
        choices = self.query_one("#choices", OptionList)
        known = {opt.id for opt in choices.options}
        choices.add_options(
            self._option(m, "model of this backend") for m in models[:200] if m not in known
        )

    def action_focus_list(self) -> None:
        self.query_one("#choices", OptionList).focus()

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
