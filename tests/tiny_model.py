"""Build a tiny random chat model offline, for tests and benchmarks.

No test may download a model and CI has no GPU, so the local backend is exercised with a model
this module builds in a few seconds: a byte-level BPE tokenizer trained on a small multilingual
corpus (so multi-byte characters get split across tokens and streaming has to cope), a ChatML
template, and a seeded random Llama. It is saved with ``save_pretrained`` and loaded back through
the same ``from_pretrained`` path a user's model takes.

Run as a script to build one for a benchmark::

    python tests/tiny_model.py DEST --hidden 512 --layers 8
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _split(text: str) -> list[str]:
    return text.split()


SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]

_WORDS = _split(
    "the model reads a prompt and writes a reply one token at a time while the user waits "
    "streaming text should never split a character cache reuse keeps the old keys and values "
    "hello world terminal chat history conversation assistant system user message answer"
)
_ACCENTED = _split(
    "café naïve déjà vu über Straße façade señor jalapeño crème brûlée Ærø smørrebrød"
)
_CJK = _split("你好 世界 模型 终端 聊天 こんにちは 日本語 テスト 안녕하세요 한국어 漢字 東京")
_EMOJI = _split("🙂 🚀 👍🏽 🎉 ❤️ 🐍 🤖 🌍 👩‍💻 🍣")


def corpus(lines: int = 400, seed: int = 0) -> list[str]:
    """A deterministic mix of English, accented Latin, CJK and emoji lines."""
    rng = random.Random(seed)
    pools = [_WORDS, _WORDS, _ACCENTED, _CJK, _EMOJI]
    out = []
    for _ in range(lines):
        length = rng.randint(4, 14)
        out.append(" ".join(rng.choice(rng.choice(pools)) for _ in range(length)))
    return out


def build_tokenizer(vocab_size: int = 512, chat_template: str | None = None):  # type: ignore[no-untyped-def]
    """Train a byte-level BPE tokenizer and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token=None,
    )
    wrapped.chat_template = CHATML_TEMPLATE if chat_template is None else chat_template
    return wrapped


def build_tiny_model(
    dest: Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    intermediate_size: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 2048,
    chat_template: str | None = None,
    seed: int = 0,
    initializer_range: float = 0.3,
) -> Path:
    """Write a seeded random Llama chat model to ``dest`` and return ``dest``.

    ``chat_template=""`` writes a model with no chat template at all (for the error path).
    ``initializer_range`` is far above the usual 0.02 on purpose: with tiny weights a greedy run
    repeats one token forever, which would make "same output with and without cache reuse" an
    empty check.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(chat_template=chat_template)
    if chat_template == "":
        tokenizer.chat_template = None
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=None)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--max-positions", type=int, default=2048)
    args = parser.parse_args(argv)
    path = build_tiny_model(
        args.dest,
        hidden_size=args.hidden,
        num_layers=args.layers,
        intermediate_size=args.intermediate or args.hidden * 2,
        heads=args.heads,
        kv_heads=args.kv_heads,
        max_positions=args.max_positions,
    )
    print(path)


if __name__ == "__main__":
    main()
