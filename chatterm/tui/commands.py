"""The command palette's entries.

Why every binding is also a palette command: keys are hard to remember and differ between
terminals; Ctrl+P then typing a word always works. The entries are generated from the binding
table (:mod:`chatterm.tui.keys`) and show the key as the user has mapped it, so nothing can be
reachable by key only and the palette never shows a stale key. Profiles from the config file
get one entry each, so switching local ↔ remote in the middle of a conversation is two
keystrokes; so do templates ("New conversation from template NAME", as ``ask -t NAME``). The model-switch grammar itself is core (:func:`chatterm.controller.choice_for_target`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt
from textual.app import SystemCommand

from chatterm.sanitize import safe_inline
from chatterm.tui import keys

if TYPE_CHECKING:
    from chatterm.tui.app import ChattermApp

# Bindings whose palette entry Textual already provides, or that make no sense there.
_SKIP = {"command_palette", "quit", "change_theme", "send", "newline"}
# Textual's own entries that chatterm replaces ("Keys": our help screen lists every key).
TEXTUAL_REPLACED = {"Keys"}


def code_blocks(markdown: str) -> list[str]:
    """The fenced and indented code blocks of a Markdown text, in order."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [t.content for t in tokens if t.type in ("fence", "code_block")]


def palette_commands(app: ChattermApp) -> Iterable[SystemCommand]:
    """chatterm's own palette entries (Textual adds Theme, Quit, Screenshot)."""
    keymap = app.keymap_overrides
    for spec in keys.KEYS:
        if spec.scope != "app" or spec.id in _SKIP:
            continue
        key = keys.key_label(spec.id, keymap)
        yield SystemCommand(spec.description, f"key: {key}", partial(app.run_action,
                            spec.action))
    yield SystemCommand(
        "Export as JSON", "every branch, with models and usage",
        partial(app.run_action, "export('json')"),
    )
    yield SystemCommand(
        "Export as Markdown", "the active branch",
        partial(app.run_action, "export('md')"),
    )
    for name, template in sorted(app.config.templates.items()):
        what = template.description or " · ".join(
            x for x in (template.profile, template.model, template.system_prompt) if x
        )
        yield SystemCommand(
            f"New conversation from template {safe_inline(name)}",
            safe_inline(what or "a saved way of asking ([templates] in the config)"),
            partial(app.new_from_template, name),
        )
    for name, profile in sorted(app.config.profiles.items()):
        what = " · ".join(x for x in (profile.backend, profile.model) if x)
        yield SystemCommand(
            f"Use profile {safe_inline(name)}",
            f"next message goes to {safe_inline(what or name)}",
            partial(app.switch_to, f"profile:{name}"),
        )
