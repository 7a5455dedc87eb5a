"""Putting a model folder into a Hugging Face cache the way huggingface_hub lays it out.

``models--ORG--NAME/blobs`` holds the files, ``snapshots/<commit>/`` links to them and
``refs/main`` names the commit: exactly what a finished download leaves, so loading ``ORG/NAME``
from this cache goes through the same lookup a user's cached model does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

COMMIT = "c0ffee" + "0" * 34


def hub_cache_dir(cache_home: Path) -> Path:
    """``$XDG_CACHE_HOME/huggingface/hub``, where huggingface_hub looks without HF_HOME."""
    return cache_home / "huggingface" / "hub"


def install_in_cache(folder: Path, repo_id: str, cache_dir: Path, commit: str = COMMIT) -> Path:
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            shutil.copyfile(path, blob)
        target = snapshot / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.symlink(os.path.relpath(blob, target.parent), target)
    return snapshot
