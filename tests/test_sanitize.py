"""The one terminal-safety rule (chatterm.sanitize), checked over every code point it names."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatterm.sanitize import (
    UNSAFE_CODE_POINTS,
    StreamSanitizer,
    is_safe,
    safe_inline,
    safe_json,
    safe_text,
)

NAMED_RANGES = [
    *[c for c in range(0x20) if c not in (0x09, 0x0A)],
    0x7F,
    *range(0x80, 0xA0),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]


def _unsafe_chars(text: str) -> list[str]:
    return [ch for ch in text if ord(ch) in UNSAFE_CODE_POINTS]


@pytest.mark.parametrize("code", NAMED_RANGES)
def test_every_named_code_point_is_shown_visibly_never_emitted(code: int) -> None:
    text = f"a{chr(code)}b"
    for shown in (safe_text(text), safe_inline(text)):
        assert chr(code) not in shown
        assert shown.startswith("a") and shown.endswith("b")
        assert len(shown) > 2, "replaced by something visible, not dropped"


def test_named_ranges_are_exactly_the_unsafe_set() -> None:
    assert set(NAMED_RANGES) == set(UNSAFE_CODE_POINTS)


def test_escape_sequences_are_disarmed_and_visible() -> None:
    osc52 = "\x1b]52;c;cm0gLXJmIC8=\x07"
    shown = safe_text(f"hi {osc52} \x1b[2J\x1b[H \x9b31m \x9d0;title\x9c \x1bP1$r\x1b\\")
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "␛]52;c;cm0gLXJmIC8=␇" in shown
    assert "<U+009B>31m" in shown


def test_newline_and_tab_kept_crlf_folded_bare_cr_and_backspace_visible() -> None:
    assert safe_text("a\tb\nc") == "a\tb\nc"
    assert safe_text("line\r\nnext") == "line\nnext"
    assert safe_text("echo ok\rrm -rf /") == "echo ok␍rm -rf /"
    assert safe_text("abc\b\b\bxyz") == "abc␈␈␈xyz"


def test_inline_folds_newlines_and_tabs_into_spaces() -> None:
    assert safe_inline("a\nb\tc\x1b[31m") == "a b c␛[31m"


def test_bidi_overrides_are_named() -> None:
    assert safe_text("good\u202eevil\u2069") == "good<U+202E>evil<U+2069>"


def test_ordinary_unicode_untouched() -> None:
    text = "naïve café — 日本語 😀 ∑ “quotes” ␛ already a picture"
    assert safe_text(text) == text
    assert is_safe(text)


@given(st.text())
def test_output_is_always_safe(text: str) -> None:
    assert is_safe(safe_text(text))
    assert is_safe(safe_inline(text))
    assert "\r" not in safe_text(text)


@given(st.lists(st.text(alphabet=st.sampled_from(["a", "\r", "\n", "\x1b", "[", "\x9b", "é"]))))
def test_streaming_in_pieces_equals_whole_text(pieces: list[str]) -> None:
    stream = StreamSanitizer()
    shown = "".join(stream.feed(p) for p in pieces) + stream.flush()
    assert shown == safe_text("".join(pieces))


@given(st.text())
def test_safe_json_round_trips_and_cannot_drive_a_terminal(text: str) -> None:
    encoded = safe_json({"reply": text})
    assert json.loads(encoded) == {"reply": text}
    assert is_safe(encoded.replace("\n", ""))
    assert not _unsafe_chars(encoded)


@given(st.text())
def test_safe_json_text_escapes_encoded_json_the_same_way(text: str) -> None:
    from chatterm.sanitize import safe_json_text

    encoded = json.dumps({"t": text}, ensure_ascii=False, indent=2)
    shown = safe_json_text(encoded)
    assert json.loads(shown) == {"t": text}
    assert not _unsafe_chars(shown)


def test_the_fast_path_never_skips_an_unsafe_code_point() -> None:
    """``str.isprintable`` lets text skip the translate pass: never for a code point we name."""
    for code in UNSAFE_CODE_POINTS:
        assert not chr(code).isprintable(), hex(code)
        assert not f"ab{chr(code)}cd".isprintable()
