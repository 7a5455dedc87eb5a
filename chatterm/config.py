"""The config file and how flags, environment and file combine into one backend choice.

Precedence is always: command-line flags, then environment variables, then the config file.
The file is validated strictly so a typo is reported (file and line) instead of ignored.

Example ``config.toml``::

    default_profile = "local-vllm"

    [profiles.openai]
    backend = "openai"
    model = "gpt-4o-mini"
    api_key_env = "OPENAI_API_KEY"

    [profiles.local-vllm]
    backend = "openai"
    base_url = "http://localhost:8000/v1"
    model = "Qwen/Qwen2.5-7B-Instruct"
    options = { temperature = 0.2 }

    [templates.review]
    description = "Review a diff"
    system_prompt = "You are a careful code reviewer."
    profile = "local-vllm"
    options = { temperature = 0.1 }
    prompt = "Review this change:\n\n{input}"

    [tui]
    theme = "chatterm-dusk"

    [keys]
    stop = "escape"
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatterm import paths
from chatterm.backend import BackendConfig
from chatterm.secrets_mask import display_url, is_openai_host, key_problem

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class ConfigError(Exception):
    """The configuration cannot be used; ``message`` is one line naming the file."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    backend: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    system_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Template:
    """A saved way of asking (``[templates.NAME]``): system prompt, model or profile, options,
    and a prompt pattern whose ``{input}`` the prompt arguments and stdin fill."""

    name: str
    description: str | None = None
    system_prompt: str | None = None
    profile: str | None = None
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    exists: bool = False
    default_profile: str | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    tui: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)


_PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "backend": str,
    "model": str,
    "base_url": str,
    "api_key_env": str,
    "api_key": str,
    "system_prompt": str,
    "options": dict,
}
_TEMPLATE_KEYS: dict[str, type | tuple[type, ...]] = {
    "description": str,
    "system_prompt": str,
    "profile": str,
    "model": str,
    "options": dict,
    "prompt": str,
}
_TOP_KEYS = {"default_profile", "profiles", "tui", "keys", "templates"}


def load_config(path: Path | None = None) -> Config:
    path = path or config_file_path()
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        return Config(path=path)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    import tomllib  # only when there is a file: most runs have none

    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    return _parse(path, data, raw_bytes.decode("utf-8"))


def config_file_path() -> Path:
    override = os.environ.get("CHATTERM_CONFIG")
    return Path(override) if override else paths.config_path()


def _parse(path: Path, data: dict[str, Any], text: str) -> Config:
    def fail(what: str, key: str | None = None, table: str | None = None) -> ConfigError:
        line = _line_of(text, key, table) if key else None
        where = f" (line {line})" if line else ""
        return ConfigError(f"config file {path}: {what}{where}")

    unknown = set(data) - _TOP_KEYS
    if unknown:
        first = sorted(unknown)[0]
        raise fail(f"unknown key {first!r} (known: {', '.join(sorted(_TOP_KEYS))})", first)
    profiles: dict[str, Profile] = {}
    raw_profiles = data.get("profiles", {})
    if not isinstance(raw_profiles, dict):
        raise fail("[profiles] must be a table")
    for name, body in raw_profiles.items():
        if not isinstance(body, dict):
            raise fail(f"[profiles.{name}] must be a table")
        for key, value in body.items():
            expected = _PROFILE_KEYS.get(key)
            if expected is None:
                raise fail(
                    f"[profiles.{name}] has unknown key {key!r} "
                    f"(known: {', '.join(sorted(_PROFILE_KEYS))})",
                    key, f"profiles.{name}",
                )
            if not isinstance(value, expected):
                raise fail(
                    f"[profiles.{name}] {key} must be a {_type_name(expected)}",
                    key, f"profiles.{name}",
                )
        profiles[name] = Profile(name=name, **body)
    default = data.get("default_profile")
    if default is not None and (not isinstance(default, str) or default not in profiles):
        raise fail(
            f"default_profile {default!r} is not a profile defined in the file",
            "default_profile",
        )
    tui = data.get("tui", {})
    keys = data.get("keys", {})
    if not isinstance(tui, dict):
        raise fail("[tui] must be a table")
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise fail("[keys] must map binding ids to key names (strings)")
    templates = _parse_templates(data.get("templates", {}), profiles, fail)
    if any(p.api_key for p in profiles.values()):
        _check_private(path)
    return Config(path, True, default, profiles, dict(tui), dict(keys), templates)


