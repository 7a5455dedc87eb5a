"""The open conversation, headless: which one, its session and backend, and every turn in it.

Why it exists: the TUI used to keep this state in the app object, spread over three mixins that
read and wrote each other's widgets. Here it is one object with no Textual import, so every
rule (a reply row exists as soon as a prompt is stored; a failed send is retried, not
duplicated; a stop takes effect at the next chunk; switching conversations never stops a
reply) is tested without a UI (tests/test_controller.py). The front end calls the methods and
renders the events (:mod:`chatterm.controller_events`) handed to its listener.

Two steps per reply, so that a prompt is never lost:

* :meth:`ConversationController.start` (synchronous, called on Enter) stores the prompt and an
  empty reply row at once when the backend is already open (it is opened in the background as
  soon as it is chosen, see :meth:`prewarm`);
* :meth:`ConversationController.run` (async, in the front end's worker) opens the backend if it
  was not open yet, then streams. Whatever stops it, the reply is stored and marked.

This is a core module: no Textual.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from chatterm import export
from chatterm.backend import Backend, BackendError, BackendUnavailable, Usage
from chatterm.backend_pool import BackendPool, choice_key
from chatterm.chat import ChatSession
from chatterm.config import Choice, Config, ConfigError, Template, resolve
from chatterm.continuation import choice_for_conversation, route_of
from chatterm.controller_events import (
    ControllerEvent,
    ModelResolved,
    Opening,
    ReasoningArrived,
    Reply,
    ReplyEnded,
    ReplyKind,
    ReplyStarted,
    SendFailed,
    TextArrived,
    Told,
)
from chatterm.events import NullHandler, dispatch
from chatterm.local_models import cached_models
from chatterm.store import (
    ERROR,
    Conversation,
    HistoryStore,
    Message,
    StoredAttachment,
    StoreError,
)

# While a fast stream arrives from a buffer, ``async for`` may never suspend; hand the loop
# back this often so nothing else waits long for it (issue 9: no stall over 50 ms; at 50 ms a
# slice and the frame after it added up to 90 ms). Not much more often: each hand-back lets
# the UI lay out the screen again, and at 10 ms a 3,000-chunk reply took 2.6x longer to
# stream (bench/bench_tui.py); at 20 ms a 20,000-chunk reply is drawn as soon as at 50 ms.
# When the front end says input is waiting (``input_pending``), the loop is handed over at
# once, for as long as the front end needs to show it (the TUI: until the key reached its
# widget and the screen was drawn), so typing never waits for the rest of a slice.
YIELD_EVERY_S = 0.02
# Without a front end's own wait: passes of the loop given to waiting input (the app, the
# screen, the focused widget each take one).
INPUT_HOPS = 4
# Passes of the loop at each hand-back. One is not enough: a timer that came due while the
# stream held the loop (the screen's refresh, a blinking cursor, a clock) only wakes its task
# in the next pass, and that task runs in the pass after, by which time the stream, first in
# the queue again, had taken another whole slice. Measured with a 10 ms interval timer, it
# fired up to three slices late (143 ms).
HAND_BACK_HOPS = 3


async def pass_loop(times: int = INPUT_HOPS) -> None:
    """Let every task that is ready run, ``times`` over."""
    for _ in range(times):
        await asyncio.sleep(0)

Listener = Callable[[ControllerEvent], Awaitable[None] | None]


class ControllerError(Exception):
    """Something the user asked for cannot be done; ``message`` says why, in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def describe_choice(choice: Choice, model: str | None = None) -> str:
    """``profile NAME · backend · model`` for titles and the status line."""
    shown = model or choice.backend_config.model or "default model"
    where = f"profile {choice.profile} · " if choice.profile else ""
    return f"{where}{choice.backend} · {shown}"


def choice_for_target(
    target: str, current: Choice, config: Config, backends: Iterable[str]
) -> Choice:
    """Parse what the user typed in the model dialog into the choice for the next message.

    ``profile:NAME`` uses a profile of the config file; ``BACKEND:MODEL`` (or ``BACKEND:``)
    another installed backend; anything else is a model of the current backend. A Windows
    path such as ``C:\\models\\x`` is a model, because ``C`` is not a backend name.
    Raises ValueError with a message for the user.
    """
    target = target.strip()
    if not target:
        raise ValueError("nothing to switch to")
    debug = current.backend_config.debug
    head, sep, rest = target.partition(":")
    if head == "profile" and sep:
        try:
            return resolve(config, profile=rest.strip(), debug=debug)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
    if sep and head in set(backends):
        model = rest.strip() or None
        if head == current.backend:
            config_ = dataclasses.replace(current.backend_config, model=model)
            return dataclasses.replace(current, backend_config=config_)
        try:
            chosen = resolve(config, backend=head, model=model, debug=debug)
        except (ConfigError, BackendUnavailable) as exc:
            raise ValueError(exc.message) from None
        return dataclasses.replace(chosen, profile=None, system_prompt=current.system_prompt)
    config_ = dataclasses.replace(current.backend_config, model=target)
    return dataclasses.replace(current, backend_config=config_)


def branch_positions(all_messages: Iterable[Message]) -> dict[int, tuple[int, int]]:
    """For every message, its 1-based place among its siblings and how many there are."""
    groups: dict[int | None, list[int]] = {}
    for message in all_messages:
        groups.setdefault(message.parent_id, []).append(message.id)
    positions: dict[int, tuple[int, int]] = {}
    for ids in groups.values():
        ids.sort()
        for index, message_id in enumerate(ids, 1):
            positions[message_id] = (index, len(ids))
    return positions


class _ReplyHandler(NullHandler):
    """Backend events of one reply -> counts on the Reply and controller events."""

    __slots__ = ("controller", "reply")

    def __init__(self, controller: ConversationController, reply: Reply) -> None:
        self.controller = controller
        self.reply = reply

    def on_text(self, text: str) -> Any:
        reply = self.reply
        now = time.monotonic()
        reply.deltas += 1
        reply.last_chunk_at = now
        if reply.first_token_at is None:
            reply.first_token_at = now
        return self.controller.emit(TextArrived(reply, text))

    def on_reasoning(self, text: str) -> Any:
        if self.reply.first_token_at is None:
            self.reply.first_token_at = time.monotonic()
        return self.controller.emit(ReasoningArrived(self.reply, text))

    def on_usage(self, usage: Usage) -> Any:
        if usage.completion_tokens is not None:
            self.reply.completion_tokens = usage.completion_tokens

    def on_notice(self, message: str) -> Any:
        return self.controller.emit(Told(message, "warning"))

    def on_metadata(self, values: dict[str, Any]) -> Any:
        model = values.get("model")
        if isinstance(model, str) and model and model != self.reply.model:
            self.reply.model = model
            self.controller.resolved[self.controller.target_key()] = model
            return self.controller.emit(ModelResolved(self.reply, model))
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class BranchView:
    """One read of what the conversation view shows: the branch, the sibling positions of
    its messages, and the prompts ↑ recalls."""

    conversation_id: str | None
    branch: list[Message]
    positions: dict[int, tuple[int, int]]
    prompt_history: list[str]


