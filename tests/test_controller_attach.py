"""The controller's part of issue 11, headless: preparing a prompt's attachments (chips and
``@path``), templates, and a failed send with attachments retried without a second copy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_controller import make, server_choice

from chatterm.attachments import MAX_TEXT_BYTES, Attachment
from chatterm.config import Config, Profile, Template
from chatterm.controller import ControllerError


def test_prepare_prompt_reads_at_paths_under_cwd_and_keeps_chips_first(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)\n")
    (tmp_path / "b.md").write_text("b\n")
    chip = Attachment("b.md", "text", "text/plain", b"b\n")
    text, attached = make(tmp_path, server_choice_stub())[0].prepare_prompt(
        "see @src/a.py and @b.md; mail @nobody", [chip], cwd=tmp_path
    )
    assert text == "see src/a.py and b.md; mail @nobody"
    # b.md was already a chip with the same bytes: once, in the chip's place.
    assert [(a.name, a.kind) for a in attached] == [("b.md", "text"), ("src/a.py", "text")]


def test_prepare_prompt_refuses_what_ask_refuses(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    controller = make(tmp_path, server_choice_stub())[0]
    with pytest.raises(ControllerError, match=r"bad\.txt is not UTF-8 text"):
        controller.prepare_prompt("@bad.txt", cwd=tmp_path)
    big = [Attachment(f"f{i}", "text", "text/plain", b"x" * (MAX_TEXT_BYTES // 2 + 1))
           for i in range(2)]
    with pytest.raises(ControllerError, match="at most 1 MB in total"):
        controller.prepare_prompt("hi", big)
    assert controller.prepare_prompt("plain @ text", cwd=tmp_path) == ("plain @ text", [])


def test_use_template_takes_profile_model_and_settings(tmp_path: Path) -> None:
    config = Config(
        path=tmp_path / "c.toml",
        profiles={"far": Profile(name="far", backend="openai", base_url="http://127.0.0.1:9/v1",
                                 model="m1", system_prompt="profile says")},
        templates={"t": Template(name="t", profile="far", model="m2", system_prompt="tpl says",
                                 options={"temperature": 0.5})},
    )
    controller = make(tmp_path, server_choice_stub(), config)[0]
    controller.open(None)
    template = controller.use_template("t")
    assert template.name == "t" and controller.pending_template is template
    assert controller.choice.profile == "far"
    assert controller.choice.backend_config.model == "m2"  # the template's model wins
    assert controller.settings() == ("tpl says", {"temperature": 0.5})
    controller.open(None)  # leaving the new conversation forgets the template
    assert controller.pending_template is None
    with pytest.raises(ControllerError, match="no template 'x'"):
        controller.use_template("x")


def test_failed_send_with_attachments_is_retried_not_duplicated(
    tmp_path: Path, openai_server: Any
) -> None:
    controller, store, _ = make(tmp_path, server_choice(openai_server, "http:500-always@cattach"))
    files = [Attachment("n.md", "text", "text/plain", b"n\n")]

    async def scenario() -> None:
        reply = controller.start("send", "q", attachments=files)
        await controller.run(reply)
        assert reply.error
        again = controller.start("send", "q", attachments=files)
        assert again.kind == "regenerate"
        await controller.run(again)
        other = controller.start("send", "q", attachments=[])  # not the same turn: a new one
        assert other.kind == "send"
        await controller.run(other)

    asyncio.run(scenario())
    assert controller.conversation is not None
    users = [m for m in store.all_messages(controller.conversation.id) if m.role == "user"]
    assert [m.content for m in users] == ["q", "q"]
    assert [a.name for a in store.attachments_for([users[0].id])[users[0].id]] == ["n.md"]
    assert users[1].id not in store.attachments_for([users[1].id])


def server_choice_stub() -> Any:
    from chatterm.backend import BackendConfig
    from chatterm.config import Choice

    return Choice("openai", BackendConfig(), {}, None, None)


def test_an_edited_prompt_keeps_its_attachments(tmp_path: Path, openai_server: Any) -> None:
    tag = "cattach_edit"
    controller, store, _ = make(tmp_path, server_choice(openai_server, f"echo@{tag}"))
    files = [Attachment("n.md", "text", "text/plain", b"n\n")]

    async def scenario() -> None:
        first = controller.start("send", "q1", attachments=files)
        await controller.run(first)
        assert controller.conversation is not None
        [user] = [m for m in store.branch(controller.conversation.id) if m.role == "user"]
        edit = controller.start("edit", "q2", user.id)
        await controller.run(edit)

    asyncio.run(scenario())
    assert controller.conversation is not None
    [edited] = [m for m in store.branch(controller.conversation.id) if m.role == "user"]
    assert edited.content == "q2"
    assert [a.name for a in store.attachments_for([edited.id])[edited.id]] == ["n.md"]
    last = [r.body for r in openai_server.requests if r.model == f"echo@{tag}"][-1]
    assert last["messages"][-1]["content"] == "File: n.md\n```markdown\nn\n```\n\nq2"


def test_at_folder_attaches_its_text_files_and_tells_what_it_left_out(tmp_path: Path) -> None:
    from chatterm.controller_events import Told

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("a\n")
    (tmp_path / "docs" / "big.txt").write_text("x" * (MAX_TEXT_BYTES + 1))
    (tmp_path / "docs" / "pic.bin").write_bytes(b"\x00bin")
    controller, _, seen = make(tmp_path, server_choice_stub())
    text, attached = controller.prepare_prompt("read @docs/", cwd=tmp_path)
    assert text == "read docs/"
    assert [a.name for a in attached] == ["docs/a.md"]
    told = [e.message for e in seen if isinstance(e, Told)]
    assert len(told) == 1 and "left out 1 file(s)" in told[0] and "big.txt" in told[0]
