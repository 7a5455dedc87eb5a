"""The SSE decoder on raw bytes, including every way a payload can be cut into reads; and
``loads_event``, the JSON decoding of an event's data, against ``json.loads``."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from chatterm_openai.sse import SSEDecoder, loads_event
from hypothesis import given, settings
from hypothesis import strategies as st


def decode(*reads: bytes) -> tuple[list[str], str | None]:
    decoder = SSEDecoder()
    events: list[str] = []
    for read in reads:
        events += decoder.feed(read)
    events += decoder.close()
    return events, decoder.error


U2028_JSON = '{"c": "a\u2028b\u0085c\u2029d"}'

# (payload, expected events, expected error)
CASES: list[tuple[bytes, list[str], str | None]] = [
    (b'data: {"a": 1}\n\ndata: [DONE]\n\n', ['{"a": 1}', "[DONE]"], None),
    (b"data: x\r\n\r\ndata: y\r\n\r\n", ["x", "y"], None),
    (b"data: a\ndata:b\ndata\n\n", ["a\nb\n"], None),
    (
        b": OPENROUTER PROCESSING\n\n: ping\n\nid: 1\n: keep-alive\n\nevent: message\nid: 2\n"
        b"retry: 5\ndata: x\n\n:\n\nid: 3\n\n",
        ["x"],
        None,
    ),
    (f"data: {U2028_JSON}\n\n".encode(), [U2028_JSON], None),
    ("data: é日本🎉\n\ndata: ok\n\n".encode(), ["é日本🎉", "ok"], None),
    (b"data: first\n\ndata: last", ["first", "last"], None),
    (b"data: last\n", ["last"], None),
    (b"data: a\r\ndata: b\r\n\r\ndata: c\n\n", ["a\nb", "c"], None),
    (b"\n\n\ndata: a\n\n\n\ndata: b\n\n\n", ["a", "b"], None),
    (b"\xef\xbb\xbfdata: bom\n\n", ["bom"], None),
    (b"data:  two spaces\n\ndata:none\n\n", [" two spaces", "none"], None),
    (
        b'data: a\n\nerror: {"message": "boom"}\n\ndata: after\n\n',
        ["a"],
        '{"message": "boom"}',
    ),
    (b"data: a\nerror: first\nerror: second\n\n", [], "first\nsecond"),
    (b"data: no blank at all\r", ["no blank at all"], None),
]


@pytest.mark.parametrize(("payload", "events", "error"), CASES)
def test_whole_payload(payload: bytes, events: list[str], error: str | None) -> None:
    assert decode(payload) == (events, error)


@pytest.mark.parametrize(("payload", "events", "error"), CASES)
def test_every_split_position_gives_the_same_events(
    payload: bytes, events: list[str], error: str | None
) -> None:
    for cut in range(len(payload) + 1):
        assert decode(payload[:cut], payload[cut:]) == (events, error), cut


@pytest.mark.parametrize(("payload", "events", "error"), CASES)
def test_byte_by_byte(payload: bytes, events: list[str], error: str | None) -> None:
    assert decode(*(payload[i : i + 1] for i in range(len(payload)))) == (events, error)


@pytest.mark.parametrize("index", [0, 4, 5, 8])
def test_every_pair_of_split_positions(index: int) -> None:
    payload, events, error = CASES[index]
    for first, second in itertools.combinations(range(len(payload) + 1), 2):
        parts = (payload[:first], payload[first:second], payload[second:])
        assert decode(*parts) == (events, error), (first, second)


def test_feed_returns_events_as_soon_as_their_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n") == []
    assert decoder.feed(b"\ndata: tw") == ["one"]
    assert decoder.feed(b"o\n\n") == ["two"]
    assert decoder.close() == []


def test_many_events_in_one_read() -> None:
    payload = b"".join(b"data: %d\n\n" % i for i in range(1000))
    assert decode(payload) == ([str(i) for i in range(1000)], None)


def test_unicode_line_separators_do_not_split_events() -> None:
    # What httpx's aiter_lines gets wrong: these are line ends to str.splitlines only.
    text = "x\u2028y\u2029z\x85w\x1cv\x0cu"
    assert decode(f"data: {text}\n\n".encode()) == ([text], None)


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert decode(b"data: \xff\xfe ok\n\n") == (["\ufffd\ufffd ok"], None)


def test_nothing_is_decoded_after_an_error_field() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\nerror: bad\n\n") == ["a"]
    assert decoder.error == "bad"
    assert decoder.feed(b"data: b\n\n") == []
    assert decoder.close() == []


def test_event_without_data_is_not_dispatched() -> None:
    # httpx-sse turns this into an event with empty data, and json.loads("") then fails.
    assert decode(b"id: 7\n\nevent: ping\n\nretry: 10\n\n") == ([], None)


# --- Any stream, cut anywhere: the decoder against a plain reading of the SSE standard ---------

_LINE_ENDS = (b"\n", b"\r\n", b"\r")
_NO_NEWLINES = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12
)


def reference(body: bytes) -> tuple[list[str], str | None]:
    """The standard's algorithm over the whole body at once: the oracle for the decoder."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    events: list[str] = []
    data: list[bytes] = []
    errors: list[bytes] = []
    for line in [*re.split(rb"\r\n|\r|\n", body), b""]:  # the end of the body dispatches too
        if not line:
            if errors:
                return events, b"\n".join(errors).decode("utf-8", "replace")
            if data:
                events.append(b"\n".join(data).decode("utf-8", "replace"))
            data = []
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"data":
            data.append(value)
        elif name == b"error":
            errors.append(value)
    return events, None


