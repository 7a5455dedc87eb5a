"""Templates: saved ways of asking (``[templates.NAME]`` in the config file).

A template sets defaults, never overrides: precedence is flags, then the template, then the
profile (the template's own, or the usual one), then the backend's defaults. Its ``prompt``
pattern is filled with what the user typed (stdin and the prompt arguments, by the stdin rule):
``{input}`` is replaced by it; a pattern without ``{input}`` is sent as is, with any input after
a blank line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatterm.config import Choice, Config, ConfigError, Template, resolve

INPUT = "{input}"


def get_template(config: Config, name: str) -> Template:
    template = config.templates.get(name)
    if template is None:
        known = ", ".join(sorted(config.templates)) or "none defined"
        raise ConfigError(f"no template {name!r} in {config.path} (templates: {known})")
    return template


def resolve_with_template(
    config: Config,
    template: Template | None,
    *,
    profile: str | None,
    backend: str | None,
    model: str | None,
    base_url: str | None,
    options: Mapping[str, Any],
    system_prompt: str | None,
    debug: bool,
) -> Choice:
    """:func:`chatterm.config.resolve` with the template's settings under the flags."""
    if template is None:
        template = Template(name="(none)")
    return resolve(
        config,
        profile=profile or template.profile,
        backend=backend,
        model=model or template.model,
        base_url=base_url,
        options={**template.options, **options},
        system_prompt=system_prompt if system_prompt is not None else template.system_prompt,
        debug=debug,
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
