"""A continuation continues: a conversation goes back to where it was last answered.

Each conversation remembers its *route*: the backend, the profile or the base URL, and the
model that last answered (never a key, never the ``user:password@`` part of a URL). ``ask -c``,
``ask --session`` and the TUI opening a conversation use it unless flags say otherwise:

* ``--profile``, ``--backend`` or ``--base-url`` given: the flags decide, as for a new
  conversation (the remembered model is not carried to another server);
* else a remembered profile is used again (with its own server and key rules); a profile that
  is gone from the config file is an error that says what to pass;
* else a remembered base URL is used exactly as if given with ``--base-url`` (so it gets
  ``OPENAI_API_KEY`` exactly as it would on the command line);
* else the remembered backend (``local``, a plugin).

``-m`` always wins over the remembered model.

This is a core module (used by the CLI and the TUI): it must not import Textual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatterm.config import Choice, Config, ConfigError, resolve
from chatterm.store import Conversation


def public_url(url: str | None) -> str | None:
    """``url`` without any ``user:password@`` part: what may be stored and shown."""
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = host.rpartition("@")[2]
    return f"{scheme}://{host}{slash}{path}"


def route_of(choice: Choice, model: str | None = None) -> dict[str, Any]:
    """What a conversation remembers about ``choice`` (see the module docstring)."""
    route: dict[str, Any] = {"backend": choice.backend}
    if choice.profile:
        route["profile"] = choice.profile
    base = public_url(choice.backend_config.base_url)
    # A URL with credentials in it cannot be reused without them: remember the profile only.
    if base and base == choice.backend_config.base_url:
        route["base_url"] = base
    resolved = model or choice.backend_config.model
    if resolved:
        route["model"] = resolved
    return route


def flags_choose_route(
    *, profile: str | None = None, backend: str | None = None, base_url: str | None = None
) -> bool:
    return bool(profile or backend or base_url)


def choice_for_conversation(
    config: Config,
    conversation: Conversation | None,
    *,
    profile: str | None = None,
    backend: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    system_prompt: str | None = None,
    debug: bool = False,
    env: Mapping[str, str] | None = None,
) -> Choice:
    """The backend choice for continuing ``conversation`` given the flags (keyword args)."""
    route = conversation.route if conversation is not None else None
    flagged = flags_choose_route(profile=profile, backend=backend, base_url=base_url)
    common: dict[str, Any] = {
        "options": options, "system_prompt": system_prompt, "debug": debug, "env": env,
    }
    if flagged or not route:
        return resolve(
            config, profile=profile, backend=backend, model=model, base_url=base_url, **common
        )
    model = model or route.get("model")
    remembered = route.get("profile") or None
    if remembered is not None and remembered not in config.profiles:
        raise ConfigError(
            f"conversation {conversation.id if conversation else ''} was answered through "
            f"profile {remembered!r}, which is no longer in {config.path}; pass "
            "--profile, --base-url or --backend to continue it elsewhere"
        )
    # Replay the command line that reached the server: the profile (if any), then the base
    # URL as a --base-url flag where the profile alone would not give it.
    backend_name = route.get("backend")
    choice = resolve(config, profile=remembered, backend=backend_name, model=model, **common)
    url = route.get("base_url")
    if url and public_url(choice.backend_config.base_url) != url:
        choice = resolve(
            config, profile=remembered, backend=backend_name, base_url=str(url), model=model,
            **common,
        )
    return choice
