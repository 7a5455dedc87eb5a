"""`chatterm ask`: one prompt in, one streamed reply out, the exchange saved."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from chatterm.backend import Backend, BackendError, Metadata, Notice, ReasoningDelta, TextDelta
from chatterm.chat import ChatSession, ReplyOutcome, memory_store
from chatterm.cli import start_collecting
from chatterm.cli.failures import Failure, for_stderr
from chatterm.cli.inputs import compose_prompt, read_piped_stdin
from chatterm.cli.options import AskOutput, CommonOptions
from chatterm.cli.render import ReplySink, choose_sink
from chatterm.config import Choice, load_config
from chatterm.paths import history_path
from chatterm.runtime import open_backend
from chatterm.sanitize import safe_json
from chatterm.store import Conversation, HistoryStore


def run_ask(common: CommonOptions, output: AskOutput, prompt: str | None) -> int:
    text = compose_prompt(prompt, read_piped_stdin())
    config = load_config()
    choice = common.resolve(config)
    with HistoryStore(history_path()) as history:
        # Find the conversation before building the backend: a wrong id costs nothing.
        conversation = find_conversation(history, common)
        backend, options = open_backend(choice)
        if not output.no_log:
            return _ask(history, conversation, backend, options, choice, text, common, output)
        scratch, conversation = _scratch_copy(history, conversation)
        with scratch:
            return _ask(scratch, conversation, backend, options, choice, text, common, output)


def _ask(
    store: HistoryStore,
    conversation: Conversation | None,
    backend: Backend,
    options: dict[str, Any],
    choice: Choice,
    text: str,
    common: CommonOptions,
    output: AskOutput,
) -> int:
    session = ChatSession(
        store,
        backend,
        backend_name=choice.backend,
        model=choice.backend_config.model,
        options=options,
        conversation=conversation,
        system_prompt=choice.system_prompt,
    )
    sink = choose_sink(output.raw, collect=output.json or output.no_stream)
    start_collecting()
    try:
        code = asyncio.run(_stream(session, backend, text, sink, common.debug))
    except KeyboardInterrupt:
        sink.close()
        _say(f"interrupted; {_saved_where(session, output)}")
        return 130
    outcome = session.last_outcome or ReplyOutcome()
    if code == 0:
        _print_result(sink, outcome, session, output)
    if output.usage:
        _print_usage(outcome)
    return code


async def _stream(
    session: ChatSession, backend: Backend, text: str, sink: ReplySink, debug: bool
) -> int:
    try:
        async for event in session.send(text):
            kind = type(event)
            if kind is TextDelta:
                sink.text(event.text)  # type: ignore[union-attr]
            elif kind is ReasoningDelta:
                sink.reasoning(event.text)  # type: ignore[union-attr]
            elif kind is Notice:
                _say(event.message)  # type: ignore[union-attr]
            elif kind is Metadata and debug:
                _say(f"backend: {dict(event.values)}")  # type: ignore[union-attr]
    except BackendError as exc:
        sink.close()
        partial = session.last_outcome.text if session.last_outcome else ""
        kept = f" (partial reply kept in conversation {session.conversation.id})" if (
            partial and session.conversation
        ) else ""
        print(f"chatterm: error: {for_stderr(exc.message)}{kept}", file=sys.stderr)
        return exc.exit_code
    finally:
        await backend.aclose()
    sink.close()
    return 0


def find_conversation(store: HistoryStore, common: CommonOptions) -> Conversation | None:
    if common.session:
        found = store.get_conversation(common.session)
        if found is None:
            raise Failure(f"no conversation {common.session!r} (see `chatterm sessions list`)")
        return found
    if common.continue_last:
        found = store.latest_conversation()
        if found is None:
            raise Failure("no conversation to continue yet: ask something first")
        return found
    return None


def _scratch_copy(
    history: HistoryStore, conversation: Conversation | None
) -> tuple[HistoryStore, Conversation | None]:
    """--no-log: continue from the saved history but write only to memory."""
    scratch = memory_store()
    if conversation is None:
        return scratch, None
    copy = scratch.create_conversation(conversation.title, conversation.system_prompt)
    parent: int | None = None
    for message in history.branch(conversation.id):
        parent = scratch.add_message(copy.id, message.role, message.content, parent_id=parent).id
    return scratch, scratch.get_conversation(copy.id)


def _print_result(
    sink: ReplySink, outcome: ReplyOutcome, session: ChatSession, output: AskOutput
) -> None:
    from chatterm.cli.render import CollectSink, choose_sink

    if output.json:
        result = result_json(outcome, session, output.no_log)
        # A terminal gets every control as a \u escape; a pipe gets the JSON byte-exact.
        dump = safe_json if sys.stdout.isatty() else json.dumps
        print(dump(result, ensure_ascii=False))
    elif output.no_stream and isinstance(sink, CollectSink):
        final = choose_sink(output.raw, collect=False)
        final.text("".join(sink.pieces))
        final.close()


def result_json(outcome: ReplyOutcome, session: ChatSession, no_log: bool) -> dict[str, Any]:
    conv = session.conversation
    return {
        "conversation_id": None if no_log or conv is None else conv.id,
        "message_id": None if no_log else outcome.message_id,
        "reply": outcome.text,
        "reasoning": outcome.reasoning or None,
        "backend": outcome.backend,
        "model": outcome.model,
        "status": outcome.status,
        "finish_reason": outcome.finish_reason,
        "usage": {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
        },
        "timings": {
            "first_token_s": _round(outcome.first_token_s),
            "duration_s": _round(outcome.duration_s),
            "tokens_per_second": _round(outcome.tokens_per_second),
        },
        "metadata": dict(outcome.metadata),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _print_usage(outcome: ReplyOutcome) -> None:
    prompt = outcome.prompt_tokens if outcome.prompt_tokens is not None else "?"
    completion = outcome.completion_tokens if outcome.completion_tokens is not None else "?"
    rate = outcome.tokens_per_second
    speed = f", {rate:.1f} tokens/s" if rate else ""
    _say(f"usage: {prompt} prompt + {completion} completion tokens{speed}")


def _saved_where(session: ChatSession, output: AskOutput) -> str:
    if output.no_log or session.conversation is None:
        return "nothing saved (--no-log)"
    return f"partial reply saved in conversation {session.conversation.id} (chatterm -c to continue)"


def _say(message: str) -> None:
    """A notice for people on stderr: masked and sanitised always, even into a pipe (it may
    quote a server's words, a model id or a URL)."""
    print(f"chatterm: {for_stderr(message)}", file=sys.stderr, flush=True)