def _parse_templates(raw: Any, profiles: Mapping[str, Profile], fail: Any) -> dict[str, Template]:
    """``[templates.NAME]`` tables, checked as strictly as profiles (unknown keys, types, and a
    profile that must exist), so a typo is reported before anything is sent."""
    if not isinstance(raw, dict):
        raise fail("[templates] must be a table")
    templates: dict[str, Template] = {}
    for name, body in raw.items():
        table = f"templates.{name}"
        if not isinstance(body, dict):
            raise fail(f"[{table}] must be a table")
        for key, value in body.items():
            expected = _TEMPLATE_KEYS.get(key)
            if expected is None:
                raise fail(
                    f"[{table}] has unknown key {key!r} "
                    f"(known: {', '.join(sorted(_TEMPLATE_KEYS))})",
                    key, table,
                )
            if not isinstance(value, expected):
                raise fail(f"[{table}] {key} must be a {_type_name(expected)}", key, table)
        profile = body.get("profile")
        if profile is not None and profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            raise fail(
                f"[{table}] profile {profile!r} is not a profile defined in the file "
                f"(profiles: {known})",
                "profile", table,
            )
        templates[name] = Template(name=name, **body)
    return templates


def _line_of(text: str, key: str, table: str | None) -> int | None:
    """Best-effort line number of ``key`` (inside ``[table]``): tomllib reports positions only
    for syntax errors, and a user fixing a typo wants the line."""
    in_table = table is None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            header = stripped.strip("[]").strip().replace('"', "")
            if table is not None:
                in_table = header == table
            elif header.split(".")[0] == key:
                return number
            continue
        if in_table and stripped.split("=", 1)[0].strip().strip('"') == key:
            return number
    return None


def _type_name(expected: type | tuple[type, ...]) -> str:
    return "table" if expected is dict else "string"


