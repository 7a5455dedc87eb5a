"""The line above the conversation: its title and the model its last reply came from.

Why a widget of its own: three parts of the old app wrote ``#title`` directly; now the app
tells this widget which conversation is open and it draws it. Titles are user (or model)
text: sanitised, shown as a Rich ``Text``, never markup.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from chatterm.sanitize import safe_inline
from chatterm.store import Conversation


class TitleBar(Static):
    DEFAULT_CSS = """
    TitleBar {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text;
        text-style: bold;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.title_shown = ""

    def show(self, conversation: Conversation | None) -> None:
        self.title_shown = "New conversation" if conversation is None else (
            safe_inline(conversation.title) or "(untitled)"
        )
        self.update(Text(self.title_shown, no_wrap=True, overflow="ellipsis"))
