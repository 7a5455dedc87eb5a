"""Mapping failures (HTTP statuses, transport errors, in-stream errors) to chatterm errors.

One :class:`Failures` per backend knows the server's address and the API key, so every message
names the server and none can contain the key. Deciding *whether* to retry lives here too, so the
backend's request loop only sleeps and resends.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

import httpx

from chatterm.backend import (
    AuthError,
    BackendError,
    ConnectionFailed,
    NotFoundError,
    ServerError,
    StreamCut,
)
from chatterm.secrets_mask import display_url as _masked_url
from chatterm.secrets_mask import mask_secrets, url_secrets
from chatterm_openai.messages import (
    format_seconds,
    message_from_body,
    message_from_event,
    one_line,
    retry_after_seconds,
)

RATE_LIMIT_RETRIES = 3
SERVER_ERROR_RETRIES = 2
MAX_RETRY_WAIT = 30.0
_NOT_TRANSIENT = (501, 505)  # "not implemented": retrying cannot help
KEY_HINT = "set OPENAI_API_KEY or api_key_env in the profile"


class Retry:
    """Decision to send the request again after ``wait`` seconds, telling the user ``notice``."""

    __slots__ = ("notice", "wait")

    def __init__(self, wait: float, notice: str | None) -> None:
        self.wait = wait
        self.notice = notice


class Failures:
    """Builds the one-line errors of one backend instance."""

    def __init__(
        self, base_url: str, api_key: str | None, timeout: httpx.Timeout, retry_delay: float
    ) -> None:
        self.base_url = base_url
        self.url = display_url(base_url)
        self._api_key = api_key
        self._secrets = [api_key, *url_secrets(base_url)]
        self._timeout = timeout
        self._retry_delay = retry_delay

    def with_timeout(self, timeout: httpx.Timeout) -> Failures:
        """The same, for a call made with other timeouts (``-o idle_timeout``)."""
        if timeout is self._timeout:
            return self
        return Failures(self.base_url, self._api_key, timeout, self._retry_delay)
    def mask(self, text: str) -> str:
        """``text`` with the API key (in every form) and URL user info masked.

        Call it before cutting ``text`` to length: a cut first could leave most of a key.
        """
        return mask_secrets(text, self._secrets)

    def body_detail(self, body: bytes, content_type: str) -> str:
        """The one-line message of an error body, masked before it is cut."""
        return message_from_body(self.mask(body.decode("utf-8", "replace")).encode(), content_type)

    def error(self, cls: type[BackendError], message: str) -> BackendError:
        """An error whose message is one line and cannot leak the API key."""
        return cls(one_line(self.mask(message), 600))

    def stream_error(self, message: str) -> BackendError:
        """The server reported an error inside the event stream (``message`` uncut)."""
        detail = one_line(self.mask(message)) or "unknown error"
        return self.error(ServerError, f"server error from {self.url}: {detail}")

    def error_field(self, text: str) -> BackendError:
        """llama.cpp's ``error:`` SSE field (JSON or plain text)."""
        return self.stream_error(message_from_event(self.mask(text)))

    def bad_event(self, data: str, what: str) -> BackendError:
        return self.error(
            ServerError, f"the server at {self.url} sent {what}: {one_line(self.mask(data), 80)!r}"
        )

    def cut(self, reason: str | None = None, *, got_output: bool = True) -> BackendError:
        if got_output:
            message = f"the server at {self.url} closed the stream before the reply finished"
        else:
            message = (
                f"the server at {self.url} accepted the request, but the stream ended before "
                "any text arrived"
            )
        return self.error(StreamCut, f"{message} ({reason})" if reason else message)

    def transport(
        self, exc: httpx.HTTPError, after_output: bool, connected: bool = False
    ) -> BackendError:
        """Connection refused, DNS, timeouts, protocol errors: a cut once the server had
        answered (with or without text), a connection failure before that."""
        reason = transport_reason(exc, self._timeout, self.mask)
        if isinstance(exc, httpx.ReadTimeout) and not after_output:
            return self.error(
                ConnectionFailed if not connected else StreamCut,
                f"connected to {self.url}, but no data for "
                f"{format_seconds(self._timeout.read or 0)} (read timeout; raise it with "
                "-o idle_timeout SECONDS)",
            )
        if after_output or connected:
            return self.cut(reason, got_output=after_output)
        return self.error(ConnectionFailed, f"cannot connect to {self.url}: {reason}")

    def invalid_url(self, exc: Exception) -> BackendError:
        return self.error(ConnectionFailed, f"invalid base URL {self.url}: {exc}")

    def http(
        self,
        response: httpx.Response,
        body: bytes,
        model: str | None,
        retries: tuple[int, int] | None,
    ) -> BackendError | Retry:
        """Map an HTTP error status to an error to raise, or to a retry after a wait.

        ``retries`` counts the 429 and 5xx retries made so far; None means never retry.
        """
        rate_retries, server_retries = retries or (RATE_LIMIT_RETRIES, SERVER_ERROR_RETRIES)
        status = response.status_code
        headers = response.headers
        detail = (
            self.body_detail(body, headers.get("content-type", ""))
            or response.reason_phrase
            or "no details"
        )
        url = self.url
        if status in (401, 403):
            if self._api_key:
                what = f"the server at {url} rejected the API key ({status}): {detail}"
            else:
                what = f"the server at {url} needs an API key, none was sent ({status}): {detail}"
            return self.error(AuthError, f"{what}; {KEY_HINT}")
        if status == 404:
            target = f"model {model!r} or " if model else ""
            hint = "base URLs usually end in /v1"
            if not self.base_url.endswith("/v1"):
                hint += f" (try {url}/v1)"
            return self.error(
                NotFoundError, f"{target}endpoint not found at {url} (404): {detail}; {hint}"
            )
        retry_after = retry_after_seconds(headers.get("retry-after"), MAX_RETRY_WAIT)
        if status == 429:
            if rate_retries >= RATE_LIMIT_RETRIES:
                after = f" after {RATE_LIMIT_RETRIES} retries" if retries else ""
                return self.error(ServerError, f"rate limited by {url} (429){after}: {detail}")
            wait = retry_after if retry_after is not None else min(2.0**rate_retries, 30.0)
            return Retry(
                wait,
                f"rate limited by {url}; retrying in {format_seconds(wait)} "
                f"(attempt {rate_retries + 1}/{RATE_LIMIT_RETRIES})",
            )
        if status >= 500:
            if server_retries >= SERVER_ERROR_RETRIES or status in _NOT_TRANSIENT:
                return self.error(ServerError, f"the server at {url} failed ({status}): {detail}")
            backoff = self._retry_delay * 2.0**server_retries
            wait = retry_after if retry_after is not None else backoff
            return Retry(
                wait,
                f"the server at {url} failed ({status}); retrying in {format_seconds(wait)} "
                f"(attempt {server_retries + 1}/{SERVER_ERROR_RETRIES})",
            )
        if 300 <= status < 400:
            location = self.mask(headers.get("location", "?"))
            return self.error(
                ServerError,
                f"the server at {url} redirected to {location} ({status}); "
                "use that address as the base URL",
            )
        return self.error(
            ServerError, f"the server at {url} refused the request ({status}): {detail}"
        )


def display_url(base_url: str) -> str:
    """The base URL as shown in messages: any ``user:password@`` part masked."""
    return _masked_url(base_url)


def transport_reason(
    exc: httpx.HTTPError, timeout: httpx.Timeout, mask: Callable[[str], str] = str
) -> str:
    """A few words on why a transport failed, from the innermost error worth showing.

    ``mask`` is applied before the text is cut: a URL's password cut in half is not masked.
    """
    if isinstance(exc, httpx.ConnectTimeout):
        return (
            f"no answer within {format_seconds(timeout.connect or 0)} (connect timeout; "
            "raise it with -o connect_timeout SECONDS)"
        )
    if isinstance(exc, httpx.ReadTimeout):
        return (
            f"connected, but no data for {format_seconds(timeout.read or 0)} (read timeout; "
            "raise it with -o idle_timeout SECONDS)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "the base URL must start with http:// or https://"
    chain = _causes(exc)
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
            return "connection refused (is the server running?)"
    for cause in chain:  # httpx's own text is often generic; the first specific one wins
        text = str(cause)
        if text and text != "All connection attempts failed":
            return one_line(mask(text), 160)
    return type(exc).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, innermost last (bounded: chains can loop)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8 and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain
