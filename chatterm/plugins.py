"""Finding backends through the ``chatterm.backends`` entry-point group.

Built-in backends are registered exactly like third-party ones. Listing names reads only
installed metadata; a backend's module is imported only when that backend is chosen, so a heavy
plugin (torch, an SDK) never slows down ``--help`` or another backend's ``ask``.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from chatterm.backend import Backend, BackendConfig, BackendUnavailable

GROUP = "chatterm.backends"

# What to tell users when a built-in backend's extra is not installed.
_INSTALL_HINTS = {"local": "pip install 'chatterm[local]'"}


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_backends() -> list[str]:
    """Names of installed backends, without importing any of them."""
    return sorted(_entry_points())


def load_backend_class(name: str) -> type[Backend]:
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        installed = ", ".join(sorted(eps)) or "none"
        raise BackendUnavailable(f"unknown backend {name!r} (installed: {installed})")
    try:
        cls = ep.load()
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
