"""Getting a hub model onto disk, with progress a front end can show and a cancel that works.

transformers' ``from_pretrained(repo_id)`` downloads file by file with huggingface_hub's bars
on stderr and nothing anyone else can observe or stop. So chatterm fetches the files first, one
``hf_hub_download`` per file with a progress class from :mod:`chatterm.download_progress`, then
loads the finished snapshot folder with ``local_files_only=True``. The files fetched are the ones
``from_pretrained`` reads: the top-level configs, tokenizer files, chat template and weights
(safetensors when the repo has them, otherwise the ``*model*.bin`` files); READMEs, other
formats (GGUF, ONNX) and sub-folders are left on the hub.

On a terminal the CLI still sees the hub's own bars (an echoing progress class); in a pipe it
sees nothing. A cancel (Esc in the TUI) returns at once, even if the connection is stalled:
the caller stops waiting and the abandoned transfer stops at its next chunk. What arrived is
kept next to the blob (``<blob>.chatterm-partial``) and the next download resumes from it with
a ``Range`` request (see :func:`_fetch_file`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from chatterm.backend import ModelLoadError
from chatterm.download_progress import (
    CANCELLED,
    DONE,
    FAILED,
    Download,
    DownloadCancelled,
    format_bytes,
    has_listeners,
)
from chatterm_local.hub import endpoint

_TEXT_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")
# How long to wait for the hub's answer to one metadata request.
METADATA_TIMEOUT_S = 10.0
# Kept next to the blob while a download is incomplete; the next start resumes from it.
PARTIAL_SUFFIX = ".chatterm-partial"
# How often the waiting thread looks at the cancel flag.
_POLL_S = 0.05


def wanted_files(files: Iterable[tuple[str, int | None]]) -> list[tuple[str, int | None]]:
    """The files ``from_pretrained`` needs out of a repo's listing, in listing order.

    One copy of the weights: safetensors over ``.bin``, and transformers' own ``model*`` files
    over other copies some repos carry next to them (``consolidated.safetensors``).
    """
    top = [(name, size) for name, size in files if "/" not in name]
    weights = [n for n, _ in top if n.endswith(".safetensors")] or [
        n for n, _ in top if n.endswith(".bin") and "model" in n.lower()
    ]
    preferred = [n for n in weights if n.lower().startswith(("model", "pytorch_model"))]
    chosen = set(preferred or weights)
    return [(n, s) for n, s in top if n in chosen or n.lower().endswith(_TEXT_SUFFIXES)]


def fetch_snapshot(
    repo_id: str, *, local_files_only: bool, cache_dir: str | Path | None = None
) -> str:
    """The cache folder holding ``repo_id``'s files, downloading what is missing."""
    from huggingface_hub import snapshot_download

    if local_files_only:
        return str(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
    try:
        return download_snapshot(repo_id, cache_dir=cache_dir)
    except Exception as exc:
        # The probe got through but the network failed since: a cached copy still serves.
        if not _is_network_error(exc):
            raise
        try:
            return str(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
        except Exception:
            raise exc from None


def download_snapshot(
    repo_id: str, *, cache_dir: str | Path | None = None, echo: bool | None = None
) -> str:
    """Download the files of ``repo_id`` that the cache lacks; report and honour a cancel.

    ``echo`` (default: stderr is a terminal and nobody listens) shows the hub's bars too.
    """
    from huggingface_hub import HfApi

    base = endpoint()
    info = HfApi(endpoint=base).model_info(
        repo_id, files_metadata=True, timeout=METADATA_TIMEOUT_S
    )
    files = wanted_files((s.rfilename, s.size) for s in info.siblings or ())
    if not any(name == "config.json" for name, _ in files):
        raise ModelLoadError(
            f"model {repo_id} has no config.json on the Hugging Face Hub, so transformers cannot "
            "load it; pick a transformers chat model, or a local folder with -m PATH"
        )
    if echo is None:
        echo = _stderr_is_terminal() and not has_listeners()
    download = Download(repo_id, files)
    outcome: list[str | BaseException] = []
    finished = threading.Event()

    def work() -> None:
        try:
            outcome.append(_fetch_files(repo_id, info.sha, files, download, base, cache_dir, echo))
        except BaseException as exc:
            outcome.append(exc)
        finally:
            finished.set()

    download.start()
    threading.Thread(target=work, name="chatterm-download", daemon=True).start()
    while not finished.wait(_POLL_S):
        if download.cancelled:
            break
    result = outcome[0] if outcome else None
    if download.cancelled or isinstance(result, DownloadCancelled):
        download.finish(CANCELLED)
        done = download.snapshot()
        total = format_bytes(done.bytes_total) if done.bytes_total is not None else "?"
        raise ModelLoadError(
            f"download of {repo_id} cancelled at {format_bytes(done.bytes_done)} of {total}; "
            "what arrived is kept in the Hugging Face cache and the next start resumes it"
        )
    if isinstance(result, BaseException):
        download.finish(FAILED)
        raise result
    download.finish(DONE)
    assert isinstance(result, str)
    return result


def _fetch_files(
    repo_id: str,
    commit: str | None,
    files: list[tuple[str, int | None]],
    download: Download,
    base: str,
    cache_dir: str | Path | None,
    echo: bool,
) -> str:
    from huggingface_hub import try_to_load_from_cache

    bar = download.bar_class(echo)
    folder: str | None = None
    for name, _ in files:
        cached = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir, revision=commit)
        if isinstance(cached, str):
            download.skip(name)
            path = cached
        else:
            download.begin_file(name)
            path = _fetch_file(repo_id, name, base, cache_dir, bar)
            download.end_file()
        if name == "config.json":
            folder = str(Path(path).parent)
    assert folder is not None
    return folder


def _fetch_file(
    repo_id: str, name: str, base: str, cache_dir: str | Path | None, bar: type
) -> str:
    """One file into the cache, resumable across starts where it is a plain HTTP download.

    huggingface_hub (2.x) downloads into a temporary file it deletes when the download fails or
    is stopped, so a cancelled 1 GB download would start again from zero. For files served over
    plain HTTP, chatterm therefore fetches the blob itself, with the hub's own ``http_get`` and
    a ``Range`` request from what a kept ``<blob>.chatterm-partial`` file already holds, and then
    lets ``hf_hub_download`` do what it does for a blob already present: link it into the
    snapshot and record the revision. Xet-backed files (the hub's chunked storage) are left to
    ``hf_hub_download`` and its Xet client, progress and cancel included; whether a stopped
    Xet download resumes is up to that client.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.file_download import repo_folder_name

    url = hf_hub_url(repo_id, name, endpoint=base)
    meta = get_hf_file_metadata(url, timeout=METADATA_TIMEOUT_S, endpoint=base)
    if meta.xet_file_data is None and meta.etag:
        storage = Path(cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(
            repo_id=repo_id, repo_type="model"
        )
        blob = storage / "blobs" / meta.etag
        if not blob.exists():
            _resumable_get(meta.location or url, blob, meta.size, name, bar)
    return str(hf_hub_download(repo_id, name, cache_dir=cache_dir, endpoint=base, tqdm_class=bar))


def _resumable_get(url: str, blob: Path, size: int | None, name: str, bar: type) -> None:
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = blob.with_name(blob.name + PARTIAL_SUFFIX)
    with WeakFileLock(partial.with_name(partial.name + ".lock")):
        if blob.exists():  # another process finished it while we waited for the lock
            return
        resume = partial.stat().st_size if partial.exists() else 0
        with partial.open("ab") as sink:
            http_get(
                url, sink, resume_size=resume, headers=build_hf_headers(), expected_size=size,
                displayed_filename=name, tqdm_class=bar,
            )
        os.replace(partial, blob)


def _is_network_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectError", "TimeoutException", "NetworkError", "RemoteProtocolError",
                         "ConnectionError", "TimeoutError"})


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (ValueError, OSError):
        return False
