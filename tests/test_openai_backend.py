"""The OpenAI backend against a real loopback server: every quirk and fault, no mocks."""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from chatterm_openai import OpenAIBackend
from chatterm_openai.messages import message_from_body, one_line, retry_after_seconds
from chatterm_openai.payloads import context_length_of, model_entries
from openai_server import (
    ANSWER,
    PARTIAL,
    REASONING,
    UTF8_TEXT,
    OpenAIServer,
    scenario_text,
    split_text,
)

from chatterm.backend import (
    AuthError,
    BackendConfig,
    BackendError,
    ChatMessage,
    ChatRequest,
    ConnectionFailed,
    Finish,
    Metadata,
    NotFoundError,
    Notice,
    OptionError,
    ReasoningDelta,
    ServerError,
    StreamCut,
    StreamEvent,
    TextDelta,
    Usage,
)

KEY = "sk-test-very-secret-0042"
PROMPT = "hello world, how are you"


def make_backend(base_url: str, *, api_key: str | None = KEY, **extra: Any) -> OpenAIBackend:
    extra.setdefault("retry_delay", 0.01)
    return OpenAIBackend(BackendConfig(base_url=base_url, api_key=api_key, extra=extra))


async def _collect(
    backend: OpenAIBackend, model: str | None, prompt: str, options: Mapping[str, Any]
) -> tuple[list[StreamEvent], BackendError | None]:
    events: list[StreamEvent] = []
    request = ChatRequest([ChatMessage("user", prompt)], model=model, options=options)
    try:
        async for event in backend.stream(request):
            events.append(event)
    except BackendError as exc:
        return events, exc
    finally:
        await backend.aclose()
    return events, None


def run(
    server: OpenAIServer,
    model: str | None,
    prompt: str = PROMPT,
    *,
    options: Mapping[str, Any] | None = None,
    backend: OpenAIBackend | None = None,
    **kwargs: Any,
) -> tuple[list[StreamEvent], BackendError | None]:
    backend = backend or make_backend(server.base_url, **kwargs)
    return asyncio.run(_collect(backend, model, prompt, options or {}))


def ok(server: OpenAIServer, model: str | None, **kwargs: Any) -> list[StreamEvent]:
    events, error = run(server, model, **kwargs)
    assert error is None, error.message
    return events


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def without_notices(events: list[StreamEvent]) -> list[StreamEvent]:
    return [e for e in events if not isinstance(e, Notice)]


def assert_clean_message(error: BackendError, base_url: str) -> None:
    message = error.message
    assert message == str(error)
    assert "\n" not in message and "\r" not in message
    assert KEY not in message
    assert base_url in message
    assert len(message) < 700


def expected_stream(model: str, pieces: list[str], usage: bool = True) -> list[StreamEvent]:
    events: list[StreamEvent] = [Metadata({"model": model})]
    events += [TextDelta(piece) for piece in pieces]
    if usage:
        events.append(Usage(prompt_tokens=5, completion_tokens=len(pieces)))
    events.append(Finish("stop"))
    return events


# --- the normal path ----------------------------------------------------------------------


def test_echo_yields_exact_events(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "echo")
    assert events == expected_stream("echo", split_text(PROMPT))


def test_unknown_model_name_echoes(openai_server: OpenAIServer) -> None:
    assert text_of(ok(openai_server, "gpt-4o-mini")) == PROMPT