class ConversationController:
    """The active conversation, its :class:`ChatSession` and the backend the next turn uses."""

    def __init__(
        self,
        store: HistoryStore,
        config: Config,
        choice: Choice,
        *,
        pool: BackendPool | None = None,
        listener: Listener | None = None,
        backends: Callable[[], Iterable[str]] | None = None,
        follow_routes: bool | None = None,
        input_pending: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self.store = store
        # The front end's "a key or click was posted since you last asked": None when not,
        # else what to await while it is handled (see YIELD_EVERY_S). Asked once per chunk of
        # a streaming reply; None here: the stream is handed back every YIELD_EVERY_S only.
        self.input_pending = input_pending
        self.config = config
        self.choice = choice
        self.pool = pool or BackendPool()
        self.listener = listener
        self.conversation: Conversation | None = None
        self.session: ChatSession | None = None
        # Settings chosen for a conversation that does not exist yet (F4 before the first send).
        self.pending_settings: dict[str, Any] | None = None
        # The [templates.NAME] the new conversation starts from (palette), until its first send.
        self.pending_template: Template | None = None
        self.reply: Reply | None = None  # the reply streaming now, maybe in another conversation
        self.last_reply: Reply | None = None
        # The model that actually answered, per target (from the backend's Metadata).
        self.resolved: dict[tuple[str, str | None], str] = {}
        self._backends = backends
        # (backend, server, model) combinations whose Backend.prepare has succeeded.
        self._prepared: set[tuple[Any, ...]] = set()
        # Nothing on the command line chose a backend: opening a conversation goes back to the
        # backend and model that last answered it, as ``ask -c`` does. The CLI says whether
        # flags chose (a default profile or OPENAI_BASE_URL does not count as choosing).
        self.follow_routes = choice.chosen_by_default if follow_routes is None else follow_routes

    # --- events ----------------------------------------------------------------------------

    def emit(self, event: ControllerEvent) -> Awaitable[None] | None:
        if self.listener is None:
            return None
        return self.listener(event)

    async def _emit(self, event: ControllerEvent) -> None:
        result = self.emit(event)
        if result is not None:
            await result

    # --- conversations ---------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self.reply is not None and not self.reply.ended

    def streaming_in(self, conv_id: str | None) -> bool:
        reply = self.reply
        return reply is not None and not reply.ended and reply.conversation_id == conv_id

    def open(self, conv_id: str | None) -> Conversation | None:
        """Make ``conv_id`` (None: a new conversation) the active one. Raises ControllerError."""
        conversation = None
        if conv_id is not None:
            conversation = self.store.get_conversation(conv_id)
            if conversation is None:
                raise ControllerError(f"conversation {conv_id} no longer exists")
        self.conversation = conversation
        self.session = None
        self.pending_settings = None
        self.pending_template = None
        if conversation is not None and self.follow_routes and conversation.route:
            self._follow_route(conversation)
        return conversation

    def _follow_route(self, conversation: Conversation) -> None:
        """Continue the conversation where it was last answered (chatterm.continuation)."""
        try:
            choice = choice_for_conversation(
                self.config, conversation, debug=self.choice.backend_config.debug
            )
        except (ConfigError, BackendError) as exc:
            self.emit(Told(f"{exc.message}; the next message goes to "
                           f"{self.describe_target()}", "warning"))
            return
        self.choice = dataclasses.replace(choice, chosen_by_default=True)

    def refresh(self) -> Conversation | None:
        if self.conversation is not None:
            self.conversation = self.store.get_conversation(self.conversation.id)
        return self.conversation

    def branch(self) -> list[Message]:
        if self.conversation is None:
            return []
        return self.store.branch(self.conversation.id)

    def read_view(self, store: HistoryStore | None = None) -> BranchView:
        """What the view shows of the open conversation, read from ``store`` (a connection
        of another thread: the TUI reads a conversation off its event loop, as a 50 MB reply
        takes a fifth of a second to read)."""
        store = store or self.store
        conversation = self.conversation
        if conversation is None:
            return BranchView(None, [], {}, store.recent_prompts(200))
        return BranchView(
            conversation.id,
            store.branch(conversation.id),
            branch_positions(store.all_messages(conversation.id)),
            store.recent_prompts(200),
        )

    def positions(self) -> dict[int, tuple[int, int]]:
        if self.conversation is None:
            return {}
        return branch_positions(self.store.all_messages(self.conversation.id))

    def prompt_history(self, limit: int = 200) -> list[str]:
        """Earlier prompts for ↑: every conversation's, newest last."""
        return self.store.recent_prompts(limit)

    def rename(self, title: str) -> Conversation:
        conversation = self._require_conversation("a new conversation has no title yet")
        cleaned = " ".join(title.split())
        if not cleaned:
            raise ControllerError("a title cannot be empty")
        self.store.rename_conversation(conversation.id, cleaned)
        return self._require(self.refresh())

    def delete(self) -> Conversation:
        """Delete the active conversation; the caller opens the neighbour it wants."""
        conversation = self._require_conversation("nothing to delete: this conversation is new")
        if self.streaming_in(conversation.id):
            raise ControllerError("a reply is streaming here; press Esc to stop it first")
        self.store.delete_conversation(conversation.id)
        self.conversation = None
        self.session = None
        return conversation

    def save_settings(self, system_prompt: str | None, options: dict[str, Any]) -> bool:
        """Store the conversation's settings; False when they wait for the first send."""
        if self.conversation is None:
            self.pending_settings = {"system_prompt": system_prompt, "options": dict(options)}
            return False
        self.store.update_conversation_settings(
            self.conversation.id, system_prompt=system_prompt, options=options
        )
        self.refresh()
        if self.session is not None:
            self.session.refresh()
        return True

    def settings(self) -> tuple[str | None, dict[str, Any]]:
        if self.conversation is None:
            pending = self.pending_settings or {}
            return (
                pending.get("system_prompt", self.choice.system_prompt),
                dict(pending.get("options", {})),
            )
        return self.conversation.system_prompt, dict(self.conversation.options)

    def export_to(self, path: Path, conv_id: str | None = None) -> Path:
        """Write the conversation to ``path`` (``.json``: every branch; else Markdown)."""
        wanted = conv_id or (self.conversation.id if self.conversation else None)
        conversation = self.store.get_conversation(wanted) if wanted else None
        if conversation is None:
            raise ControllerError("nothing to export: this conversation is empty")
        as_json = path.suffix.lower() == ".json"
        # JSON: every branch; Markdown: the active one.
        messages = (
            self.store.all_messages(conversation.id) if as_json
            else self.store.branch(conversation.id)
        )
        document = export.render(self.store, conversation, messages, as_json=as_json)
        try:
            export.write_private(path, document + "\n")
        except OSError as exc:
            raise ControllerError(f"cannot write {path}: {exc.strerror or exc}") from None
        return path

    def step_branch(self, message_id: int, step: int) -> Message:
        """Show the sibling ``step`` away from ``message_id``; returns the sibling shown."""
        conversation = self._require_conversation("no other branch here")
        if self.streaming_in(conversation.id):
            raise ControllerError("a reply is streaming; press Esc to stop it first")
        message = self.store.get_message(message_id)
        if message is None:
            raise ControllerError("that message no longer exists")
        if message.parent_id is None:
            siblings = [m for m in self.store.all_messages(message.conversation_id)
                        if m.parent_id is None]
        else:
            siblings = self.store.children(message.parent_id)
        ids = [m.id for m in siblings]
        index = ids.index(message.id) + step if message.id in ids else -1
        if not 0 <= index < len(siblings):
            raise ControllerError(
                "no other branch here" if len(ids) < 2 else "no more branches that way"
            )
        self.store.set_active_leaf(conversation.id, self.newest_leaf(siblings[index]).id)
        self.refresh()
        return siblings[index]

    def open_at(self, conv_id: str, message_id: int) -> Conversation | None:
        """Open a conversation on the branch that holds ``message_id`` (a search hit)."""
        message = self.store.get_message(message_id)
        if message is None:
            raise ControllerError("that message no longer exists")
        on_branch = any(m.id == message_id for m in self.store.branch(conv_id))
        if not on_branch and not self.streaming_in(conv_id):
            self.store.set_active_leaf(conv_id, self.newest_leaf(message).id)
        return self.open(conv_id)

    def newest_leaf(self, message: Message) -> Message:
        current = message
        while children := self.store.children(current.id):
            current = children[-1]
        return current

    def _require_conversation(self, why: str) -> Conversation:
        if self.conversation is None:
            raise ControllerError(why)
        return self.conversation

    @staticmethod
    def _require(conversation: Conversation | None) -> Conversation:
        if conversation is None:
            raise ControllerError("the conversation no longer exists")
        return conversation

    # --- attachments and templates --------------------------------------------------------

    def attachments_for(self, message_ids: Iterable[int]) -> dict[int, list[StoredAttachment]]:
        """The stored attachments of the given messages (for the conversation view); none
        when the history cannot be read: the messages still show, without them."""
        try:
            return self.store.attachments_for(message_ids)
        except StoreError:
            return {}

    def prepare_prompt(
        self, text: str, pending: Iterable[Any] = (), cwd: Path | None = None
    ) -> tuple[str, list[Any]]:
        """The prompt to send and its attachments: the ones already attached (``pending``),
        then the existing files the text names as ``@path`` (written as plain ``path``).

        Everything is read and checked here, before anything is stored, with the checks of
        ``ask -f/-a``; a file that cannot go is a ControllerError naming it, and nothing is sent.
        What a folder left out (over the size cap) is told as a warning.
        """
        from chatterm.attachments import (
            MAX_TEXT_BYTES,
            AttachmentError,
            read_paths,
            split_at_paths,
        )

        attachments = list(pending)
        cleaned, mentioned = split_at_paths(text, cwd)
        if mentioned:
            base = cwd or Path.cwd()
            try:
                gathered = read_paths(
                    str(base / Path(p).expanduser()) if cwd is not None else p for p in mentioned
                )
            except AttachmentError as exc:
                raise ControllerError(exc.message) from None
            if cwd is not None:  # names as typed, not the absolute path
                gathered.attachments = [
                    _renamed(a, str(base), "") for a in gathered.attachments
                ]
            for notice in gathered.notices:
                self.emit(Told(notice, "warning"))
            have = {(a.name, a.sha256) for a in attachments}
            attachments += [a for a in gathered.attachments if (a.name, a.sha256) not in have]
        text_bytes = sum(a.size for a in attachments if a.kind == "text")
        if text_bytes > MAX_TEXT_BYTES:
            raise ControllerError(
                f"attached files are {text_bytes // 1024} KB; they may be at most "
                f"{MAX_TEXT_BYTES // (1024 * 1024)} MB in total"
            )
        return (cleaned if mentioned else text), attachments

    def use_template(self, name: str) -> Template:
        """Start the new conversation from ``[templates.NAME]``, as ``ask -t NAME`` does: its
        profile and model choose the backend, its system prompt and options become the
        conversation's settings, its prompt pattern wraps the first prompt, and the
        conversation records the template. Call it on a new conversation (after ``open(None)``).
        """
        from chatterm.templates import get_template

        if self.conversation is not None:
            raise ControllerError("a template starts a new conversation")
        try:
            template = get_template(self.config, name)
            choice = self.choice
            if template.profile:
                choice = resolve(
                    self.config, profile=template.profile, debug=choice.backend_config.debug
                )
        except (ConfigError, BackendError) as exc:
            raise ControllerError(exc.message) from None
        if template.model:
            choice = dataclasses.replace(
                choice,
                backend_config=dataclasses.replace(choice.backend_config, model=template.model),
            )
        self.choice = choice
        settings: dict[str, Any] = {"options": dict(template.options)}
        if template.system_prompt is not None:
            settings["system_prompt"] = template.system_prompt
        self.pending_settings = settings
        self.pending_template = template
        return template

    # --- where the next message goes -------------------------------------------------------

    def target_key(self) -> tuple[str, str | None]:
        return (self.choice.backend, self.choice.backend_config.model)

    def target_model(self) -> str | None:
        """The model that answers the next message, as well as it is known now."""
        resolved = self.resolved.get(self.target_key())
        if resolved:
            return resolved
        if self.choice.backend_config.model:
            return self.choice.backend_config.model
        backend = self.pool.cached(self.choice)
        return backend.default_model if backend is not None else None

    def describe_target(self) -> str:
        return describe_choice(self.choice, self.target_model())

    def switch_to(self, target: str) -> Choice:
        """Send the next message to ``target`` (see :func:`choice_for_target`)."""
        from chatterm.plugins import available_backends

        backends = self._backends() if self._backends is not None else available_backends()
        try:
            self.choice = choice_for_target(target, self.choice, self.config, backends)
        except (ValueError, BackendError) as exc:
            raise ControllerError(str(getattr(exc, "message", exc))) from None
        return self.choice

    async def prewarm(self) -> Backend | None:
        """Open the chosen backend now and let it get ready (``Backend.prepare``: a local
        model loads), so Enter can store the prompt at once and answer without a wait.

        A failure is not reported here: the next send meets it again before storing anything,
        reports it and keeps the prompt in the box.
        """
        choice = self.choice
        try:
            backend, options = await self.pool.get(choice)
            await self._prepare(choice, backend, options)
        except BackendError:
            return None
        return backend

    def _prepared_key(self, choice: Choice, backend: Backend) -> tuple[Any, ...]:
        return (*choice_key(choice), choice.backend_config.model or backend.default_model)

    async def _prepare(self, choice: Choice, backend: Backend, options: dict[str, Any]) -> None:
        key = self._prepared_key(choice, backend)
        if key in self._prepared:
            return
        await backend.prepare(choice.backend_config.model or backend.default_model, options)
        self._prepared.add(key)

    def opening_state(self) -> str:
        """What the status line says while the backend opens: a local model can take minutes."""
        if self.pool.cached(self.choice) is not None:
            return "connecting"
        if self.choice.backend == "local":
            return f"loading model {self.choice.backend_config.model or '(default)'}…"
        return f"opening {self.choice.backend}…"

    def model_suggestions(self, cache: Path | None = None) -> list[tuple[str, str]]:
        """What the model dialog offers before the server answers: profiles, recent, cached."""
        suggestions: list[tuple[str, str]] = []
        for name, profile in sorted(self.config.profiles.items()):
            what = " · ".join(x for x in (profile.backend, profile.model) if x)
            suggestions.append((f"profile:{name}", f"profile · {what}" if what else "profile"))
        seen = {value for value, _ in suggestions}
        try:
            recent = self.store.recent_models(10)
        except StoreError:
            recent = []
        for backend, model in recent:
            value = f"{backend}:{model}"
            if value not in seen:
                seen.add(value)
                suggestions.append((value, "recently used"))
        for model in cached_models(cache):
            value = f"local:{model}"
            if value not in seen:
                seen.add(value)
                suggestions.append((value, "in the Hugging Face cache"))
        return suggestions

    async def server_models(self) -> list[str]:
        """The models the current backend lists ([] when it cannot say)."""
        backend = self.pool.cached(self.choice)
        if backend is None:
            backend = await self.prewarm()
        if backend is None:
            return []
        try:
            return await backend.list_models()
        except BackendError:
            return []

    # --- replies ---------------------------------------------------------------------------

    def start(
        self,
        kind: ReplyKind,
        text: str = "",
        message_id: int | None = None,
        *,
        attachments: Iterable[Any] = (),
        typed: str | None = None,
    ) -> Reply:
        """Begin a reply; stores the prompt and the reply row now when the backend is open.

        ``attachments`` (read and checked, see :meth:`prepare_prompt`) go with a ``send``;
        ``typed`` is what the prompt box held, when it differs from ``text``.

        Raises ControllerError when another reply is streaming or there is nothing to answer,
        BackendError / StoreError when the prompt cannot be stored.
        """
        if self.streaming:
            raise ControllerError("a reply is still streaming; press Esc to stop it first")
        if kind == "regenerate" and self.conversation is None:
            raise ControllerError("nothing to regenerate yet")
        attached = list(attachments) if kind == "send" else []
        if kind == "send" and self._is_retry(text, attached):
            kind = "regenerate"  # the same prompt after a failure: answer it again, once
        reply = Reply(kind, prompt=text, edit_of=message_id, backend=self.choice.backend,
                      attachments=attached, typed=typed if typed != text else None)
        backend = self.pool.cached(self.choice)
        if backend is not None and self._prepared_key(self.choice, backend) in self._prepared:
            self._store(reply, backend, backend.validate_options(self.choice.options))
        self.reply = self.last_reply = reply
        return reply

    def _is_retry(self, text: str, attachments: list[Any]) -> bool:
        """True when the branch ends with this very prompt (and attachments) and a reply that
        failed empty."""
        if self.conversation is None:
            return False
        branch = self.branch()
        if not (
            len(branch) >= 2
            and branch[-2].role == "user"
            and branch[-2].content == text
            and branch[-1].role == "assistant"
            and branch[-1].status == ERROR
            and not branch[-1].content
        ):
            return False
        stored = self.attachments_for([branch[-2].id]).get(branch[-2].id, [])
        return [(a.name, a.sha256) for a in stored] == [(a.name, a.sha256) for a in attachments]

    def _store(
        self, reply: Reply, backend: Backend, options: dict[str, Any], check_images: bool = True
    ) -> None:
        """Store the prompt and an empty reply row (ChatSession does both at once)."""
        pending = self.pending_settings or {}
        settings = self.conversation.options if self.conversation else pending.get("options", {})
        options.update(backend.validate_options(settings or {}))
        model = self.choice.backend_config.model or backend.default_model
        if check_images and not backend.accepts_images(model):
            # As ask -a / -c: refused before anything is stored, never silently dropped.
            what = f"model {model}" if model else f"backend {self.choice.backend}"
            if any(a.kind == "image" for a in reply.attachments):
                raise BackendError(
                    f"{what} takes no images; use a vision-language model or remove the image"
                )
            if self._branch_has_images():
                raise BackendError(
                    f"{what} takes no images (earlier turns hold some); switch to a model "
                    "that takes images"
                )
        session = self._session_for(backend, model, options)
        new_conversation = session.conversation is None
        template = self.pending_template if new_conversation else None
        if template is not None and reply.kind == "send":
            from chatterm.templates import fill_prompt

            filled = fill_prompt(template, reply.prompt)
            if filled != reply.prompt:
                reply.typed = reply.box_text
                reply.prompt = filled
        if reply.kind == "send":
            events = session.send(reply.prompt, reply.attachments)
        elif reply.kind == "regenerate":
            events = session.regenerate()
        else:
            assert reply.edit_of is not None
            events = session.edit(reply.edit_of, reply.prompt)
        self.conversation = session.conversation
        assert self.conversation is not None
        if new_conversation and pending.get("options"):
            self.store.update_conversation_settings(self.conversation.id, options=pending["options"])
        if new_conversation and template is not None:
            self.store.set_template(self.conversation.id, template.name)
        if new_conversation:
            self.pending_settings = None
            self.pending_template = None
        reply.session = session
        reply.events = events
        reply.model = model
        reply.backend = self.choice.backend
        reply.conversation_id = self.conversation.id

    def _branch_has_images(self) -> bool:
        """Whether the open conversation's branch holds images (every turn re-sends them)."""
        ids = [m.id for m in self.branch() if m.role == "user"]
        stored = self.attachments_for(ids) if ids else {}
        return any(a.kind == "image" for items in stored.values() for a in items)

    def _session_for(
        self, backend: Backend, model: str | None, options: dict[str, Any]
    ) -> ChatSession:
        session = self.session
        conversation = self.conversation
        if (
            session is not None
            and conversation is not None
            and session.conversation is not None
            and session.conversation.id == conversation.id
        ):
            session.switch_backend(
                backend, backend_name=self.choice.backend, model=model, options=options
            )
            return session
        system = None
        if conversation is None:
            system = self.choice.system_prompt
            pending = self.pending_settings or {}
            if pending.get("system_prompt"):
                system = pending["system_prompt"]
        self.session = ChatSession(
            self.store, backend, backend_name=self.choice.backend, model=model,
            options=options, conversation=conversation, system_prompt=system,
            route=route_of(self.choice, model),
        )
        return self.session

    async def run(self, reply: Reply) -> None:
        """Open the backend if needed, then stream ``reply`` to its end (or a stop)."""
        if not reply.stored:
            await self._emit(Opening(reply, self.opening_state()))
            try:
                backend, options = await self.pool.get(self.choice)
                # Before anything is stored: a model that cannot load leaves nothing behind.
                await self._prepare(self.choice, backend, options)
                self._store(reply, backend, options)
            except (BackendError, StoreError) as exc:
                self._end(reply)
                await self._emit(SendFailed(reply, exc.message))
                return
            except BaseException:
                self._end(reply)
                raise
        session = reply.session
        assert session is not None and session.conversation is not None
        branch = self.store.branch(session.conversation.id)
        positions = branch_positions(self.store.all_messages(session.conversation.id))
        new_conversation = len([m for m in branch if m.role == "user"]) == 1 and (
            reply.kind == "send"
        )
        await self._stream(reply, ReplyStarted(reply, branch, positions, new_conversation))

    async def _stream(self, reply: Reply, started: ReplyStarted) -> None:
        handler = _ReplyHandler(self, reply)
        events = reply.events
        last_yield = time.monotonic()
        input_pending = self.input_pending
        try:
            try:
                # Inside the try: should the front end fail to show the start, the reply is
                # still closed, stored and marked.
                await self._emit(started)
                async for event in events:
                    result = dispatch(event, handler)
                    if result is not None:
                        await result
                    if reply.stop_requested:
                        break
                    handled = None if input_pending is None else input_pending()
                    if handled is not None:
                        await handled
                        last_yield = time.monotonic()
                        continue
                    now = time.monotonic()
                    if now - last_yield >= YIELD_EVERY_S:
                        await pass_loop(HAND_BACK_HOPS)
                        last_yield = time.monotonic()
            except BackendError as exc:
                reply.error = exc.message
            finally:
                # Closing is what stops the backend and stores the partial reply as interrupted.
                await events.aclose()
        finally:
            await self._finish(reply)

    async def _finish(self, reply: Reply) -> None:
        session = reply.session
        message: Message | None = None
        if session is not None:
            session.settle_unstarted()
            if self.conversation is not None and session.conversation is not None and (
                self.conversation.id == session.conversation.id
            ):
                self.conversation = session.conversation
            outcome = session.last_outcome
            if outcome is not None and outcome.message_id is not None:
                message = await self._read_message(outcome.message_id)
                if message is None or message.status != outcome.status:
                    # The other connection did not see the end written: read it here.
                    message = self.store.get_message(outcome.message_id)
        self._end(reply)
        await self._emit(ReplyEnded(reply, message))

    async def _read_message(self, message_id: int) -> Message | None:
        """The stored reply, read in a thread on a read-only connection of its own (an SQLite
        connection belongs to its thread): reading a 20 MB reply back held the loop 60 ms.
        Cancelled meanwhile, it is read here, so the front end still hears how it ended (the
        reply is over by now: a cancel has nothing left to stop)."""
        path = self.store.path
        if str(path) == ":memory:":
            return self.store.get_message(message_id)

        def read() -> Message | None:
            with HistoryStore(path, readonly=True) as store:
                return store.get_message(message_id)

        try:
            return await asyncio.to_thread(read)
        except (StoreError, asyncio.CancelledError):
            return self.store.get_message(message_id)

    def _end(self, reply: Reply) -> None:
        reply.ended = True
        if self.reply is reply:
            self.reply = None

    def stop(self) -> bool:
        """Ask the streaming reply to stop at its next chunk; True when one was streaming."""
        reply = self.reply
        if reply is None or reply.ended:
            return False
        reply.stop_requested = True
        return True

    def abandon(self, reply: Reply) -> None:
        """After the front end cancelled ``reply`` (quit): nothing may be left half-stored.

        A reply whose rows exist is marked interrupted if its stream never ran; a prompt that
        was still waiting for its backend is stored with an empty interrupted reply, so a
        quit at any instant after Enter loses no prompt and leaves no lone user turn.
        """
        if reply.ended:
            return
        if reply.stored:
            assert reply.session is not None
            reply.session.settle_unstarted()
        elif reply.kind == "send" and reply.prompt.strip():
            self._store(reply, _Unopened(self.choice), {}, check_images=False)
            assert reply.session is not None
            reply.session.settle_unstarted()
        self._end(reply)


def _renamed(attachment: Any, base: str, typed: str) -> Any:
    """``attachment`` under the name the user typed (``base`` taken off its front)."""
    from chatterm.attachments import Attachment

    name = attachment.name
    prefix = base.rstrip("/") + "/"
    if name.startswith(prefix):
        name = typed + name[len(prefix):]
    return Attachment(name, attachment.kind, attachment.mime, attachment.data)


class _Unopened(Backend):
    """Stands in for a backend that never opened, to store a prompt abandoned before it did."""

    name = "unopened"

    def __init__(self, choice: Choice) -> None:
        super().__init__(choice.backend_config)

    def stream(self, request: Any) -> Any:  # pragma: no cover - never iterated
        raise BackendError("the backend was never opened")

    def validate_options(self, raw: Any) -> dict[str, Any]:
        return {}


__all__ = [
    "ControllerError",
    "ConversationController",
    "branch_positions",
    "choice_for_target",
    "describe_choice",
]
