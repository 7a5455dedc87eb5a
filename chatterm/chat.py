"""A conversation being continued with a backend: the one place that turns history into a request
and a streamed reply back into history.

Both front ends (``chatterm ask`` and the TUI) drive a :class:`ChatSession`, so they save the same
way: the user message is stored before anything is sent, the reply is written to the database
as it streams (appended pieces, on a timer, off the event loop: see :class:`_Flusher`), and
every exit path (finish, server error, Ctrl-C, SIGTERM, SIGHUP, Esc, a dropped connection, a
full disk) leaves the partial reply stored and marked. What is sent as context follows one
rule (:func:`context_turns`), and each conversation remembers where it was answered
(``route``, see :mod:`chatterm.continuation`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatterm.backend import (
    Backend,
    BackendError,
    ChatMessage,
    ChatRequest,
    Finish,
    ImagePart,
    StreamEvent,
    TextDelta,
    Usage,
)
from chatterm.events import NullHandler, dispatch
from chatterm.store import (
    COMPLETE,
    ERROR,
    INTERRUPTED,
    STREAMING,
    Conversation,
    HistoryStore,
    Message,
    PieceWriter,
    StoredAttachment,
    StoreError,
    title_from_prompt,
    writer_token,
)

# How often a streaming reply is written to the database. Short enough that a killed process
# loses little, long enough that the per-chunk path stays a list append.
FLUSH_INTERVAL_S = 0.5


@dataclass(slots=True)
class ReplyOutcome:
    """What happened to the last reply, for status lines, ``--json`` and ``--usage``."""

    message_id: int | None = None
    # The reply as it streamed; ``text`` joins it only when asked (a big reply is not copied
    # for nothing).
    pieces: list[str] = field(default_factory=list)
    reasoning: str = ""
    status: str = STREAMING
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None
    backend: str | None = None
    first_token_s: float | None = None
    last_token_s: float | None = None
    duration_s: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # The reasoning as it arrives (``reasoning`` is set from it when the reply ends).
    thoughts: list[str] = field(default_factory=list, repr=False)
    # Characters of ``pieces`` let go once they were written to the history (a session made
    # with ``keep_text=False``); while nonzero, ``text`` is not the whole reply and raises.
    released: int = 0

    def live_text(self) -> str:
        """The text so far, for a front end drawing the reply while it streams: joins a copy
        and leaves ``pieces`` as the flusher expects them (``text`` would merge them)."""
        return "".join(self.pieces)

    def live_reasoning(self) -> str:
        return "".join(self.thoughts)

    @property
    def text(self) -> str:
        if self.released:
            raise RuntimeError("the reply's text was let go once written (keep_text=False)")
        if len(self.pieces) > 1:
            self.pieces[:] = ["".join(self.pieces)]
        return self.pieces[0] if self.pieces else ""

    @property
    def has_text(self) -> bool:
        return self.released > 0 or any(self.pieces)

    @property
    def tokens_per_second(self) -> float | None:
        """The server's own figure when it reports one (llama.cpp's ``timings``), else the
        completion tokens over the time from the first to the last token."""
        timings = self.metadata.get("timings")
        if isinstance(timings, dict):
            rate = timings.get("predicted_per_second")
            if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
                return float(rate)
        if not self.completion_tokens or self.first_token_s is None:
            return None
        last = self.last_token_s if self.last_token_s is not None else self.duration_s
        if last is None or self.completion_tokens < 2:
            return None
        decode_s = last - self.first_token_s
        # The first token's arrival starts the clock, so it is not counted.
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 else None


def context_turns(
    branch: list[Message], attached: Mapping[int, list[StoredAttachment]] | None = None
) -> list[ChatMessage]:
    """The turns sent as context: user and assistant strictly alternating, from a user turn.

    The rule (README, "What is sent"): a reply with no text (it failed or was stopped before
    any arrived) is not sent, and neither is the user message it answered, so one failed turn
    can never make the next request send two user messages in a row (servers with strict chat
    templates refuse that) nor grow the context on every retry. Both stay in the history,
    marked. A partial reply that has text is sent: it is what the user saw. A user message's
    attachments (``attached``, by message id) go with it as they went the first time.
    """
    attached = attached or {}
    turns: list[ChatMessage] = []
    for message in branch:
        if message.role == "user":
            if turns and turns[-1].role == "user":
                turns.pop()  # it got no reply with text
            if message.id in attached:
                turns.append(_with_attachments(message, attached[message.id]))
            else:
                turns.append(ChatMessage("user", message.content))
        elif message.role == "assistant" and message.content and turns and (
            turns[-1].role == "user"
        ):
            turns.append(ChatMessage("assistant", message.content))
    return turns


def _with_attachments(message: Message, items: list[StoredAttachment]) -> ChatMessage:
    """A user message with its files laid out in the prompt and its images as parts."""
    from chatterm.attachments import compose_with_files

    files = [(a.name, a.text) for a in items if a.kind == "text"]
    images = tuple(ImagePart(a.mime, a.data) for a in items if a.kind == "image")
    return ChatMessage("user", compose_with_files(message.content, files), images)


def memory_store() -> HistoryStore:
    """A throwaway store for ``--no-log``: same code path, nothing written to disk."""
    return HistoryStore(Path(":memory:"))


class _OutcomeRecorder(NullHandler):
    """What a reply's events other than text leave in its :class:`ReplyOutcome`, through the
    one event dispatch (chatterm.events) the front ends use too."""

    def __init__(self, outcome: ReplyOutcome, started: float) -> None:
        self._outcome = outcome
        self._started = started

    def on_reasoning(self, text: str) -> None:
        self._outcome.thoughts.append(text)
        if self._outcome.first_token_s is None:
            self._outcome.first_token_s = time.monotonic() - self._started

    def on_usage(self, usage: Usage) -> None:
        if usage.prompt_tokens is not None:
            self._outcome.prompt_tokens = usage.prompt_tokens
        if usage.completion_tokens is not None:
            self._outcome.completion_tokens = usage.completion_tokens

    def on_finish(self, finish: Finish) -> None:
        self._outcome.finish_reason = finish.reason

    def on_metadata(self, values: dict[str, Any]) -> None:
        self._outcome.metadata.update(values)
        resolved = values.get("model")
        if isinstance(resolved, str):
            self._outcome.model = resolved


class ChatSession:
    """Continue one conversation (or start one on the first send) with one backend.

    The backend, model and options can be switched between replies; each stored reply records
    which backend and model wrote it.
    """

    def __init__(
        self,
        store: HistoryStore,
        backend: Backend,
        *,
        backend_name: str,
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
        conversation: Conversation | None = None,
        system_prompt: str | None = None,
        route: Mapping[str, Any] | None = None,
        keep_text: bool = True,
    ) -> None:
        self.store = store
        self.backend = backend
        # False: a reply's text is dropped from memory once it is in the history (`ask`
        # writing to a pipe needs only what streams; a 100 MB reply held whole is 100 MB of
        # fresh pages to fault in, a third of the time it takes to stream it).
        self.keep_text = keep_text
        self.backend_name = backend_name
        self.model = model
        self.options: dict[str, Any] = dict(options or {})
        self.conversation = conversation
        self._new_system_prompt = system_prompt
        self.last_outcome: ReplyOutcome | None = None
        # Where replies come from (chatterm.continuation.route_of), remembered by the
        # conversation so a continuation goes back there; None records nothing.
        self.route: dict[str, Any] | None = dict(route) if route is not None else None
        # Set when the end of the last reply could not be saved (disk full, ...).
        self.save_error: StoreError | None = None
        if conversation is not None and system_prompt is not None:
            store.update_conversation_settings(conversation.id, system_prompt=system_prompt)
            self.conversation = store.get_conversation(conversation.id)

    # --- settings ------------------------------------------------------------------------

    def switch_backend(
        self,
        backend: Backend,
        *,
        backend_name: str,
        model: str | None,
        options: Mapping[str, Any] | None = None,
        route: Mapping[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.backend_name = backend_name
        self.model = model
        if options is not None:
            self.options = dict(options)
        if route is not None:
            self.route = dict(route)

    @property
    def system_prompt(self) -> str | None:
        if self.conversation is not None:
            return self.conversation.system_prompt
        return self._new_system_prompt

    def messages(self) -> list[Message]:
        """The active branch, oldest first."""
        if self.conversation is None:
            return []
        return self.store.branch(self.conversation.id)

    def refresh(self) -> None:
        if self.conversation is not None:
            self.conversation = self.store.get_conversation(self.conversation.id)

    # --- sending -------------------------------------------------------------------------

    def send(
        self, prompt: str, attachments: Sequence[Any] = (), *, title: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Store ``prompt`` (and its attachments) as the next user message and stream the reply.

        ``attachments`` are :class:`chatterm.attachments.Attachment` values, already read and
        checked; they are stored with the message, so ``-c`` re-sends them as they were.
        ``title`` names a new conversation when the prompt is not what a user would recognise
        (``git diff | chatterm ask "write a commit message"``: the question, not the diff).
        """
        if self.conversation is None:
            names = ", ".join(a.name for a in attachments)
            self.conversation = self.store.create_conversation(
                title_from_prompt(title or (prompt if prompt.strip() else names)),
                system_prompt=self._new_system_prompt,
            )
            parent_id = None
        else:
            self.refresh()
            assert self.conversation is not None
            parent_id = self.conversation.active_leaf_id
        user = self.store.add_message(self.conversation.id, "user", prompt, parent_id=parent_id)
        if attachments:
            self.store.add_attachments(user.id, attachments)
        return self._reply_to(user)

    def regenerate(self) -> AsyncIterator[StreamEvent]:
        """Answer the last user message again; the old reply stays as a sibling branch."""
        branch = self.messages()
        users = [m for m in branch if m.role == "user"]
        if not users:
            raise BackendError("nothing to regenerate: the conversation has no prompt yet")
        return self._reply_to(users[-1])

    def edit(self, message_id: int, new_text: str) -> AsyncIterator[StreamEvent]:
        """Replace an earlier user message by branching from its parent and resending.

        The files and images sent with the original go with the edited text too: an edit
        changes the question, not what it was about.
        """
        original = self.store.get_message(message_id)
        if self.conversation is None or original is None or original.role != "user":
            raise BackendError("only a user message of this conversation can be edited")
        user = self.store.add_message(
            self.conversation.id, "user", new_text, parent_id=original.parent_id
        )
        attached = self.store.attachments_for([original.id]).get(original.id)
        if attached:
            self.store.add_attachments(user.id, attached)
        return self._reply_to(user)

    def build_request(self, upto: Message) -> ChatRequest:
        assert self.conversation is not None
        branch = self.store.branch(self.conversation.id, upto.id)
        chat: list[ChatMessage] = []
        if self.system_prompt:
            chat.append(ChatMessage("system", self.system_prompt))
        attached = self.store.attachments_for(m.id for m in branch if m.role == "user")
        chat.extend(context_turns(branch, attached))
        return ChatRequest(chat, model=self.model, options=dict(self.options))

    def _reply_to(self, user: Message) -> AsyncIterator[StreamEvent]:
        """Store the reply's row now, then return the stream that fills it.

        The row exists as soon as ``send`` / ``regenerate`` / ``edit`` returns, so a front end
        that quits before the stream is first iterated still leaves a reply under the prompt
        (see :meth:`settle_unstarted`): never two user turns in a row.
        """
        assert self.conversation is not None
        request = self.build_request(user)
        if self.route is not None and not self.conversation.route:
            # Remember where this conversation goes even if its first reply fails.
            self.store.set_route(self.conversation.id, {**self.route, "model": self.model})
        reply = self.store.add_message(
            self.conversation.id,
            "assistant",
            "",
            parent_id=user.id,
            status=STREAMING,
            backend=self.backend_name,
            model=self.model,
            options=self.options,
        )
        outcome = ReplyOutcome(
            message_id=reply.id, model=self.model, backend=self.backend_name
        )
        self.last_outcome = outcome
        return self._stream_into(request, reply, outcome)

    def settle_unstarted(self) -> None:
        """Mark the last reply interrupted if its stream was never iterated.

        An async generator that never started runs no ``finally`` when closed, so a reply
        abandoned between ``send`` and the first event (quit right after Enter) would stay
        ``streaming`` forever. Harmless after a reply that ran: its status is settled then.
        """
        outcome = self.last_outcome
        if outcome is None or outcome.status != STREAMING or outcome.message_id is None:
            return
        if outcome.duration_s is not None:
            return
        outcome.status = INTERRUPTED
        outcome.error = "interrupted"
        outcome.duration_s = 0.0
        self.store.update_message(
            outcome.message_id, status=INTERRUPTED, error="interrupted",
            only_writer=writer_token(),
        )
        self.refresh()

    async def _stream_into(
        self, request: ChatRequest, reply: Message, outcome: ReplyOutcome
    ) -> AsyncIterator[StreamEvent]:
        pieces = outcome.pieces
        thoughts = outcome.thoughts
        flusher = _Flusher(
            self.store, reply.id, pieces, thoughts, None if self.keep_text else outcome
        )
        started = time.monotonic()
        timer = asyncio.create_task(flusher.run())
        try:
            events = self.backend.stream(request)
            try:
                recorder = _OutcomeRecorder(outcome, started)
                async for event in events:
                    if type(event) is TextDelta:  # the hot path: one check per chunk
                        pieces.append(event.text)
                        outcome.last_token_s = time.monotonic() - started
                        if outcome.first_token_s is None:
                            outcome.first_token_s = outcome.last_token_s
                    else:
                        dispatch(event, recorder)
                    if flusher.error is not None:
                        raise flusher.error
                    yield event
            finally:
                # Closing the stream is what stops the backend's work (HTTP, decoding thread).
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
            outcome.status = COMPLETE
        except BackendError as exc:
            outcome.status = ERROR
            outcome.error = exc.message
            raise
        except StoreError as exc:
            outcome.status = ERROR
            outcome.error = exc.message
            raise
        except Exception as exc:
            # A bug or a local failure: keep what arrived, say what broke.
            outcome.status = ERROR
            outcome.error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"[:300]
            raise
        except BaseException:
            # Cancelled (Esc, Ctrl-C, SIGTERM, SIGHUP) or the consumer stopped reading.
            outcome.status = INTERRUPTED
            outcome.error = "interrupted"
            raise
        finally:
            timer.cancel()
            outcome.reasoning = "".join(thoughts)
            outcome.duration_s = time.monotonic() - started
            # The writer catches up in its thread while the event loop stays free (the TUI
            # keeps drawing and taking keys); cancelled again meanwhile, the rest is written
            # here anyway, so the reply is never left unsaved, and the cancel goes on after.
            cancelled = False
            if flusher.writer.threaded:
                try:
                    await asyncio.to_thread(flusher.writer.stop_and_wait)
                except asyncio.CancelledError:
                    cancelled = True
            self._finish(reply.id, outcome, flusher)
            if cancelled:
                raise asyncio.CancelledError

    def _finish(self, reply_id: int, outcome: ReplyOutcome, flusher: _Flusher) -> None:
        """Write the rest of the reply and its outcome: the pieces are joined and the reply
        indexed here, once. Should the disk refuse even this, the row stays ``streaming`` with
        what was flushed, and the next chatterm to open the history marks it interrupted."""
        assert self.conversation is not None
        try:
            flusher.finish()
            self.store.update_message(
                reply_id,
                only_writer=writer_token(),  # not a message that took the id of one deleted
                pieces_chars=flusher.written,
                status=outcome.status,
                error=outcome.error,
                model=outcome.model,
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                finish_reason=outcome.finish_reason,
                first_token_s=outcome.first_token_s,
                duration_s=outcome.duration_s,
            )
            if self.route is not None and (outcome.has_text or outcome.status == COMPLETE):
                self.store.set_route(
                    # The model as asked for (an alias a gateway resolves stays an alias;
                    # none asked: the server's default again next time).
                    self.conversation.id, {**self.route, "model": self.model}
                )
        except StoreError as exc:
            self.save_error = exc
            if outcome.status == COMPLETE:
                outcome.status = ERROR
                outcome.error = exc.message
            return
        self.refresh()