def test_request_body_and_headers(openai_server: OpenAIServer) -> None:
    ok(openai_server, "echo@body")
    (request,) = openai_server.requests_for("echo@body")
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.body == {
        "model": "echo@body",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert request.authorization == f"Bearer {KEY}"
    assert request["headers"]["accept"] == "text/event-stream"
    assert request["headers"]["user-agent"].startswith("chatterm/")


def test_only_options_the_user_set_are_sent(openai_server: OpenAIServer) -> None:
    options = {"temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["x", "y"], "max_tokens": 2}
    events = ok(openai_server, "echo@options", options=options)
    (request,) = openai_server.requests_for("echo@options")
    assert {k: request.body[k] for k in options} == options
    assert "top_k" not in request.body
    # The server honours max_tokens (two chunks) and reports why it stopped.
    assert text_of(events) == PROMPT[:8]
    assert events[-1] == Finish("length")


def test_no_api_key_sends_no_authorization_header(openai_server: OpenAIServer) -> None:
    ok(openai_server, "echo@nokey", api_key=None)
    (request,) = openai_server.requests_for("echo@nokey")
    assert request.authorization is None


def test_trailing_slash_in_base_url_is_ignored(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "echo", backend=make_backend(openai_server.base_url + "/"))
    assert text_of(events) == PROMPT


@pytest.mark.parametrize(("suffix", "markdown"), [("", False), (":markdown", True)])
def test_chunks_scenario(openai_server: OpenAIServer, suffix: str, markdown: bool) -> None:
    model = f"chunks:2000{suffix}"
    events = ok(openai_server, model)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 2000
    assert text_of(events) == scenario_text(model)
    if markdown:
        assert "```python" in text_of(events) and "| name | value |" in text_of(events)
    assert events[-2:] == [Usage(5, 2000), Finish("stop")]


def test_metadata_reports_the_server_model_once(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "chunks:20")
    assert [e for e in events if isinstance(e, Metadata)] == [Metadata({"model": "chunks:20"})]
    assert events[0] == Metadata({"model": "chunks:20"})


def test_non_streaming_mode(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "echo@nostream", stream=False)
    (request,) = openai_server.requests_for("echo@nostream")
    assert request.body["stream"] is False and "stream_options" not in request.body
    assert events == [
        Metadata({"model": "echo@nostream"}),
        TextDelta(PROMPT),
        Usage(5, len(split_text(PROMPT))),
        Finish("stop"),
    ]


def test_non_streaming_mode_with_reasoning(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "reasoning_content", stream=False)
    assert events[1:3] == [ReasoningDelta(REASONING), TextDelta(ANSWER)]


def test_backend_is_reusable_across_event_loops(openai_server: OpenAIServer) -> None:
    backend = make_backend(openai_server.base_url)
    for _ in range(2):
        events, error = run(openai_server, "echo", backend=backend)
        assert error is None and text_of(events) == PROMPT


def test_connection_is_reused_after_done(openai_server: OpenAIServer) -> None:
    backend = make_backend(openai_server.base_url)

    async def twice() -> None:
        for tag in ("a", "b"):
            async for _ in backend.stream(
                ChatRequest([ChatMessage("user", "hi")], model=f"echo@reuse-{tag}")
            ):
                pass
        await backend.aclose()

    asyncio.run(twice())
    (first,) = openai_server.requests_for("echo@reuse-a")
    (second,) = openai_server.requests_for("echo@reuse-b")
    assert first.client == second.client


# --- quirks -------------------------------------------------------------------------------

U2028_PIECES = ["line one\u2028", "line two\u0085", "line three\u2029", "end"]


@pytest.mark.parametrize(
    ("model", "pieces"),
    [
        ("no-done", split_text(PROMPT)),
        ("ping", split_text(PROMPT)),
        ("choices-null", split_text(PROMPT)),
        ("choices-empty", split_text(PROMPT)),
        ("crlf", split_text(PROMPT)),
        ("u2028", U2028_PIECES),
        ("split-utf8", split_text(UTF8_TEXT, 3)),
        ("multiline-data", split_text(PROMPT)),
        ("id-then-comments", split_text(PROMPT)),
        ("no-trailing-blank", split_text(PROMPT)),
        ("burst", split_text(PROMPT)),
        ("padded", split_text(PROMPT)),
    ],
)
def test_quirky_streams_give_exact_events(
    openai_server: OpenAIServer, model: str, pieces: list[str]
) -> None:
    assert ok(openai_server, model) == expected_stream(model, pieces)


@pytest.mark.parametrize("model", ["reasoning_content", "reasoning", "reasoning-both"])
def test_reasoning_fields(openai_server: OpenAIServer, model: str) -> None:
    events = ok(openai_server, model)
    reasoning = [e for e in events if isinstance(e, ReasoningDelta)]
    assert reasoning == [ReasoningDelta(p) for p in split_text(REASONING, 8)]  # never twice
    assert text_of(events) == ANSWER
    # Thinking comes first, then the answer.
    kinds = [type(e).__name__ for e in events if isinstance(e, TextDelta | ReasoningDelta)]
    assert kinds == sorted(kinds, key=lambda k: k != "ReasoningDelta")
    assert events[-1] == Finish("stop")


def test_ignore_usage_gives_no_usage_event(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "ignore-usage")
    assert events == expected_stream("ignore-usage", split_text(PROMPT), usage=False)


def test_stream_options_rejected_then_dropped_for_good(openai_server: OpenAIServer) -> None:
    backend = make_backend(openai_server.base_url)
    model = "reject-stream-options@t1"
    events, error = run(openai_server, model, backend=backend)
    assert error is None
    assert events == expected_stream(model, split_text(PROMPT), usage=False)
    first, second = openai_server.requests_for(model)
    assert "stream_options" in first.body and "stream_options" not in second.body
    # The backend remembers: the next request goes without it at once.
    events, error = run(openai_server, "reject-stream-options@t2", backend=backend)
    assert error is None and text_of(events) == PROMPT
    (only,) = openai_server.requests_for("reject-stream-options@t2")
    assert "stream_options" not in only.body


def test_whole_json_reply_to_a_stream_request(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "json-reply")
    assert events == [
        Metadata({"model": "json-reply"}),
        TextDelta(PROMPT),
        Usage(5, len(split_text(PROMPT))),
        Finish("stop"),
    ]


def test_model_is_taken_from_the_server_when_none_is_given(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, None)
    notice = events[0]
    assert isinstance(notice, Notice) and "echo" in notice.message
    assert events[1] == Metadata({"model": "echo"}) and text_of(events) == PROMPT


def test_no_model_and_an_empty_model_list() -> None:
    with OpenAIServer(models=[]) as server:
        events, error = run(server, None)
    assert events == [] and isinstance(error, OptionError)
    assert "-m MODEL" in error.message
    assert_clean_message(error, server.base_url)


# --- faults in the stream -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("error-event", "server error from {url}: model overloaded: please retry later"),
        ("error-event-string", "server error from {url}: CUDA out of memory"),
        ("error-field", "server error from {url}: llama.cpp: failed to decode"),
        ("bad-json", "not JSON"),
    ],
)
def test_errors_after_some_text(openai_server: OpenAIServer, model: str, words: str) -> None:
    events, error = run(openai_server, model)
    assert isinstance(error, ServerError) and not isinstance(error, StreamCut)
    assert words.format(url=openai_server.base_url) in error.message
    assert text_of(events) == PARTIAL  # the partial reply was yielded before the error
    assert not any(isinstance(e, Finish) for e in events)
    assert_clean_message(error, openai_server.base_url)


