"""Loading a model once: the loaded-model registry and load errors that say how to fix them.

Loading takes seconds to minutes and the weights take most of the device's memory, so a model is
loaded once per process and shared by every :class:`~chatterm_local.LocalBackend` that asks for
the same ``(model, device, dtype)``. The entry in the registry also owns the generation lock and
the KV cache kept from the previous turn, because both belong to the weights, not to a backend
instance.

Nothing here imports torch or transformers at module level: ``chatterm_local`` must be cheap to
import, and a missing extra must become a :class:`BackendUnavailable` with the install command,
not an ``ImportError`` traceback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatterm.backend import BackendUnavailable, ModelLoadError
from chatterm_local.devices import (
    dtype_keyword,
    free_device_memory,
    is_out_of_memory,
    out_of_memory_error,
    pick_device,
    pick_dtype,
)
from chatterm_local.hub import Source, hub_source

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
INSTALL_HINT = "pip install 'chatterm[local]'"
# Used when neither the config nor the tokenizer states a usable context size.
FALLBACK_CONTEXT = 2048
# Tokenizers without a limit report ~1e30 here; anything this large means "not stated".
_UNSET_MAX_LENGTH = 10_000_000


def missing_dependency() -> str | None:
    """The first of torch/transformers that is not installed, found without importing it."""
    for name in ("torch", "transformers"):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def require_dependencies() -> None:
    """Raise :class:`BackendUnavailable` with the install command if the extra is missing."""
    missing = missing_dependency()
    if missing is not None:
        raise BackendUnavailable(
            f"the local backend needs {missing}, which is not installed: run {INSTALL_HINT}"
        )


@dataclass(slots=True)
class KVState:
    """The cache kept from the previous turn and exactly the token ids it holds keys for."""

    cache: Any
    ids: list[int]


@dataclass(slots=True, eq=False)
class LoadedModel:
    """A model in memory with what every generation on it needs.

    ``lock`` serialises generations (one at a time per model: they would share the KV state and
    compete for the device anyway). ``kv`` is read and replaced only while ``lock`` is held.
    ``tokenizer_lock`` guards the tokenizer, which is not safe to use from two threads at once
    (a fast tokenizer can fail with "Already borrowed"): one stream may render its prompt while
    another is still decoding its reply.
    """

    model_id: str
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    context_length: int
    eos_ids: frozenset[int]
    system_role: bool = True
    # The processor of an image-text-to-text model (None: a text-only model, refuses images).
    processor: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)
    kv: KVState | None = None

    def metadata(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": self.dtype, "model": self.model_id}


_REGISTRY: dict[tuple[str, str, str], LoadedModel] = {}
# Guards the dicts only; each key has its own loading lock so a slow download of one model does
# not block questions about (or loads of) another.
_REGISTRY_LOCK = threading.Lock()
_LOADING: dict[tuple[str, str, str], threading.Lock] = {}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _looks_like_path(model_id: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else (``./x``, ``/x``, ``~``) is a folder."""
    return (
        model_id.startswith((".", "/", "~", "\\"))
        or model_id.count("/") > 1
        or os.path.isabs(model_id)
        or Path(model_id).expanduser().exists()
    )


def _fixes(model_id: str) -> str:
    return (
        f"download it with `hf download {model_id}`, pick a local model folder with -m PATH, "
        "or point at a server with --base-url"
    )


