"""`chatterm templates list|show`: find the saved ways of asking in the config file."""

from __future__ import annotations

import sys

import typer

from chatterm.config import load_config
from chatterm.sanitize import safe_inline, safe_text


def list_templates() -> int:
    config = load_config()
    if not config.templates:
        print(
            f"chatterm: no templates in {config.path} (add a [templates.NAME] table)",
            file=sys.stderr,
        )
        return 0
    width = max(len(name) for name in config.templates)
    for name in sorted(config.templates):
        description = config.templates[name].description or ""
        typer.echo(f"{safe_inline(name):<{width}}  {safe_inline(description)}".rstrip())
    return 0


def show_template(name: str) -> int:
    from chatterm.templates import describe, get_template

    template = get_template(load_config(), name)
    lines = [f"template: {safe_inline(template.name)}"]
    for key, value in describe(template):
        if "\n" in value:
            indented = "\n".join(f"  {line}" for line in safe_text(value).splitlines())
            lines.append(f"{key}:\n{indented}")
        else:
            lines.append(f"{key}: {safe_inline(value)}")
    typer.echo("\n".join(lines))
    return 0
