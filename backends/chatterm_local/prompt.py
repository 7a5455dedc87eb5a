"""Turning a conversation into prompt token ids with the model's own chat template.

The template is the only correct way to format a conversation for a chat model (special tokens,
role names and system-prompt handling differ per model family), so the prompt is always rendered
by ``tokenizer.apply_chat_template``, never by hand. Two things are adapted around it:

* templates that reject or silently drop a ``system`` message get the system prompt folded into
  the first user message instead, so the user's instructions are never lost;
* a conversation longer than the model's context loses its oldest turns (never the system prompt,
  never the latest user message), and the caller tells the user how many were dropped.

No torch here: only the tokenizer is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chatterm.backend import BackendError, BackendUnavailable, ChatMessage, ImagePart

_SYSTEM_PROBE = "chatterm-system-probe-7f3a"


@dataclass(frozen=True, slots=True)
class Prompt:
    """The ids to feed the model and how many old messages had to go to make them fit."""

    ids: list[int]
    dropped: int
    # Model inputs besides the ids (pixel_values ...), for a vision-language model's images.
    inputs: dict[str, Any] = field(default_factory=dict)


def supports_system_role(tokenizer: Any) -> bool:
    """Whether the template renders a system message (some raise, some drop it silently)."""
    probe = [
        {"role": "system", "content": _SYSTEM_PROBE},
        {"role": "user", "content": "hi"},
    ]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception:
        return False
    return isinstance(text, str) and _SYSTEM_PROBE in text


def template_messages(messages: Sequence[ChatMessage], system_role: bool) -> list[dict[str, str]]:
    """The messages as the template expects them, with the system prompt folded if needed."""
    if system_role:
        return [{"role": m.role, "content": m.content} for m in messages]
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    rest = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
    if not system:
        return rest
    for item in rest:
        if item["role"] == "user":
            item["content"] = f"{system}\n\n{item['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def encode(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Render and tokenize with the generation prompt appended, exactly as the model expects.

    ``sanitize_control_tokens`` is deliberately not used: it would also turn the control tokens
    in the model's own past replies (``</think>`` in reasoning models) into plain text, changing
    what the model sees of its own history and breaking templates that look for those tokens.
    """
    try:
        result = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"the model's chat template rejected the conversation: {first}") from exc
    if hasattr(result, "keys") and "input_ids" in result:
        result = result["input_ids"]
    ids = list(result)
    if ids and isinstance(ids[0], list):  # a batch of one, from older transformers
        ids = ids[0]
    return [int(i) for i in ids]


def vision_messages(
    messages: Sequence[ChatMessage], system_role: bool
) -> tuple[list[dict[str, Any]], list[ImagePart]]:
    """Content-part messages for a processor's template (images first, then the text, as
    LLaVA-style models are trained), and the images in the order their parts appear."""
    folded = template_messages(messages, system_role)
    source = [m for m in messages if system_role or m.role != "system"]
    offset = len(folded) - len(source)  # 1 when the system prompt became its own user turn
    out: list[dict[str, Any]] = []
    images: list[ImagePart] = []
    for i, item in enumerate(folded):
        original = source[i - offset] if i >= offset else None
        parts: list[dict[str, Any]] = []
        for image in original.images if original is not None else ():
            parts.append({"type": "image"})
            images.append(image)
        parts.append({"type": "text", "text": item["content"]})
        out.append({"role": item["role"], "content": parts})
    return out, images


def decode_image(image: ImagePart) -> Any:
    """The picture as a Pillow image in RGB (a GIF's first frame)."""
    try:
        import io

        from PIL import Image
    except ImportError:
        raise BackendUnavailable(
            "images on the local backend need Pillow, which is not installed: "
            "run pip install 'chatterm[local]'"
        ) from None
    try:
        with Image.open(io.BytesIO(image.data)) as picture:
            return picture.convert("RGB")
    except Exception as exc:
        raise BackendError(f"could not decode an attached {image.mime} image: {exc}") from None


def encode_vision(processor: Any, messages: Sequence[ChatMessage], system_role: bool) -> Prompt:
    """Render with the processor's chat template and let the processor expand image tokens."""
    parts, images = vision_messages(messages, system_role)
    try:
        text = processor.apply_chat_template(parts, add_generation_prompt=True, tokenize=False)
        batch = processor(
            text=[text],
            images=[decode_image(i) for i in images] or None,
            return_tensors="pt",
            add_special_tokens=False,  # the template already has them
        )
    except BackendError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"the model's processor rejected the conversation: {first}") from exc
    ids = [int(i) for i in batch["input_ids"][0].tolist()]
    extra = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}
    return Prompt(ids=ids, dropped=0, inputs=extra)


def build_prompt(
    tokenizer: Any,
    messages: Sequence[ChatMessage],
    *,
    system_role: bool,
    context_length: int,
    reply_budget: int,
    processor: Any = None,
) -> Prompt:
    """Encode ``messages``, dropping the oldest turns until the prompt leaves ``reply_budget``.

    ``reply_budget`` is a target, not a promise: when even the system prompt plus the latest user
    message leave less room, the reply gets whatever remains (at least one token), and only a
    prompt that fills the whole context is an error.
    """
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    last_user = max((i for i, m in enumerate(rest) if m.role == "user"), default=len(rest) - 1)
    limit = context_length - reply_budget
    dropped = 0
    inputs: dict[str, Any] = {}
    while True:
        if processor is not None:
            encoded = encode_vision(processor, [*system, *rest], system_role)
            ids, inputs = encoded.ids, encoded.inputs
        else:
            ids = encode(tokenizer, template_messages([*system, *rest], system_role))
        if len(ids) <= limit or last_user <= 0:
            break
        # Drop the oldest message, then anything up to the next user message, so the history
        # still starts with a user turn (many templates insist on user/assistant alternation).
        cut = 1
        while cut < last_user and rest[cut].role != "user":
            cut += 1
        rest = rest[cut:]
        last_user -= cut
        dropped += cut
    if len(ids) >= context_length:
        raise BackendError(
            f"the message is {len(ids)} tokens with the chat template, which does not fit the "
            f"model's context of {context_length} tokens; shorten it or use another model"
        )
    return Prompt(ids=ids, dropped=dropped, inputs=inputs)
