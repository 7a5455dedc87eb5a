"""Models already in the Hugging Face cache, found by reading the cache folder.

Why not ``huggingface_hub.scan_cache_dir`` or transformers: the model dialog lists these while
the user types, and importing either (let alone torch) costs seconds. The cache layout is
documented and stable: ``<cache>/models--ORG--NAME/snapshots/<revision>/config.json``. A repo
counts when one of its snapshots has a ``config.json`` (a model, not a dataset or a half
download).

This is a core module: no Textual, no torch.
"""

from __future__ import annotations

import os
from pathlib import Path


def hf_cache_dir(env: dict[str, str] | None = None) -> Path:
    """Where huggingface_hub keeps downloads: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache."""
    environ = os.environ if env is None else env
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "huggingface" / "hub"


def cached_models(cache: Path | None = None, limit: int = 200) -> list[str]:
    """Repo ids (``ORG/NAME``) of the models in the cache, sorted; [] when there is none."""
    folder = cache if cache is not None else hf_cache_dir()
    found: list[str] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith("models--") or not entry.is_dir():
            continue
        try:
            snapshots = list((entry / "snapshots").iterdir())
        except OSError:
            continue
        if any((snap / "config.json").exists() for snap in snapshots):
            found.append(entry.name[len("models--"):].replace("--", "/", 1))
        if len(found) >= limit:
            break
    return found


__all__ = ["cached_models", "hf_cache_dir"]
