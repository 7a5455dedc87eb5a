"""Where chatterm keeps its files. platformdirs honours XDG_* variables, so tests and users can
move everything by setting XDG_DATA_HOME / XDG_CONFIG_HOME / XDG_STATE_HOME."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "chatterm"


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP, appauthor=False))


def history_path() -> Path:
    return data_dir() / "history.db"


def config_path() -> Path:
    return config_dir() / "config.toml"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def state_path() -> Path:
    """UI choices chatterm remembers (theme, ...): kept apart from the user's config file."""
    return state_dir() / "state.json"
