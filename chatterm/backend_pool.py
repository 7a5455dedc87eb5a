"""Backends the TUI has opened, kept so switching local ↔ remote does not reload a model.

Why a pool: building a backend can be slow (importing torch, loading weights), and a user who
switches from the local model to a server and back should not pay for it twice. Backends are
built off the event loop (in a thread) so the UI keeps drawing while a plugin imports, and all
of them are closed when the app exits. Plain Python: no Textual here (a core module since the TUI redesign).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from chatterm.backend import Backend
from chatterm.config import Choice
from chatterm.runtime import open_backend

_log = logging.getLogger("chatterm.backend_pool")

# Modules a backend imports on its first stream, imported here instead, in the thread that
# opens it: the local backend's first ``stream()`` imports torch and transformers (seconds),
# which would otherwise run on the caller's event loop and freeze the TUI.
WARM_MODULES: dict[str, tuple[str, ...]] = {
    "local": ("chatterm_local.generation", "chatterm_local.loader", "chatterm_local.prompt"),
}


def _open_warm(choice: Choice) -> tuple[Backend, dict[str, Any]]:
    backend, options = open_backend(choice)
    for module in WARM_MODULES.get(choice.backend, ()):
        try:
            importlib.import_module(module)
        except ImportError as exc:  # the first stream reports it, with the install hint
            _log.debug("warming %s failed: %r", module, exc)
    return backend, options


def choice_key(choice: Choice) -> tuple[Any, ...]:
    """What makes two choices need different backend objects (the model is per request)."""
    cfg = choice.backend_config
    model_key = cfg.model if choice.backend == "local" else None
    return (choice.backend, cfg.base_url, cfg.api_key, model_key, cfg.debug)


class BackendPool:
    def __init__(self) -> None:
        self._backends: dict[tuple[Any, ...], Backend] = {}
        # One opening at a time per choice: the TUI opens the chosen backend in the
        # background and a send may ask for it before that finishes.
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    async def get(self, choice: Choice) -> tuple[Backend, dict[str, Any]]:
        """The backend for ``choice`` and its validated options (raises BackendError)."""
        key = choice_key(choice)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._backends.get(key)
            if cached is None:
                backend, options = await asyncio.to_thread(_open_warm, choice)
                self._backends[key] = backend
                return backend, options
        return cached, cached.validate_options(choice.options)

    def cached(self, choice: Choice) -> Backend | None:
        return self._backends.get(choice_key(choice))

    async def aclose(self) -> None:
        backends = list(self._backends.values())
        self._backends.clear()
        for backend in backends:
            try:
                await backend.aclose()
            except Exception as exc:  # one plugin's failure must not keep the others open
                _log.debug("closing backend %s failed: %r", backend.name, exc)
