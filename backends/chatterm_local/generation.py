"""One reply: ``model.generate`` on a worker thread, streamed, stoppable, reusing the KV cache.

Everything in this module runs on the worker thread. It talks to the event loop only through
``emit`` (which the backend wires to ``loop.call_soon_threadsafe``), so the loop never waits on
torch, and the loop talks back only through the ``halt`` event, which a stopping criterion
checks after every decoding step: closing the stream stops the model within one token.

Multi-turn reuse: the cache from the previous turn is kept with the exact token ids it holds.
The next prompt is rendered from scratch, the cache is cropped back to the longest common prefix,
and ``generate`` prefills only the rest. Because the kept keys are the ones a fresh run would
compute for the same ids, the reply is the same as without reuse (greedy: token for token).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from chatterm.backend import BackendError, Finish, Metadata, TextDelta, Usage
from chatterm_local.devices import (
    free_device_memory,
    is_out_of_memory,
    out_of_memory_error,
    transformers_major,
)
from chatterm_local.loader import KVState, LoadedModel

# What the worker hands to the loop: an event, an error to raise there, or DONE.
DONE = object()
Emit = Callable[[object], None]

# How often a generation waiting for the model's lock looks at its halt event.
_LOCK_POLL_S = 0.05
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Validated sampling settings for one reply."""

    max_new_tokens: int
    min_new_tokens: int = 0
    temperature: float = 0.7
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    reuse_cache: bool = True


class HaltCriteria(StoppingCriteria):
    """Ends generation after the current step once ``event`` is set (cancel or stop string)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class ReplyStreamer(BaseStreamer):
    """Turns generated token ids into text deltas that never split a character.

    Decoding is incremental over a short window (the last emitted piece plus new tokens), and
    text is held back while it ends in U+FFFD, i.e. while a multi-byte character is still
    incomplete. With stop strings, the last ``len(longest) - 1`` characters are also held back
    until it is certain they do not start a stop string; when one appears, the text before it is
    sent, the rest is dropped, and ``halt`` is set.
    """

    def __init__(
        self,
        tokenizer: Any,
        eos_ids: frozenset[int],
        stop: Sequence[str],
        emit: Emit,
        halt: threading.Event,
        tokenizer_lock: threading.Lock | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.tokenizer_lock = tokenizer_lock or threading.Lock()
        self.eos_ids = eos_ids
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.emit = emit
        self.halt = halt
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0
        self.pending = ""
        self.token_count = 0
        self.hit_stop = False
        self._prompt_seen = False

    def _decode(self, ids: list[int]) -> str:
        with self.tokenizer_lock:
            text = self.tokenizer.decode(
                ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        return str(text)

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() hands over the prompt first
            self._prompt_seen = True
            return
        if self.hit_stop:
            return
        for token in value.reshape(-1).tolist():
            self.token_count += 1
            if token in self.eos_ids:
                continue
            self.ids.append(token)
            prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
            text = self._decode(self.ids[self.prefix_offset :])
            if len(text) > len(prefix) and not text.endswith(_REPLACEMENT):
                self.prefix_offset = self.read_offset
                self.read_offset = len(self.ids)
                self._push(text[len(prefix) :])
                if self.hit_stop:
                    return

    def end(self) -> None:
        """Flush what was held back: an incomplete character stays U+FFFD, as in a full decode."""
        if self.hit_stop:
            return
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        text = self._decode(self.ids[self.prefix_offset :])
        if len(text) > len(prefix):
            self._push(text[len(prefix) :])
        if not self.hit_stop and self.pending:
            self.emit(TextDelta(self.pending))
            self.pending = ""

    def _push(self, text: str) -> None:
        self.pending += text
        if self.stop:
            found = [i for i in (self.pending.find(s) for s in self.stop) if i >= 0]
            if found:
                cut = min(found)
                if cut:
                    self.emit(TextDelta(self.pending[:cut]))
                self.pending = ""
                self.hit_stop = True
                self.halt.set()
                return
        safe = len(self.pending) - self.hold
        if safe > 0:
            self.emit(TextDelta(self.pending[:safe]))
            self.pending = self.pending[safe:]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def take_cache(loaded: LoadedModel, prompt_ids: list[int], reuse: bool) -> tuple[Any, int]:
    """The previous turn's cache cropped to what ``prompt_ids`` shares with it, or (None, 0).

    At least one prompt token is always left to prefill (generate needs logits for it). Any
    cache that cannot be cropped exactly (sliding windows past their size, recurrent layers,
    a crop that raises) is dropped and the turn starts fresh, which is slower but correct.
    The caller holds ``loaded.lock``.
    """
    state, loaded.kv = loaded.kv, None
    if not reuse or state is None:
        return None, 0
    keep = min(common_prefix_length(state.ids, prompt_ids), len(prompt_ids) - 1)
    cache = state.cache
    if keep <= 0 or not hasattr(cache, "crop") or getattr(cache, "is_croppable", True) is False:
        return None, 0
    try:
        current = int(cache.get_seq_length())
        if current != len(state.ids):
            return None, 0
        if keep < current:
            cache.crop(keep - current)  # transformers 5: a negative count of tokens to remove
        layers = getattr(cache, "layers", [])
        if cache.get_seq_length() != keep or any(
            hasattr(layer, "get_seq_length") and layer.get_seq_length() != keep for layer in layers
        ):
            return None, 0
    except Exception:
        return None, 0
    return cache, keep


def _acquire(lock: threading.Lock, halt: threading.Event) -> bool:
    """Wait for the model, giving up as soon as the waiting stream is closed."""
    while not lock.acquire(timeout=_LOCK_POLL_S):
        if halt.is_set():
            return False
    return True


def run_generation(
    loaded: LoadedModel,
    prompt_ids: list[int],
    params: GenerationParams,
    emit: Emit,
    halt: threading.Event,
    inputs: Mapping[str, Any] | None = None,
) -> None:
    """Thread target: generate one reply, emitting events; never raises, always emits DONE.

    ``inputs`` holds a vision-language model's extra tensors (pixel_values ...)."""
    out_of_memory = False
    try:
        if not _acquire(loaded.lock, halt):
            return
        try:
            _generate_locked(loaded, prompt_ids, params, emit, halt, inputs or {})
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            out_of_memory = True
            loaded.kv = None
        finally:
            loaded.lock.release()
        if out_of_memory:
            # Out of the except block, so the traceback no longer pins the step's tensors.
            free_device_memory()
            emit(out_of_memory_error(loaded.model_id, loaded.device, loaded.dtype, "generating"))
        elif halt.is_set() and loaded.device.startswith("cuda"):
            # Cancelled (or stopped by a stop string): hand this generation's CUDA blocks back
            # now that its tensors are gone, so the GPU is free for others again.
            free_device_memory()
    except BackendError as exc:
        emit(exc)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        emit(BackendError(f"generation failed: {type(exc).__name__}: {first}".rstrip(": ")))
    finally:
        emit(DONE)