def _check_private(path: Path) -> None:
    """A file holding a key must not be readable by others: refuse rather than leak."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"config file {path} holds an api_key but is readable by other users; "
            f"run: chmod 600 {path}"
        )


@dataclass(frozen=True, slots=True)
class Choice:
    """The backend to use and everything needed to build it."""

    backend: str
    backend_config: BackendConfig
    options: dict[str, Any]
    profile: str | None
    system_prompt: str | None
    chosen_by_default: bool = False
    # Why this backend: "flag", "profile", "environment" or "default" (see explain_choice).
    source: str = "default"
    source_detail: str = ""


def resolve(
    config: Config,
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
    """Combine flags (the keyword arguments), environment and file into one backend choice."""
    env = os.environ if env is None else env
    profile_name = profile or env.get("CHATTERM_PROFILE") or config.default_profile
    profile_from = (
        "-p/--profile" if profile else
        "$CHATTERM_PROFILE" if env.get("CHATTERM_PROFILE") else "default_profile in the config"
    )
    chosen = Profile(name="(none)")
    if profile_name:
        if profile_name not in config.profiles:
            known = ", ".join(sorted(config.profiles)) or "none defined"
            raise ConfigError(
                f"no profile {profile_name!r} in {config.path} (profiles: {known})"
            )
        chosen = config.profiles[profile_name]

    # A profile that names its own server keeps it: OPENAI_BASE_URL is the generic endpoint and
    # must not redirect `-p ollama` (and its prompts) elsewhere. Likewise OPENAI_API_KEY is only
    # sent to such a server when the profile says so (api_key_env), never by default.
    env_base = None if chosen.base_url else env.get("OPENAI_BASE_URL")
    key_env = chosen.api_key_env or (
        DEFAULT_KEY_ENV if _may_get_default_key(chosen.base_url) else None
    )
    env_key = env.get(key_env) if key_env else None
    by_default = False
    name = backend or chosen.backend
    if backend:
        source, detail = "flag", "--backend"
    elif chosen.backend:
        source, detail = "profile", f"profile {profile_name} ({profile_from})"
    elif base_url:
        source, detail = "flag", "--base-url"
    elif env.get("OPENAI_BASE_URL") or env.get(DEFAULT_KEY_ENV):
        variable = "OPENAI_BASE_URL" if env.get("OPENAI_BASE_URL") else DEFAULT_KEY_ENV
        source, detail = "environment", f"${variable}"
    else:
        source, detail = "default", "nothing configured"
    if name is None:
        if base_url or env.get("OPENAI_BASE_URL") or env.get(DEFAULT_KEY_ENV):
            name = "openai"
        else:
            name, by_default = "local", True

    api_key = env_key or chosen.api_key
    if api_key and name != "local":
        _check_key(api_key, f"${key_env}" if env_key else None, config.path, chosen.name)
    resolved_base = base_url or env_base or chosen.base_url
    if name != "openai" and not base_url:
        resolved_base = chosen.base_url
    backend_config = BackendConfig(
        model=model or chosen.model,
        base_url=resolved_base,
        api_key=api_key,
        debug=debug,
    )
    merged = dict(chosen.options)
    merged.update(options or {})
    return Choice(
        backend=name,
        backend_config=backend_config,
        options=merged,
        profile=profile_name,
        system_prompt=system_prompt if system_prompt is not None else chosen.system_prompt,
        chosen_by_default=by_default,
        source=source,
        source_detail=detail,
    )


@dataclass(frozen=True, slots=True)
class Explanation:
    """Which backend and model will answer, and why, in words a newcomer can act on."""

    backend: str
    model: str
    base_url: str | None
    source: str  # flag, profile, environment or default
    reason: str


def explain_choice(choice: Choice) -> Explanation:
    """What ``choice`` means for the user: for the welcome panel and ``chatterm doctor``.

    The model named is the one that will really answer: the local backend's default model when
    none is set, and for a server without ``-m`` the first one it lists.
    """
    model = choice.backend_config.model
    if model is None and choice.backend == "local":
        try:
            from chatterm_local.loader import DEFAULT_MODEL  # cheap: no torch behind it

            model = DEFAULT_MODEL
        except ImportError:
            model = None
    if model is None:
        model = "the first model the server lists" if choice.backend == "openai" else "its default"
    reason = {
        "flag": f"chosen by the {choice.source_detail} flag",
        "profile": f"from {choice.source_detail}",
        "environment": f"because {choice.source_detail} is set",
        "default": "the default: no flag, profile or OPENAI_* variable is set",
    }.get(choice.source, choice.source_detail)
    base_url = choice.backend_config.base_url
    if base_url is None and choice.backend == "openai":
        base_url = "https://api.openai.com/v1"
    # Shown to the user (welcome panel, doctor): a password in the URL's user info is masked.
    shown_url = display_url(base_url) if base_url else None
    return Explanation(choice.backend, model, shown_url, choice.source, reason)


def _may_get_default_key(profile_base_url: str | None) -> bool:
    """OPENAI_API_KEY goes to the default endpoint or OpenAI itself, not to a profile's server.

    "OpenAI itself" is decided on the parsed URL (https, host exactly ``api.openai.com``): a
    substring test would hand the key to ``https://api.openai.com.evil.net/v1``.
    """
    return profile_base_url is None or is_openai_host(profile_base_url)


def _check_key(key: str, variable: str | None, path: Path, profile: str) -> None:
    """Refuse a key that cannot be a header value before anything is sent; name where it came
    from, never the key (a rejected header's repr would print it in full)."""
    problem = key_problem(key)
    if problem is None:
        return
    where = variable or f"api_key of [profiles.{profile}] in {path}"
    raise ConfigError(f"the API key in {where} {problem}; nothing was sent (fix the key)")
