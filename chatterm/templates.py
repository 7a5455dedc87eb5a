"""Templates: saved ways of asking (``[templates.NAME]`` in the config file).

A template sets defaults, never overrides: precedence is flags, then the template, then the
profile (the template's own, or the usual one), then the backend's defaults. Its ``prompt``
pattern is filled with what the user typed (stdin and the prompt arguments, by the stdin rule):
``{input}`` is replaced by it; a pattern without ``{input}`` is sent as is, with any input after
a blank line.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from chatterm.config import Config, ConfigError, Template

if TYPE_CHECKING:
    from chatterm.cli.settings import CommonOptions

INPUT = "{input}"


def get_template(config: Config, name: str) -> Template:
    template = config.templates.get(name)
    if template is None:
        known = ", ".join(sorted(config.templates)) or "none defined"
        raise ConfigError(f"no template {name!r} in {config.path} (templates: {known})")
    return template


def apply_template(common: CommonOptions, template: Template | None) -> CommonOptions:
    """The flags with the template's settings filled in where the flags left them unset."""
    if template is None:
        return common
    return dataclasses.replace(
        common,
        profile=common.profile or template.profile,
        model=common.model or template.model,
        system=common.system if common.system is not None else template.system_prompt,
        template_options=dict(template.options),
    )


def fill_prompt(template: Template | None, text: str) -> str:
    """The prompt to send: the template's pattern with ``{input}`` filled, or ``text``."""
    if template is None or template.prompt is None:
        return text
    if INPUT in template.prompt:
        return template.prompt.replace(INPUT, text)
    return f"{template.prompt}\n\n{text}" if text.strip() else template.prompt


def needs_input(template: Template | None) -> bool:
    """Whether the template is useless without input (its pattern has ``{input}``, or none)."""
    return template is None or template.prompt is None or INPUT in template.prompt


def describe(template: Template) -> list[tuple[str, str]]:
    """The template's settings as (key, value) pairs for ``chatterm templates show``."""
    import json

    rows: list[tuple[str, str]] = []
    for key in ("description", "profile", "model", "system_prompt", "prompt"):
        value = getattr(template, key)
        if value is not None:
            rows.append((key, value))
    if template.options:
        rows.append(("options", json.dumps(template.options, ensure_ascii=False)))
    return rows
