"""`chatterm ask`: one prompt in, one streamed reply out, the exchange saved.

Every way out is kept and reported the same way: a finished reply (0), a backend or storage
failure (its code, one line), Ctrl-C / SIGTERM / SIGHUP (130 / 143 / 129, the partial reply
saved and marked), the reader of a pipe going away (141, quietly). ``--json`` prints its one
object on all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

from chatterm import endings
from chatterm.backend import Backend, BackendError, TextDelta
from chatterm.chat import ChatSession, ReplyOutcome, memory_store
from chatterm.cli import start_collecting
from chatterm.cli.failures import Failure, for_stderr, silence_stdout
from chatterm.cli.inputs import compose_prompt, read_piped_stdin
from chatterm.cli.render import ReplySink, choose_sink
from chatterm.cli.settings import AskOutput, CommonOptions
from chatterm.config import Choice, Config, Template, load_config
from chatterm.continuation import route_of
from chatterm.events import NullHandler, dispatch
from chatterm.paths import history_path
from chatterm.runtime import open_backend
from chatterm.sanitize import safe_json
from chatterm.store import ERROR, INTERRUPTED, Conversation, HistoryStore, StoreError
from chatterm.templates import apply_template

if TYPE_CHECKING:
    from chatterm.attachments import Gathered

BROKEN_PIPE = 141


@dataclasses.dataclass(slots=True)
class _Run:
    """What one `ask` run knows on the way out, whichever way it goes."""

    session: ChatSession | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Turn:
    """What this `ask` sends: the question, its attachments, the template that shaped it."""

    text: str
    gathered: Gathered | None = None
    template: str | None = None
    title: str | None = None  # the prompt argument, when piped stdin came before it

    @property
    def attachments(self) -> list[Any]:
        return self.gathered.attachments if self.gathered else []


class _AskHandler(NullHandler):
    """What `ask` does with the events other than text (the shared dispatch in chatterm.events):
    reasoning to the sink, notices to stderr, backend facts to stderr with --debug."""

    def __init__(self, sink: ReplySink, debug: bool) -> None:
        self._sink = sink
        self._debug = debug

    def on_reasoning(self, text: str) -> None:
        self._sink.reasoning(text)

    def on_notice(self, message: str) -> None:
        self._sink.flush()  # what came before the notice goes out before it (2>&1 keeps order)
        _say(message)

    def on_metadata(self, values: dict[str, Any]) -> None:
        if self._debug:
            self._sink.flush()
            _say(f"backend: {values}")


def run_ask(common: CommonOptions, output: AskOutput, prompt: str | None) -> int:
    endings.install()
    endings.handle_in_loops()
    run = _Run()
    try:
        return _run_ask(common, output, prompt, run)
    except BrokenPipeError:
        silence_stdout()
        return BROKEN_PIPE
    except endings.Ended as exc:
        _say(exc.message)
        return exc.exit_code
    except Exception as exc:
        # A failure before any reply (history, config, backend, usage): --json still prints
        # its one object, so a script learns what happened.
        message, code = getattr(exc, "message", None), getattr(exc, "exit_code", None)
        if not output.json or run.session is not None or not isinstance(message, str) or (
            not isinstance(code, int)
        ):
            raise
        print(f"chatterm: error: {for_stderr(message)}", file=sys.stderr)
        _print_failure_json(message)
        return code


def _print_failure_json(message: str) -> None:
    data = {
        "conversation_id": None, "message_id": None, "reply": "", "reasoning": None,
        "backend": None, "model": None, "status": ERROR, "error": message,
        "finish_reason": None, "usage": {"prompt_tokens": None, "completion_tokens": None},
        "timings": {"first_token_s": None, "duration_s": None, "tokens_per_second": None},
        "metadata": {},
    }
    dump = safe_json if sys.stdout.isatty() else json.dumps
    with contextlib.suppress(OSError, ValueError):
        print(dump(data, ensure_ascii=False), flush=True)


def _run_ask(common: CommonOptions, output: AskOutput, prompt: str | None, run: _Run) -> int:
    config = load_config()
    template = _template(config, output.template)
    gathered = _gather(output)  # every file read and checked before anything else happens
    uses_stdin = "-" in output.files or "-" in output.images
    text = _question(prompt, "" if uses_stdin else read_piped_stdin(), template, gathered)
    common = apply_template(common, template)
    title = prompt if prompt and prompt.strip() else None
    turn = _Turn(text, gathered, output.template, title)
    wants_conversation = bool(common.session or common.continue_last)
    try:
        history = HistoryStore(history_path())
    except StoreError:
        if not output.no_log or wants_conversation:
            raise
        # --no-log has nothing to read or write: it works without a usable history.
        return _ask_in_memory(None, None, config, common, output, turn, run)
    with history:
        # Find the conversation before building the backend: a wrong id costs nothing.
        conversation = find_conversation(history, common)
        if output.no_log:
            return _ask_in_memory(history, conversation, config, common, output, turn, run)
        choice = _choice(common, output, config, conversation)
        backend, options = open_backend(choice)
        return _ask(history, conversation, backend, options, choice, turn, common, output, run)


def _ask_in_memory(
    history: HistoryStore | None,
    conversation: Conversation | None,
    config: Any,
    common: CommonOptions,
    output: AskOutput,
    turn: _Turn,
    run: _Run,
) -> int:
    """--no-log: continue from the saved history (if asked) but write only to memory."""
    choice = _choice(common, output, config, conversation)
    backend, options = open_backend(choice)
    scratch, copy = _scratch_copy(history, conversation)
    with scratch:
        return _ask(scratch, copy, backend, options, choice, turn, common, output, run)


def _choice(
    common: CommonOptions, output: AskOutput, config: Any, conversation: Conversation | None
) -> Choice:
    choice = common.resolve_for(config, conversation)
    if output.no_stream:
        extra = {**choice.backend_config.extra, "stream": False}
        choice = dataclasses.replace(
            choice, backend_config=dataclasses.replace(choice.backend_config, extra=extra)
        )
    return choice


def _ask(
    store: HistoryStore,
    conversation: Conversation | None,
    backend: Backend,
    options: dict[str, Any],
    choice: Choice,
    turn: _Turn,
    common: CommonOptions,
    output: AskOutput,
    run: _Run,
) -> int:
    _check_images(backend, choice, turn.gathered, store, conversation)
    if turn.gathered is not None:
        for notice in turn.gathered.notices:
            _say(notice)
    session = ChatSession(
        store,
        backend,
        backend_name=choice.backend,
        model=choice.backend_config.model,
        options=options,
        conversation=conversation,
        system_prompt=choice.system_prompt,
        route=None if output.no_log else route_of(choice),
        keep_text=output.json,  # only --json prints the reply again at the end
    )
    run.session = session
    sink = choose_sink(output.raw, collect=output.json or output.no_stream)
    start_collecting()
    code: int | None
    try:
        code = _run_loop(_stream(session, backend, turn, sink, common.debug, run))
    except (KeyboardInterrupt, asyncio.CancelledError, endings.Ended):
        code = None
    except OSError:
        if endings.ended_by() is None:
            raise
        code = None  # the terminal went away with the hang-up: writing to it failed
    if code is None:  # ended by a signal: the partial reply is saved and marked
        _close_quietly(sink)
        outcome = session.last_outcome
        if outcome is not None and outcome.status not in (INTERRUPTED, ERROR):
            outcome.status = INTERRUPTED
        _say(f"{endings.describe()}; {_saved_where(session, output)}")
        code = endings.exit_code()
        run.error = endings.describe()
        if output.json:
            _print_json(session, output, run)
        return code
    outcome = session.last_outcome or ReplyOutcome()
    if output.json:
        _print_json(session, output, run)
    elif code == 0 and output.no_stream:
        _print_collected(sink, output)
    if output.usage:
        _print_usage(outcome)
    return code


def _run_loop(main: Any) -> int:
    """Run ``main`` with the ending signals pointed at it (they cancel it, so it saves).

    A signal that lands while asyncio is still setting up (before the task exists) raises
    ``Ended`` or cancels the task before it starts; both end as an interruption.
    """

    async def attached() -> int:
        task = asyncio.current_task()
        assert task is not None
        endings.attach_task(task)
        try:
            result: int = await main
            return result
        finally:
            endings.detach()

    if endings.ended_by() is not None:
        main.close()
        endings.settle()
        raise endings.Ended(endings.ended_by() or 2)
    with asyncio.Runner() as runner:
        return runner.run(attached())


async def _stream(
    session: ChatSession, backend: Backend, turn: _Turn, sink: ReplySink, debug: bool, run: _Run
) -> int:
    try:
        # Before send(): a model that cannot be loaded must not leave a conversation behind.
        await backend.prepare(session.model, session.options)
        new = session.conversation is None
        events: Any = session.send(turn.text, turn.attachments, title=turn.title)
        if new and turn.template and session.conversation is not None:
            session.store.set_template(session.conversation.id, turn.template)
        handler = _AskHandler(sink, debug)
        write_text = sink.text
        async with contextlib.aclosing(events):
            async for event in events:
                if type(event) is TextDelta:  # the hot path: one check per chunk
                    write_text(event.text)
                else:
                    dispatch(event, handler)
    except (BackendError, StoreError) as exc:
        _close_quietly(sink)
        run.error = exc.message
        print(f"chatterm: error: {for_stderr(exc.message)}{_kept(session)}", file=sys.stderr)
        return exc.exit_code
    finally:
        await backend.aclose()
    sink.close()
    if session.save_error is not None:
        run.error = session.save_error.message
        print(f"chatterm: error: {for_stderr(session.save_error.message)}", file=sys.stderr)
        return session.save_error.exit_code
    return 0


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
    prompt: str | None, stdin_text: str, template: Template | None, gathered: Gathered | None
) -> str:
    """The stdin rule, then the template's pattern. With attachments a question is optional."""
    from chatterm.templates import fill_prompt, needs_input

    try:
        raw = compose_prompt(prompt, stdin_text)
    except Failure:
        if not (gathered and gathered.attachments) and needs_input(template):
            if template is not None and template.prompt is not None:
                raise Failure(
                    f"template {template.name} needs input: give a prompt or pipe text into stdin"
                ) from None
            raise
        raw = ""
    return fill_prompt(template, raw)


