"""HTTP plumbing shared by the backend's requests: the client, bounded reads, draining.

Small on purpose; the interesting decisions (what a status means, when to retry) live in
:mod:`chatterm_openai.failures`, and the per-token loop in :mod:`chatterm_openai.backend`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from chatterm.backend import OptionError
from chatterm.secrets_mask import key_problem

# How much a read of a response body asks the network for (httpcore's, and HTTP11Transport's).
# httpcore's default, 64 KiB, is a quarter of what asyncio's transport reads off the socket at
# once (256 KiB), and anyio hands
# such a read over by slicing it and putting the rest back in its queue: a fast 100 MB reply was
# copied about 2.5 times over in those slices and went four times as often through the async
# stack (httpcore, h11, httpx), ~10 % of `ask`'s CPU for that reply. A read still returns what
# has arrived, so this adds no waiting.
BODY_READ_BYTES = 256 * 1024


def make_client(base_url: str, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """An ``AsyncClient`` for one server; it never follows redirects (see ``tls_context``).

    A plain-HTTP server reached without a proxy gets :class:`~chatterm_openai.http11.
    HTTP11Transport` (no httpcore, no anyio: see there why); https, or a proxy configured for
    http (which httpx reads from the environment only for its own transports), httpx's own.
    """
    if base_url.lower().startswith("http://") and not _http_proxy_configured():
        from chatterm_openai.http11 import HTTP11Transport

        return httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, transport=HTTP11Transport(BODY_READ_BYTES)
        )
    _read_bodies_whole()
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=tls_context(base_url))


def _http_proxy_configured() -> bool:
    """Whether httpx would send an http:// request through a proxy (it asks urllib the same
    way); then its own transport goes, honouring NO_PROXY and the rest as before."""
    from urllib.request import getproxies

    proxies = getproxies()
    return bool(proxies.get("http") or proxies.get("all"))


def _read_bodies_whole() -> None:
    """Raise httpcore's read size to ``BODY_READ_BYTES`` (see there). httpcore has no setting
    for it, only the class attribute; one that is not the known default is left alone.
    (Imported here: a plain-HTTP client never loads httpcore.)"""
    import httpcore

    connection = httpcore.AsyncHTTP11Connection
    if getattr(connection, "READ_NUM_BYTES", None) == 64 * 1024:
        connection.READ_NUM_BYTES = BODY_READ_BYTES


def tls_context(base_url: str) -> ssl.SSLContext | bool:
    """Certificate checks for https; for a plain-http server, a context that trusts nothing.

    Loading the CA bundle costs ~20 ms, a visible part of a short ``ask`` against a local
    server. The client only ever talks to ``base_url`` and follows no redirects, so with an
    http base URL TLS is never used; should it be, this context fails every handshake (no
    trusted CAs, hostname checked) rather than skipping verification.
    """
    if base_url.lower().startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The ``Authorization`` header for ``api_key``; a key that cannot be a header value (a
    trailing newline, say) is refused here, before any request, without quoting it."""
    if not api_key:
        return {}
    problem = key_problem(api_key)
    if problem is not None:
        raise OptionError(f"the API key {problem}; nothing was sent (fix the key)")
    return {"Authorization": f"Bearer {api_key}"}


def seconds_option(extra: Mapping[str, Any], key: str, default: float) -> float:
    """A duration from ``config.extra`` (the profile may hold it as a string)."""
    raw = extra.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not value >= 0:  # also rejects NaN
        raise OptionError(f"{key} for the openai backend must be a number of seconds, got {raw!r}")
    return value


async def drain(next_read: Callable[[], Awaitable[bytes]]) -> None:
    """Read what follows ``[DONE]`` (usually just the end of the chunked body), briefly.

    A response closed with unread body costs its connection, and the next request a new
    one (~0.5 ms locally, a TLS handshake remotely). Anything after ``[DONE]`` is ignored, and
    a server that keeps the body open is not waited for long.
    """
    budget = 64 * 1024
    try:
        async with asyncio.timeout(0.1):
            while budget > 0:
                budget -= len(await next_read())
    except (StopAsyncIteration, TimeoutError, httpx.HTTPError):
        pass


async def read_body(response: httpx.Response, limit: int, raise_errors: bool = False) -> bytes:
    """At most ``limit`` bytes of the body; a transport error mid-body just ends it, unless
    ``raise_errors`` (the body is the reply itself, and a timeout must be said as one)."""
    buf = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            buf += chunk
            if len(buf) >= limit:
                break
    except httpx.HTTPError:
        if raise_errors:
            raise
    return bytes(buf[:limit])
