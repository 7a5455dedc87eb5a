"""`chatterm doctor`: what a user would otherwise debug by hand, checked in one go.

Each check prints one plain line, ``✓`` or ``✗`` then what was checked and what was found, so
the output can be pasted into a bug report as it is. A failed check that chatterm *needs* for
the backend it would use makes the exit code 1; a failed check that only matters for another
setup (torch missing while a server answers, say) is marked ``(optional)`` and leaves it at 0.

Needed: the config file parses and the profile in use resolves; the history can be read and
written; the chosen backend is installed and imports; for the openai backend, the server answers
``/models``; for the local backend, torch and transformers are installed, and the model is on
disk when ``HF_HUB_OFFLINE`` forbids downloading it or the Hugging Face Hub cannot be reached.

Everything that comes from outside chatterm (paths, profile names, server errors, model ids)
goes through :func:`chatterm.sanitize.safe_inline`. API keys are never printed: only whether one
is set and from which variable; every line is also passed through
:func:`chatterm.secrets_mask.mask_secrets` with the keys chatterm knows, so a password in a URL
or a key a server echoes back is shown as ``***``. This is the one command that imports torch just to look at it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import sqlite3
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatterm.config import DEFAULT_KEY_ENV, Choice, Config, ConfigError, load_config, resolve
from chatterm.sanitize import safe_inline
from chatterm.secrets_mask import display_url, mask_secrets, url_secrets

OK_MARK, FAIL_MARK = "✓", "✗"
# Where the terminal cannot show the marks (a latin-1 locale), plain ASCII stand-ins.
ASCII_MARKS = ("+", "x")


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report. ``needed`` failures make the exit code 1."""

    ok: bool
    what: str
    detail: str
    needed: bool = True

    def line(self, marks: tuple[str, str] = (OK_MARK, FAIL_MARK)) -> str:
        mark = marks[0] if self.ok else marks[1]
        optional = "" if self.ok or self.needed else " (optional)"
        return f"{mark} {self.what}: {self.detail}{optional}"


def run_doctor(profile: str | None, timeout: float = 5.0) -> int:
    """Print every check; 0 when everything needed is there, 1 otherwise."""
    from chatterm import __version__

    marks = _marks()
    print(
        f"chatterm {__version__}, Python {sys.version.split()[0]}, {sys.platform}", flush=True
    )
    failed = False
    secrets = known_secrets()
    for check in checks(profile, timeout):
        # Keys are never put in a line, but a URL's password or a server's echo could be.
        print(safe_inline(mask_secrets(check.line(marks), secrets)), flush=True)
        failed = failed or (not check.ok and check.needed)
    return 1 if failed else 0


def known_secrets() -> list[str]:
    """Every key chatterm could send from here: the environment's and the profiles'."""
    names = {DEFAULT_KEY_ENV}
    found: list[str] = []
    try:
        config = load_config()
    except ConfigError:
        config = None
    if config is not None:
        for profile in config.profiles.values():
            if profile.api_key_env:
                names.add(profile.api_key_env)
            if profile.api_key:
                found.append(profile.api_key)
            found.extend(url_secrets(profile.base_url))
    found.extend(os.environ[n] for n in names if os.environ.get(n))
    found.extend(url_secrets(os.environ.get("OPENAI_BASE_URL")))
    return found


def checks(profile: str | None, timeout: float) -> Iterable[Check]:
    """The checks in the order a user would debug: settings, storage, backends, model source."""
    config, check = config_check()
    yield check
    choice: Choice | None = None
    if config is not None:
        yield from profile_checks(config)
        choice, check = choice_check(config, profile)
        yield check
    yield history_check()
    backend = choice.backend if choice else None
    yield from backend_checks(backend)
    local = backend == "local"
    yield from dependency_checks(needed=local)
    yield device_check()
    if choice is not None and choice.backend == "openai":
        yield server_check(choice, timeout)
    hub = hub_check() if hub_is_asked(choice) else None
    if hub is not None:
        yield hub
    yield model_cache_check(choice, needed=local, hub_reachable=None if hub is None else hub.ok)


# --- settings ------------------------------------------------------------------------------


def config_check() -> tuple[Config | None, Check]:
    from chatterm.config import config_file_path

    path = safe_inline(str(config_file_path()))
    try:
        config = load_config()
    except ConfigError as exc:
        return None, Check(False, "config file", safe_inline(exc.message))
    if not config.exists:
        return config, Check(True, "config file", f"{path} not present (defaults in use)")
    count = len(config.profiles)
    return config, Check(True, "config file", f"{path} is valid ({count} profiles)")


def profile_checks(config: Config) -> Iterable[Check]:
    """One line per profile: what it resolves to, with its key reported as set or not."""
    for name in sorted(config.profiles):
        label = f"profile {safe_inline(name)}"
        try:
            choice = resolve(config, profile=name)
        except ConfigError as exc:  # pragma: no cover - every defined profile resolves today
            yield Check(False, label, safe_inline(exc.message))
            continue
        yield Check(True, label, describe_choice(config, choice))


