"""The local backend against a tiny random model built offline (see tests/tiny_model.py).

The model's text is nonsense; the tests check structure: streaming, determinism, stopping,
cancel, multi-byte safety, context trimming, cache reuse and error messages.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from chatterm_local import DEFAULT_MODEL, LocalBackend, devices, generation, loader  # noqa: E402
from chatterm_local.prompt import build_prompt, supports_system_role  # noqa: E402

from chatterm.backend import (  # noqa: E402
    BackendConfig,
    BackendError,
    BackendUnavailable,
    ChatMessage,
    ChatRequest,
    Finish,
    Metadata,
    ModelLoadError,
    Notice,
    OptionError,
    StreamEvent,
    TextDelta,
    Usage,
)

# CPU unless a test says otherwise, so the same assertions hold on a machine with a GPU.
GREEDY = {"temperature": 0.0, "device": "cpu"}
CPU = "cpu"
GEN_THREAD = "chatterm-local-generate"


# --- helpers ---------------------------------------------------------------------------------


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def run(model: Path | str, messages: list[ChatMessage], **options: Any) -> list[StreamEvent]:
    options.setdefault("device", CPU)
    backend = LocalBackend(BackendConfig(model=str(model)))
    request = ChatRequest(messages, options=backend.validate_options(options))

    async def go() -> list[StreamEvent]:
        return [event async for event in backend.stream(request)]

    return asyncio.run(go())


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def only(events: list[StreamEvent], kind: type) -> Any:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def cached_tokens(events: list[StreamEvent]) -> int:
    return next(
        e.values["cached_tokens"]
        for e in events
        if isinstance(e, Metadata) and "cached_tokens" in e.values
    )


def generation_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == GEN_THREAD]


def copy_model(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def set_template(folder: Path, template: str | None) -> None:
    """Replace (or with None remove) the chat template of a saved model folder."""
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    if template is not None:
        (folder / "chat_template.jinja").write_text(template)


def load_direct(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
    assert not generation_threads(), "a generation thread outlived its stream"


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Variants of the session's tiny model, made by copying it and editing its files."""
    root = tmp_path_factory.mktemp("variants")
    out: dict[str, Path] = {"base": tiny_model_dir}

    small = copy_model(tiny_model_dir, root / "small-context")
    config = json.loads((small / "config.json").read_text())
    config["max_position_embeddings"] = 256
    (small / "config.json").write_text(json.dumps(config))
    out["small"] = small

    # Past assistant turns are cut to their first 8 characters: the prompt diverges from the
    # cached ids inside the previous reply, so reuse has to crop, not just append.
    rewriting = copy_model(tiny_model_dir, root / "rewriting")
    set_template(
        rewriting,
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['role'] == 'assistant' %}{{ m['content'][:8] }}{% else %}{{ m['content'] }}"
        "{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    )
    out["rewriting"] = rewriting

    no_system = copy_model(tiny_model_dir, root / "no-system")
    set_template(
        no_system,
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    )
    out["no_system"] = no_system

    no_template = copy_model(tiny_model_dir, root / "no-template")
    set_template(no_template, None)
    out["no_template"] = no_template

    return out


EOS_PROMPT = "what is a cache"


