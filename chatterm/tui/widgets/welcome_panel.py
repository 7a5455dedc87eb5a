"""The welcome panel: shown while the history is empty, it tells a newcomer what will happen.

Which backend and model will answer the first message and why (a flag, a profile, the
environment, or the default), the key that switches model, how to use a server instead, and
where the config and the history live. The facts come from the core
(:func:`chatterm.config.explain_choice`); this widget only lays them out. It hides itself once
there is a conversation (:meth:`WelcomePanel.conversations_changed`).

Model ids, profile names and paths can come from a config file or the environment: they are
shown as plain text through :func:`chatterm.sanitize.safe_inline`, never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from chatterm.config import Choice, Explanation, explain_choice
from chatterm.sanitize import safe_inline


@dataclass(frozen=True, slots=True)
class WelcomeFacts:
    """Everything the panel says, gathered without Textual (testable, reusable)."""

    explanation: Explanation
    model_key: str
    config_path: Path
    config_exists: bool
    history_path: Path

    @classmethod
    def gather(cls, choice: Choice, model_key: str = "ctrl+o") -> WelcomeFacts:
        from chatterm.config import config_file_path
        from chatterm.paths import history_path

        config = config_file_path()
        return cls(explain_choice(choice), model_key, config, config.exists(), history_path())

    def lines(self) -> list[tuple[str, str]]:
        """(label, text) rows, already safe for a terminal."""
        why = self.explanation
        answer = f"{safe_inline(why.backend)} · {safe_inline(why.model)}"
        if why.backend == "openai" and why.base_url:
            answer += f" at {safe_inline(why.base_url)}"
        rows = [
            ("Replies come from", answer),
            ("Why", safe_inline(why.reason)),
            ("Switch model", f"{safe_inline(self.model_key)} (backend, profile or model)"),
            ("Use a server", "set OPENAI_BASE_URL (and OPENAI_API_KEY), start with --base-url URL, "
                             "or add a profile to the config file"),
            ("Config", safe_inline(str(self.config_path))
             + ("" if self.config_exists else " (not created yet)")),
            ("History", safe_inline(str(self.history_path))),
        ]
        if why.backend == "local" and why.source == "default":
            rows.insert(2, ("First reply", "loads the model in this process; a model not yet in "
                                           "the Hugging Face cache is downloaded once (Esc "
                                           "cancels, the next start resumes)"))
        return rows


class WelcomePanel(Static):
    """The facts above as a small table; hidden once a conversation exists."""

    DEFAULT_CSS = """
    WelcomePanel {
        height: auto;
        border: round $primary;
        padding: 0 1;
        margin: 1 2;
    }
    WelcomePanel.-hidden {
        display: none;
    }
    """

    def __init__(self, facts: WelcomeFacts, *, conversations: int = 0,
                 id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.facts = facts
        self.conversations_changed(conversations)

    def on_mount(self) -> None:
        self.update(self.render_facts())

    def render_facts(self) -> Text:
        text = Text()
        text.append("Welcome to chatterm\n", style="bold")
        rows = self.facts.lines()
        width = max(len(label) for label, _ in rows)
        for index, (label, value) in enumerate(rows):
            text.append(f"{label:<{width}}  ", style="bold")
            text.append(value)
            if index < len(rows) - 1:
                text.append("\n")
        return text

    def conversations_changed(self, count: int) -> None:
        """Shown only while the history has no conversation."""
        self.set_class(count > 0, "-hidden")