# The most text one piece holds: a fast stream is written in pieces of this size, so one
# write (and the copy it needs) stays small however far the writer is behind.
MAX_PIECE_CHARS = 1 << 22


# A word cut at a flush is held back for the next piece only if it is shorter than this: a long
# run without whitespace (a base64 blob) is written as it is.
HELD_WORD_CHARS = 4096


def _held_word(parts: list[str]) -> str:
    """Take off the end of ``parts`` what follows its last whitespace, and return it.

    Nothing is taken when the text ends in whitespace, has none, or its last word is
    ``HELD_WORD_CHARS`` or longer. Only the last few KB are searched and only the chunk holding
    the cut is copied, never the whole text.
    """
    held = 0  # characters after the chunk being searched
    for index in range(len(parts) - 1, -1, -1):
        chunk = parts[index]
        lowest = max(0, len(chunk) - (HELD_WORD_CHARS - held))
        cut = max(chunk.rfind(" ", lowest), chunk.rfind("\n", lowest), chunk.rfind("\t", lowest))
        if cut >= 0:
            if cut == len(chunk) - 1 and held == 0:
                return ""  # the text ends in whitespace: no word is cut
            word = chunk[cut + 1 :] + "".join(parts[index + 1 :])
            if len(word) >= HELD_WORD_CHARS - 1:
                return ""
            parts[index:] = [chunk[: cut + 1]]
            return word
        held += len(chunk)
        if held >= HELD_WORD_CHARS - 1:
            return ""
    return ""


