"""`chatterm ask`'s command line without typer: a table of its flags, and the call they make.

Why a table: importing typer and click and building the click command took ~50 ms of every
`ask`, before the question was even sent. The flags are still declared once, with typer, in
:mod:`chatterm.cli.commands` (help, completion, error messages all come from there); this
table is a copy the fast path (:mod:`chatterm.cli.fastpath`) reads, and
tests/test_fastpath.py fails as soon as it differs from what typer declares.
"""

from __future__ import annotations

from typing import Any

from chatterm.cli.fastpath import Spec

_FLAGS: tuple[tuple[str, str, tuple[str, ...], Any], ...] = (
    # (parameter, kind, option strings, default), in the order of `ask`'s parameters
    ("model", "str", ("--model", "-m"), None),
    ("backend", "str", ("--backend",), None),
    ("base_url", "str", ("--base-url",), None),
    ("profile", "str", ("--profile", "-p"), None),
    ("system", "str", ("--system", "-s"), None),
    ("continue_last", "bool", ("--continue", "-c"), False),
    ("session", "str", ("--session",), None),
    ("option", "list", ("--option", "-o"), None),
    ("temperature", "float", ("--temperature",), None),
    ("max_tokens", "int", ("--max-tokens",), None),
    ("raw", "bool", ("--raw", "-r"), False),
    ("no_stream", "bool", ("--no-stream",), False),
    ("json_out", "bool", ("--json",), False),
    ("no_log", "bool", ("--no-log", "-n"), False),
    ("usage", "bool", ("--usage", "-u"), False),
    ("file", "list", ("--file", "-f"), None),
    ("attach", "list", ("--attach", "-a"), None),
    ("template", "str", ("--template", "-t"), None),
    ("debug", "bool", ("--debug",), False),
)

SPEC = Spec(
    options={name: (param, kind) for param, kind, names, _ in _FLAGS for name in names},
    negations=frozenset(),
    positional="prompt",
    defaults={"prompt": None, **{param: default for param, _, _, default in _FLAGS}},
)


def ask_from_args(
    prompt: list[str] | None = None,
    model: str | None = None,
    backend: str | None = None,
    base_url: str | None = None,
    profile: str | None = None,
    system: str | None = None,
    continue_last: bool = False,
    session: str | None = None,
    option: list[str] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    raw: bool = False,
    no_stream: bool = False,
    json_out: bool = False,
    no_log: bool = False,
    usage: bool = False,
    file: list[str] | None = None,
    attach: list[str] | None = None,
    template: str | None = None,
    debug: bool = False,
) -> int:
    """`ask` with the values of its flags (as typer passes them); returns the exit code."""
    from chatterm.cli.ask import run_ask
    from chatterm.cli.settings import AskOutput, CommonOptions

    common = CommonOptions(
        model=model, backend=backend, base_url=base_url, profile=profile, system=system,
        continue_last=continue_last, session=session, option=list(option or []),
        temperature=temperature, max_tokens=max_tokens, debug=debug,
    )
    output = AskOutput(
        raw=raw, no_stream=no_stream, json=json_out, no_log=no_log, usage=usage,
        files=list(file or []), images=list(attach or []), template=template,
    )
    text = " ".join(prompt) if prompt else None
    return run_ask(common, output, prompt=text)
