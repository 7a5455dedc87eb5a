"""A small HTTP/1.1 transport for httpx, on asyncio's socket calls and h11, for ``http://``
servers.

Why not httpx's own transport (httpcore) there: on asyncio, httpcore's locks and events are
anyio's, and the first request imports anyio's asyncio backend (with httpcore itself ~60 ms of
CPU, a sixth of a short ``chatterm ask`` against a local server, paid before the question is
sent). Local servers (vLLM, llama.cpp, Ollama, LM Studio) are where that start-up is felt, and
they speak plain HTTP/1.1. The request and response are still httpx's (``httpx.AsyncClient``
builds the request, redirects are off, proxies from the environment are still mounted by
httpx on its own transports), and every failure is raised as the httpx exception httpcore
would give (``ConnectError`` with the ``OSError`` as its cause, ``ReadTimeout``,
``RemoteProtocolError`` for a body cut short, ...), so :mod:`chatterm_openai.failures` reads
them the same way. ``https://`` keeps httpx's transport: TLS, certificates and HTTP/2 are its
job, and network latency dwarfs the import there.

The socket is read with ``loop.sock_recv``, not through asyncio's streams: a StreamReader
copies every byte into its buffer and out again (and shifts what is left), a fifth of the CPU
of streaming a 100 MB reply; ``sock_recv`` hands over the bytes ``recv`` returned.

What it does: one request at a time per connection, idle connections kept for reuse (the next
request of a conversation skips the TCP handshake), ``Content-Length`` or chunked bodies as
h11 frames them, the client's connect, read and write timeouts. A connection whose response
was not read to its end (an error, Ctrl-C, Esc) is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx

__all__ = ["HTTP11Transport"]

_READ_SIZE = 256 * 1024  # see chatterm_openai.transport.BODY_READ_BYTES


class _Connection:
    """One TCP connection and its h11 state machine."""

    __slots__ = ("eof", "h11", "key", "read_size", "sock")

    def __init__(self, key: tuple[str, int], sock: socket.socket, read_size: int) -> None:
        self.key = key
        self.sock = sock  # non-blocking
        self.read_size = read_size
        self.eof = False  # the server closed its side
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    def reusable(self) -> bool:
        conn = self.h11
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return False
        if not self.alive():
            return False
        conn.start_next_cycle()
        return True

    def alive(self) -> bool:
        """Fit for the next request: open, and nothing to read while idle (a readable idle
        socket is one the server closed, or one it sent something unasked on)."""
        sock = self.sock
        if self.eof or sock.fileno() < 0:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.close()


class _Body(httpx.AsyncByteStream):
    """The response body, read as the caller iterates; the connection goes back to the pool
    only once the whole message has been read."""

    def __init__(
        self, transport: HTTP11Transport, connection: _Connection, read_timeout: float | None
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            while True:
                event = await _next_event(connection, self._timeout)
                if type(event) is h11.Data:
                    yield bytes(event.data)
                elif type(event) is h11.EndOfMessage:
                    break
        except BaseException:
            self._connection = None
            connection.close()
            raise
        self._connection = None
        self._transport._release(connection)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:  # not read to its end: the connection cannot be reused
            connection.close()


class HTTP11Transport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=HTTP11Transport())`` for plain-HTTP servers."""

    def __init__(self, read_size: int = _READ_SIZE) -> None:
        self._idle: list[_Connection] = []
        self._read_size = read_size

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"this transport speaks http only, not {url.scheme}")
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        key = (url.host, url.port or 80)
        connection = self._take_idle(key)
        if connection is None:
            connection = await self._connect(key, timeouts.get("connect"))
        try:
            await self._send(connection, request, timeouts.get("write"))
            read_timeout = timeouts.get("read")
            while True:
                event = await _next_event(connection, read_timeout)
                if type(event) is h11.Response:
                    break
                # 1xx informational responses (100 Continue, 103 Early Hints) are skipped.
        except BaseException:
            connection.close()
            raise
        return httpx.Response(
            event.status_code,
            headers=event.headers.raw_items(),  # the names as the server spelled them
            stream=_Body(self, connection, read_timeout),
            extensions={
                "http_version": b"HTTP/" + bytes(event.http_version),
                "reason_phrase": bytes(event.reason),
            },
        )

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        while self._idle:
            for i, connection in enumerate(self._idle):
                if connection.key == key:
                    del self._idle[i]
                    break
            else:
                return None
            if connection.alive():
                return connection
            connection.close()  # the server closed it while it was idle
        return None

    def _release(self, connection: _Connection) -> None:
        if connection.reusable():
            self._idle.append(connection)
        else:
            connection.close()

    async def _connect(self, key: tuple[str, int], timeout: float | None) -> _Connection:
        """Each address of the host in turn; the first failure is the one reported (with its
        errno: "connection refused" reads the same as with httpcore)."""
        try:
            async with asyncio.timeout(timeout):
                first: OSError | None = None
                for family, *_, address in await _addresses(*key):
                    try:
                        sock = await _open_socket(family, address)
                    except OSError as exc:
                        first = first or exc
                        continue
                    return _Connection(key, sock, self._read_size)
                raise first or OSError(f"no address for {key[0]}")
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc

    async def _send(
        self, connection: _Connection, request: httpx.Request, timeout: float | None
    ) -> None:
        conn = connection.h11
        headers = list(request.headers.raw)
        if request.method not in ("GET", "HEAD") and not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in headers
        ):
            headers.append((b"Content-Length", b"0"))  # h11 needs the body framed
        out = [conn.send(h11.Request(method=request.method, target=url_target(request.url),
                                     headers=headers))]
        try:
            async for part in request.stream:  # type: ignore[union-attr]
                if part:
                    out.append(conn.send(h11.Data(data=part)))
            out.append(conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_sendall(
                    connection.sock, b"".join(o for o in out if o)
                )
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.WriteError(str(exc)) from exc


def url_target(url: httpx.URL) -> bytes:
    """The request target: the path and query as sent on the wire."""
    return url.raw_path or b"/"


async def _open_socket(family: int, address: Any) -> socket.socket:
    """A connected non-blocking TCP socket, with Nagle off as asyncio's streams set it."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.get_running_loop().sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _addresses(host: str, port: int) -> list[Any]:
    """``getaddrinfo`` for ``host``: at once for an IP address, on a thread for a name."""
    try:
        return socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        pass
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)


async def _next_event(connection: _Connection, timeout: float | None) -> Any:
    """The next h11 event of the response, reading from the socket as needed."""
    conn = connection.h11
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        if event is not h11.NEED_DATA:
            if type(event) is h11.ConnectionClosed:
                raise httpx.RemoteProtocolError("server disconnected without sending a response")
            return event
        try:
            async with asyncio.timeout(timeout):
                data = await asyncio.get_running_loop().sock_recv(
                    connection.sock, connection.read_size
                )
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from exc
        if not data:
            connection.eof = True
        try:
            conn.receive_data(data)
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