def load_error(model_id: str, exc: BaseException) -> ModelLoadError:
    """Turn whatever from_pretrained raised into one line that says how to fix it."""
    name = type(exc).__name__
    text = str(exc)
    lowered = text.lower()
    if name in {"RepositoryNotFoundError", "GatedRepoError"} or "is not a valid model" in lowered:
        if "gated" in lowered or name == "GatedRepoError":
            return ModelLoadError(
                f"model {model_id} is gated on the Hugging Face Hub; accept its terms on the "
                "website and log in with `hf auth login`, or pick another model"
            )
        if not _offline():
            return ModelLoadError(
                f"model {model_id} was not found on the Hugging Face Hub or in the cache; "
                "check the id, pick a local model folder with -m PATH, or point at a server "
                "with --base-url"
            )
    if _offline():
        return ModelLoadError(
            f"model {model_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
            + _fixes(model_id)
        )
    network = ("connect", "connection", "resolve", "timed out", "timeout", "offline", "network")
    if name in {"LocalEntryNotFoundError", "ConnectError", "ConnectionError"} or any(
        word in lowered for word in network
    ):
        return ModelLoadError(
            f"model {model_id} is not in the Hugging Face cache and the Hub could not be "
            "reached; " + _fixes(model_id)
        )
    first_line = text.strip().splitlines()[0] if text.strip() else name
    return ModelLoadError(f"could not load model {model_id}: {first_line}")


def context_length_of(config: Any, tokenizer: Any = None) -> int:
    """The longest sequence the model was trained for, from its config or its tokenizer."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for attr in ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length"):
        value = getattr(text_config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _UNSET_MAX_LENGTH:
        return limit
    return FALLBACK_CONTEXT


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    found: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, list | tuple):
            found.update(v for v in value if isinstance(v, int))
    if not found and tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return frozenset(found)


def get_model(model_id: str, device: str | None, dtype: str | None) -> LoadedModel:
    """The loaded model for this id/device/dtype, loading it on first use. Blocking."""
    require_dependencies()
    # Where it comes from is settled before torch is imported: an unreachable hub or a wrong
    # folder is then reported at once rather than after seconds of imports.
    where = model_source(model_id) if loaded_model(model_id) is None else None
    chosen_device = pick_device(device)
    chosen_dtype = pick_dtype(chosen_device, dtype)
    key = (model_id, chosen_device, chosen_dtype)
    with _REGISTRY_LOCK:
        loading = _LOADING.setdefault(key, threading.Lock())
    with loading:
        with _REGISTRY_LOCK:
            loaded = _REGISTRY.get(key)
        if loaded is None:
            loaded = _load(model_id, where or model_source(model_id), chosen_device, chosen_dtype)
            with _REGISTRY_LOCK:
                _REGISTRY[key] = loaded
    return loaded


def loaded_model(model_id: str) -> LoadedModel | None:
    """Any already-loaded copy of ``model_id`` (to answer questions without loading)."""
    with _REGISTRY_LOCK:
        return next((m for (mid, _, _), m in _REGISTRY.items() if mid == model_id), None)


def unload_all() -> None:
    """Forget every loaded model (tests, or a caller that wants the memory back)."""
    with _REGISTRY_LOCK:
        models = list(_REGISTRY.values())
        _REGISTRY.clear()
    for loaded in models:
        with loaded.lock:
            loaded.kv = None
    free_device_memory()


def model_source(model_id: str) -> Source:
    """Where ``model_id`` loads from: a folder, or the hub (probed first, see :mod:`.hub`).

    Cheap and torch-free, so a missing folder or an unreachable hub is reported in a second,
    before anything heavy is imported.
    """
    if _looks_like_path(model_id):
        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(
                f"model folder {model_id} does not exist; pick an existing folder with -m PATH, "
                "give a Hugging Face model id, or point at a server with --base-url"
            )
        return Source(str(folder), local_files_only=_offline())
    return hub_source(model_id)


def _load(model_id: str, where: Source, device: str, dtype: str) -> LoadedModel:
    source = where.name
    offline = where.local_files_only
    if where.hub:
        from chatterm_local.download import fetch_snapshot

        # The files first (progress shown, cancellable), then transformers reads the folder.
        try:
            source = fetch_snapshot(model_id, local_files_only=offline)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise load_error(model_id, exc) from exc
        offline = True

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatterm_local.prompt import supports_system_role

    vision = _is_image_text_source(source, offline)
    processor: Any = None
    try:
        if vision:
            processor = _load_processor(source, offline)
            tokenizer = processor.tokenizer
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
    except Exception as exc:
        raise load_error(model_id, exc) from exc
    template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
    if not template:
        raise ModelLoadError(f"model {model_id} has no chat template; use a chat/instruct model")
    if vision and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = template
    model: Any = None
    out_of_memory = False
    try:
        with _quiet_weight_loading():
            auto: Any = AutoModelForCausalLM
            if vision:
                from transformers import AutoModelForImageTextToText

                auto = AutoModelForImageTextToText
            model = auto.from_pretrained(
                source, **{dtype_keyword(): getattr(torch, dtype)}, local_files_only=offline
            )
        model.to(device)
        model.eval()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise load_error(model_id, exc) from exc
        out_of_memory = True
    if out_of_memory:
        # Raised outside the except block: the traceback's frames would otherwise keep the
        # half-moved weights alive, and the memory would not come back.
        model = None
        free_device_memory()
        raise out_of_memory_error(model_id, device, dtype, "loading")
    return LoadedModel(
        model_id=model_id,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        context_length=context_length_of(model.config, tokenizer),
        eos_ids=_eos_ids(model, tokenizer),
        system_role=supports_system_role(tokenizer),
        processor=processor,
    )


def _is_image_text_source(source: str, offline: bool) -> bool:
    """Whether the model's config names an image-text-to-text architecture (LLaVA, Qwen2-VL,
    SmolVLM ...); such a model is loaded with its processor so it can take images."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=offline)
    except Exception:
        return False  # the tokenizer/model load below reports the real problem
    return _is_image_text_config(config)


