"""`chatterm models` and `chatterm config show`."""

from __future__ import annotations

import asyncio
import json
import sys

import typer

from chatterm.cli.options import CommonOptions
from chatterm.config import DEFAULT_KEY_ENV, Choice, load_config, resolve


def list_models(common: CommonOptions, json_out: bool) -> int:
    from chatterm.runtime import open_backend

    choice = resolve(
        load_config(), profile=common.profile, backend=common.backend,
        base_url=common.base_url, debug=common.debug,
    )
    backend, _ = open_backend(choice)

    async def fetch() -> list[str]:
        try:
            return await backend.list_models()
        finally:
            await backend.aclose()

    names = asyncio.run(fetch())
    if json_out:
        typer.echo(json.dumps(names))
        return 0
    # In the server's order: "the first model the server lists" is the first line here.
    from chatterm.sanitize import safe_inline

    for name in names:
        typer.echo(safe_inline(name) if sys.stdout.isatty() else name)
    if not names:
        print(f"chatterm: {_where(choice)} lists no models", file=sys.stderr)
    return 0


def _where(choice: Choice) -> str:
    from chatterm.continuation import public_url

    url = public_url(choice.backend_config.base_url)
    return f"the server at {url}" if url else f"backend {choice.backend}"


def show_config(profile: str | None) -> int:
    config = load_config()
    choice = resolve(config, profile=profile)
    state = "found" if config.exists else "not present (defaults in use)"
    lines = [
        f"config file: {config.path} ({state})",
        f"profiles: {', '.join(sorted(config.profiles)) or 'none'}",
        f"profile in use: {choice.profile or 'none'}",
        f"backend: {choice.backend}" + (" (default)" if choice.chosen_by_default else ""),
        f"model: {choice.backend_config.model or '(backend default)'}",
        f"base url: {choice.backend_config.base_url or '(backend default)'}",
    ]
    chosen = config.profiles.get(choice.profile or "")
    key_env = (chosen.api_key_env if chosen else None) or DEFAULT_KEY_ENV
    if choice.backend_config.api_key:
        lines.append(f"api key: set (from ${key_env} or the file; not shown)")
    else:
        lines.append(f"api key: not set (${key_env})")
    if choice.options:
        lines.append(f"options: {json.dumps(choice.options)}")
    typer.echo("\n".join(lines))
    return 0
