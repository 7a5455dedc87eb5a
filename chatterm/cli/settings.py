"""What `ask`, the TUI and `models` carry from their command lines: the values, not the flags.

Kept apart from :mod:`chatterm.cli.options` (the typer declarations of the flags) so `chatterm
ask`, which reads its command line without typer (see :mod:`chatterm.cli.ask_line`), never
imports typer or click.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatterm.config import Choice, Config
    from chatterm.store import Conversation


@dataclass(slots=True)
class CommonOptions:
    """How to reach a model: the flags every entry point takes."""

    model: str | None = None
    backend: str | None = None
    base_url: str | None = None
    profile: str | None = None
    system: str | None = None
    continue_last: bool = False
    session: str | None = None
    option: list[str] = field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    debug: bool = False
    # A template's options (chatterm.templates): under the flags' -o, over the profile's.
    template_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def pick(cls, flags: Mapping[str, Any]) -> CommonOptions:
        """Take this class's fields from a command's parameters (the rest are its own)."""
        values = {f.name: flags[f.name] for f in fields(cls) if f.name in flags}
        if values.get("option") is None:
            values["option"] = []
        return cls(**values)

    def resolve(self, config: Config) -> Choice:
        """Flags over environment over the config file: the backend to use."""
        from chatterm.config import resolve

        return resolve(config, **self._choice_flags())

    def resolve_for(self, config: Config, conversation: Conversation | None) -> Choice:
        """The backend for continuing ``conversation``: where it was last answered, unless
        the flags name another profile, backend or server (see chatterm.continuation)."""
        if conversation is None:
            return self.resolve(config)
        from chatterm.continuation import choice_for_conversation

        return choice_for_conversation(config, conversation, **self._choice_flags())

    def _choice_flags(self) -> dict[str, Any]:
        """What the flags say about the backend, as both resolvers take it."""
        return {
            "profile": self.profile,
            "backend": self.backend,
            "model": self.model,
            "base_url": self.base_url,
            "options": self.raw_options(),
            "system_prompt": self.system,
            "debug": self.debug,
        }

    def raw_options(self) -> dict[str, Any]:
        """Options as given on the command line; `stop` may repeat and becomes a list."""
        raw: dict[str, Any] = dict(self.template_options)
        flag_stops: list[str] = []
        for item in self.option:
            key, _, value = item.partition("=")
            name = key.replace("-", "_")
            if name == "stop":
                flag_stops.append(value)
            else:
                raw[name] = value
        if flag_stops:  # -o stop replaces a template's stop list, like any other flag
            raw["stop"] = flag_stops
        if self.temperature is not None:
            raw["temperature"] = self.temperature
        if self.max_tokens is not None:
            raw["max_tokens"] = self.max_tokens
        return raw


@dataclass(slots=True)
class AskOutput:
    """How `ask` prints."""

    raw: bool = False
    no_stream: bool = False
    json: bool = False
    no_log: bool = False
    usage: bool = False
    files: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    template: str | None = None


_OPTION_FLAGS = ("-o", "--option")
_COMMANDS_WITHOUT_OPTIONS = {"sessions", "config", "models", "backends", "templates"}


def normalise_option_args(argv: list[str]) -> list[str]:
    """Rewrite `-o KEY VALUE` into `-o KEY=VALUE` before parsing.

    Users know `-o KEY VALUE` from llm, and `-o key=value` from elsewhere; the parser takes one
    value per flag, so both spellings are folded into the second here. Keys never contain '='.
    """
    if argv and argv[0] in _COMMANDS_WITHOUT_OPTIONS:
        return argv
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.extend(argv[i:])
            break
        if token in _OPTION_FLAGS and i + 2 < len(argv) and "=" not in argv[i + 1]:
            out += [token, f"{argv[i + 1]}={argv[i + 2]}"]
            i += 3
            continue
        out.append(token)
        i += 1
    return out
