"""The backend for OpenAI-compatible chat servers: OpenAI, vLLM, Ollama, llama.cpp, LM Studio,
TGI, ``transformers serve`` and gateways.

It talks HTTP through one lazily created ``httpx.AsyncClient`` and reads the event stream with
our own decoder (see :mod:`chatterm_openai.sse` for why). Everything between a network read and
a yielded event is the hot loop of ``chatterm ask``: one ``json.loads`` per event, a handful of
dict lookups, no regexes, no logging. Failures become one-line :class:`BackendError` messages
(built by :mod:`chatterm_openai.failures`) that name the server and never contain the API key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from chatterm import __version__
from chatterm.backend import (
    COMMON_OPTIONS,
    AuthError,
    Backend,
    BackendConfig,
    BackendError,
    ChatRequest,
    ConnectionFailed,
    Finish,
    Metadata,
    Notice,
    OptionError,
    OptionSpec,
    ReasoningDelta,
    ServerError,
    StreamEvent,
    TextDelta,
)
from chatterm_openai.failures import Failures, Retry
from chatterm_openai.messages import message_from_json
from chatterm_openai.payloads import (
    completion_events,
    context_length_of,
    message_payload,
    model_entries,
    usage_of,
)
from chatterm_openai.sse import SSEDecoder, loads_event
from chatterm_openai.transport import (
    auth_headers,
    drain,
    make_client,
    read_body,
    seconds_option,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
ERROR_BODY_LIMIT = 64 * 1024
JSON_BODY_LIMIT = 32 * 1024 * 1024
_SHAPE_ERRORS = (AttributeError, TypeError, IndexError, KeyError)
DEFAULT_CONNECT_TIMEOUT = 10.0
# Slow local servers (a big model on a CPU) can take minutes before the first token.
DEFAULT_IDLE_TIMEOUT = 300.0
# Options that shape the connection, not the request: never sent to the server.
_TRANSPORT_OPTIONS = frozenset({"connect_timeout", "idle_timeout"})
OPTIONS: dict[str, OptionSpec] = {
    **COMMON_OPTIONS,
    "connect_timeout": OptionSpec(
        "connect_timeout", float,
        f"seconds to wait for the server to accept the connection (default "
        f"{DEFAULT_CONNECT_TIMEOUT:g})", 0.001, None,
    ),
    "idle_timeout": OptionSpec(
        "idle_timeout", float,
        f"seconds without a byte from the server before giving up (default "
        f"{DEFAULT_IDLE_TIMEOUT:g})", 0.001, None,
    ),
}


class _Reply:
    """What one attempt's stream has shown so far; read after the stream ends or fails."""

    __slots__ = ("connected", "done", "finish", "got_output", "usage")

    def __init__(self) -> None:
        self.connected = False  # the server answered 200 and the body began
        self.done = False  # "[DONE]" arrived
        self.finish: Any = None  # the finish_reason, once one arrived
        self.got_output = False  # some text or reasoning was yielded
        self.usage: Any = None  # the last usage object seen


