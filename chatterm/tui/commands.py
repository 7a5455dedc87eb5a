"""The command palette's entries and the model-switch grammar.

Why every binding is also a palette command: keys are hard to remember and differ between
terminals; Ctrl+P then typing a word always works. The entries are generated from the binding
table, so nothing can be reachable by key only. Profiles from the config file get one entry
each, so switching local ↔ remote in the middle of a conversation is two keystrokes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt
from textual.app import SystemCommand

from chatterm.backend import BackendUnavailable
from chatterm.config import Choice, Config, ConfigError, resolve
from chatterm.tui import keys

if TYPE_CHECKING:
    from chatterm.tui.app import ChattermApp

# Bindings whose palette entry Textual already provides, or that make no sense there.
_SKIP = {"command_palette", "quit", "change_theme", "send", "newline"}


def describe_choice(choice: Choice) -> str:
    model = choice.backend_config.model or "default model"
    where = f"profile {choice.profile} · " if choice.profile else ""
    return f"{where}{choice.backend} · {model}"


def choice_for_target(
    target: str, current: Choice, config: Config, backends: Iterable[str]
) -> Choice:
    """Parse what the user typed in the model dialog into the choice for the next message.

    ``profile:NAME`` uses a profile of the config file; ``BACKEND:MODEL`` (or ``BACKEND:``)
    another installed backend; anything else is a model of the current backend. A Windows
    path such as ``C:\\models\\x`` is a model, because ``C`` is not a backend name.
    Raises ValueError with a message for the user.
    """
    target = target.strip()
    if not target:
        raise ValueError("nothing to switch to")
    debug = current.backend_config.debug
    head, sep, rest = target.partition(":")
    if head == "profile" and sep:
        try:
            return resolve(config, profile=rest.strip(), debug=debug)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
    if sep and head in set(backends):
        model = rest.strip() or None
        if head == current.backend:
            config_ = dataclasses.replace(current.backend_config, model=model)
            return dataclasses.replace(current, backend_config=config_)
        try:
            chosen = resolve(config, backend=head, model=model, debug=debug)
        except (ConfigError, BackendUnavailable) as exc:
            raise ValueError(exc.message) from None
        return dataclasses.replace(chosen, profile=None, system_prompt=current.system_prompt)
    config_ = dataclasses.replace(current.backend_config, model=target)
    return dataclasses.replace(current, backend_config=config_)


def code_blocks(markdown: str) -> list[str]:
    """The fenced and indented code blocks of a Markdown text, in order."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [t.content for t in tokens if t.type in ("fence", "code_block")]


def palette_commands(app: ChattermApp) -> Iterable[SystemCommand]:
    """chatterm's own palette entries (Textual adds Theme, Quit, Keys, Screenshot)."""
    keymap = app.keymap_overrides
    for spec in keys.KEYS:
        if spec.scope != "app" or spec.id in _SKIP:
            continue
        key = keys.effective_key(spec, keymap).split(",")[0]
        yield SystemCommand(spec.description, f"{key} · id {spec.id}", partial(app.run_action,
                            spec.action))
    yield SystemCommand(
        "Export as JSON", "every branch, with models and usage",
        partial(app.run_action, "export('json')"),
    )
    yield SystemCommand(
        "Export as Markdown", "the active branch",
        partial(app.run_action, "export('md')"),
    )
    for name, profile in sorted(app.config.profiles.items()):
        what = " · ".join(x for x in (profile.backend, profile.model) if x)
        yield SystemCommand(
            f"Use profile {name}", f"next message goes to {what or name}",
            partial(app.switch_to, f"profile:{name}"),
        )
