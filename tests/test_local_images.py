"""Images on the local backend: a text model refuses them, a vision-language model takes them.

Both models are built offline: the tiny text Llama (tests/tiny_model.py) and a tiny random LLaVA
with its processor (tests/tiny_vlm.py), loaded back through the same from_pretrained path as a
user's model.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
from pathlib import Path

import pytest
from cli_run import assert_one_line_error, run_cli

pytest.importorskip("torch")
pytest.importorskip("transformers")

PNG_HEADER = b"\x89PNG\r\n\x1a\n" + bytes(32)


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("PIL", reason="the image processor needs Pillow")
    from tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


def picture(fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 24), (200, 30, 90)).save(out, format=fmt)
    return out.getvalue()


def message_count() -> int:
    db = Path(os.environ["XDG_DATA_HOME"]) / "chatterm" / "history.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        con.close()


def test_text_model_refuses_images_before_anything_happens(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    image = tmp_path / "shot.png"
    image.write_bytes(PNG_HEADER)
    result = run_cli(
        "ask", "--backend", "local", "-m", str(tiny_model_dir), "-a", str(image), "what?",
        timeout=180,
    )
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert f"model {tiny_model_dir} takes no images" in result.stderr
    assert message_count() == 0  # nothing stored, nothing generated


def test_text_model_refuses_images_in_the_backend_too(tiny_model_dir: Path) -> None:
    """The stream itself checks, for callers that skip accepts_images (the TUI, plugins)."""
    from chatterm_local import LocalBackend

    from chatterm.backend import BackendConfig, ChatMessage, ChatRequest, ImagePart, OptionError

    backend = LocalBackend(BackendConfig(model=str(tiny_model_dir)))
    assert backend.accepts_images(str(tiny_model_dir)) is False
    request = ChatRequest([ChatMessage("user", "hi", (ImagePart("image/png", PNG_HEADER),))])

    async def run() -> None:
        async for _ in backend.stream(request):
            pass

    with pytest.raises(OptionError, match="takes no images"):
        asyncio.run(run())


def test_vision_model_takes_each_image_type(tiny_vlm_dir: Path) -> None:
    from chatterm_local import LocalBackend
    from tiny_vlm import IMAGE_SIZE, PATCH_SIZE

    from chatterm.backend import (
        BackendConfig,
        ChatMessage,
        ChatRequest,
        Finish,
        ImagePart,
        TextDelta,
        Usage,
    )

    backend = LocalBackend(BackendConfig(model=str(tiny_vlm_dir)))
    assert backend.accepts_images(str(tiny_vlm_dir)) is True
    # One token per patch (the "default" feature strategy drops CLIP's class token).
    image_tokens = (IMAGE_SIZE // PATCH_SIZE) ** 2
    options = {"temperature": 0.0, "max_tokens": 4}

    async def run(request: ChatRequest) -> list[object]:
        return [event async for event in backend.stream(request)]

    text_only = asyncio.run(run(ChatRequest([ChatMessage("user", "hello")], options=options)))
    base = next(e for e in text_only if isinstance(e, Usage)).prompt_tokens
    assert base is not None
    for mime, fmt in (("image/png", "PNG"), ("image/jpeg", "JPEG"), ("image/webp", "WEBP"),
                      ("image/gif", "GIF")):
        part = ImagePart(mime, picture(fmt))
        events = asyncio.run(
            run(ChatRequest([ChatMessage("user", "hello", (part, part))], options=options))
        )
        usage = next(e for e in events if isinstance(e, Usage))
        # Each image became its patch tokens in the prompt.
        assert usage.prompt_tokens == base + 2 * image_tokens, mime
        assert any(isinstance(e, Finish) for e in events)
        assert all(isinstance(e.text, str) for e in events if isinstance(e, TextDelta))


def test_vision_model_through_the_cli_and_continue(
    tiny_vlm_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(picture("JPEG"))
    args = ["ask", "--backend", "local", "-m", str(tiny_vlm_dir), "-o", "temperature", "0",
            "--max-tokens", "3", "--json"]
    first = run_cli(*args, "-a", str(image), "what is it?", timeout=240)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["status"] == "complete"
    prompt_with_image = data["usage"]["prompt_tokens"]
    again = run_cli(*args, "-c", "and now?", timeout=240)
    assert again.returncode == 0, again.stderr
    # The continued turn re-sent the stored image: its prompt is longer than the first.
    assert json.loads(again.stdout)["usage"]["prompt_tokens"] > prompt_with_image
    # Continued on a text-only model, the stored image could not be re-sent: refused before
    # the new prompt is stored.
    stored = message_count()
    text_only = run_cli(
        "ask", "--backend", "local", "-m", str(tiny_model_dir), "-c", "text only?", timeout=180
    )
    assert text_only.returncode == 2
    assert_one_line_error(text_only.stderr)
    assert "takes no images (earlier turns)" in text_only.stderr
    assert message_count() == stored
