"""Where a model runs and in what precision, and what running out of device memory looks like.

The defaults follow what each device does well: bfloat16 on GPUs that support it (same range as
float32, so no overflow), float16 on other GPUs and Apple MPS, float32 on CPU (half precision is
slow there). Users override with ``-o device`` / ``-o dtype``. torch is imported inside the
functions so this module is as cheap to import as the rest of the package.
"""

from __future__ import annotations

from chatterm.backend import ModelLoadError, OptionError

_DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "f32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "f16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


def dtype_name(requested: str) -> str:
    """The canonical name for a dtype option value (``bf16`` -> ``bfloat16``)."""
    name = _DTYPE_ALIASES.get(requested.strip().lower())
    if name is None:
        raise OptionError(f"unknown dtype {requested!r}; use auto, float32, float16 or bfloat16")
    return name


def pick_device(requested: str | None) -> str:
    """CUDA, then Apple MPS, then CPU, unless the user named one (``-o device cuda:1``)."""
    import torch

    if requested and requested.lower() != "auto":
        name = requested.lower()
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise OptionError(
                "device cuda was asked for but torch sees no CUDA device (use -o device cpu)"
            )
        if name == "mps" and not _mps_available():
            raise OptionError(
                "device mps was asked for but torch sees no Apple MPS device (use -o device cpu)"
            )
        try:
            torch.device(name)
        except (RuntimeError, ValueError):
            raise OptionError(
                f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps"
            ) from None
        return name
    if torch.cuda.is_available():
        return "cuda"
    if _mps_available():
        return "mps"
    return "cpu"


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_dtype(device: str, requested: str | None) -> str:
    """bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU; or the user's choice."""
    import torch

    if requested and requested.lower() != "auto":
        return dtype_name(requested)
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "float32"


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or the RuntimeError other devices raise for it."""
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def out_of_memory_error(model_id: str, device: str, dtype: str, during: str) -> ModelLoadError:
    return ModelLoadError(
        f"model {model_id} does not fit in {device} memory as {dtype} while {during}; "
        "try a smaller model, a shorter conversation or -o max_tokens, or -o device cpu"
    )


def transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def dtype_keyword() -> str:
    """``dtype`` since transformers 4.56; older versions silently ignore it (fp32 on GPU)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def free_device_memory() -> None:
    """Hand cached CUDA blocks back so other processes (and nvidia-smi) see the memory free."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
