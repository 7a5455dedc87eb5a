"""Untrusted text made safe for a terminal: the one rule, in one place.

Everything chatterm shows that it did not write itself (replies, reasoning, server error bodies,
model ids, titles, files, anything read back from the history) passes through here before it
reaches a terminal. Such text is data: it can never act as a control. Instead of being dropped,
every dangerous character is replaced by a *visible* stand-in, so a user sees that something was
there (``␛]52;…`` for an OSC 52 clipboard write, ``␍`` for a bare carriage return that would
hide the start of a line, ``<U+202E>`` for a bidi override that would reorder it).

The rule:

* C0 controls other than newline and tab, and DEL, become their Unicode control pictures
  (``␀``…``␟``, ``␡``). ESC becomes ``␛``, which is what disarms every escape sequence (CSI, OSC,
  DCS, APC, PM, SOS): without its ESC the rest of a sequence is plain printable text.
* The C1 range U+0080-U+009F (8-bit CSI, OSC, DCS, ...) becomes ``<U+009B>`` and so on.
* A carriage return not followed by a newline becomes ``␍``; ``\\r\\n`` becomes ``\\n``.
* Bidi embedding, override and isolate characters (U+202A-U+202E, U+2066-U+2069) become
  ``<U+202E>`` and so on.

It is one ``str.isprintable`` check that passes ordinary text, and a ``str.translate`` pass (plus a
``replace`` when the text holds ``\\r``) only where there is something to replace: cheap enough
for every streamed chunk. Pipes and files are not written through here: they stay byte-exact.

This is a core module: no Textual, no rich.
"""

from __future__ import annotations

from typing import Any

# Code points that must never reach a terminal as themselves, mapped to what is shown instead.
_C0 = [c for c in range(0x20) if c not in (0x09, 0x0A)]
_C1 = list(range(0x80, 0xA0))
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]

UNSAFE_CODE_POINTS: frozenset[int] = frozenset([*_C0, 0x7F, *_C1, *_BIDI])

_VISIBLE: dict[int, str] = {c: chr(0x2400 + c) for c in _C0}  # ␀ … ␟, ␛ for ESC, ␍ for CR
_VISIBLE[0x7F] = "\u2421"  # ␡
_VISIBLE.update({c: f"<U+{c:04X}>" for c in (*_C1, *_BIDI)})

# For one-line contexts (titles, model ids, error lines): newline and tab become spaces too.
_VISIBLE_INLINE = {**_VISIBLE, 0x0A: " ", 0x09: " "}

# The fast path: ``str.isprintable`` is False for every unsafe code point (and for newline, tab
# and some harmless ones, which then take the translate path), runs in C without a regex to
# compile, and is ~10x cheaper than translating a piece that holds nothing to replace.

# JSON for a terminal: json.dumps already escapes C0; this escapes what it leaves (DEL, C1, bidi).
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in (0x7F, *_C1, *_BIDI)}


def safe_text(text: str) -> str:
    """``text`` with every control made visible; newlines and tabs kept. For multi-line text."""
    return _made_visible(text, _VISIBLE)


def safe_inline(text: str) -> str:
    """``text`` for one line (a title, a model id, an error message): no control, no newline."""
    return _made_visible(text, _VISIBLE_INLINE)


def _made_visible(text: str, table: dict[int, str]) -> str:
    """The rule itself: the fast path, ``\r\n`` folded, then one translate pass."""
    if text.isprintable():
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text.translate(table)


def is_safe(text: str) -> bool:
    """True when ``text`` holds nothing this module would change (newline and tab allowed)."""
    return not any(ord(ch) in UNSAFE_CODE_POINTS for ch in text)


def safe_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` whose output cannot drive a terminal: every control is a ``\\u`` escape.

    Still valid JSON that decodes to exactly ``value``; use it when stdout is a terminal.
    """
    import json  # here: importing this module must stay cheap

    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(value, **kwargs).translate(_JSON_ESCAPES)


def safe_json_text(encoded: str) -> str:
    """Already encoded JSON made terminal-safe (the same escapes as :func:`safe_json`).

    ``json.dumps`` escapes C0 itself and leaves DEL, C1 and bidi characters, which can only
    occur inside strings, so escaping them in the encoded text keeps it valid, equal JSON.
    """
    return encoded.translate(_JSON_ESCAPES)


class StreamSanitizer:
    """:func:`safe_text` for text that arrives in pieces.

    A ``\\r`` at the end of one piece may be the first half of ``\\r\\n``, so it is held back
    until the next piece (or :meth:`flush`) says which it was. Everything else is stateless:
    an ESC split from the rest of its sequence is disarmed on its own.
    """

    __slots__ = ("_held_cr",)

    def __init__(self) -> None:
        self._held_cr = False

    def feed(self, piece: str) -> str:
        if self._held_cr:
            piece = "\r" + piece
            self._held_cr = False
        elif piece.isprintable():
            return piece
        if "\r" not in piece:
            return piece.translate(_VISIBLE)
        if piece.endswith("\r"):
            piece = piece[:-1]
            self._held_cr = True
        return piece.replace("\r\n", "\n").translate(_VISIBLE)

    def flush(self) -> str:
        """What is still held back (a lone ``\\r`` shown as ``␍``), at the end of the text."""
        if self._held_cr:
            self._held_cr = False
            return _VISIBLE[0x0D]
        return ""