@pytest.mark.parametrize("model", ["cut", "cut-eof"])
def test_cut_stream_keeps_partial_text(openai_server: OpenAIServer, model: str) -> None:
    events, error = run(openai_server, model)
    assert isinstance(error, StreamCut)
    assert "closed the stream before the reply finished" in error.message
    assert text_of(events) == PARTIAL
    assert_clean_message(error, openai_server.base_url)


def test_not_an_event_stream(openai_server: OpenAIServer) -> None:
    events, error = run(openai_server, "not-sse")
    assert events == [] and isinstance(error, ServerError)
    assert "text/plain" in error.message and "hello from a proxy" in error.message
    assert_clean_message(error, openai_server.base_url)


def test_read_timeout_mid_stream_is_a_cut(openai_server: OpenAIServer) -> None:
    events, error = run(openai_server, "slow:5:400", timeout=0.15)
    assert isinstance(error, StreamCut) and "read timeout" in error.message
    assert text_of(events) == "tok0 "


# --- HTTP errors --------------------------------------------------------------------------


def test_401_names_the_key_problem_and_hides_the_key(openai_server: OpenAIServer) -> None:
    events, error = run(openai_server, "http:401")
    assert events == [] and isinstance(error, AuthError)
    assert "rejected the API key (401)" in error.message
    assert "OPENAI_API_KEY" in error.message
    assert "***" in error.message  # the server echoed the key; it was masked
    assert_clean_message(error, openai_server.base_url)