def _load_processor(source: str, offline: bool) -> Any:
    """The model's processor. Without torchvision transformers falls back to its Pillow image
    processors and says so on every load; that is expected here, so it is not printed."""
    from transformers import AutoProcessor
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoProcessor.from_pretrained(source, local_files_only=offline)
    finally:
        hf_logging.set_verbosity(previous)


@contextlib.contextmanager
def _quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' own "Loading weights" bar, printed on every load even from the cache.

    Download bars come from huggingface_hub, not from this hook, so a first download still
    shows its progress.
    """
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return

    def hidden(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        kwargs = {**kwargs, "disable": True}
        return previous(factory, args, kwargs) if previous else factory(*args, **kwargs)

    previous = set_hook(hidden)
    try:
        yield
    finally:
        set_hook(previous)


def read_context_length(model_id: str) -> int | None:
    """The context size from the model's config, without loading weights; None if unknown.

    Only local files are read: answering a question must not start a download.
    """
    loaded = loaded_model(model_id)
    if loaded is not None:
        return loaded.context_length
    require_dependencies()
    from transformers import AutoConfig

    source = str(Path(model_id).expanduser()) if _looks_like_path(model_id) else model_id
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except Exception:
        return None
    return context_length_of(config)


def no_images_message(model_id: str) -> str:
    return (
        f"model {model_id} takes no images (it is not an image-text-to-text model); "
        "drop -a or pick a vision-language model"
    )


def _is_image_text_config(config: Any) -> bool:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    return getattr(config, "model_type", None) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def takes_images(model_id: str) -> bool:
    """Whether ``model_id`` is an image-text-to-text model, read from its config without
    loading weights or downloading. A config that cannot be read answers True: the model is
    then checked once loaded, before anything is generated."""
    loaded = loaded_model(model_id)
    if loaded is not None:
        return loaded.processor is not None
    require_dependencies()
    from transformers import AutoConfig

    source = str(Path(model_id).expanduser()) if _looks_like_path(model_id) else model_id
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except Exception:
        return True
    return _is_image_text_config(config)


def cached_model_ids() -> list[str]:
    """Model repos in the local Hugging Face cache; an empty list if the cache can't be read."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
        return sorted(repo.repo_id for repo in info.repos if repo.repo_type == "model")
    except Exception:
        return []
