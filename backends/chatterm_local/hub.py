"""Is the Hugging Face Hub reachable? Asked once, quickly, before transformers is.

Left alone, ``from_pretrained`` on a machine without network (or behind a firewall that accepts
connections and never answers) retries for 50-70 s and prints a dozen lines of
huggingface_hub warnings before failing. So before loading a hub id, chatterm makes the one
metadata request the hub would make first (``HEAD /<repo>/resolve/main/config.json``) itself,
bounded by :data:`PROBE_TIMEOUT_S` in total (DNS included, which no socket timeout covers), and
decides:

* the hub answered (any HTTP status): load normally, downloads and updates allowed;
* it did not, and the model is in the local cache: load from the cache only, silently, as
  ``HF_HUB_OFFLINE=1`` would;
* it did not, and the model is not cached: one line saying so and what to do instead.

A reachable hub is remembered per endpoint for the life of the process; an unreachable one
for :data:`UNREACHABLE_TTL_S`, so a TUI left open notices when the network comes back. Only
httpx and huggingface_hub's constants are imported here: no torch, no transformers.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from chatterm.backend import ModelLoadError

# The whole probe (name lookup, connect, answer) gets this long. A hub that answers at all
# answers a HEAD in well under a second, and the user should hear within five seconds.
PROBE_TIMEOUT_S = 3.0

# An unreachable answer is trusted this long, then the hub is asked again.
UNREACHABLE_TTL_S = 30.0

_PROBED: dict[str, tuple[str | None, float]] = {}
_PROBE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Source:
    """What to hand ``from_pretrained``: the id or folder, and whether to stay off the network."""

    name: str
    local_files_only: bool
    hub: bool = False  # a hub id (fetched into the cache first), not a folder


def offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def endpoint() -> str:
    """The hub the downloads would use: ``HF_ENDPOINT``, read now (huggingface_hub reads it
    once at import, which would pin a process to the endpoint it started with)."""
    if os.environ.get("HF_ENDPOINT"):
        return os.environ["HF_ENDPOINT"].rstrip("/")
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT).rstrip("/")
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def unreachable_reason(repo_id: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the hub answers; otherwise why not, in a few words. Cached per endpoint."""
    base = endpoint()
    now = time.monotonic()
    with _PROBE_LOCK:
        known = _PROBED.get(base)
    if known is not None and (known[0] is None or now - known[1] < UNREACHABLE_TTL_S):
        return known[0]
    reason = _probe(f"{base}/{repo_id}/resolve/main/config.json", timeout)
    with _PROBE_LOCK:
        _PROBED[base] = (reason, time.monotonic())
    return reason


def forget_probes() -> None:
    """Ask again next time (tests; or a caller that knows the network came back)."""
    with _PROBE_LOCK:
        _PROBED.clear()


def _probe(url: str, timeout: float) -> str | None:
    outcome: list[str | None] = []

    def ask() -> None:
        import httpx

        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                client.head(url)
            outcome.append(None)
        except httpx.TimeoutException:
            outcome.append(f"no answer within {timeout:.0f} s")
        except httpx.ConnectError as exc:
            outcome.append(_connect_reason(exc))
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    worker = threading.Thread(target=ask, name="chatterm-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:  # stuck in a name lookup: abandon the daemon thread
        return f"no answer within {timeout:.0f} s"
    return outcome[0]


def _connect_reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "resolution" in text:
        return "its name does not resolve"
    if "unreachable" in text:
        return "network unreachable"
    return "cannot connect"


def is_cached(repo_id: str) -> bool:
    """Whether the cache holds a snapshot of ``repo_id`` (its config), read from disk only."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return False
    return isinstance(found, str)


def hub_source(repo_id: str) -> Source:
    """How to load hub id ``repo_id`` here; raises one actionable line if it cannot be."""
    if offline_requested():
        return Source(repo_id, local_files_only=True, hub=True)
    reason = unreachable_reason(repo_id)
    if reason is None:
        return Source(repo_id, local_files_only=False, hub=True)
    if is_cached(repo_id):
        return Source(repo_id, local_files_only=True, hub=True)
    raise ModelLoadError(
        f"the Hugging Face Hub ({endpoint()}) cannot be reached ({reason}) and model {repo_id} "
        "is not in the local cache; set HF_HUB_OFFLINE=1 to use cached models only, "
        "pick a local model folder with -m PATH, or point at a server with --base-url"
    )
