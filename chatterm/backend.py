"""The backend contract: the one interface every model source implements.

A backend (built in or third-party) is a subclass of :class:`Backend` registered in the
entry-point group ``chatterm.backends``. It turns a :class:`ChatRequest` into an async stream of
:class:`StreamEvent` values. Everything the CLI and the TUI know about models goes through here,
so a plugin author needs only this module (and can write a backend in one file).

Rules for implementers:

* ``stream()`` is an async generator. Closing it (``aclose()``, task cancellation) must stop the
  work promptly: release the HTTP connection, stop the decoding thread.
* Failures are raised as :class:`BackendError` subclasses whose ``message`` is one line a user
  can act on. Never put an API key in a message.
* Options a backend accepts are declared in ``options`` so ``-o KEY VALUE`` is validated before
  anything is sent.
"""

from __future__ import annotations

import abc
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image sent with a message: its MIME type (image/png, ...) and its bytes."""

    mime: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message. ``images`` is empty for text; a backend that cannot take images raises
    :class:`OptionError` (one line, nothing sent) when a message it is given has some."""

    role: Role
    content: str
    images: tuple[ImagePart, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to send. ``options`` holds already-validated values, keyed by option name."""

    messages: Sequence[ChatMessage]
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


# --- stream events -------------------------------------------------------------------------
# Small slotted classes: one is created per streamed chunk, so they must stay cheap.


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """The model ended the reply on its own terms (``stop``, ``length``, ...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should be told that is not part of the reply.

    E.g. "rate limited, retrying in 2 s" or "dropped 3 old turns to fit the context". The CLI
    prints it to stderr, the TUI shows a notification.
    """

    message: str


@dataclass(frozen=True, slots=True)
class Metadata:
    """Facts about how the reply is produced (device, dtype, resolved model), for ``--json``."""

    values: Mapping[str, Any]


StreamEvent = TextDelta | ReasoningDelta | Usage | Finish | Notice | Metadata


# --- errors --------------------------------------------------------------------------------


class BackendError(Exception):
    """A failure the user can act on. ``message`` is one line and never contains secrets."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendUnavailable(BackendError):
    """The backend cannot be used here (missing extra, unknown name, not configured)."""

    exit_code = 2


class OptionError(BackendError):
    """An option name or value was rejected before sending anything."""

    exit_code = 2


class AuthError(BackendError):
    pass


class NotFoundError(BackendError):
    pass


class ConnectionFailed(BackendError):
    pass


class ServerError(BackendError):
    pass


class StreamCut(BackendError):
    """The stream ended or failed after part of the reply arrived; the partial text is kept."""


class ModelLoadError(BackendError):
    pass


# --- options -------------------------------------------------------------------------------

OptionType = type[float] | type[int] | type[str] | type[bool] | type[list]


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option a backend accepts. ``kind`` is float, int, str, bool or list (of str)."""

    name: str
    kind: OptionType
    help: str
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, raw: Any) -> Any:
        value = _coerce(self, raw)
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(f"option {self.name} must be a finite number, got {raw!r}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise OptionError(f"option {self.name} must be >= {self.minimum}, got {value}")
            if self.maximum is not None and value > self.maximum:
                raise OptionError(f"option {self.name} must be <= {self.maximum}, got {value}")
        return value


def _coerce(spec: OptionSpec, raw: Any) -> Any:
    kind = spec.kind
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind is list:
            if isinstance(raw, list | tuple):
                return [str(item) for item in raw]
            return [str(raw)]
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError):
        raise OptionError(
            f"option {spec.name} expects {kind.__name__}, got {raw!r}"
        ) from None


COMMON_OPTIONS: dict[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        OptionSpec("temperature", float, "sampling temperature (0 = greedy)", 0.0, 2.0),
        OptionSpec("top_p", float, "nucleus sampling mass", 0.0, 1.0),
        OptionSpec("max_tokens", int, "most tokens to generate", 1, None),
        OptionSpec("seed", int, "random seed for reproducible sampling"),
        OptionSpec("stop", list, "stop string (repeat -o stop X for several)"),
    )
}


def validate_options(
    specs: Mapping[str, OptionSpec], raw: Mapping[str, Any], backend_name: str
) -> dict[str, Any]:
    """Parse user-given options against a backend's declared ones.

    ``stop`` given several times arrives as a list and stays one.
    """
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none"
            raise OptionError(
                f"backend {backend_name} has no option {key!r} (it accepts: {known})"
            )
        parsed[name] = spec.parse(value)
    return parsed


# --- the backend ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """Settings resolved from flags, environment and the config file.

    ``api_key`` is held in memory only; nothing in chatterm writes it anywhere.
    """

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    debug: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """Base class for backends. Subclass it, implement ``stream``, register an entry point.

    Optional capabilities have safe defaults: override ``list_models`` and
    ``context_length`` when the source can answer them, and set ``supports_cancel`` to False if
    closing the stream cannot stop the work.
    """

    name: ClassVar[str] = "backend"
    supports_cancel: ClassVar[bool] = True
    options: ClassVar[Mapping[str, OptionSpec]] = COMMON_OPTIONS

    def __init__(self, config: BackendConfig) -> None:
        self.config = config

    @property
    def default_model(self) -> str | None:
        """The model used when neither the request nor the config names one."""
        return self.config.model

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield the reply as events. Must be an async generator (``async def`` + ``yield``)."""

    async def prepare(self, model: str | None, options: Mapping[str, Any]) -> None:
        """Get ready to answer ``model`` before anything is saved (load weights, check a path).

        Front ends call it before the user's message is stored, so a backend that cannot
        answer at all (a model that cannot be loaded) fails without leaving an empty
        conversation behind. ``options`` are the validated ones. The default does nothing, and
        ``stream`` must work without it having been called.
        """

    async def list_models(self) -> list[str]:
        raise BackendError(f"backend {self.name} cannot list models")

    async def context_length(self, model: str | None) -> int | None:
        return None

    def accepts_images(self, model: str | None) -> bool:
        """Whether ``model`` takes image parts (``ChatMessage.images``). Asked before anything
        is stored or sent; False by default, so a text-only backend refuses images clearly
        instead of dropping them. May block briefly (read a config file), never downloads."""
        return False

    async def aclose(self) -> None:
        """Release connections, threads or models. Called once when the caller is done."""

    def validate_options(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return validate_options(self.options, raw, self.name)