def test_401_without_a_key_says_it_is_missing(openai_server: OpenAIServer) -> None:
    _, error = run(openai_server, "http:401", api_key=None)
    assert isinstance(error, AuthError)
    assert "none was sent" in error.message and "OPENAI_API_KEY" in error.message


def test_403(openai_server: OpenAIServer) -> None:
    _, error = run(openai_server, "http:403")
    assert isinstance(error, AuthError) and "(403)" in error.message
    assert "does not have access" in error.message
    assert_clean_message(error, openai_server.base_url)


def test_404_names_model_and_url(openai_server: OpenAIServer) -> None:
    _, error = run(openai_server, "http:404")
    assert isinstance(error, NotFoundError)
    assert "'http:404'" in error.message and "/v1" in error.message
    assert_clean_message(error, openai_server.base_url)


def test_base_url_without_v1_gets_a_hint(openai_server: OpenAIServer) -> None:
    root = openai_server.base_url.removesuffix("/v1")
    _, error = run(openai_server, "echo", backend=make_backend(root))
    assert isinstance(error, NotFoundError)
    assert f"try {root}/v1" in error.message and "Not Found" in error.message


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (
            "http:422-detail",
            "refused the request (422): Extra inputs are not permitted (body.top_k)",
        ),
        ("http:400-string", "refused the request (400): Bad request"),
        ("http:400-message", "refused the request (400): Bad request"),
        ("http:400", "refused the request (400): Bad request"),
    ],
)
def test_other_4xx_are_not_retried(openai_server: OpenAIServer, model: str, words: str) -> None:
    tagged = f"{model}@no-retry"
    events, error = run(openai_server, tagged)
    assert events == [] and isinstance(error, ServerError)
    assert words in error.message
    assert len(openai_server.requests_for(tagged)) == 1
    assert_clean_message(error, openai_server.base_url)


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("http:500-plain", "failed (500): Internal Server Error"),
        ("http:500-always", "failed (500): Internal Server Error"),
        ("html-error", "failed (502): 502 Bad Gateway nginx"),
    ],
)
def test_5xx_retried_twice_then_reported(
    openai_server: OpenAIServer, model: str, words: str
) -> None:
    tagged = f"{model}@5xx"
    events, error = run(openai_server, tagged)
    assert isinstance(error, ServerError) and words in error.message
    assert "<" not in error.message
    assert len(openai_server.requests_for(tagged)) == 3
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert len(notices) == 2 and "(attempt 2/2)" in notices[1]
    assert_clean_message(error, openai_server.base_url)


def test_501_is_not_retried(openai_server: OpenAIServer) -> None:
    _, error = run(openai_server, "http:501@once")
    assert isinstance(error, ServerError) and "(501)" in error.message
    assert len(openai_server.requests_for("http:501@once")) == 1


@pytest.mark.parametrize("model", ["http:503-then-ok", "http:503-then-ok:1:none"])
def test_503_then_ok(openai_server: OpenAIServer, model: str) -> None:
    tagged = f"{model}@t"
    events = ok(openai_server, tagged)
    (notice,) = [e for e in events if isinstance(e, Notice)]
    assert "failed (503); retrying in" in notice.message and "(attempt 1/2)" in notice.message
    assert without_notices(events) == expected_stream(tagged, split_text(PROMPT))
    assert len(openai_server.requests_for(tagged)) == 2


