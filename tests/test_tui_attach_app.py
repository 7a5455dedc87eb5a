"""Issue 11 in the real app: attachments and templates through the pilot.

The app is built as in tests/test_tui.py (a HistoryStore on disk, the loopback OpenAI server,
which records every request body), so what is asserted is what went over the socket: the file
layout of ``ask -f`` in the user message, ``image_url`` parts for images, the template's system
prompt; and what the history keeps: the attachments (shown collapsed after reopening), the
template the conversation started from, and the export that carries both.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from test_tui import SIZE, make_app, screen_text, server_choice, settle
from textual.widgets import Input, Static

from chatterm.config import Config, Template
from chatterm.store import HistoryStore
from chatterm.tui.app import ChattermApp, build_app
from chatterm.tui.widgets.attachment_chips import AttachDialog, AttachmentBlock, AttachmentChip

PNG = b"\x89PNG\r\n\x1a\n" + bytes(40)
NOTES = "# notes\nsee `x`\n"


def run(coro: Any) -> None:
    asyncio.run(coro)


def bodies(server: Any, tag: str) -> list[dict[str, Any]]:
    return [r.body for r in server.requests
            if r.path.endswith("/chat/completions") and r.model == f"echo@{tag}"]


def user_content(body: dict[str, Any]) -> Any:
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p["text"] for p in content if p.get("type") == "text")


async def attach(app: ChattermApp, pilot: Any, path: str) -> None:
    await pilot.press("alt+a")
    await pilot.pause()
    assert isinstance(app.screen, AttachDialog)
    app.screen.query_one("#path", Input).value = path
    await pilot.press("enter")
    await pilot.pause()


async def send_box(app: ChattermApp, pilot: Any, text: str) -> None:
    app.prompt_input.focus()
    app.prompt_input.text = text
    await pilot.press("enter")
    await settle(app, pilot)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text(NOTES)
    (tmp_path / "shot.png").write_bytes(PNG)
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01binary")
    return tmp_path


def test_attach_key_dialog_chips_and_request_layout(files: Path, openai_server: Any) -> None:
    tag = "tuiatt_key"

    async def scenario() -> None:
        app, store = make_app(files, server_choice(openai_server, f"echo@{tag}"))
        async with app.run_test(size=SIZE) as pilot:
            # Path completion in the dialog opened by the key.
            await pilot.press("alt+a")
            await pilot.pause()
            assert isinstance(app.screen, AttachDialog)
            await pilot.press("n", "o")
            await pilot.pause(0.2)  # the suggester runs in a worker
            await pilot.press("tab")
            assert app.screen.query_one("#path", Input).value == "notes.md"
            await pilot.press("enter")
            await pilot.pause()
            await attach(app, pilot, "shot.png")
            chips = app.attachment_chips
            assert [(a.name, a.kind) for a in chips.attachments] == [
                ("notes.md", "text"), ("shot.png", "image"),
            ]
            assert chips.display and chips.has_class("-has-chips")
            shown = screen_text(app)
            assert "text notes.md · 16 B" in shown and "image shot.png" in shown
            await send_box(app, pilot, "what is this?")
            assert chips.attachments == [] and not chips.has_class("-has-chips")
            assert app.prompt_input.text == ""
            [body] = bodies(openai_server, tag)
            content = user_content(body)
            assert isinstance(content, list)
            assert text_of(content) == (
                f"File: notes.md\n```markdown\n{NOTES}```\n\nwhat is this?"
            )
            images = [p for p in content if p["type"] == "image_url"]
            assert images == [{"type": "image_url", "image_url": {
                "url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}]
            assert app.conversation is not None
            [user] = [m for m in store.branch(app.conversation.id) if m.role == "user"]
            assert user.content == "what is this?"
            stored = store.attachments_for([user.id])[user.id]
            assert [(a.name, a.kind) for a in stored] == [("notes.md", "text"),
                                                          ("shot.png", "image")]

    run(scenario())


def test_at_path_attaches_existing_files_and_a_bad_one_sends_nothing(
    files: Path, openai_server: Any
) -> None:
    tag = "tuiatt_at"

    async def scenario() -> None:
        app, store = make_app(files, server_choice(openai_server, f"echo@{tag}"))
        async with app.run_test(size=SIZE) as pilot:
            await send_box(app, pilot, "check @blob.bin please")
            assert bodies(openai_server, tag) == []
            assert app.conversation is None and store.count_conversations() == 0
            assert app.prompt_input.text == "check @blob.bin please"  # kept to be fixed
            assert any("blob.bin is a binary file" in text for _, text in app.notices)

            await send_box(app, pilot, "summarise @notes.md, ask @alice")
            [body] = bodies(openai_server, tag)
            assert user_content(body) == (
                f"File: notes.md\n```markdown\n{NOTES}```\n\nsummarise notes.md, ask @alice"
            )
            assert app.prompt_input.text == ""  # the box held "@notes.md", it is taken all the same
            assert app.conversation is not None
            [user] = [m for m in store.branch(app.conversation.id) if m.role == "user"]
            assert user.content == "summarise notes.md, ask @alice"
            assert [a.name for a in store.attachments_for([user.id])[user.id]] == ["notes.md"]

    run(scenario())


def test_removed_chip_is_not_sent(files: Path, openai_server: Any) -> None:
    tag = "tuiatt_remove"

    async def scenario() -> None:
        app, _ = make_app(files, server_choice(openai_server, f"echo@{tag}"))
        async with app.run_test(size=SIZE) as pilot:
            await attach(app, pilot, "notes.md")
            await attach(app, pilot, "shot.png")
            chip = app.attachment_chips.query(AttachmentChip).first()
            chip.focus()
            await pilot.press("delete")
            await pilot.pause()
            assert [a.name for a in app.attachment_chips.attachments] == ["shot.png"]
            await send_box(app, pilot, "only the image")
            [body] = bodies(openai_server, tag)
            content = user_content(body)
            assert text_of(content) == "only the image"
            assert [p["type"] for p in content].count("image_url") == 1

    run(scenario())


def test_stored_attachment_is_collapsed_after_reopening_and_exported(
    files: Path, openai_server: Any
) -> None:
    tag = "tuiatt_reopen"
    hostile = "evil\x1b]0;pwn\x07[bold]x[/bold]\n"
    (files / "evil.txt").write_text(hostile)

    async def first() -> str:
        app, store = make_app(files, server_choice(openai_server, f"echo@{tag}"))
        async with app.run_test(size=SIZE) as pilot:
            await send_box(app, pilot, "look at @evil.txt and @shot.png")
            assert app.conversation is not None
            conv_id = app.conversation.id
        store.close()
        return conv_id

    async def second(conv_id: str) -> None:
        store = HistoryStore(files / "history.db")
        app = build_app(
            server_choice(openai_server, f"echo@{tag}"), Config(path=files / "config.toml"),
            store, session_id=conv_id, state_file=files / "state.json",
            user_themes_dir=files / "themes",
        )
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            blocks = list(app.view.query(AttachmentBlock))
            assert [b.attachment.name for b in blocks] == ["evil.txt", "shot.png"]
            assert all(b.collapsed for b in blocks)
            # Indented as the prompt under them is, focused or not.
            message = blocks[0].parent
            text = message.query_one(".user-text")
            for focused in (False, True):
                if focused:
                    message.focus()
                    await pilot.pause()
                assert {b.region.x for b in blocks} == {text.content_region.x}
            title = str(blocks[0].query_one("CollapsibleTitle", Static).render())
            assert "file evil.txt · 1 lines" in title
            assert "image shot.png · image/png" in str(
                blocks[1].query_one("CollapsibleTitle", Static).render())
            blocks[0].collapsed = False
            await pilot.pause()
            body = str(blocks[0].query_one(".attachment-text", Static).render())
            assert "[bold]x[/bold]" in body and "\x1b" not in body and "\x07" not in body
            assert "pwn" in body

            md = files / "out.md"
            assert app.export_to(conv_id, md) == md
            text = md.read_text()
            assert f"File: evil.txt\n```text\n{hostile}```" in text  # byte-exact in a file
            assert "*Image: shot.png (image/png, 48 bytes, sha256 " in text
            assert md.stat().st_mode & 0o777 == 0o600
            out = files / "out.json"
            app.export_to(conv_id, out)
            data = json.loads(out.read_text())
            [user] = [m for m in data["messages"] if m["role"] == "user"]
            assert [a["name"] for a in user["attachments"]] == ["evil.txt", "shot.png"]
            assert user["attachments"][0]["text"] == hostile
            assert base64.b64decode(user["attachments"][1]["data_base64"]) == PNG
        store.close()

    conv_id = asyncio.run(first())
    run(second(conv_id))


def test_new_conversation_from_template_in_the_palette(
    tmp_path: Path, openai_server: Any
) -> None:
    tag = "tuiatt_template"
    template = Template(
        name="review", description="review code", system_prompt="You review code [tersely].",
        options={"temperature": 0.25}, prompt="Review this:\n{input}",
    )
    config = Config(path=tmp_path / "config.toml", templates={"review": template})

    async def scenario() -> None:
        app, store = make_app(tmp_path, server_choice(openai_server, f"echo@{tag}"), config)
        async with app.run_test(size=SIZE) as pilot:
            commands = {c.title: c for c in app.get_system_commands(app.screen)}
            command = commands["New conversation from template review"]
            assert command.help == "review code"
            await command.callback()
            await pilot.pause()
            assert app.conversation is None
            await send_box(app, pilot, "def f(): pass")
            [body] = bodies(openai_server, tag)
            assert body["messages"][0] == {"role": "system",
                                           "content": "You review code [tersely]."}
            assert user_content(body) == "Review this:\ndef f(): pass"
            assert body["temperature"] == 0.25
            assert app.prompt_input.text == ""
            assert app.conversation is not None
            conv_id = app.conversation.id
            assert store.template_of(conv_id) == "review"
            assert store.get_conversation(conv_id).system_prompt == "You review code [tersely]."
            # A second message in it goes without the pattern; a new conversation without it.
            await send_box(app, pilot, "and now?")
            assert user_content(bodies(openai_server, tag)[-1]) == "and now?"
            await pilot.press("ctrl+n")
            await pilot.pause()
            await send_box(app, pilot, "plain")
            last = bodies(openai_server, tag)[-1]
            assert last["messages"][0]["role"] == "user"
            assert app.conversation is not None and store.template_of(app.conversation.id) is None
            out = tmp_path / "t.json"
            app.export_to(conv_id, out)
            assert json.loads(out.read_text())["template"] == "review"

    run(scenario())


def test_unknown_template_is_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        from chatterm.backend import BackendConfig
        from chatterm.config import Choice

        app, _ = make_app(tmp_path, Choice("openai", BackendConfig(), {}, None, None))
        async with app.run_test(size=SIZE) as pilot:
            await app.new_from_template("nope")
            await pilot.pause()
            assert any("no template 'nope'" in text for _, text in app.notices)
            assert app.controller.pending_template is None

    run(scenario())


def test_an_image_for_a_text_only_local_model_is_refused_before_storing(
    files: Path, tiny_model_dir: Path
) -> None:
    from chatterm.config import resolve

    async def scenario() -> None:
        config = Config(path=files / "config.toml")
        choice = resolve(config, backend="local", model=str(tiny_model_dir), env={})
        app, store = make_app(files, choice, config)
        async with app.run_test(size=SIZE) as pilot:
            await attach(app, pilot, "shot.png")
            await send_box(app, pilot, "what is in it?")
            assert store.count_conversations() == 0
            assert any("takes no images" in text for _, text in app.notices)
            assert app.prompt_input.text == "what is in it?"  # kept, with its chip
            assert [a.name for a in app.attachment_chips.attachments] == ["shot.png"]

    run(scenario())


def test_a_conversation_holding_images_is_not_continued_on_a_text_only_model(
    files: Path, tiny_model_dir: Path
) -> None:
    from chatterm.attachments import Attachment
    from chatterm.config import resolve

    async def scenario() -> None:
        config = Config(path=files / "config.toml")
        choice = resolve(config, backend="local", model=str(tiny_model_dir), env={})
        app, store = make_app(files, choice, config)
        conv = store.create_conversation("pictures")
        user = store.add_message(conv.id, "user", "what is this?")
        store.add_attachments(user.id, [Attachment("shot.png", "image", "image/png", PNG)])
        store.add_message(conv.id, "assistant", "a picture", parent_id=user.id)
        async with app.run_test(size=SIZE) as pilot:
            await app.open_conversation(conv.id)
            assert [b.attachment.name for b in app.view.query(AttachmentBlock)] == ["shot.png"]
            await send_box(app, pilot, "and now?")
            assert [m.content for m in store.branch(conv.id)] == ["what is this?", "a picture"]
            assert any("earlier turns hold some" in text for _, text in app.notices)
            assert app.prompt_input.text == "and now?"

    run(scenario())


def test_pending_chips_stay_with_the_conversation_they_were_added_in(
    files: Path, openai_server: Any
) -> None:
    """Chips go with a prompt of their own conversation only: switching away keeps them
    aside (as the typed draft is), switching back shows them again, and the other
    conversation sends without them."""
    from test_tui import seed

    from chatterm.tui.screens.dialogs import ConfirmDialog

    tag = "tuiatt_switch"

    async def scenario() -> None:
        app, store = make_app(files, server_choice(openai_server, f"echo@{tag}"))
        first = seed(store, "First", [("a", "b")])
        second = seed(store, "Second", [("c", "d")])
        async with app.run_test(size=SIZE) as pilot:
            chips = app.attachment_chips
            await app.open_conversation(first)
            await attach(app, pilot, "notes.md")
            assert [a.name for a in chips.attachments] == ["notes.md"]

            await app.open_conversation(second)
            await pilot.pause()
            assert chips.attachments == [] and not chips.has_class("-has-chips")
            assert "notes.md" not in screen_text(app)
            await send_box(app, pilot, "nothing attached here")
            [body] = bodies(openai_server, tag)
            assert user_content(body) == "nothing attached here"
            sent = [m for m in store.branch(second) if m.role == "user"][-1]
            assert store.attachments_for([sent.id]).get(sent.id, []) == []

            # A new conversation (Ctrl+N) starts without them too, and keeps its own.
            app.prompt_input.focus()
            await pilot.press("ctrl+n")
            await pilot.pause()
            assert app.conversation is None and chips.attachments == []
            await attach(app, pilot, "shot.png")

            await app.open_conversation(first)
            await pilot.pause()
            assert [a.name for a in chips.attachments] == ["notes.md"]
            assert "text notes.md · 16 B" in screen_text(app)
            await send_box(app, pilot, "with the notes")
            body = bodies(openai_server, tag)[-1]
            assert text_of(user_content(body)) == (
                f"File: notes.md\n```markdown\n{NOTES}```\n\nwith the notes"
            )
            sent = [m for m in store.branch(first) if m.role == "user"][-1]
            assert [a.name for a in store.attachments_for([sent.id])[sent.id]] == ["notes.md"]
            assert chips.attachments == []

            # Chips pending in a conversation that is deleted go with it; the new
            # conversation's stay its own.
            await attach(app, pilot, "blob.bin")  # refused (binary): nothing added
            await attach(app, pilot, "notes.md")
            assert [a.name for a in chips.attachments] == ["notes.md"]
            app.prompt_input.focus()
            await pilot.press("f8")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("enter")
            await settle(app, pilot)
            assert store.get_conversation(first) is None
            await app.open_conversation(None)
            await pilot.pause()
            assert [a.name for a in chips.attachments] == ["shot.png"]
            await app.open_conversation(second)
            await pilot.pause()
            assert chips.attachments == []
            # Deleting the last conversation opens a new one: its own chips come back.
            await pilot.press("f8")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("enter")
            await settle(app, pilot)
            assert store.count_conversations() == 0 and app.conversation is None
            assert [a.name for a in chips.attachments] == ["shot.png"]

    run(scenario())
