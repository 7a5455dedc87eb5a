"""Every key binding of the TUI in one table, each with an id users can remap.

Why one table: the same list feeds the widgets' ``BINDINGS``, the help screen, the command
palette and the documentation, so a key can never be bound in one place and missing from the
others. Users remap a binding by its id in the ``[keys]`` table of the config file
(``stop = "ctrl+c"``); the app applies it with ``App.set_keymap``.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One binding: ``scope`` says which widget owns it (``app``, ``prompt``, ``message``)."""

    id: str
    key: str
    action: str
    description: str
    scope: str = "app"
    show: bool = False
    priority: bool = False
    label: str = ""

    def binding(self) -> Binding:
        """The Textual binding; the footer shows ``label`` (short), tooltips the description."""
        return Binding(
            self.key,
            self.action,
            self.label or self.description,
            show=self.show,
            priority=self.priority,
            tooltip=self.description,
            id=self.id,
        )


KEYS: tuple[KeySpec, ...] = (
    # The prompt.
    KeySpec("send", "enter", "send", "Send the prompt", "prompt", show=True, label="send"),
    KeySpec("newline", "ctrl+j,shift+enter,alt+enter", "newline", "Insert a newline", "prompt"),
    # The app, wherever the focus is.
    KeySpec("stop", "escape", "stop", "Stop the reply (keeps the partial text)", show=True,
            label="stop"),
    KeySpec("new_conversation", "ctrl+n", "new_conversation", "New conversation", show=True,
            label="new"),
    KeySpec("search", "ctrl+f", "search", "Search all messages", show=True, label="search"),
    KeySpec("toggle_sidebar", "ctrl+b", "toggle_sidebar", "Show or hide the sidebar", show=True,
            label="sidebar"),
    KeySpec("regenerate", "ctrl+r", "regenerate", "Regenerate the last reply"),
    KeySpec("edit_last", "alt+e", "edit_last", "Edit the last prompt and resend (branches)"),
    KeySpec("branch_prev", "alt+left", "branch(-1)", "Previous branch"),
    KeySpec("branch_next", "alt+right", "branch(1)", "Next branch"),
    KeySpec("copy_reply", "alt+c", "copy_reply", "Copy the last reply"),
    KeySpec("copy_code", "alt+k", "copy_code", "Copy the last code block"),
    KeySpec("switch_model", "ctrl+o", "switch_model", "Switch backend, profile or model"),
    KeySpec("settings", "f4", "settings", "System prompt and options of this conversation"),
    KeySpec("rename", "f2", "rename", "Rename the conversation"),
    KeySpec("delete", "f8", "delete", "Delete the conversation"),
    KeySpec("export", "ctrl+s", "export", "Export the conversation (Markdown or JSON)"),
    KeySpec("change_theme", "ctrl+t", "change_theme", "Change the theme"),
    KeySpec("focus_prompt", "ctrl+l", "focus_prompt", "Focus the prompt"),
    KeySpec("help", "f1", "help", "Keys and features", show=True, label="help"),
    KeySpec(
        "command_palette", "ctrl+p", "command_palette", "Command palette",
        priority=True, label="commands",
    ),
    KeySpec("quit", "ctrl+q", "quit", "Quit", priority=True),
    # A message in the conversation view, when it has the focus.
    KeySpec("message_edit", "e", "edit", "Edit this prompt and resend (branches)", "message"),
    KeySpec("message_copy", "c", "copy", "Copy this message", "message"),
    KeySpec("message_copy_code", "k", "copy_code", "Copy this message's last code block",
            "message"),
    KeySpec("message_branch_prev", "left,left_square_bracket", "branch(-1)",
            "Previous branch here", "message"),
    KeySpec("message_branch_next", "right,right_square_bracket", "branch(1)",
            "Next branch here", "message"),
)

SCOPES = {
    "prompt": "Prompt",
    "app": "Anywhere",
    "message": "On a focused message (Tab into the conversation)",
}


def bindings(scope: str) -> list[BindingType]:
    return [spec.binding() for spec in KEYS if spec.scope == scope]


def known_ids() -> set[str]:
    return {spec.id for spec in KEYS}


def effective_key(spec: KeySpec, keymap: dict[str, str]) -> str:
    """The key(s) a binding answers to once the user's keymap is applied."""
    return keymap.get(spec.id, spec.key)