def test_429_then_ok(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "http:429-then-ok@t")
    base = openai_server.base_url
    assert events[0] == Notice(f"rate limited by {base}; retrying in 0s (attempt 1/3)")
    assert without_notices(events) == expected_stream("http:429-then-ok@t", split_text(PROMPT))


def test_429_honours_retry_after(openai_server: OpenAIServer) -> None:
    events = ok(openai_server, "http:429-then-ok:2:1@wait")
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert [n.split("; ")[1] for n in notices] == [
        "retrying in 1s (attempt 1/3)",
        "retrying in 1s (attempt 2/3)",
    ]
    # The server saw each retry at least Retry-After (1 s) after the refusal before it.
    arrivals = [r.received_at for r in openai_server.requests_for("http:429-then-ok:2:1@wait")]
    assert len(arrivals) == 3
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(arrivals))
    assert text_of(events) == PROMPT


def test_429_gives_up_after_three_retries(openai_server: OpenAIServer) -> None:
    events, error = run(openai_server, "http:429-always@t")
    assert isinstance(error, ServerError) and "(429) after 3 retries" in error.message
    assert [type(e) for e in events] == [Notice, Notice, Notice]
    assert len(openai_server.requests_for("http:429-always@t")) == 4


# --- connection failures --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused(openai_server: OpenAIServer) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    for model in ("echo", None):  # with no model, listing the models fails the same way
        events, error = run(openai_server, model, backend=make_backend(url))
        assert events == [] and isinstance(error, ConnectionFailed)
        assert error.message.startswith(f"cannot connect to {url}: ")
        assert_clean_message(error, url)


def test_base_url_without_scheme(openai_server: OpenAIServer) -> None:
    _, error = run(openai_server, "echo", backend=make_backend("localhost:1/v1"))
    assert isinstance(error, ConnectionFailed) and "http://" in error.message


def test_credentials_in_base_url_are_not_shown(openai_server: OpenAIServer) -> None:
    url = f"http://user:pw-secret@127.0.0.1:{_free_port()}/v1"
    _, error = run(openai_server, "echo", backend=make_backend(url))
    assert isinstance(error, ConnectionFailed) and "pw-secret" not in error.message


# --- models -------------------------------------------------------------------------------


def test_list_models_and_context_length() -> None:
    with OpenAIServer(models=["zeta", "alpha", "mid"], api_key=KEY) as server:
        backend = make_backend(server.base_url)

        async def check() -> None:
            # In the server's order (issue 8): "the first model listed" is the first shown.
            assert await backend.list_models() == ["zeta", "alpha", "mid"]
            assert await backend.context_length("mid") == 4096
            assert await backend.context_length("unknown") is None
            await backend.aclose()

        asyncio.run(check())
        anonymous = make_backend(server.base_url, api_key=None)
        with pytest.raises(AuthError) as info:
            asyncio.run(anonymous.list_models())
        assert "none was sent" in info.value.message
        assert server.requests[-1].path == "/v1/models"


def test_list_models_404_hint(openai_server: OpenAIServer) -> None:
    backend = make_backend(openai_server.base_url.removesuffix("/v1"))
    with pytest.raises(NotFoundError) as info:
        asyncio.run(backend.list_models())
    assert "/v1" in info.value.message


# --- cancellation -------------------------------------------------------------------------


