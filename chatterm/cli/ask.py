"""`chatterm ask`: one prompt in, one streamed reply out, the exchange saved."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatterm.backend import Backend, BackendError, Metadata, Notice, ReasoningDelta, TextDelta
from chatterm.chat import ChatSession, ReplyOutcome, memory_store
from chatterm.cli import start_collecting
from chatterm.cli.failures import Failure, for_stderr
from chatterm.cli.inputs import compose_prompt, read_piped_stdin
from chatterm.cli.options import AskOutput, CommonOptions
from chatterm.cli.render import ReplySink, choose_sink
from chatterm.config import Choice, Config, Template, load_config
from chatterm.paths import history_path
from chatterm.runtime import open_backend
from chatterm.sanitize import safe_json
from chatterm.store import Conversation, HistoryStore
from chatterm.templates import resolve_with_template

if TYPE_CHECKING:
    from chatterm.attachments import Gathered


def run_ask(common: CommonOptions, output: AskOutput, prompt: str | None) -> int:
    config = load_config()
    template = _template(config, output.template)
    attached = _gather(output)  # reads and checks every file before anything else happens
    uses_stdin = "-" in output.files or "-" in output.images
    text = _question(prompt, "" if uses_stdin else read_piped_stdin(), template, attached)
    choice = resolve_with_template(
        config, template, profile=common.profile, backend=common.backend, model=common.model,
        base_url=common.base_url, options=common.raw_options(), system_prompt=common.system,
        debug=common.debug,
    )
    with HistoryStore(history_path()) as history:
        # Find the conversation before building the backend: a wrong id costs nothing.
        conversation = find_conversation(history, common)
        backend, options = open_backend(choice)
        if attached is not None:
            _check_images(backend, choice, attached)
            for notice in attached.notices:
                _say(notice)
        turn = _Turn(text, attached.attachments if attached else [], output.template)
        if not output.no_log:
            return _ask(history, conversation, backend, options, choice, turn, common, output)
        scratch, conversation = _scratch_copy(history, conversation)
        with scratch:
            return _ask(scratch, conversation, backend, options, choice, turn, common, output)


@dataclass(frozen=True, slots=True)
class _Turn:
    """What this `ask` sends: the question, its attachments, the template that shaped it."""

    text: str
    attachments: list[Any]
    template: str | None


def _template(config: Config, name: str | None) -> Template | None:
    if name is None:
        return None
    from chatterm.templates import get_template

    return get_template(config, name)


def _gather(output: AskOutput) -> Gathered | None:
    """-f and -a, read in full; None (and nothing imported) when there are none."""
    if not output.files and not output.images:
        return None
    from chatterm.attachments import gather

    if output.files.count("-") + output.images.count("-") > 1:
        raise Failure("stdin can be attached only once (-f - or -a -)")
    return gather(output.files, output.images)


def _question(
    prompt: str | None, stdin_text: str, template: Template | None, attached: Gathered | None
) -> str:
    """The stdin rule, then the template's pattern. With attachments a question is optional."""
    from chatterm.templates import fill_prompt, needs_input

    try:
        raw = compose_prompt(prompt, stdin_text)
    except Failure:
        if not (attached and attached.attachments) and needs_input(template):
            if template is not None and template.prompt is not None:
                raise Failure(
                    f"template {template.name} needs input: give a prompt or pipe text into stdin"
                ) from None
            raise
        raw = ""
    return fill_prompt(template, raw)


def _check_images(backend: Backend, choice: Choice, attached: Gathered) -> None:
    """Refuse images the backend or model cannot take before anything is stored or sent."""
    if not attached.images:
        return
    model = choice.backend_config.model or backend.default_model
    if not backend.accepts_images(model):
        what = f"model {model}" if model else f"backend {choice.backend}"
        raise Failure(
            f"{what} takes no images (-a); use a vision-language model or drop -a"
        )


def _ask(
    store: HistoryStore,
    conversation: Conversation | None,
    backend: Backend,
    options: dict[str, Any],
    choice: Choice,
    turn: _Turn,
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
        code = asyncio.run(_stream(session, backend, turn, sink, common.debug))
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
    session: ChatSession, backend: Backend, turn: _Turn, sink: ReplySink, debug: bool
) -> int:
    try:
        new = session.conversation is None
        events = session.send(turn.text, turn.attachments)
        if new and turn.template and session.conversation is not None:
            session.store.set_template(session.conversation.id, turn.template)
        async for event in events:
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
    branch = history.branch(conversation.id)
    attached = history.attachments_for(m.id for m in branch)
    for message in branch:
        parent = scratch.add_message(copy.id, message.role, message.content, parent_id=parent).id
        scratch.add_attachments(parent, attached.get(message.id, []))
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
