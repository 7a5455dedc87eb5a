"""Every key binding of the TUI in one table, each with an id users can remap.

Why one table: the same list feeds the widgets' ``BINDINGS``, the help screen, the footer, the
command palette and the documentation (:func:`markdown_tables` writes the tables of
docs/tui.md, and a test keeps the file in step), so a key can never be bound in one place and
missing from the others. Users remap a binding by its id in the ``[keys]`` table of the config
file (``stop = "ctrl+c"``); the app applies it with ``App.set_keymap``, and every place that
names a key asks :func:`key_label` with the user's keymap.

App keys that a focused prompt would otherwise eat (Esc, the Alt letters, which TextArea
inserts as plain letters) are *priority* bindings: they run before the focused widget sees the
key. On a dialog they step aside (the action raises ``SkipAction``) so the dialog gets them.
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
            priority=True, label="stop"),
    KeySpec("new_conversation", "ctrl+n", "new_conversation", "New conversation", show=True,
            label="new"),
    KeySpec("search", "ctrl+f", "search", "Search all messages", show=True, label="search"),
    KeySpec("toggle_sidebar", "ctrl+b", "toggle_sidebar", "Show or hide the sidebar", show=True,
            label="sidebar"),
    KeySpec("regenerate", "ctrl+r", "regenerate", "Regenerate the last reply"),
    KeySpec("edit_last", "alt+e", "edit_last", "Edit the last prompt and resend (branches)",
            priority=True),
    KeySpec("branch_prev", "alt+left", "branch(-1)", "Previous branch", priority=True),
    KeySpec("branch_next", "alt+right", "branch(1)", "Next branch", priority=True),
    KeySpec("copy_reply", "alt+c", "copy_reply", "Copy the last reply", priority=True),
    KeySpec("copy_code", "alt+k", "copy_code", "Copy the last code block", priority=True),
    KeySpec("attach", "alt+a", "attach", "Attach a file, folder or image to the next prompt",
            priority=True),
    KeySpec("switch_model", "ctrl+o", "switch_model", "Switch backend, profile or model"),
    KeySpec("settings", "f4", "settings", "System prompt and options of this conversation"),
    KeySpec("rename", "f2", "rename", "Rename the conversation"),
    KeySpec("delete", "f8", "delete", "Delete the conversation"),
    KeySpec("export", "ctrl+s", "export", "Export the conversation (Markdown or JSON)"),
    KeySpec("change_theme", "ctrl+t", "change_theme", "Change the theme"),
    KeySpec("focus_prompt", "ctrl+l", "focus_prompt", "Focus the prompt"),
    KeySpec("help", "f1", "help", "Keys and features", show=True, label="help"),
    KeySpec("filter_sidebar", "ctrl+g", "filter_sidebar", "Filter the conversations by title"),
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
    KeySpec("message_read", "o", "read", "Read this reply whole, full screen", "message"),
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


_KEY_NAMES = {
    "left_square_bracket": "[", "right_square_bracket": "]", "escape": "esc",
}


def pretty_key(key: str) -> str:
    """``escape,ctrl+j`` -> ``esc, ctrl+j``: how keys are written in help, footer and docs."""
    return ", ".join(_KEY_NAMES.get(k.strip(), k.strip()) for k in key.split(",") if k.strip())


def spec(binding_id: str) -> KeySpec:
    for item in KEYS:
        if item.id == binding_id:
            return item
    raise KeyError(binding_id)


def key_label(binding_id: str, keymap: dict[str, str], *, first: bool = True) -> str:
    """The key (the first one, or all) that runs ``binding_id`` under the user's keymap."""
    key = effective_key(spec(binding_id), keymap)
    if first:
        key = key.split(",")[0]
    return pretty_key(key)


def features(keymap: dict[str, str]) -> list[str]:
    """The help screen's feature lines, naming the keys as the user has mapped them."""
    k = lambda name: key_label(name, keymap)  # noqa: E731
    return [
        f"Replies stream as Markdown; {k('stop')} stops a reply and keeps what arrived "
        "(marked interrupted).",
        f"Editing a prompt ({k('edit_last')}) or regenerating ({k('regenerate')}) branches: the "
        f"old branch stays; ‹ n/m › in a header means siblings ({k('branch_prev')} / "
        f"{k('branch_next')}).",
        f"{k('command_palette')} lists every command: switch model or profile "
        f"({k('switch_model')}), themes, export.",
        f"{k('attach')} attaches a file, folder or image (Tab completes the path); @path in "
        "a prompt attaches an existing file too. Attachments show as chips under the prompt "
        "(Delete removes one) and as collapsed blocks in the conversation.",
        f"{k('search')} searches every message; {k('filter_sidebar')} filters the sidebar by "
        "title.",
        'Remap a key in the config file: [keys] with  id = "key"  (e.g. stop = "ctrl+x").',
    ]


def markdown_tables(keymap: dict[str, str] | None = None) -> str:
    """The key tables of docs/tui.md, generated (tests/test_tui.py checks the file)."""
    keymap = keymap or {}
    out: list[str] = []
    for scope, title in SCOPES.items():
        out.append(f"**{title}**")
        out.append("")
        out.append("| Key | Action | Id |")
        out.append("|---|---|---|")
        for item in KEYS:
            if item.scope == scope:
                key = pretty_key(effective_key(item, keymap))
                out.append(f"| `{key}` | {item.description} | `{item.id}` |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
