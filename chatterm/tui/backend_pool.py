"""Backends the TUI has opened, kept so switching local ↔ remote does not reload a model.

Why a pool: building a backend can be slow (importing torch, loading weights), and a user who
switches from the local model to a server and back should not pay for it twice. Backends are
built off the event loop (in a thread) so the UI keeps drawing while a plugin imports, and all
of them are closed when the app exits. Plain Python: no Textual here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from chatterm.backend import Backend
from chatterm.config import Choice
from chatterm.runtime import open_backend


def choice_key(choice: Choice) -> tuple[Any, ...]:
    """What makes two choices need different backend objects (the model is per request)."""
    cfg = choice.backend_config
    model_key = cfg.model if choice.backend == "local" else None
    return (choice.backend, cfg.base_url, cfg.api_key, model_key, cfg.debug)


class BackendPool:
    def __init__(self) -> None:
        self._backends: dict[tuple[Any, ...], Backend] = {}

    async def get(self, choice: Choice) -> tuple[Backend, dict[str, Any]]:
        """The backend for ``choice`` and its validated options (raises BackendError)."""
        key = choice_key(choice)
        cached = self._backends.get(key)
        if cached is None:
            backend, options = await asyncio.to_thread(open_backend, choice)
            self._backends[key] = backend
            return backend, options
        return cached, cached.validate_options(choice.options)

    def cached(self, choice: Choice) -> Backend | None:
        return self._backends.get(choice_key(choice))

    async def aclose(self) -> None:
        backends = list(self._backends.values())
        self._backends.clear()
        for backend in backends:
            with contextlib.suppress(Exception):
                await backend.aclose()
