"""From a resolved :class:`~chatterm.config.Choice` to a ready backend and validated options.

Shared by `ask`, `models` and the TUI so they fail the same way: an unknown backend lists the
installed ones, a missing extra says what to install, and when nothing is configured at all the
message also says how to point chatterm at a server.
"""

from __future__ import annotations

from typing import Any

from chatterm.backend import Backend, BackendUnavailable
from chatterm.config import Choice
from chatterm.plugins import create_backend

NOT_CONFIGURED_HINT = (
    "or use a server: set OPENAI_BASE_URL (and OPENAI_API_KEY), pass --base-url URL, "
    "or add a profile (see `chatterm config path`)"
)


def open_backend(choice: Choice) -> tuple[Backend, dict[str, Any]]:
    """Build the chosen backend and validate the options against what it declares."""
    try:
        backend = create_backend(choice.backend, choice.backend_config)
    except BackendUnavailable as exc:
        if choice.chosen_by_default:
            raise BackendUnavailable(f"{exc.message}; {NOT_CONFIGURED_HINT}") from exc
        raise
    return backend, backend.validate_options(choice.options)