def choice_check(config: Config, profile: str | None) -> tuple[Choice | None, Check]:
    try:
        choice = resolve(config, profile=profile)
    except ConfigError as exc:
        return None, Check(False, "in use", safe_inline(exc.message))
    from chatterm.config import explain_choice

    why = explain_choice(choice).reason
    return choice, Check(True, "in use", f"{describe_choice(config, choice)} ({why})")


def describe_choice(config: Config, choice: Choice) -> str:
    """backend, model, server and key state, in one line, the key itself never shown."""
    settings = choice.backend_config
    parts = [f"backend {safe_inline(choice.backend)}"]
    if choice.backend == "local":
        from chatterm_local.loader import DEFAULT_MODEL

        parts.append(f"model {safe_inline(settings.model or DEFAULT_MODEL)}")
    else:
        parts.append(f"model {safe_inline(settings.model or '(first the server lists)')}")
        parts.append(f"server {_shown_url(settings.base_url)}")
        chosen = config.profiles.get(choice.profile or "")
        key_env = (chosen.api_key_env if chosen else None) or DEFAULT_KEY_ENV
        if settings.api_key:
            parts.append(f"key set (from ${safe_inline(key_env)} or the file; not shown)")
        else:
            parts.append(f"no key (${safe_inline(key_env)} unset)")
    return ", ".join(parts)


# --- storage -------------------------------------------------------------------------------


def history_check() -> Check:
    """Readable and writable, without creating the file when it does not exist yet."""
    from chatterm.paths import history_path

    path = history_path()
    shown = safe_inline(str(path))
    if not path.exists():
        folder = _existing_parent(path)
        if os.access(folder, os.W_OK | os.X_OK):
            return Check(True, "history", f"{shown} not created yet (created on first use)")
        return Check(False, "history", f"{shown} cannot be created: {safe_inline(str(folder))} "
                                       "is not writable")
    try:
        from chatterm.store import pieces_path

        pieces = pieces_path(path)  # the streamed replies' text
        size = path.stat().st_size + (pieces.stat().st_size if pieces.exists() else 0)
        conversations = _count_conversations(path)
    except (OSError, sqlite3.DatabaseError) as exc:
        return Check(False, "history", f"{shown} cannot be read: {safe_inline(str(exc))}")
    problem = _write_problem(path)
    summary = f"{shown}, {_size(size)}, {conversations} conversations"
    if problem:
        return Check(False, "history", f"{summary}; not writable: {problem}")
    return Check(True, "history", f"{summary}, readable and writable")


def _existing_parent(path: Path) -> Path:
    for folder in path.parents:
        if folder.exists():
            return folder
    return Path("/")


def _count_conversations(path: Path) -> int:
    uri = f"{path.resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=5.0)
    try:
        row = db.execute("SELECT count(*) FROM conversations").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        db.close()
    return int(row[0])


