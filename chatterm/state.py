"""Remembered UI choices (the theme, ...) in a tiny JSON file apart from the user's config.

Why a separate file: the config file is the user's, hand-edited and validated strictly; a UI
that rewrote it would lose comments and formatting. Choices made in the app (pick a theme from
the palette) go here instead. Everything is best effort: an unreadable, corrupt or unwritable
state file never stops chatterm, it only means the choice is not remembered.

This is a domain module: it must not import Textual.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chatterm import paths


def _path(path: Path | None) -> Path:
    return path if path is not None else paths.state_path()


def load_state(path: Path | None = None) -> dict[str, Any]:
    """The remembered choices, or an empty dict when there is no usable state file."""
    try:
        data = json.loads(_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(key: str, path: Path | None = None) -> Any:
    return load_state(path).get(key)


def save_state(updates: Mapping[str, Any], path: Path | None = None) -> bool:
    """Merge ``updates`` into the state file; returns False (silently) when it cannot be saved.

    The file is written to a private temporary file and renamed over the old one, so a crash
    never leaves half a file, and it is created 0600 like the rest of chatterm's files.
    """
    target = _path(path)
    state = load_state(target)
    state.update(updates)
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle, indent=2, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, TypeError, ValueError):
        return False
    return True


def first_time(kind: str, key: str, path: Path | None = None, keep: int = 200) -> bool:
    """Whether ``key`` is new under ``kind``, remembering it: for notices said once, not on
    every call (the last ``keep`` keys are kept). Unusable state means "new"."""
    seen = load_state(path).get(kind)
    known = [k for k in seen if isinstance(k, str)] if isinstance(seen, list) else []
    if key in known:
        return False
    save_state({kind: [*known, key][-keep:]}, path)
    return True
