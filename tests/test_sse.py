"""The SSE decoder on raw bytes, including every way a payload can be cut into reads."""

from __future__ import annotations

import itertools

import pytest
from chatterm_openai.sse import SSEDecoder


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
