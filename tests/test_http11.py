"""The plain-HTTP transport of the openai backend (chatterm_openai.http11), against the real
loopback server: proxies still honoured, connections reused only when whole, no httpcore or
anyio imported by `ask`. The backend's whole behaviour over it is tests/test_openai_backend.py.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from chatterm_openai.backend import OpenAIBackend
from chatterm_openai.http11 import HTTP11Transport
from cli_run import modules_loaded_by

from chatterm.backend import BackendConfig, ChatMessage, ChatRequest, ConnectionFailed, TextDelta


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _backend(base_url: str) -> OpenAIBackend:
    return OpenAIBackend(BackendConfig(base_url=base_url, api_key=None, extra={}))


async def _text(backend: OpenAIBackend, model: str, stop_after: int | None = None) -> str:
    got: list[str] = []
    stream = backend.stream(ChatRequest([ChatMessage("user", "hello there")], model=model))
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                got.append(event.text)
                if stop_after is not None and len(got) >= stop_after:
                    break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return "".join(got)


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_configured_http_proxy_is_still_used(openai_server: Any, no_proxies: Any) -> None:
    """With HTTP_PROXY set, requests go to the proxy (here: nothing listens there), as httpx
    always did; NO_PROXY for the host reaches the server directly again."""
    no_proxies.setenv("HTTP_PROXY", f"http://127.0.0.1:{_free_port()}")
    backend = _backend(openai_server.base_url)
    with pytest.raises(ConnectionFailed, match="cannot connect to"):
        asyncio.run(_text(backend, "echo@via-proxy"))
    assert openai_server.requests_for("echo@via-proxy") == []
    no_proxies.setenv("NO_PROXY", "127.0.0.1")
    assert asyncio.run(_text(_backend(openai_server.base_url), "echo@no-proxy")) == "hello there"


def test_a_reply_not_read_to_its_end_does_not_reuse_its_connection(
    openai_server: Any, no_proxies: Any
) -> None:
    backend = _backend(openai_server.base_url)

    async def both() -> None:
        assert await _text(backend, "slow:50:20@stopped", stop_after=2) == "tok0 tok1 "
        assert await _text(backend, "echo@after-stop") == "hello there"
        assert await _text(backend, "echo@after-whole") == "hello there"
        await backend.aclose()

    asyncio.run(both())
    (stopped,) = openai_server.requests_for("slow:50:20@stopped")
    (after_stop,) = openai_server.requests_for("echo@after-stop")
    (after_whole,) = openai_server.requests_for("echo@after-whole")
    assert after_stop.client != stopped.client  # a new connection after the abandoned one
    assert after_whole.client == after_stop.client  # reused after a whole reply


def test_a_connection_the_server_closed_while_idle_is_not_reused(openai_server: Any) -> None:
    async def run() -> list[int]:
        transport = HTTP11Transport()
        async with httpx.AsyncClient(transport=transport) as client:
            statuses = []
            for _ in range(2):
                response = await client.get(openai_server.base_url + "/models")
                statuses.append(response.status_code)
                for connection in transport._idle:  # the connection ends while idle
                    with connection.sock.dup() as sock:
                        sock.shutdown(socket.SHUT_RDWR)
                await asyncio.sleep(0.05)
            return statuses

    assert asyncio.run(run()) == [200, 200]


def test_https_keeps_httpxs_own_transport() -> None:
    from chatterm_openai.transport import make_client

    async def transports() -> tuple[Any, Any]:
        plain = make_client("http://127.0.0.1:1/v1", httpx.Timeout(1.0))
        tls = make_client("https://example.invalid/v1", httpx.Timeout(1.0))
        try:
            return plain._transport, tls._transport
        finally:
            await plain.aclose()
            await tls.aclose()

    plain, tls = asyncio.run(transports())
    assert isinstance(plain, HTTP11Transport) and not isinstance(tls, HTTP11Transport)


def test_ask_to_a_plain_http_server_imports_neither_httpcore_nor_anyio(openai_server: Any) -> None:
    env = {"OPENAI_BASE_URL": openai_server.base_url}
    code, loaded, out = modules_loaded_by(
        ["ask", "-m", "echo", "hello there"], ["httpcore", "anyio", "h2"], env
    )
    assert (code, loaded, out) == (0, [], "hello there\n")
