"""Build a tiny random vision-language model offline, for the local backend's image path.

Like :mod:`tiny_model`, nothing is downloaded: the byte-level BPE tokenizer from there gets an
``<image>`` token, a CLIP image processor works on 32x32 pictures, and a seeded random LLaVA
(a one-layer CLIP vision tower, a projector and a two-layer Llama) is saved with
``save_pretrained`` next to a processor with a chat template that takes content parts, so it is
loaded back through ``AutoProcessor`` / ``AutoModelForImageTextToText`` exactly like a user's
model. Needs Pillow (transformers' image processor without torchvision).

Run as a script: ``python tests/tiny_vlm.py DEST``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tiny_model import build_tokenizer

IMAGE_TOKEN = "<image>"
IMAGE_SIZE = 32
PATCH_SIZE = 8

# ChatML with content parts: an image part becomes the image token the processor expands.
VLM_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}" + IMAGE_TOKEN + "{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_vlm(dest: Path, *, seed: int = 0) -> Path:
    """Write a seeded random LLaVA with its processor to ``dest`` and return ``dest``."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(chat_template=VLM_TEMPLATE)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        chat_template=VLM_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # CLIP's class token
    )
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_id,
        pad_token_id=tokenizer.pad_token_id, initializer_range=0.3,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest


if __name__ == "__main__":
    print(build_tiny_vlm(Path(sys.argv[1])))