@pytest.fixture(scope="module")
def eos_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A copy of the tiny model that ends its greedy reply to EOS_PROMPT after N tokens.

    The token greedy decoding produces at position N (one not produced earlier) is declared an
    end-of-sequence id in generation_config.json, so end-of-sequence is certain, not luck.
    """
    tokenizer, model = load_direct(tiny_model_dir)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": EOS_PROMPT}], add_generation_prompt=True
    )["input_ids"]
    greedy = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)
    generated = greedy[0, len(ids) :].tolist()
    position = next(i for i in range(2, len(generated)) if generated[i] not in generated[:i])
    folder = copy_model(tiny_model_dir, tmp_path_factory.mktemp("eos") / "model")
    gen_config = json.loads((folder / "generation_config.json").read_text())
    gen_config["eos_token_id"] = [gen_config["eos_token_id"], generated[position]]
    (folder / "generation_config.json").write_text(json.dumps(gen_config))
    return folder, position + 1


# --- import, options, device choice ---------------------------------------------------------


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, chatterm_local; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
        "print(chatterm_local.DEFAULT_MODEL)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == DEFAULT_MODEL == "Qwen/Qwen2.5-0.5B-Instruct"


def test_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "missing_dependency", lambda: "torch")
    with pytest.raises(BackendUnavailable, match=r"pip install 'chatterm\[local\]'"):
        LocalBackend(BackendConfig())


def test_options_are_declared_and_parsed() -> None:
    backend = LocalBackend(BackendConfig())
    assert {
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "min_tokens",
        "seed",
        "repetition_penalty",
        "stop",
        "device",
        "dtype",
        "reuse_cache",
    } <= set(backend.options)
    parsed = backend.validate_options(
        {"min_tokens": "5", "stop": "END", "reuse_cache": "false", "top_k": "40"}
    )
    assert parsed == {"min_tokens": 5, "stop": ["END"], "reuse_cache": False, "top_k": 40}
    assert backend.default_model == DEFAULT_MODEL


def test_device_and_dtype_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.cuda.is_available():
        assert devices.pick_device(None) in {"cpu", "mps"}
        # Asking for a device that is not there is a usage error (exit 2), not a model failure.
        with pytest.raises(OptionError, match="no CUDA"):
            devices.pick_device("cuda")
    assert devices.pick_dtype("cpu", None) == "float32"
    assert devices.pick_dtype("cpu", "bf16") == "bfloat16"
    assert devices.pick_dtype("mps", None) == "float16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert devices.pick_dtype("cuda", None) == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert devices.pick_dtype("cuda:0", "auto") == "float16"
    with pytest.raises(OptionError, match="unknown dtype"):
        devices.pick_dtype("cpu", "int3")
    with pytest.raises(OptionError, match="unknown dtype"):
        LocalBackend(BackendConfig()).validate_options({"dtype": "int3"})
    assert LocalBackend(BackendConfig()).validate_options({"dtype": "BF16"}) == {
        "dtype": "bfloat16"
    }


# --- streaming --------------------------------------------------------------------------------


def test_streams_in_several_deltas_with_metadata_usage_and_finish(models: dict) -> None:
    events = run(
        models["base"], [user("hello")], temperature=1.0, seed=1, max_tokens=20, min_tokens=20
    )
    assert events[0] == Metadata(
        {"device": "cpu", "dtype": "float32", "model": str(models["base"])}
    )
    assert len([e for e in events if isinstance(e, TextDelta)]) >= 3
    usage = only(events, Usage)
    assert usage.prompt_tokens and usage.prompt_tokens > 5
    assert usage.completion_tokens == 20
    assert events[-1] == Finish("length")


def test_greedy_is_deterministic_across_instances(models: dict) -> None:
    first = run(models["base"], [user("tell me")], reuse_cache=False, max_tokens=24, **GREEDY)
    second = run(models["base"], [user("tell me")], max_tokens=24, **GREEDY)
    assert text_of(first) and text_of(first) == text_of(second)


def test_seeded_sampling_is_reproducible_and_varies_with_seed(models: dict) -> None:
    a = run(models["base"], [user("x")], temperature=1.0, seed=7, max_tokens=16)
    b = run(models["base"], [user("x")], temperature=1.0, seed=7, max_tokens=16)
    c = run(models["base"], [user("x")], temperature=1.0, seed=8, max_tokens=16)
    assert text_of(a) == text_of(b) != text_of(c)


def test_max_tokens_ends_with_length(models: dict) -> None:
    events = run(models["base"], [user("count")], max_tokens=5, min_tokens=5, **GREEDY)
    assert only(events, Usage).completion_tokens == 5
    assert events[-1] == Finish("length")


def test_end_of_sequence_ends_with_stop(eos_model: tuple[Path, int]) -> None:
    folder, eos_at = eos_model
    events = run(folder, [user(EOS_PROMPT)], max_tokens=40, **GREEDY)
    assert events[-1] == Finish("stop")
    assert only(events, Usage).completion_tokens == eos_at


def test_min_tokens_prevents_early_end(eos_model: tuple[Path, int]) -> None:
    folder, eos_at = eos_model
    events = run(folder, [user(EOS_PROMPT)], max_tokens=40, min_tokens=20, **GREEDY)
    assert only(events, Usage).completion_tokens >= 20 > eos_at


def test_stop_strings_end_the_reply_before_the_stop_text(models: dict) -> None:
    full = text_of(run(models["base"], [user("stop test")], max_tokens=40, **GREEDY))
    stop = full[12:15]
    expected = full[: full.find(stop)]
    events = run(
        models["base"],
        [user("stop test")],
        max_tokens=40,
        stop=["never-appears-in-output", stop],
        **GREEDY,
    )
    assert text_of(events) == expected
    assert events[-1] == Finish("stop")
    assert only(events, Usage).completion_tokens < 40


def test_non_ascii_is_streamed_intact(models: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[generation.ReplyStreamer] = []

    class Spy(generation.ReplyStreamer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self)

    monkeypatch.setattr(generation, "ReplyStreamer", Spy)
    events = run(models["base"], [user("你好 🙂 café")], temperature=1.0, seed=3, max_tokens=200)
    tokenizer = loader.get_model(str(models["base"]), CPU, None).tokenizer
    ids = seen[0].ids
    pieces = [tokenizer.decode([i]) for i in ids]
    assert any("\ufffd" in p for p in pieces), "no token split a character; test is vacuous"
    full = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert text_of(events) == full


def test_streamer_never_splits_a_character(models: dict) -> None:
    tokenizer = loader.get_model(str(models["base"]), CPU, None).tokenizer
    text = "ŝ Ω 龍 🦀 naïve 世界 👩‍💻!"
    ids = tokenizer.encode(text, add_special_tokens=False)
    deltas: list[str] = []
    streamer = generation.ReplyStreamer(
        tokenizer, frozenset(), (), lambda e: deltas.append(e.text), threading.Event()
    )
    streamer.put(torch.tensor([[0]]))  # the prompt, which is skipped
    for i in ids:
        streamer.put(torch.tensor([i]))
    streamer.end()
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # characters really are split
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)


def test_stop_string_split_across_deltas(models: dict) -> None:
    tokenizer = loader.get_model(str(models["base"]), CPU, None).tokenizer
    deltas: list[str] = []
    halt = threading.Event()
    streamer = generation.ReplyStreamer(
        tokenizer, frozenset(), ["END!"], lambda e: deltas.append(e.text), halt
    )
    streamer.put(torch.tensor([0]))
    for char in "abc EN":
        streamer.put(torch.tensor(tokenizer.encode(char, add_special_tokens=False)))
    assert "".join(deltas) == "abc"  # "EN" may start the stop string: held back
    for char in "D!tail":
        streamer.put(torch.tensor(tokenizer.encode(char, add_special_tokens=False)))
    streamer.end()
    assert "".join(deltas) == "abc " and halt.is_set() and streamer.hit_stop


# --- cancel and the event loop ----------------------------------------------------------------


def test_cancel_mid_stream_stops_the_thread_promptly(models: dict) -> None:
    backend = LocalBackend(BackendConfig(model=str(models["base"])))
    options = backend.validate_options({"max_tokens": 100000, "min_tokens": 100000, **GREEDY})

    async def go() -> tuple[int, float]:
        stream = backend.stream(ChatRequest([user("go on forever")], options=options))
        deltas = 0
        async for event in stream:
            deltas += isinstance(event, TextDelta)
            if deltas == 3:
                break
        # A hang guard, not a speed check: closing must not wait for 100,000 tokens.
        await asyncio.wait_for(stream.aclose(), 120)  # type: ignore[attr-defined]
        return deltas

    deltas = asyncio.run(go())
    assert deltas == 3
    assert not generation_threads()  # the decoding thread stopped with the close
    # The model's lock was released: the next turn runs normally.
    events = run(models["base"], [user("again")], max_tokens=3, **GREEDY)
    assert events[-1] == Finish("length")


def test_task_cancellation_stops_generation(models: dict) -> None:
    backend = LocalBackend(BackendConfig(model=str(models["base"])))
    options = backend.validate_options({"max_tokens": 100000, "min_tokens": 100000, **GREEDY})

    async def consume(first: asyncio.Event) -> None:
        async for event in backend.stream(ChatRequest([user("loop")], options=options)):
            if isinstance(event, TextDelta):
                first.set()

    async def go() -> None:
        first = asyncio.Event()
        task = asyncio.create_task(consume(first))
        await asyncio.wait_for(first.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert not generation_threads()


def test_event_loop_keeps_running_during_generation(models: dict) -> None:
    run(models["base"], [user("warm up")], max_tokens=2)  # load outside the measurement

    async def go() -> list[str]:
        order: list[str] = []  # "tick" and "delta", in the order the event loop saw them
        done = False

        async def ticker() -> None:
            while not done:
                order.append("tick")
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        backend = LocalBackend(BackendConfig(model=str(models["base"])))
        options = backend.validate_options({"max_tokens": 300, "min_tokens": 300, **GREEDY})
        async for event in backend.stream(ChatRequest([user("tick")], options=options)):
            if isinstance(event, TextDelta):
                order.append("delta")
        done = True
        await task
        return order

    order = asyncio.run(go())
    first, last = order.index("delta"), len(order) - 1 - order[::-1].index("delta")
    # Generation runs off the loop: the ticker keeps running between the reply's tokens (a
    # model run on the loop itself would let no tick in until the reply ended).
    ticks_while_streaming = order[first:last].count("tick")
    assert order.count("delta") >= 10
    assert ticks_while_streaming >= 3, order


def test_two_streams_on_one_model_take_turns(models: dict) -> None:
    backend = LocalBackend(BackendConfig(model=str(models["base"])))
    options = backend.validate_options({"max_tokens": 30, "min_tokens": 30, **GREEDY})

    async def one(prompt: str) -> list[StreamEvent]:
        return [e async for e in backend.stream(ChatRequest([user(prompt)], options=options))]

    async def go() -> tuple[list[StreamEvent], list[StreamEvent]]:
        a, b = await asyncio.gather(one("first"), one("second"))
        return a, b

    a, b = asyncio.run(go())
    assert only(a, Usage).completion_tokens == only(b, Usage).completion_tokens == 30
    assert text_of(a) == text_of(run(models["base"], [user("first")], **options))


# --- context and prompts ----------------------------------------------------------------------


def test_context_overflow_drops_oldest_turns(models: dict) -> None:
    system = ChatMessage("system", "you are terse")
    history: list[ChatMessage] = [system]
    for i in range(12):
        history += [
            user(f"question {i} about the terminal chat history"),
            ChatMessage("assistant", f"answer {i} with some words in it"),
        ]
    history.append(user("the latest question must survive"))
    events = run(models["small"], history, max_tokens=16, **GREEDY)
    notice = only(events, Notice)
    dropped = int(notice.message.split()[1])
    assert notice.message == (
        f"dropped {dropped} earlier messages to fit the model's context of 256 tokens"
    )
    assert 0 < dropped < 24
    usage = only(events, Usage)
    assert usage.prompt_tokens is not None and usage.prompt_tokens <= 256 - 16
    assert events[-1] == Finish("length")

    loaded = loader.get_model(str(models["small"]), CPU, None)
    prompt = build_prompt(
        loaded.tokenizer, history, system_role=True, context_length=256, reply_budget=16
    )
    rendered = loaded.tokenizer.decode(prompt.ids)
    assert rendered.startswith("<|im_start|>system\nyou are terse")
    assert "the latest question must survive" in rendered
    assert "question 0 " not in rendered
    assert rendered.split("<|im_end|>\n", 1)[1].startswith("<|im_start|>user\n")


def test_a_message_larger_than_the_context_is_a_clear_error(models: dict) -> None:
    with pytest.raises(BackendError, match="does not fit the model's context of 256"):
        run(models["small"], [user("word " * 400)], max_tokens=4)


def test_context_length_is_read_from_the_config(models: dict) -> None:
    backend = LocalBackend(BackendConfig(model=str(models["base"])))
    assert asyncio.run(backend.context_length(None)) == 2048
    assert asyncio.run(backend.context_length(str(models["small"]))) == 256


def test_system_prompt_folded_when_template_rejects_it(models: dict) -> None:
    tokenizer, _ = load_direct(models["no_system"])
    assert not supports_system_role(tokenizer)
    messages = [ChatMessage("system", "SYSTEM RULES"), user("the question")]
    prompt = build_prompt(
        tokenizer, messages, system_role=False, context_length=2048, reply_budget=16
    )
    assert "SYSTEM RULES\n\nthe question" in tokenizer.decode(prompt.ids)
    events = run(models["no_system"], messages, max_tokens=4, **GREEDY)
    assert events[-1] == Finish("length")


# --- KV-cache reuse ---------------------------------------------------------------------------


def converse(model: Path, reuse: bool, turns: int = 5) -> tuple[list[str], list[int]]:
    history: list[ChatMessage] = [ChatMessage("system", "keep it short")]
    replies, cached = [], []
    for turn in range(turns):
        history.append(user(f"turn {turn}: tell me about 缓存 and café number {turn}"))
        events = run(model, history, max_tokens=24, min_tokens=24, reuse_cache=reuse, **GREEDY)
        replies.append(text_of(events))
        cached.append(cached_tokens(events))
        history.append(ChatMessage("assistant", replies[-1]))
    return replies, cached


@pytest.mark.parametrize("variant", ["base", "rewriting"])
def test_cache_reuse_gives_the_same_replies(models: dict, variant: str) -> None:
    fresh, fresh_cached = converse(models[variant], reuse=False)
    reused, reused_cached = converse(models[variant], reuse=True)
    assert reused == fresh
    assert len(set(fresh)) == 5  # the turns really differ
    assert fresh_cached == [0] * 5
    assert reused_cached[0] == 0 and all(n > 10 for n in reused_cached[1:])


def test_cache_that_cannot_be_cropped_falls_back_to_a_fresh_one(models: dict) -> None:
    loaded = loader.get_model(str(models["base"]), CPU, None)

    class Uncroppable:
        is_croppable = False

    loaded.kv = loader.KVState(Uncroppable(), [1, 2, 3])
    assert generation.take_cache(loaded, [1, 2, 3, 4], reuse=True) == (None, 0)

    class Broken:
        def get_seq_length(self) -> int:
            return 3

        def crop(self, n: int) -> None:
            raise RuntimeError("sliding window already full")

    loaded.kv = loader.KVState(Broken(), [1, 2, 3])
    assert generation.take_cache(loaded, [1, 2, 9, 9], reuse=True) == (None, 0)
    assert loaded.kv is None
    events = run(models["base"], [user("after a bad cache")], max_tokens=3, **GREEDY)
    assert events[-1] == Finish("length")


# --- errors -----------------------------------------------------------------------------------


def test_offline_model_not_in_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelLoadError) as info:
        run("chatterm-tests/no-such-model", [user("hi")])
    message = info.value.message
    assert "\n" not in message
    assert "HF_HUB_OFFLINE" in message
    assert "hf download chatterm-tests/no-such-model" in message
    assert "--base-url" in message


def test_unreachable_hub_and_unknown_repo_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    unreachable = OSError(
        "We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find "
        "them in the cached files."
    )
    message = loader.load_error("org/model", unreachable).message
    assert "could not be reached" in message and "hf download org/model" in message

    class RepositoryNotFoundError(OSError):
        pass

    message = loader.load_error("org/typo", RepositoryNotFoundError("404")).message
    assert "was not found on the Hugging Face Hub" in message and "\n" not in message


def test_missing_local_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        run(tmp_path / "nowhere", [user("hi")])
    assert "\n" not in info.value.message and "--base-url" in info.value.message


def test_model_without_chat_template(models: dict) -> None:
    with pytest.raises(ModelLoadError, match="has no chat template; use a chat/instruct model"):
        run(models["no_template"], [user("hi")])


def test_out_of_memory_while_generating_is_a_model_error(
    models: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = loader.get_model(str(models["base"]), CPU, None)

    def boom(**kwargs: Any) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loaded.model, "generate", boom)
    with pytest.raises(ModelLoadError, match="does not fit in cpu memory"):
        run(models["base"], [user("hi")])


def test_out_of_memory_while_loading_is_a_model_error(
    models: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    def boom(*args: Any, **kwargs: Any) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", boom)
    folder = copy_model(models["base"], tmp_path / "huge")
    with pytest.raises(ModelLoadError, match=r"does not fit in .* memory .* while loading"):
        run(folder, [user("hi")])


def test_list_models_reads_the_cache_and_never_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    class Repo:
        def __init__(self, repo_id: str, repo_type: str) -> None:
            self.repo_id, self.repo_type = repo_id, repo_type

    class Info:
        repos = [Repo("b/model", "model"), Repo("a/data", "dataset"), Repo("a/model", "model")]

    backend = LocalBackend(BackendConfig())
    monkeypatch.setattr(huggingface_hub, "scan_cache_dir", lambda: Info())
    assert asyncio.run(backend.list_models()) == ["a/model", "b/model"]

    def broken() -> None:
        raise OSError("cache is unreadable")

    monkeypatch.setattr(huggingface_hub, "scan_cache_dir", broken)
    assert asyncio.run(backend.list_models()) == []


# --- GPU only -----------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_auto_device_is_cuda_with_bf16_when_supported(models: dict) -> None:
    events = run(models["base"], [user("hi")], max_tokens=4, temperature=0.0, device="auto")
    meta = events[0]
    assert isinstance(meta, Metadata)
    assert meta.values["device"] == "cuda"
    expected = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    assert meta.values["dtype"] == expected


@pytest.mark.gpu
@needs_cuda
def test_cancel_on_gpu_frees_memory(models: dict) -> None:
    run(models["base"], [user("warm")], max_tokens=2, reuse_cache=False, device="cuda")
    torch.cuda.synchronize()
    allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    backend = LocalBackend(BackendConfig(model=str(models["base"])))
    options = backend.validate_options(
        {"max_tokens": 100000, "min_tokens": 100000, "reuse_cache": False, "device": "cuda"}
    )

    async def go() -> None:
        stream: AsyncIterator[StreamEvent] = backend.stream(
            ChatRequest([user("go")], options=options)
        )
        deltas = 0
        async for event in stream:
            deltas += isinstance(event, TextDelta)
            if deltas == 20:
                break
        await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(go())
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= allocated
    assert torch.cuda.memory_reserved() <= reserved  # cached blocks handed back
    assert not generation_threads()