@st.composite
def event_streams(draw: st.DrawFn) -> bytes:
    """Events of data lines (one or several), comments, ignored fields, blank-line runs, any
    line end (LF, CRLF, lone CR), optionally a BOM, a final event without its blank line or
    an ``error:`` field."""
    field_line = st.one_of(
        _NO_NEWLINES.map(lambda t: b"data: " + t.encode()),
        _NO_NEWLINES.map(lambda t: b"data:" + t.encode()),
        st.just(b"data"),
        _NO_NEWLINES.map(lambda t: b":" + t.encode()),  # comment
        st.sampled_from([b"id: 7", b"event: message", b"retry: 10", b"foo: bar", b"id"]),
        st.sampled_from([b'data: {"choices": [{"delta": {"content": "\xe2\x80\xa8x"}}]}']),
    )
    out = bytearray(b"\xef\xbb\xbf" if draw(st.booleans()) else b"")
    for _ in range(draw(st.integers(0, 6))):
        for line in draw(st.lists(field_line, min_size=1, max_size=4)):
            out += line + draw(st.sampled_from(_LINE_ENDS))
        for _ in range(draw(st.integers(1, 2))):  # the blank line(s) ending the event
            out += draw(st.sampled_from(_LINE_ENDS))
    if draw(st.booleans()):
        out += b"error: " + draw(_NO_NEWLINES).encode() + b"\n\ndata: after\n\n"
    if draw(st.booleans()):
        out += b"data: unterminated" + draw(st.sampled_from([b"", *_LINE_ENDS]))
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(body=event_streams(), data=st.data())
def test_any_stream_cut_anywhere_decodes_as_the_standard_says(
    body: bytes, data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    reads = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert decode(*reads) == reference(body)


@settings(max_examples=50, deadline=None)
@given(body=event_streams())
def test_any_stream_byte_by_byte(body: bytes) -> None:
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == reference(body)


def test_cr_at_the_end_of_a_read_and_lf_at_the_start_of_the_next_are_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []  # one line end, so no blank line yet
    assert decoder.feed(b"\r") == ["a\nb"]  # a second CR is a blank line
    assert decoder.close() == []


def test_lone_cr_ends_lines_as_the_standard_says() -> None:
    assert decode(b"data: a\rdata: b\r\rdata: c\r\r") == (["a\nb", "c"], None)


def test_a_huge_line_over_many_reads_is_whole_and_exact() -> None:
    text = "".join(f"{i:07d}é" for i in range(150_000))  # 1.35 MB, multi-byte characters
    body = f'data: {{"t": "{text}"}}\n\ndata: [DONE]\n\n'.encode()
    reads = [body[i : i + 997] for i in range(0, len(body), 997)]  # cuts inside characters too
    assert decode(*reads) == ([f'{{"t": "{text}"}}', "[DONE]"], None)


def test_pending_line_is_kept_as_pieces_not_rejoined_per_read() -> None:
    # Behaviour behind the linear cost: while a line is unfinished the decoder holds each read
    # as it came (one piece per read) and joins them once, when the line end arrives.
    decoder = SSEDecoder()
    for _ in range(1000):
        assert decoder.feed(b"x" * 100) == []
    assert len(decoder._pieces) == 1000 and all(len(p) == 100 for p in decoder._pieces)
    assert decoder.feed(b"\n\n") == []  # "x..." is a field line, ignored: no data
    assert decoder._pieces == []


# --- the JSON of an event: loads_event is json.loads, exactly --------------------------------


def _outcome(function, data):  # type: ignore[no-untyped-def]
    try:
        return ("value", function(data))
    except ValueError as exc:
        return ("error", type(exc), str(exc))
    except RecursionError:
        return ("recursion",)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_PADS = st.sampled_from(["", " ", "\t", "\n", "\r\n", "  \t", "\ufeff", "x", "{}", ",", "]"])


@given(value=_JSON_VALUES, before=_PADS, after=_PADS)
def test_loads_event_is_json_loads_around_any_padding(value, before, after) -> None:  # type: ignore[no-untyped-def]
    data = before + json.dumps(value, ensure_ascii=bool(len(after) % 2)) + after
    assert _outcome(loads_event, data) == _outcome(json.loads, data)


@given(data=st.text(max_size=40))
def test_loads_event_is_json_loads_on_any_text(data: str) -> None:
    assert _outcome(loads_event, data) == _outcome(json.loads, data)


def test_loads_event_on_what_servers_send() -> None:
    for data in [
        '{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}',
        '{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}',
        '{"error":{"message":"boom"}}',
        "[DONE]", "", " ", "NaN", "1 2", '{"a":1}{"b":2}', '"\\ud800"', "[" * 50 + "]" * 50,
        "[" * 100_000 + "]" * 100_000,
    ]:
        assert _outcome(loads_event, data) == _outcome(json.loads, data), data[:40]