class _Flusher:
    """Cuts what streamed since the last write into the next piece for the history.

    The writer (``PieceWriter``) takes a piece every ``FLUSH_INTERVAL_S``, so what the user has
    seen reaches the database within a second even while the stream is idle; each write costs
    the size of the new text, never of the whole reply, and runs off the event loop. A piece
    ends at a whitespace where it can, so search (which indexes pieces) never sees a word cut
    in two. A storage error is raised by the stream at its next event.
    """

    __slots__ = (
        "_carry",
        "_counted",
        "_pieces",
        "_release",
        "_text_done",
        "_thought_done",
        "_thoughts",
        "_waiting",
        "writer",
        "written",
    )

    def __init__(
        self,
        store: HistoryStore,
        message_id: int,
        pieces: list[str],
        thoughts: list[str],
        release: ReplyOutcome | None = None,
    ) -> None:
        self._pieces = pieces
        # Set: the chunks taken for a piece are emptied in ``pieces`` (counted in its
        # ``released``), so the reply is not held in memory once it is in the history.
        self._release = release
        self._thoughts = thoughts
        self._text_done = 0
        self._thought_done = 0
        self._carry = ""  # text after the last whitespace, held for the next piece
        self._counted = 0  # pieces[:_counted] are in ``_waiting`` or written
        self._waiting = 0  # characters streamed and not yet taken
        self.written = 0  # characters (text and reasoning) taken for the history so far
        self.writer: PieceWriter = store.piece_writer(
            message_id, self.take, FLUSH_INTERVAL_S, self.pending
        )

    @property
    def error(self) -> StoreError | None:
        return self.writer.error

    def pending(self) -> int:
        """About how many characters of text wait to be written (the writer's cue to write
        early). Counts only the chunks that arrived since the last call."""
        pieces, counted = self._pieces, self._counted
        end = len(pieces)
        if end > counted:
            self._waiting += sum(map(len, pieces[counted:end]))
            self._counted = end
        return self._waiting

    def take(self, final: bool) -> tuple[str, str] | None:
        """The next piece: up to MAX_PIECE_CHARS of new text (None: nothing new)."""
        pieces, start = self._pieces, self._text_done
        end, size = start, len(self._carry)
        available = len(pieces)
        while end < available and size < MAX_PIECE_CHARS:
            size += len(pieces[end])
            end += 1
        self.pending()
        self._waiting -= size - len(self._carry)
        thought_end = len(self._thoughts)
        idle = end == start and thought_end == self._thought_done
        if idle and not self._carry:
            return None
        parts = pieces[start:end]
        if self._release is not None and end > start:
            pieces[start:end] = [""] * (end - start)  # the text lives on in ``parts``
            self._release.released += size - len(self._carry)
        if self._carry:
            parts.insert(0, self._carry)
        # Hold back a word cut here, unless the stream has gone quiet (then what was shown is
        # written whole, however it ends).
        carry = "" if final or idle else _held_word(parts)
        # One join: the piece is copied once on its way to SQLite (a 4 MB piece copied three
        # times held the GIL for milliseconds the stream was waiting for).
        text = parts[0] if len(parts) == 1 else "".join(parts)  # [] when only reasoning came
        self._carry = carry
        thoughts = "".join(self._thoughts[self._thought_done : thought_end])
        self.written += len(text) + len(thoughts)
        self._text_done, self._thought_done = end, thought_end
        return text, thoughts

    def finish(self) -> None:
        """Write the rest and wait until all is written (raises a storage error)."""
        self.writer.finish()

    async def run(self) -> None:
        """The timer for an unthreaded writer (``:memory:``); a threaded one keeps its own."""
        if self.writer.threaded:
            return
        while self.writer.error is None:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self.writer.poll()