def _check_images(
    backend: Backend,
    choice: Choice,
    gathered: Gathered | None,
    store: HistoryStore,
    conversation: Conversation | None,
) -> None:
    """Refuse images the backend or model cannot take before anything is stored or sent:
    new ones (-a), and those earlier turns of a continued conversation would re-send."""
    if gathered is not None and gathered.images:
        flag = "-a"
    elif conversation is not None and _branch_has_images(store, conversation):
        flag = "earlier turns"
    else:
        return
    model = choice.backend_config.model or backend.default_model
    if not backend.accepts_images(model):
        what = f"model {model}" if model else f"backend {choice.backend}"
        hint = "drop -a" if flag == "-a" else "continue with -m MODEL that takes images"
        raise Failure(f"{what} takes no images ({flag}); use a vision-language model or {hint}")


def _branch_has_images(store: HistoryStore, conversation: Conversation) -> bool:
    ids = [m.id for m in store.branch(conversation.id) if m.role == "user"]
    stored = store.attachments_for(ids) if ids else {}
    return any(a.kind == "image" for items in stored.values() for a in items)


def _kept(session: ChatSession) -> str:
    outcome = session.last_outcome
    if outcome is None or not outcome.has_text or session.conversation is None:
        return ""
    if session.save_error is not None:
        return ""
    return f" (partial reply kept in conversation {session.conversation.id})"


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
    history: HistoryStore | None, conversation: Conversation | None
) -> tuple[HistoryStore, Conversation | None]:
    """--no-log: continue from the saved history but write only to memory."""
    scratch = memory_store()
    if conversation is None or history is None:
        return scratch, None
    copy = scratch.create_conversation(conversation.title, conversation.system_prompt)
    parent: int | None = None
    branch = history.branch(conversation.id)
    attached = history.attachments_for(m.id for m in branch if m.role == "user")
    for message in branch:
        parent = scratch.add_message(
            copy.id, message.role, message.content, parent_id=parent,
            status=message.status if message.status in (ERROR, INTERRUPTED) else "complete",
        ).id
        scratch.add_attachments(parent, attached.get(message.id, []))
    return scratch, scratch.get_conversation(copy.id)


