"""The stdin rule: piped stdin is sent first, then a blank line, then the prompt argument.

``cat notes.txt | chatterm ask "summarise"`` sends the notes, a blank line, "summarise";
``echo q | chatterm ask`` and ``echo q | chatterm`` send stdin alone. Putting the material first
and the instruction last is what instruct models answer best, and matches sgpt and mods.
"""

from __future__ import annotations

import sys

from chatterm.cli.failures import Failure

# Beyond this, piping is almost certainly a mistake (a binary, a whole log directory); the
# limit is far above any model's context so real documents pass untouched.
MAX_STDIN_BYTES = 64 * 1024 * 1024


def stdin_is_terminal() -> bool:
    """Whether stdin is a terminal (or missing): then ``chatterm`` alone opens the TUI; piped,
    it asks with stdin."""
    try:
        return sys.stdin is None or sys.stdin.isatty() or sys.stdin.fileno() < 0
    except (ValueError, OSError):
        return True


def read_piped_stdin() -> str:
    """Read all of stdin when it is not a terminal; '' when it is (or there is none)."""
    stream = sys.stdin
    try:
        if stream is None or stream.isatty():
            return ""
        data = stream.buffer.read(MAX_STDIN_BYTES + 1)
    except (OSError, ValueError):
        return ""
    if len(data) > MAX_STDIN_BYTES:
        raise Failure(
            f"stdin is larger than {MAX_STDIN_BYTES // (1024 * 1024)} MB; "
            "pass a smaller excerpt (e.g. with head -c)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Failure(
            f"stdin is not UTF-8 text (invalid byte at offset {exc.start}); "
            "convert it first, e.g. iconv -f latin1 -t utf-8"
        ) from None


def compose_prompt(argument: str | None, stdin_text: str) -> str:
    """Apply the stdin rule; an empty result is a usage error."""
    argument = argument if argument and argument.strip() else None
    if argument is not None and not _is_utf8(argument):
        # Python turns argv bytes that are not UTF-8 into lone surrogates, which nothing
        # downstream (the request, the history) can encode: refuse them as stdin is refused.
        raise Failure(
            "the prompt argument is not UTF-8 text (the shell passed bytes such as $'\\x9b'); "
            "use a UTF-8 locale or write the character as text"
        )
    material = stdin_text if stdin_text.strip() else None
    if material and argument:
        return f"{material.rstrip()}\n\n{argument}"
    if material:
        return material.rstrip("\n")
    if argument:
        return argument
    raise Failure("nothing to ask: give a prompt (chatterm ask \"...\") or pipe text into stdin")


def _is_utf8(text: str) -> bool:
    """False when ``text`` holds lone surrogates (argv bytes that were not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
