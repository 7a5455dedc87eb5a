"""`chatterm sessions ...`: the history from the shell.

Everything read back from the history is untrusted (replies, titles). On a terminal it goes
through the sanitiser (:mod:`chatterm.sanitize`); into a pipe or a file, ``show`` and
``export`` stay byte-exact. ``list`` and ``search`` print one line per entry, so titles and
snippets are always folded to one safe line; their ``--json`` is the exact form.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer

from chatterm.cli.completion import complete_conversation
from chatterm.cli.failures import Failure

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _store():  # type: ignore[no-untyped-def]
    from chatterm.paths import history_path
    from chatterm.store import HistoryStore

    return HistoryStore(history_path())


def _ago(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _safe(text: str) -> str:
    """Titles and snippets are user/model text: one line, no control characters."""
    from chatterm.sanitize import safe_inline

    return safe_inline(text)


def _on_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (ValueError, OSError):
        return False


def _echo_document(text: str, is_json: bool) -> None:
    """A document read from the history: byte-exact into a pipe, sanitised on a terminal."""
    if _on_terminal():
        from chatterm.sanitize import safe_json_text, safe_text

        text = safe_json_text(text) if is_json else safe_text(text)
    # Not typer.echo: click strips ANSI sequences when stdout is not a terminal, and an
    # export into a pipe must be byte-exact.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_(
        limit: Annotated[int, typer.Option("--limit", "-l", help="How many to show.")] = 20,
        json_out: JsonFlag = False,
    ) -> None:
        """Most recent conversations first."""
        from chatterm.export import conversation_json

        with _store() as store:
            conversations = store.list_conversations(limit=limit)
        if json_out:
            data = [conversation_json(c, []) | {"messages": None} for c in conversations]
            _echo_document(json.dumps(data, ensure_ascii=False), is_json=True)
            return
        for c in conversations:
            typer.echo(f"{c.id}  {_ago(c.updated_at)}  {_safe(c.title)}")

    @app.command("show")
    def show(
        conversation_id: Annotated[str, typer.Argument(metavar="ID", autocompletion=complete_conversation)],
        json_out: JsonFlag = False,
    ) -> None:
        """Print a conversation (its active branch)."""
        from chatterm.export import to_json, to_markdown

        with _store() as store:
            conv = _get(store, conversation_id)
            messages = store.branch(conv.id)
            attached = store.attachments_for(m.id for m in messages)
            template = store.template_of(conv.id)
        if json_out:
            text = to_json(conv, messages, attached, template)
        else:
            text = to_markdown(conv, messages, attached, template)
        _echo_document(text, is_json=json_out)

    @app.command("search")
    def search(
        text: Annotated[list[str], typer.Argument(help="Words to find (all must match).")],
        limit: Annotated[int, typer.Option("--limit", "-l")] = 20,
        json_out: JsonFlag = False,
    ) -> None:
        """Full-text search over every message."""
        with _store() as store:
            hits = store.search(" ".join(text), limit=limit)
        if json_out:
            data = [
                {
                    "conversation_id": h.conversation_id, "title": h.conversation_title,
                    "message_id": h.message_id, "role": h.role, "snippet": h.snippet,
                    "matches": [list(span) for span in h.matches], "created_at": h.created_at,
                }
                for h in hits
            ]
            _echo_document(json.dumps(data, ensure_ascii=False), is_json=True)
            return
        for h in hits:
            title, snippet = _safe(h.conversation_title), _safe(h.snippet)
            typer.echo(f"{h.conversation_id}  {title}  [{_safe(h.role)}] {snippet}")
        if not hits:
            print("chatterm: no matches", file=sys.stderr)

    @app.command("export")
    def export(
        conversation_id: Annotated[str, typer.Argument(metavar="ID", autocompletion=complete_conversation)],
        fmt: Annotated[str, typer.Option("--format", "-f", help="md or json")] = "md",
        output: Annotated[
            str | None, typer.Option("--output", help="File to write (default stdout).")
        ] = None,
    ) -> None:
        """Export a conversation as Markdown or JSON."""
        from chatterm.export import render, write_private

        if fmt not in ("md", "json"):
            raise Failure(f"unknown format {fmt!r}: use md or json")
        with _store() as store:
            conv = _get(store, conversation_id)
            text = render(store, conv, store.branch(conv.id), as_json=fmt == "json")
        if output:
            try:
                write_private(output, text + "\n")
            except OSError as exc:  # a missing folder, a directory, no permission: the user's path
                raise Failure(f"cannot write {output}: {exc.strerror or exc}") from None
        else:
            _echo_document(text, is_json=fmt == "json")

    @app.command("rm")
    def rm(conversation_id: Annotated[str, typer.Argument(metavar="ID", autocompletion=complete_conversation)]) -> None:
        """Delete a conversation and all its messages."""
        with _store() as store:
            conv = _get(store, conversation_id)
            store.delete_conversation(conv.id)
        print(f"chatterm: deleted {conv.id}", file=sys.stderr)


def _get(store, conversation_id: str):  # type: ignore[no-untyped-def]
    conv = store.get_conversation(conversation_id)
    if conv is None:
        raise Failure(f"no conversation {conversation_id!r} (see `chatterm sessions list`)")
    return conv
