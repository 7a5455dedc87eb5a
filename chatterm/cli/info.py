"""`chatterm models` and `chatterm config show`.

Model ids come from the server and are sanitised on a terminal (into a pipe they stay exact:
they are what ``-m`` takes). ``config show`` is for reading: every line is sanitised and URL
user info (``http://user:secret@host``) is masked.
"""

from __future__ import annotations

import asyncio
import json
import sys

import typer

from chatterm.cli.settings import CommonOptions
from chatterm.config import DEFAULT_KEY_ENV, Choice, load_config, resolve
from chatterm.sanitize import safe_inline, safe_json
from chatterm.secrets_mask import display_url


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
    terminal = sys.stdout.isatty()
    if json_out:
        lines = [safe_json(names) if terminal else json.dumps(names)]
    else:
        # In the server's order: "the first model the server lists" is the first line here.
        lines = [safe_inline(name) if terminal else name for name in names]
    # Not typer.echo, which strips some escape sequences into a pipe: ids there stay exact.
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()
    if not names and not json_out:
        print(f"chatterm: {safe_inline(_where(choice))} lists no models", file=sys.stderr)
    return 0


def _where(choice: Choice) -> str:
    url = display_url(choice.backend_config.base_url) if choice.backend_config.base_url else None
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
        f"base url: {_url(choice.backend_config.base_url) or '(backend default)'}",
    ]
    chosen = config.profiles.get(choice.profile or "")
    key_env = (chosen.api_key_env if chosen else None) or DEFAULT_KEY_ENV
    if choice.backend_config.api_key:
        lines.append(f"api key: set (from ${key_env} or the file; not shown)")
    else:
        lines.append(f"api key: not set (${key_env})")
    if choice.options:
        lines.append(f"options: {json.dumps(choice.options, ensure_ascii=False)}")
    typer.echo("\n".join(safe_inline(line) for line in lines))
    return 0


def _url(url: str | None) -> str | None:
    return display_url(url) if url else url
