"""The TUI's attachment widgets driven through the pilot on a small host app.

The chips row, the attach dialog (path completion, errors shown in place) and the collapsed
block for a stored attachment, with real files on disk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from chatterm.attachments import Attachment, Gathered
from chatterm.tui.widgets.attachment_chips import (
    AttachDialog,
    AttachmentBlock,
    AttachmentChip,
    AttachmentChips,
    complete_path,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(40)


class Host(App[None]):
    def __init__(self, cwd: Path) -> None:
        super().__init__()
        self.cwd = cwd
        self.changes = 0

    def compose(self) -> ComposeResult:
        yield Static("prompt goes here")
        yield AttachmentChips(id="chips")

    def on_attachment_chips_changed(self, event: AttachmentChips.Changed) -> None:
        self.changes += 1

    def attach(self) -> None:
        def done(result: Gathered | None) -> None:
            if result is not None:
                self.query_one(AttachmentChips).add(result.attachments)

        self.push_screen(AttachDialog(self.cwd), done)


def run(coro: Any) -> None:
    asyncio.run(coro)


def test_path_completion(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("n")
    (tmp_path / "src").mkdir()
    (tmp_path / ".hidden").write_text("h")
    assert complete_path("no", tmp_path) == "notes.md"
    assert complete_path("s", tmp_path) == "src/"
    assert complete_path("notes.md", tmp_path) is None
    assert complete_path("h", tmp_path) is None
    assert complete_path(".h", tmp_path) == ".hidden"
    (tmp_path / "src" / "app.py").write_text("x")
    assert complete_path("src/a", tmp_path) == "src/app.py"


def test_attach_through_the_dialog_and_remove_a_chip(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# notes\n")
    (tmp_path / "shot.png").write_bytes(PNG)

    async def scenario() -> None:
        app = Host(tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            chips = app.query_one(AttachmentChips)
            assert not chips.display or not chips.has_class("-has-chips")
            app.attach()
            await pilot.pause()
            await pilot.press("n", "o")
            await pilot.pause(0.2)  # the suggester runs in a worker
            await pilot.press("tab")
            assert app.screen.query_one("#path", Input).value == "notes.md"
            await pilot.press("enter")
            await pilot.pause()
            app.attach()
            await pilot.pause()
            for key in "shot.png":
                await pilot.press(key)
            await pilot.press("enter")
            await pilot.pause()
            pending = chips.attachments
            assert [(a.name, a.kind) for a in pending] == [("notes.md", "text"),
                                                           ("shot.png", "image")]
            assert chips.has_class("-has-chips")
            labels = [str(chip.render()) for chip in chips.query(AttachmentChip)]
            assert labels[0].startswith("text notes.md · 8 B")
            assert labels[1].startswith("image shot.png")
            chips.query(AttachmentChip).first().focus()
            await pilot.press("delete")
            await pilot.pause()
            assert [a.name for a in chips.attachments] == ["shot.png"]
            assert chips.take()[0].mime == "image/png"
            await pilot.pause()
            assert chips.attachments == [] and not chips.has_class("-has-chips")
            assert app.changes == 4

    run(scenario())


def test_dialog_reports_a_bad_path_and_stays_open(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01binary")

    async def scenario() -> None:
        app = Host(tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            app.attach()
            await pilot.pause()
            for key in "blob.bin":
                await pilot.press(key)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, AttachDialog)
            error = str(app.screen.query_one("#error", Static).render())
            assert "blob.bin is a binary file" in error
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, AttachDialog)
            assert app.query_one(AttachmentChips).attachments == []

    run(scenario())


def test_stored_attachment_is_a_collapsed_block_with_safe_text(tmp_path: Path) -> None:
    hostile = Attachment("evil\x1b[31m[bold]x.txt", "text", "text/plain",
                         b"line one\n\x1b]0;title\x07[red]two[/red]\n")

    class Blocks(App[None]):
        def compose(self) -> ComposeResult:
            yield AttachmentBlock(hostile)

    async def scenario() -> None:
        app = Blocks()
        async with app.run_test(size=(100, 30)) as pilot:
            block = app.query_one(AttachmentBlock)
            assert block.collapsed
            title = str(block.query_one("CollapsibleTitle", Static).render())
            assert "[bold]x.txt" in title and "\x1b" not in title
            assert "file evil" in title and "· 2 lines ·" in title
            block.collapsed = False
            await pilot.pause()
            body = str(block.query_one(".attachment-text", Static).render())
            assert "[red]two[/red]" in body and "\x1b" not in body and "\x07" not in body

    run(scenario())