def _print_collected(sink: ReplySink, output: AskOutput) -> None:
    from chatterm.cli.render import CollectSink

    if isinstance(sink, CollectSink):
        final = choose_sink(output.raw, collect=False)
        final.text("".join(sink.pieces))
        final.close()


def _print_json(session: ChatSession, output: AskOutput, run: _Run) -> None:
    outcome = session.last_outcome or ReplyOutcome(status=ERROR, backend=session.backend_name)
    data = result_json(outcome, session, output.no_log)
    if run.error is not None:
        if outcome.status not in (ERROR, INTERRUPTED):
            data["status"] = ERROR
        data["error"] = run.error
    # A terminal gets every control as a \u escape; a pipe gets the JSON byte-exact.
    dump = safe_json if sys.stdout.isatty() else json.dumps
    with contextlib.suppress(OSError, ValueError):
        print(dump(data, ensure_ascii=False), flush=True)


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
        "error": outcome.error if outcome.status != "complete" else None,
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
    if output.no_log:
        return "nothing saved (--no-log)"
    conv = session.conversation
    if conv is None:
        return "nothing was sent yet"
    outcome = session.last_outcome
    if session.save_error is not None:
        return f"the history could not be written: {session.save_error.message}"
    if outcome is not None and outcome.has_text:
        return f"partial reply saved in conversation {conv.id} (chatterm -c to continue)"
    return f"no reply text had arrived; the prompt is saved in conversation {conv.id}"


def _close_quietly(sink: ReplySink) -> None:
    """Stop the sink on the way out; a closed terminal or pipe must not hide the real end."""
    try:
        sink.close()
    except BrokenPipeError:
        silence_stdout()
    except (OSError, ValueError):
        pass


def _say(message: str) -> None:
    """A notice for people on stderr: masked and sanitised always, even into a pipe (it may
    quote a server's words, a model id or a URL)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"chatterm: {for_stderr(message)}", file=sys.stderr, flush=True)