def _sampling_kwargs(loaded: LoadedModel, params: GenerationParams) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens}
    if params.min_new_tokens > 0:
        kwargs["min_new_tokens"] = min(params.min_new_tokens, params.max_new_tokens)
    if params.temperature <= 0:
        # Greedy; unset the model's sampling defaults so transformers does not warn about them.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(do_sample=True, temperature=params.temperature)
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if params.top_k is not None:
            kwargs["top_k"] = params.top_k
    if params.repetition_penalty is not None:
        kwargs["repetition_penalty"] = params.repetition_penalty
    if getattr(loaded.model.generation_config, "pad_token_id", None) is None:
        pad = loaded.tokenizer.pad_token_id
        kwargs["pad_token_id"] = pad if pad is not None else min(loaded.eos_ids, default=0)
    return kwargs


def _model_inputs(loaded: LoadedModel, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Extra tensors on the model's device; pixel values in the model's dtype."""
    dtype = getattr(loaded.model, "dtype", None)
    moved: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(loaded.device)
            if value.is_floating_point() and dtype is not None:
                value = value.to(dtype)
        moved[key] = value
    return moved


def _generate_locked(
    loaded: LoadedModel,
    prompt_ids: list[int],
    params: GenerationParams,
    emit: Emit,
    halt: threading.Event,
    inputs: Mapping[str, Any],
) -> None:
    # With images, the cached prefix would hold image tokens whose pixels generate() must see
    # again: such turns start fresh (and keep no cache), text-only turns reuse as before.
    reuse = params.reuse_cache and not inputs
    cache, reused = take_cache(loaded, prompt_ids, reuse)
    emit(Metadata({"cached_tokens": reused}))
    if halt.is_set():
        return
    if params.seed is not None:
        torch.manual_seed(params.seed)
    streamer = ReplyStreamer(
        loaded.tokenizer, loaded.eos_ids, params.stop, emit, halt, loaded.tokenizer_lock
    )
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=loaded.device)
    kwargs = _sampling_kwargs(loaded, params)
    kwargs.update(_model_inputs(loaded, inputs))
    if cache is not None:
        # transformers 5 renamed past_key_values to cache (the old name goes in 5.40 / 6.0).
        kwargs["cache" if transformers_major() >= 5 else "past_key_values"] = cache
    out = loaded.model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        streamer=streamer,
        stopping_criteria=StoppingCriteriaList([HaltCriteria(halt)]),
        # Only ask for the cache back when it will be kept: otherwise it would hold device
        # memory until this function returns.
        return_dict_in_generate=reuse,
        **kwargs,
    )
    sequences = out.sequences if reuse else out
    sequence = sequences[0].tolist()
    generated = sequence[len(prompt_ids) :]
    if reuse:
        kept = getattr(out, "cache", None)
        if kept is None:  # transformers 4
            kept = getattr(out, "past_key_values", None)
        if kept is not None and hasattr(kept, "get_seq_length"):
            covered = int(kept.get_seq_length())
            if 0 < covered <= len(sequence):
                loaded.kv = KVState(kept, sequence[:covered])
    del out
    if halt.is_set() and not streamer.hit_stop:
        return  # cancelled: nobody is listening for the ending
    if streamer.hit_stop:
        reason, completion = "stop", streamer.token_count
    elif generated and generated[-1] in loaded.eos_ids:
        reason, completion = "stop", len(generated)
    elif len(generated) >= params.max_new_tokens:
        reason, completion = "length", len(generated)
    else:
        reason, completion = "stop", len(generated)
    emit(Usage(prompt_tokens=len(prompt_ids), completion_tokens=completion))
    emit(Finish(reason))
