"""Managing conversations (rename, delete, export, settings) and choosing the model.

Why here: these actions open a dialog, then make one store call; the model switch only
changes which backend the *next* message goes to, so the history keeps, per message, the
backend and model that wrote it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import Static

from chatterm import export
from chatterm.backend import BackendError
from chatterm.plugins import available_backends
from chatterm.store import Conversation
from chatterm.tui.base import ChattermBase, guarded
from chatterm.tui.commands import choice_for_target, describe_choice
from chatterm.tui.dialogs import ConfirmDialog, LineDialog, SettingsDialog
from chatterm.tui.model_dialog import ModelDialog


def export_filename(conversation: Conversation, fmt: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", conversation.title).strip("-").lower()[:40]
    return f"chatterm-{slug or 'conversation'}-{conversation.id[:8]}.{fmt}"


class ManageActions(ChattermBase):
    """Rename, delete, export, conversation settings, model switch."""

    # --- conversation management --------------------------------------------------------

    def action_rename(self) -> None:
        conversation = self.conversation
        if conversation is None:
            self.tell("send a first message; a new conversation has no title yet")
            return

        def done(title: str | None) -> None:
            if title is not None and title.strip():
                self._rename(conversation.id, " ".join(title.split()))

        self.push_screen(LineDialog("Rename conversation", conversation.title), done)

    @guarded
    def _rename(self, conv_id: str, title: str) -> None:
        self.store.rename_conversation(conv_id, title)
        self.conversation = self.store.get_conversation(conv_id)
        if self.conversation is not None:
            self.query_one("#title", Static).update(Text(self.conversation.title))
        self.sidebar.reload()

    def action_delete(self) -> None:
        conversation = self.conversation
        if conversation is None or self._busy():
            return

        async def done(yes: bool | None) -> None:
            if yes:
                await self._delete(conversation)

        self.push_screen(
            ConfirmDialog(f"Delete “{conversation.title}” and all its messages?"), done
        )

    @guarded
    async def _delete(self, conversation: Conversation) -> None:
        self.store.delete_conversation(conversation.id)
        self.drafts.pop(conversation.id, None)
        await self.open_conversation(None)
        self.sidebar.reload()
        self.tell(f"Deleted “{conversation.title}”")

    @guarded
    def action_export(self, fmt: str = "md") -> None:
        conversation = self.conversation
        if conversation is None:
            self.tell("nothing to export: this conversation is empty")
            return
        default = str(Path.cwd() / export_filename(conversation, fmt))

        def done(path_text: str | None) -> None:
            if not path_text or not path_text.strip():
                return
            self.export_to(conversation.id, Path(path_text.strip()).expanduser())

        self.push_screen(
            LineDialog("Export to file (.json writes JSON, anything else Markdown)", default),
            done,
        )

    @guarded
    def export_to(self, conv_id: str, path: Path) -> Path | None:
        conversation = self.store.get_conversation(conv_id)
        if conversation is None:
            return None
        if path.suffix.lower() == ".json":
            document = export.to_json(conversation, self.store.all_messages(conv_id))
        else:
            document = export.to_markdown(conversation, self.store.branch(conv_id))
        try:
            path.write_text(document + "\n", encoding="utf-8")
        except OSError as exc:
            self.fail(f"cannot write {path}: {exc.strerror or exc}")
            return None
        self.tell(f"Exported to {path.resolve()}")
        return path

    def action_settings(self) -> None:
        conversation = self.conversation
        if conversation is None:
            pending = self.pending_settings or {}
            system = pending.get("system_prompt", self.choice.system_prompt)
            options = pending.get("options", {})
        else:
            system, options = conversation.system_prompt, conversation.options

        def done(result: dict[str, Any] | None) -> None:
            if result is None:
                return
            if self.conversation is None:
                self.pending_settings = result
                self.tell("Settings will apply to this new conversation")
                return
            with self.guard():
                self.store.update_conversation_settings(
                    self.conversation.id,
                    system_prompt=result["system_prompt"],
                    options=result["options"],
                )
                self.conversation = self.store.get_conversation(self.conversation.id)
                if self.session is not None:
                    self.session.refresh()
                self.tell("Conversation settings saved")

        self.push_screen(SettingsDialog(system, dict(options)), done)

    # --- models -------------------------------------------------------------------------

    def action_switch_model(self) -> None:
        suggestions: list[tuple[str, str]] = []
        for name, profile in sorted(self.config.profiles.items()):
            what = " · ".join(x for x in (profile.backend, profile.model) if x)
            suggestions.append((f"profile:{name}", what))
        backend = self.pool.cached(self.choice)

        async def fetch() -> list[str]:
            if backend is None:
                return []
            return await backend.list_models()

        self.push_screen(
            ModelDialog(describe_choice(self.choice), suggestions, fetch), self._model_chosen
        )

    def _model_chosen(self, target: str | None) -> None:
        if target:
            self.switch_to(target)

    @guarded
    def switch_to(self, target: str) -> None:
        """Send the next message to ``target`` (see ``choice_for_target``)."""
        try:
            choice = choice_for_target(target, self.choice, self.config, available_backends())
        except (ValueError, BackendError) as exc:
            self.fail(str(getattr(exc, "message", exc)))
            return
        self.choice = choice
        self.status_line.set_target(choice.backend, choice.backend_config.model)
        self.tell(f"Next message goes to {describe_choice(choice)}")