class OpenAIBackend(Backend):
    """Chat with any server that speaks ``POST /chat/completions`` with ``stream: true``.

    ``config.extra`` may hold ``timeout`` or ``idle_timeout`` (no byte for that long, s),
    ``connect_timeout`` (s), ``retry_delay`` (first 5xx backoff, s) and ``stream`` (False: ask
    for one whole reply). The timeouts can also be set per profile or per call as options
    (``-o idle_timeout 600``); those are never sent to the server.
    """

    name = "openai"
    options = OPTIONS

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        extra = config.extra
        idle = seconds_option(extra, "idle_timeout", DEFAULT_IDLE_TIMEOUT)
        timeout = httpx.Timeout(
            connect=seconds_option(extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            read=seconds_option(extra, "timeout", idle),
            write=30.0,
            pool=30.0,
        )
        self._timeout = timeout
        self._fail = Failures(
            self.base_url, config.api_key, timeout, seconds_option(extra, "retry_delay", 0.25)
        )
        self._url = self._fail.url
        self._streaming = bool(extra.get("stream", True))
        self._headers = {"User-Agent": f"chatterm/{__version__}", **auth_headers(config.api_key)}
        self._send_stream_options = True  # cleared for good once a server rejects it
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._models: list[dict[str, Any]] | None = None

    # --- streaming ------------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        model = request.model or self.config.model
        if not model:
            model = await self._first_model()
            if _first_time_for(self._url, model):
                yield Notice(f"no model given; using {model}, the first model {self._url} lists")
        url = self.base_url + "/chat/completions"
        client = self._client_for_loop()
        timeout = self._timeout_for(request)
        fail = self._fail.with_timeout(timeout)
        rate_retries = server_retries = 0
        while True:
            body = self._request_body(model, request)
            reply = _Reply()
            retry: Retry | None = None
            try:
                async with client.stream(
                    "POST", url, json=body, headers=self._request_headers(), timeout=timeout
                ) as response:
                    status = response.status_code
                    reply.connected = status < 300
                    if status >= 300:
                        retry = await self._failure(response, model, rate_retries, server_retries)
                        if status == 429:
                            rate_retries += 1
                        elif status >= 500:
                            server_retries += 1
                    elif "text/event-stream" in response.headers.get("content-type", ""):
                        async for event in self._read_events(response, reply, fail):
                            yield event
                    else:
                        for event in await self._whole_reply(response, fail):
                            yield event
                        return
            except httpx.HTTPError as exc:
                if reply.finish is None:
                    raise fail.transport(exc, reply.got_output, reply.connected) from None
                # Otherwise the reply was complete and only the goodbye went wrong.
            except httpx.InvalidURL as exc:
                raise fail.invalid_url(exc) from None
            if retry is None:
                break
            if retry.notice:
                yield Notice(retry.notice)
            if retry.wait > 0:
                await asyncio.sleep(retry.wait)
        if reply.finish is None and not reply.done:
            raise fail.cut(got_output=reply.got_output)
        if reply.usage:
            yield usage_of(reply.usage)
        if reply.finish is not None:
            yield Finish(str(reply.finish))

    async def _read_events(
        self, response: httpx.Response, reply: _Reply, fail: Failures
    ) -> AsyncIterator[StreamEvent]:
        """The hot loop: network reads -> SSE events -> one ``json.loads`` each -> our events.

        State goes into ``reply`` as it changes, so the caller knows, even after a transport
        error, whether text arrived (a cut) and whether the reply had finished (a normal end).
        """
        decoder = SSEDecoder()
        feed = decoder.feed
        loads = loads_event
        next_read = response.aiter_bytes().__aiter__().__anext__
        model_seen = False
        more = True
        while more:
            try:
                events = feed(await next_read())
            except StopAsyncIteration:
                events = decoder.close()
                more = False
            for data in events:
                if not data:  # "data:" alone, used by some servers as a keep-alive
                    continue
                if data == "[DONE]":
                    reply.done = True
                    await drain(next_read)
                    return
                try:
                    chunk = loads(data)
                except ValueError:
                    raise fail.bad_event(data, "an event that is not JSON") from None
                except RecursionError:
                    raise fail.bad_event(data, "an event nested too deeply to read") from None
                try:
                    # ``in`` tests, not ``.get`` calls, where the key is usually absent.
                    if ("error" in chunk or "message" in chunk) and (
                        chunk.get("error") is not None or chunk.get("object") == "error"
                    ):
                        raise fail.stream_error(message_from_json(chunk))
                    if not model_seen and chunk.get("model"):
                        model_seen = True
                        yield Metadata({"model": chunk["model"]})
                    choices = chunk.get("choices")
                    if choices:
                        choice = choices[0]
                        delta = choice.get("delta")
                        if delta:
                            if "reasoning_content" in delta or "reasoning" in delta:
                                # Newer vLLM sends both fields with the same text: use one.
                                text = delta.get("reasoning_content") or delta.get("reasoning")
                                if text:
                                    if type(text) is not str:
                                        raise fail.bad_event(data, _NOT_TEXT)
                                    reply.got_output = True
                                    yield ReasoningDelta(text)
                            text = delta.get("content")
                            if text:
                                if type(text) is not str:
                                    raise fail.bad_event(data, _NOT_TEXT)
                                reply.got_output = True
                                yield TextDelta(text)
                        if choice.get("finish_reason"):
                            reply.finish = choice["finish_reason"]
                    if chunk.get("usage"):
                        reply.usage = chunk["usage"]
                    if "timings" in chunk and isinstance(chunk["timings"], dict):
                        # llama.cpp's own speed figures (predicted_per_second, ...).
                        yield Metadata({"timings": chunk["timings"]})
                except _SHAPE_ERRORS:
                    raise fail.bad_event(data, "an event of an unexpected shape") from None
            if decoder.error is not None:  # llama.cpp's "error:" field
                raise fail.error_field(decoder.error)

    async def _whole_reply(self, response: httpx.Response, fail: Failures) -> list[StreamEvent]:
        """A single ``chat.completion`` JSON: asked for (``stream: false``) or sent anyway."""
        content_type = response.headers.get("content-type", "")
        raw = await read_body(response, JSON_BODY_LIMIT, raise_errors=True)
        if "json" not in content_type:
            detail = fail.body_detail(raw[:ERROR_BODY_LIMIT], content_type)
            raise fail.error(
                ServerError,
                f"the server at {self._url} answered with {content_type or 'no content type'} "
                f"instead of an event stream" + (f": {detail}" if detail else ""),
            )
        try:
            reply = json.loads(raw)
            if reply.get("error") is not None or reply.get("object") == "error":
                raise fail.stream_error(message_from_json(reply))
            return completion_events(reply)
        except (ValueError, RecursionError, *_SHAPE_ERRORS):
            raise fail.error(
                ServerError, f"the server at {self._url} sent a reply that could not be read"
            ) from None

    async def _failure(
        self, response: httpx.Response, model: str, rate_retries: int, server_retries: int
    ) -> Retry:
        """Raise the error an HTTP error status means, or say how to retry."""
        body = await read_body(response, ERROR_BODY_LIMIT)
        if (
            response.status_code in (400, 422)
            and self._streaming
            and self._send_stream_options
            and b"stream_options" in body
        ):
            self._send_stream_options = False  # for the rest of this backend's life
            return Retry(0.0, None)
        outcome = self._fail.http(response, body, model, (rate_retries, server_retries))
        if isinstance(outcome, BackendError):
            raise outcome
        return outcome

    def accepts_images(self, model: str | None) -> bool:
        """The server decides: a text-only model answers with an error we show as one line."""
        return True

    # --- models ---------------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        """In the server's order, so "the first model the server lists" is the first shown."""
        return list(dict.fromkeys(str(entry["id"]) for entry in await self._model_entries()))

    async def context_length(self, model: str | None) -> int | None:
        """What ``/models`` says about the context window, where the server says anything."""
        model = model or self.config.model
        try:
            entries = await self._model_entries()
        except BackendError:
            return None
        for entry in entries:
            if model is None or entry["id"] == model:
                return context_length_of(entry)
        return None

    async def _model_entries(self) -> list[dict[str, Any]]:
        """``GET /models``, once per backend (model lists do not change under a chat)."""
        if self._models is not None:
            return self._models
        client = self._client_for_loop()
        try:
            async with client.stream(
                "GET", self.base_url + "/models", headers=self._headers
            ) as response:
                if response.status_code >= 300:
                    body = await read_body(response, ERROR_BODY_LIMIT)
                    outcome = self._fail.http(response, body, None, None)
                    if isinstance(outcome, BackendError):
                        raise outcome
                    raise self._fail.error(ServerError, f"{self._url} could not list models")
                raw = await read_body(response, JSON_BODY_LIMIT)
        except httpx.HTTPError as exc:
            raise self._fail.transport(exc, False) from None
        except httpx.InvalidURL as exc:
            raise self._fail.invalid_url(exc) from None
        try:
            entries = model_entries(json.loads(raw))
        except (ValueError, RecursionError, *_SHAPE_ERRORS):
            raise self._fail.error(
                ServerError, f"the server at {self._url} sent a model list that could not be read"
            ) from None
        self._models = entries
        return entries

    async def _first_model(self) -> str:
        """The model to use when none is given: servers with one model need no ``-m``."""
        hint = "pass -m MODEL or set model in the config profile"
        try:
            entries = await self._model_entries()
        except (AuthError, ConnectionFailed):
            raise
        except BackendError as exc:
            raise self._fail.error(
                OptionError,
                f"no model given and {self._url} could not list models: {hint} ({exc.message})",
            ) from None
        if not entries:
            raise self._fail.error(
                OptionError, f"no model given and {self._url} lists none: {hint}"
            )
        return str(entries[0]["id"])

    # --- plumbing -------------------------------------------------------------------------

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is self._client_loop:
            await client.aclose()

    def _client_for_loop(self) -> httpx.AsyncClient:
        """The shared client, made anew if the caller moved to another event loop.

        Each ``asyncio.run`` has its own loop, and a pooled connection from a closed loop is
        unusable, so a backend reused across runs must not keep the old client.
        """
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = make_client(self.base_url, self._timeout)
            self._client_loop = loop
        return self._client

    def _timeout_for(self, request: ChatRequest) -> httpx.Timeout:
        """This call's timeouts: ``-o connect_timeout`` / ``-o idle_timeout`` over the
        backend's."""
        options = request.options
        connect = options.get("connect_timeout")
        idle = options.get("idle_timeout")
        if connect is None and idle is None:
            return self._timeout
        base = self._timeout
        return httpx.Timeout(
            connect=float(connect) if connect is not None else base.connect,
            read=float(idle) if idle is not None else base.read,
            write=base.write,
            pool=base.pool,
        )

    def _request_headers(self) -> dict[str, str]:
        if self._streaming:
            return {**self._headers, "Accept": "text/event-stream"}
        return self._headers

    def _request_body(self, model: str, request: ChatRequest) -> dict[str, Any]:
        """Only what the user set: strict servers (transformers serve) reject unknown fields."""
        body: dict[str, Any] = {
            "model": model,
            "messages": [message_payload(m) for m in request.messages],
            "stream": self._streaming,
        }
        if self._streaming and self._send_stream_options:
            body["stream_options"] = {"include_usage": True}
        for key, value in request.options.items():
            if value is not None and key not in _TRANSPORT_OPTIONS:
                body[key] = value
        return body


_NOT_TEXT = "an event whose text is not a string"


def _first_time_for(url: str, model: str) -> bool:
    """Whether the "no model given; using X" notice is new for this server and model: said
    once, not on every call (remembered in the state file; best effort)."""
    from chatterm.state import first_time

    return first_time("default_model_notices", f"{url} {model}")
