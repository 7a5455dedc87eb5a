"""The prompt: a multi-line text area where Enter sends and Up recalls earlier prompts.

Why a TextArea subclass instead of an Input: prompts are often several lines (code, lists), and
the text must never be lost or interpreted; a TextArea holds raw text and never parses markup.
Enter is a binding (id ``send``) rather than hard-coded, so users can swap it with the newline
key in their config. The prompt's public ``on_key`` handler runs before TextArea's own key
handling and, for the prompt's own keys, prevents that default (which would insert a newline).
(Not priority bindings: those run before the characters typed just before Enter have reached
the prompt, and would send a prompt missing its last letters.)

Why the prompt runs its own bindings in ``on_key``: Textual acts on a widget's (non-priority)
binding only when the key has bubbled up through every ancestor back to the app, a message
queue per ancestor. While a reply streams, each hop can wait behind a frame of the screen, so
a backspace took over 100 ms to show where a letter took a few. The binding Textual would
pick for the key (the screen's active bindings: the keymap and ``check_action`` applied) is
run here when it is this widget's, exactly as the app would have run it, only sooner.

The prompt owns its state: the draft of each conversation (kept when the user switches away)
and the history ↑ walks, which spans every conversation (the store's latest prompts), not only
the open one.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import BindingType
from textual.message import Message
from textual.widgets import TextArea

from chatterm.tui import keys


class PromptInput(TextArea):
    """The message box. Posts :class:`PromptInput.Submitted` when the user sends."""

    DEFAULT_CSS = """
    PromptInput {
        height: auto;
        min-height: 3;
        max-height: 10;
        border: tall $border-blurred;
        background: $surface;
        padding: 0 1;
    }
    PromptInput:focus {
        border: tall $primary;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("prompt")

    class Submitted(Message):
        """The user pressed the send key with this text in the box."""

        def __init__(self, prompt_input: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt_input = prompt_input
            self.text = text

        @property
        def control(self) -> PromptInput:
            return self.prompt_input

    def __init__(
        self,
        *,
        id: str | None = None,
        placeholder: str = "Message… (Enter sends · Ctrl+J newline · ↑ history)",
    ) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            compact=True,
            highlight_cursor_line=False,
            placeholder=placeholder,
        )
        self.prompt_history: list[str] = []
        self.drafts: dict[str | None, str] = {}
        self._history_index: int | None = None
        self._draft_before_history = ""

    # --- keys ---------------------------------------------------------------------------

    def _own_keys(self) -> set[str]:
        """Keys bound to this widget's bindings, after the user's keymap."""
        keymap = getattr(self.app, "keymap_overrides", {})
        found: set[str] = set()
        for spec in keys.KEYS:
            if spec.scope == "prompt":
                found.update(k.strip() for k in keys.effective_key(spec, keymap).split(","))
        return found

    async def on_key(self, event: events.Key) -> None:
        own = self._own_keys()
        if event.key in own or any(alias in own for alias in event.aliases):
            event.prevent_default()
        elif event.is_printable:
            return  # typed text: TextArea inserts it
        active = self.screen.active_bindings.get(event.key)
        if (
            active is None
            or active.node is not self
            or active.binding.priority  # the app tried it already, before the key came here
            or not active.enabled
        ):
            return  # not this widget's: it bubbles to whoever binds it
        # As Textual's own binding check does: a binding whose action is skipped (copy with
        # nothing selected) leaves the key to the next binding up the chain. Not prevented:
        # TextArea's default restarts the cursor's blink (and inserts nothing for these keys).
        if await self.app.run_action(active.binding.action, self):
            event.stop()

    def action_send(self) -> None:
        self.post_message(self.Submitted(self, self.text))

    def action_newline(self) -> None:
        if self.read_only:
            return
        start, end = self.selection
        self.replace("\n", start, end, maintain_selection_offset=False)

    # --- drafts -------------------------------------------------------------------------

    def switch_draft(self, leaving: str | None, entering: str | None) -> None:
        """Keep the text typed for ``leaving`` and show the one kept for ``entering``."""
        self.drafts[leaving] = self.text
        self.set_text(self.drafts.pop(entering, ""))

    def forget_draft(self, conversation_id: str | None) -> None:
        self.drafts.pop(conversation_id, None)

    # --- history ------------------------------------------------------------------------

    def remember(self, prompt: str) -> None:
        if prompt.strip() and (not self.prompt_history or self.prompt_history[-1] != prompt):
            self.prompt_history.append(prompt)
        self._history_index = None

    def set_history(self, prompts: list[str]) -> None:
        self.prompt_history = list(prompts)
        self._history_index = None

    def action_cursor_up(self, select: bool = False) -> None:
        if select or self.cursor_location[0] != 0 or not self.prompt_history:
            super().action_cursor_up(select)
            return
        if self._history_index is None:
            self._draft_before_history = self.text
            self._history_index = len(self.prompt_history)
        if self._history_index > 0:
            self._history_index -= 1
            self._show(self.prompt_history[self._history_index], at_end=False)

    def action_cursor_down(self, select: bool = False) -> None:
        last_row = self.document.line_count - 1
        if select or self._history_index is None or self.cursor_location[0] != last_row:
            super().action_cursor_down(select)
            return
        self._history_index += 1
        if self._history_index >= len(self.prompt_history):
            self._history_index = None
            self._show(self._draft_before_history, at_end=True)
        else:
            self._show(self.prompt_history[self._history_index], at_end=True)

    def _show(self, text: str, *, at_end: bool) -> None:
        self.load_text(text)
        if at_end:
            self.move_cursor(self.document.end)
        else:
            self.move_cursor((0, len(self.document[0])))

    def set_text(self, text: str) -> None:
        """Replace the text (a draft, a restored prompt) and put the cursor at its end."""
        self._history_index = None
        self.load_text(text)
        self.move_cursor(self.document.end)