def _wait_for_disconnect(server: OpenAIServer, model: str, seconds: float = 60.0) -> bool:
    """Whether the server saw the client go away before the reply was fully written (the
    slow scenarios below take 20 s to write, so a disconnect means the client stopped it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(r.disconnected for r in server.requests_for(model)):
            return True
        time.sleep(0.02)
    return False


def test_closing_the_stream_closes_the_connection(openai_server: OpenAIServer) -> None:
    model = "slow:1000:20@aclose"
    backend = make_backend(openai_server.base_url)

    async def take_three() -> tuple[list[str], float]:
        seen: list[str] = []
        request = ChatRequest([ChatMessage("user", "count")], model=model)
        stream = cast(AsyncGenerator[StreamEvent, None], backend.stream(request))
        async for event in stream:
            if isinstance(event, TextDelta):
                seen.append(event.text)
                if len(seen) == 3:
                    break
        await stream.aclose()
        await backend.aclose()
        return seen

    seen = asyncio.run(take_three())
    assert seen == ["tok0 ", "tok1 ", "tok2 "]
    assert _wait_for_disconnect(openai_server, model)  # closed, not read to its end


def test_cancelling_the_task_stops_the_stream(openai_server: OpenAIServer) -> None:
    model = "slow:1000:20@cancel"
    backend = make_backend(openai_server.base_url)
    seen: list[StreamEvent] = []

    async def consume() -> None:
        async for event in backend.stream(ChatRequest([ChatMessage("user", "x")], model=model)):
            seen.append(event)

    async def main() -> None:
        task = asyncio.create_task(consume())
        for _ in range(6000):  # up to a minute for the first delta
            if any(isinstance(e, TextDelta) for e in seen):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.aclose()

    asyncio.run(main())
    assert any(isinstance(e, TextDelta) for e in seen)
    assert _wait_for_disconnect(openai_server, model)  # cancelled, not read to its end


# --- hygiene ------------------------------------------------------------------------------


def test_package_imports_nothing_heavy() -> None:
    code = (
        "import sys, chatterm_openai\n"
        "heavy = [m for m in ('torch', 'transformers', 'textual') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_script_mode_prints_ready_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("openai_server.py")), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[0] == "READY" and line[1].endswith("/v1")
        backend = make_backend(line[1])
        events, error = asyncio.run(_collect(backend, "echo", "from a subprocess", {}))
        assert error is None and text_of(events) == "from a subprocess"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bad_duration_in_extra_is_an_option_error() -> None:
    with pytest.raises(OptionError) as info:
        make_backend("http://127.0.0.1:1/v1", timeout="soon")
    assert "timeout" in info.value.message and "'soon'" in info.value.message


# --- the message helpers, on the payload shapes servers send --------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"error": {"message": "bad model", "type": "x"}}', "application/json", "bad model"),
        (b'{"error": "ollama says no"}', "application/json", "ollama says no"),
        (b'{"detail": "Not Found"}', "application/json", "Not Found"),
        (b'{"object": "error", "message": "old vllm"}', "application/json", "old vllm"),
        (b"line one\nline two\r\n", "text/plain", "line one line two"),
        (
            b"<html><head><script>var x = 1;</script></head><body><h1>Oops &amp; 502</h1>"
            b"<style>p{}</style></body></html>",
            "text/html",
            "Oops & 502",
        ),
        (b"", "text/plain", ""),
    ],
)
def test_message_from_body(body: bytes, content_type: str, message: str) -> None:
    assert message_from_body(body, content_type) == message


def test_long_messages_are_cut_to_one_line() -> None:
    text = one_line("word\n" * 200)
    assert len(text) == 300 and text.endswith("…") and "\n" not in text


def test_retry_after_forms() -> None:
    assert retry_after_seconds("2", 30) == 2
    assert retry_after_seconds("120", 30) == 30
    assert retry_after_seconds("-5", 30) == 0
    assert retry_after_seconds("soon", 30) is None
    assert retry_after_seconds(None, 30) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 30) == 0  # in the past


def test_model_list_shapes() -> None:
    assert [e["id"] for e in model_entries({"data": [{"id": "a"}, {"id": "b"}]})] == ["a", "b"]
    assert [e["id"] for e in model_entries({"models": [{"name": "llama3"}]})] == ["llama3"]
    assert [e["id"] for e in model_entries(["x", "y"])] == ["x", "y"]
    assert context_length_of({"id": "m", "meta": {"n_ctx_train": 8192}}) == 8192
    assert context_length_of({"id": "m"}) is None
