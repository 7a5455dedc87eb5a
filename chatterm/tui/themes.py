"""chatterm's own themes: TOML files shipped in ``chatterm_themes`` and in the user's config dir.

Why files rather than Python: users can add or tweak a theme without writing code, and the
format is the same for the themes chatterm ships and for theirs (documented in docs/themes.md).
A user file with the same ``name`` as a shipped theme replaces it. A broken file is reported as
a notification, never a crash.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from chatterm import paths

DEFAULT_DARK = "chatterm-dusk"
DEFAULT_LIGHT = "chatterm-paper"

COLOR_FIELDS = (
    "primary", "secondary", "accent", "background", "surface", "panel", "foreground",
    "warning", "error", "success",
)
_ALLOWED = {"name", "dark", "variables", *COLOR_FIELDS}


class ThemeFileError(Exception):
    """A theme file cannot be used; ``message`` names the file and the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ThemeLoad:
    themes: list[Theme]
    problems: list[str]


def parse_theme(data: dict[str, Any], source: str) -> Theme:
    """Turn one parsed TOML document into a Textual :class:`Theme`, strictly."""

    def fail(what: str) -> ThemeFileError:
        return ThemeFileError(f"theme file {source}: {what}")

    unknown = set(data) - _ALLOWED
    if unknown:
        raise fail(f"unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(_ALLOWED))})")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("'name' must be a non-empty string")
    if "primary" not in data:
        raise fail("'primary' is required")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise fail("'dark' must be true or false")
    colors: dict[str, str] = {}
    for key in COLOR_FIELDS:
        if key in data:
            colors[key] = _color(data[key], key, fail)
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise fail("[variables] must map variable names to strings")
    return Theme(
        name=name.strip(),
        dark=dark,
        variables=dict(variables),
        primary=colors["primary"],
        secondary=colors.get("secondary"),
        accent=colors.get("accent"),
        background=colors.get("background"),
        surface=colors.get("surface"),
        panel=colors.get("panel"),
        foreground=colors.get("foreground"),
        warning=colors.get("warning"),
        error=colors.get("error"),
        success=colors.get("success"),
    )


def _color(value: Any, key: str, fail: Any) -> str:
    if not isinstance(value, str):
        raise fail(f"{key!r} must be a color string like \"#1e1e2e\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise fail(f"{key!r} is not a color: {value!r}") from None
    return value


def load_theme_file(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"theme file {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"theme file {path}: {exc}") from None
    return parse_theme(data, str(path))


def _packaged_files() -> list[tuple[str, str]]:
    folder = resources.files("chatterm_themes")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".toml") and entry.is_file():
            found.append((f"chatterm_themes/{entry.name}", entry.read_text(encoding="utf-8")))
    return sorted(found)


def load_themes(user_dir: Path | None = None) -> ThemeLoad:
    """Shipped themes, then the user's (which win on a name clash); problems are collected."""
    by_name: dict[str, Theme] = {}
    problems: list[str] = []
    for source, text in _packaged_files():
        try:
            theme = parse_theme(tomllib.loads(text), source)
        except (ThemeFileError, tomllib.TOMLDecodeError) as exc:
            problems.append(getattr(exc, "message", f"theme file {source}: {exc}"))
            continue
        by_name[theme.name] = theme
    folder = user_dir if user_dir is not None else paths.user_themes_dir()
    for path in _user_files(folder):
        try:
            theme = load_theme_file(path)
        except ThemeFileError as exc:
            problems.append(exc.message)
            continue
        by_name[theme.name] = theme
    return ThemeLoad(list(by_name.values()), problems)


def _user_files(folder: Path) -> Iterable[Path]:
    try:
        return sorted(p for p in folder.glob("*.toml") if p.is_file())
    except OSError:
        return []
