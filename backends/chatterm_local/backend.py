"""The ``local`` backend: a transformers model in this process, behind the backend contract.

This module stays importable without torch: the CLI imports the class when the user picks
``--backend local``, and a missing extra must then read as "run pip install 'chatterm[local]'",
which the constructor says. The heavy modules (:mod:`.loader` helpers that touch torch,
:mod:`.generation`) are imported inside the methods that need them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar, TypeVar

from chatterm.backend import (
    COMMON_OPTIONS,
    Backend,
    BackendConfig,
    ChatRequest,
    Metadata,
    Notice,
    OptionError,
    OptionSpec,
    StreamEvent,
)
from chatterm_local.loader import DEFAULT_MODEL, no_images_message, require_dependencies

_T = TypeVar("_T")

DEFAULT_MAX_TOKENS = 1024
DEFAULT_TEMPERATURE = 0.7

LOCAL_OPTIONS: dict[str, OptionSpec] = {
    **COMMON_OPTIONS,
    **{
        spec.name: spec
        for spec in (
            OptionSpec("top_k", int, "sample only from the K most likely tokens (0 = all)", 0),
            OptionSpec(
                "min_tokens", int, "generate at least this many tokens before end-of-text", 0
            ),
            OptionSpec(
                "repetition_penalty", float, "penalise repeated tokens (1 = off)", 0.01, 10.0
            ),
            OptionSpec("device", str, "auto, cpu, cuda, cuda:N or mps (default: auto)"),
            OptionSpec("dtype", str, "auto, float32, float16 or bfloat16 (default: auto)"),
            OptionSpec("reuse_cache", bool, "reuse the previous turn's KV cache (default: true)"),
        )
    },
}


class LocalBackend(Backend):
    """Runs a Hugging Face chat model in-process with torch.

    The model is loaded on the first ``stream`` and kept in a process-wide registry, so later
    turns (and other instances) skip loading and can reuse the previous turn's KV cache.
    ``stream`` yields, in order: ``Metadata`` (device, dtype, model), maybe a ``Notice`` about
    dropped history, ``Metadata`` (cached_tokens), the ``TextDelta`` pieces, ``Usage`` and
    ``Finish``.
    """

    name: ClassVar[str] = "local"
    supports_cancel: ClassVar[bool] = True
    options: ClassVar[Mapping[str, OptionSpec]] = LOCAL_OPTIONS

    def __init__(self, config: BackendConfig) -> None:
        require_dependencies()
        super().__init__(config)

    @property
    def default_model(self) -> str | None:
        return self.config.model or DEFAULT_MODEL

    async def prepare(self, model: str | None, options: Mapping[str, Any]) -> None:
        """Load (or download) the model now, so a failure comes before the prompt is saved."""
        from chatterm_local.loader import get_model

        await _in_daemon_thread(
            get_model, model or self.default_model or DEFAULT_MODEL,
            options.get("device"), options.get("dtype"),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        from chatterm_local.generation import DONE, GenerationParams, run_generation
        from chatterm_local.loader import get_model
        from chatterm_local.prompt import Prompt, build_prompt

        options = dict(request.options)
        model_id = request.model or self.default_model or DEFAULT_MODEL
        # Loading blocks for seconds (minutes on first download, with huggingface_hub's progress
        # bars on stderr), so it runs off the loop like everything else torch does.
        loaded = await _in_daemon_thread(
            get_model, model_id, options.get("device"), options.get("dtype")
        )
        yield Metadata(loaded.metadata())
        if any(m.images for m in request.messages) and loaded.processor is None:
            raise OptionError(no_images_message(model_id))

        context = loaded.context_length
        max_tokens = int(options.get("max_tokens") or DEFAULT_MAX_TOKENS)

        def render() -> Prompt:
            with loaded.tokenizer_lock:
                return build_prompt(
                    loaded.tokenizer,
                    request.messages,
                    system_role=loaded.system_role,
                    context_length=context,
                    reply_budget=min(max_tokens, context // 2),
                    processor=loaded.processor,
                )

        prompt = await asyncio.to_thread(render)
        if prompt.dropped:
            yield Notice(
                f"dropped {prompt.dropped} earlier messages to fit the model's context of "
                f"{context} tokens"
            )
        temperature = options.get("temperature")
        params = GenerationParams(
            max_new_tokens=max(1, min(max_tokens, context - len(prompt.ids))),
            min_new_tokens=int(options.get("min_tokens") or 0),
            temperature=DEFAULT_TEMPERATURE if temperature is None else float(temperature),
            top_p=options.get("top_p"),
            top_k=options.get("top_k"),
            repetition_penalty=options.get("repetition_penalty"),
            seed=options.get("seed"),
            stop=tuple(options.get("stop") or ()),
            reuse_cache=bool(options.get("reuse_cache", True)),
        )

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        halt = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody will read the rest
                halt.set()

        worker = threading.Thread(
            target=run_generation,
            args=(loaded, prompt.ids, params, emit, halt, prompt.inputs),
            name="chatterm-local-generate",
            daemon=True,
        )
        worker.start()
        try:
            while True:
                item = await queue.get()
                if item is DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            # Closed early (Esc, Ctrl-C, aclose) or finished: stop the model after this step
            # and wait for the thread off the loop, so the next turn finds the model free.
            halt.set()
            if worker.is_alive():
                await asyncio.to_thread(worker.join)

    def validate_options(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Also reject an unknown dtype here, before a model is loaded for nothing."""
        from chatterm_local.devices import dtype_name

        parsed = super().validate_options(raw)
        dtype = parsed.get("dtype")
        if dtype and dtype.lower() != "auto":
            parsed["dtype"] = dtype_name(dtype)
        return parsed

    def accepts_images(self, model: str | None) -> bool:
        """From the model's config (local files only): is it an image-text-to-text model?"""
        from chatterm_local.loader import takes_images

        return takes_images(model or self.default_model or DEFAULT_MODEL)

    async def list_models(self) -> list[str]:
        from chatterm_local.loader import cached_model_ids

        return await asyncio.to_thread(cached_model_ids)

    async def context_length(self, model: str | None) -> int | None:
        from chatterm_local.loader import read_context_length

        return await asyncio.to_thread(
            read_context_length, model or self.default_model or DEFAULT_MODEL
        )


async def _in_daemon_thread(func: Callable[..., _T], *args: Any) -> _T:
    """Run ``func`` on a daemon thread and await it.

    Unlike ``asyncio.to_thread``, a Ctrl-C during a long load (a first download takes minutes)
    does not wait for the load to finish: ``asyncio.run`` would join the executor's threads on
    the way out, a daemon thread is simply abandoned when the process exits.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = func(*args)
        except BaseException as exc:
            error = exc
        # If the loop is gone (RuntimeError), nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="chatterm-load", daemon=True).start()
    return await future
