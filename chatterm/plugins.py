"""Finding backends through the ``chatterm.backends`` entry-point group.

Built-in backends are registered exactly like third-party ones (pyproject.toml), and listing
names reads only installed metadata; a backend's module is imported only when that backend is
chosen, so a heavy plugin (torch, an SDK) never slows down ``--help`` or another backend's
``ask``.

A built-in backend is loaded without reading any metadata: :data:`BUILTIN` holds the same
entry points as pyproject.toml (a test keeps them equal). Scanning every installed
distribution's entry points imports ``importlib.metadata`` and reads each ``dist-info``
(~30-40 ms on every `ask`), only to find what this package itself declared. Built-in names
therefore always mean the built-in backends; any other name is looked up among the installed
plugins as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chatterm.backend import Backend, BackendConfig, BackendUnavailable

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "chatterm.backends"

# The entry points of this package's own backends, as in pyproject.toml.
BUILTIN = {"openai": "chatterm_openai:OpenAIBackend", "local": "chatterm_local:LocalBackend"}

# What to tell users when a built-in backend's extra is not installed.
_INSTALL_HINTS = {"local": "pip install 'chatterm[local]'"}


def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_backends() -> list[str]:
    """Names of installed backends, without importing any of them."""
    return sorted(BUILTIN.keys() | _entry_points().keys())


def _load(value: str) -> Any:
    """What an entry point's ``module:attribute`` value names (as ``EntryPoint.load``)."""
    module, _, attribute = value.partition(":")
    target: Any = importlib.import_module(module.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        target = getattr(target, part)
    return target


def load_backend_class(name: str) -> type[Backend]:
    ep: EntryPoint | None = None
    if name not in BUILTIN:
        eps = _entry_points()
        ep = eps.get(name)
        if ep is None:
            installed = ", ".join(sorted(BUILTIN.keys() | eps.keys())) or "none"
            raise BackendUnavailable(f"unknown backend {name!r} (installed: {installed})")
    try:
        cls = ep.load() if ep is not None else _load(BUILTIN[name])
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(name)
        missing = exc.name or str(exc)
        if hint:
            raise BackendUnavailable(
                f"backend {name} needs {missing}, which is not installed: run {hint}"
            ) from exc
        raise BackendUnavailable(f"backend {name} failed to import: {exc}") from exc
    except AttributeError as exc:
        raise BackendUnavailable(f"backend {name} is broken: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendUnavailable(f"entry point {name!r} is not a chatterm Backend subclass")
    return cls


def create_backend(name: str, config: BackendConfig) -> Backend:
    return load_backend_class(name)(config)