def _write_problem(path: Path) -> str | None:
    """Why a write would fail, found by asking SQLite for a write lock and releasing it.

    ``BEGIN IMMEDIATE`` takes the lock a write needs without changing anything; the WAL files
    need the folder writable too, so both are looked at.
    """
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"the folder {safe_inline(str(path.parent))} is read-only"
    try:
        db = sqlite3.connect(path, timeout=2.0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return safe_inline(str(exc))
    return None


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


# --- backends and their dependencies --------------------------------------------------------


def backend_checks(chosen: str | None) -> Iterable[Check]:
    from chatterm.backend import BackendUnavailable
    from chatterm.plugins import available_backends, load_backend_class

    names = available_backends()
    if not names:
        yield Check(False, "backends", "none installed (the chatterm.backends entry points are "
                                       "missing: reinstall chatterm)")
        return
    for name in names:
        label = f"backend {safe_inline(name)}"
        try:
            cls = load_backend_class(name)
        except BackendUnavailable as exc:
            yield Check(False, label, safe_inline(exc.message), needed=name == chosen)
            continue
        module = safe_inline(cls.__module__.split(".")[0])
        yield Check(True, label, f"installed ({module})")
    if chosen is not None and chosen not in names:
        yield Check(False, f"backend {safe_inline(chosen)}", "chosen but not installed "
                                                             f"(installed: {', '.join(names)})")


def dependency_checks(needed: bool) -> Iterable[Check]:
    for name in ("torch", "transformers", "huggingface_hub"):
        version = _version_of(name)
        if version is None:
            yield Check(False, name, "not installed: pip install 'chatterm[local]'", needed)
        else:
            yield Check(True, name, safe_inline(version))


def _version_of(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return "installed (version unknown)"


def device_check() -> Check:
    """What torch sees. Only this command imports torch to look."""
    if importlib.util.find_spec("torch") is None:
        return Check(False, "devices", "unknown (torch is not installed)", needed=False)
    try:
        import torch
    except Exception as exc:  # a broken CUDA install can fail at import
        return Check(False, "devices", f"torch failed to import: {safe_inline(str(exc))}")
    seen: list[str] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            seen.append(f"cuda:{index} {safe_inline(torch.cuda.get_device_name(index))}")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        seen.append("mps")
    if not seen:
        return Check(True, "devices", "CPU only (torch sees no CUDA or MPS device)")
    return Check(True, "devices", ", ".join(seen))


# --- where replies come from -----------------------------------------------------------------


def server_check(choice: Choice, timeout: float) -> Check:
    """``GET /models`` through the openai backend itself (same URL, key and error lines)."""
    from chatterm.backend import BackendError
    from chatterm.runtime import open_backend

    settings = dataclasses.replace(
        choice.backend_config,
        extra={**choice.backend_config.extra, "connect_timeout": timeout, "timeout": timeout},
    )
    shown = _shown_url(settings.base_url)
    label = "server"

    async def fetch() -> list[str]:
        backend, _ = open_backend(dataclasses.replace(choice, backend_config=settings, options={}))
        try:
            return await asyncio.wait_for(backend.list_models(), timeout * 2)
        finally:
            await backend.aclose()

    try:
        names = asyncio.run(fetch())
    except BackendError as exc:
        return Check(False, label, f"{shown} unreachable or refused: {safe_inline(exc.message)}")
    except TimeoutError:
        return Check(False, label, f"{shown} did not answer within {timeout * 2:.0f} s")
    listed = ", ".join(safe_inline(n) for n in names[:10]) or "no models"
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return Check(True, label, f"{shown} reachable; /models lists {listed}{more}")


def _shown_url(url: str | None) -> str:
    """A server URL as the report shows it: user info masked (a report is pasted into bug
    reports), controls made visible."""
    return safe_inline(display_url(url or "https://api.openai.com/v1"))


def hub_is_asked(choice: Choice | None) -> bool:
    """The local backend asks the hub about a hub id (not a folder) unless told to stay off."""
    if choice is None or choice.backend != "local" or _offline():
        return False
    from chatterm_local.loader import DEFAULT_MODEL

    model = choice.backend_config.model or DEFAULT_MODEL
    return not (model.startswith((".", "/", "~")) or Path(model).expanduser().is_dir())


def hub_check() -> Check:
    """Can the Hugging Face Hub be reached? The same bounded probe the local backend makes.

    Never needed by itself: the model line says whether its absence matters.
    """
    label = "Hugging Face Hub"
    if importlib.util.find_spec("huggingface_hub") is None:
        return Check(False, label, "huggingface_hub is not installed", needed=False)
    from chatterm_local.hub import endpoint, unreachable_reason
    from chatterm_local.loader import DEFAULT_MODEL

    base = safe_inline(endpoint())
    reason = unreachable_reason(DEFAULT_MODEL)
    if reason is None:
        return Check(True, label, f"{base} reachable")
    return Check(False, label, f"{base} cannot be reached ({safe_inline(reason)}); cached "
                               "models still load", needed=False)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def model_cache_check(
    choice: Choice | None, needed: bool, hub_reachable: bool | None = None
) -> Check:
    """Whether the local model is on disk: the Hugging Face cache is read, nothing downloaded."""
    from chatterm_local.loader import DEFAULT_MODEL

    model = DEFAULT_MODEL
    if choice is not None and choice.backend == "local" and choice.backend_config.model:
        model = choice.backend_config.model
    label = f"local model {safe_inline(model)}"
    offline = _offline()
    folder = Path(model).expanduser()
    if model.startswith((".", "/", "~")) or folder.is_dir():
        if (folder / "config.json").is_file():
            return Check(True, label, "folder found")
        return Check(False, label, "is not a model folder (no config.json)", needed)
    cached = cached_size(model)
    if cached is not None:
        return Check(True, label, f"in the Hugging Face cache ({_size(cached)}, {_hub_cache()})")
    if hub_reachable is False:
        return Check(False, label, f"not in the Hugging Face cache ({_hub_cache()}) and the hub "
                                   "cannot be reached to download it; use -m PATH or "
                                   "--base-url", needed)
    if offline:
        return Check(False, label, f"not in the Hugging Face cache ({_hub_cache()}) and "
                                   "HF_HUB_OFFLINE=1 forbids downloading it "
                                   f"(hf download {safe_inline(model)})", needed)
    return Check(False, label, f"not in the Hugging Face cache ({_hub_cache()}); downloaded on "
                               "first use", needed=False)


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants

        return safe_inline(str(constants.HF_HUB_CACHE))
    except ImportError:
        return "no huggingface_hub"


def cached_size(repo_id: str) -> int | None:
    """Bytes of ``repo_id`` in the hub cache (a snapshot with weights), or None if absent."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    try:
        from huggingface_hub import scan_cache_dir

        info: Any = scan_cache_dir()
    except Exception:  # no cache folder yet, or one that cannot be read
        return None
    for repo in info.repos:
        if repo.repo_type == "model" and repo.repo_id == repo_id:
            names = {f.file_name for rev in repo.revisions for f in rev.files}
            if any(n.endswith((".safetensors", ".bin")) for n in names):
                return int(repo.size_on_disk)
    return None


def _marks() -> tuple[str, str]:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        (OK_MARK + FAIL_MARK).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_MARKS
    return OK_MARK, FAIL_MARK
