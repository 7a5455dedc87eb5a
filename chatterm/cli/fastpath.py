"""`chatterm ask ARGS` without click's per-parameter processing, or without typer at all.

Why: start-up is a feature of `ask`. Since typer 0.29 every parameter a command declares is
validated through a pydantic ``TypeAdapter`` built on first use (importing pydantic and building
~20 adapters added ~0.1-0.4 s to every `ask`), and importing typer and click and building the
click command costs ~50 ms more. This module reads the values of `ask`'s command line itself,
for the plain shapes `ask` takes (``--opt VALUE``, ``--opt=VALUE``, ``-oVALUE``, clustered
short flags, repeated options, ``--``) and the plain types it declares (str, int, float, bool
flags, lists of str), from a :class:`Spec` of the command:

* :func:`run_ask_plain` (what ``chatterm`` runs) takes the spec from
  :data:`chatterm.cli.ask_line.SPEC`, a table of `ask`'s flags, and imports no typer;
* :func:`spec_of` reads the same spec from the typer declaration (``typer.main.get_command``),
  and tests/test_fastpath.py checks that the table equals it, so the typer declaration stays
  the one place the flags are defined.

Anything else (``--help``, an unknown option, a missing value, a number that is not a plain
number, a type this module does not know) returns None, and typer parses the whole command
line as before, with its usual help and error messages. tests/test_fastpath.py checks that both
give the same result for every command line the fast path accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["REQUIRED", "Spec", "parse", "run_ask_fast", "run_ask_plain", "spec_of"]

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_HELP = frozenset({"-h", "--help"})


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of a parameter that has none (then typer decides)


class _Defer(Exception):
    """This command line is not one the fast path reads: let typer parse it."""


class Spec:
    """What the fast path needs to know of a command: each option string's parameter and kind
    ("str", "int", "float", "bool", "list"), the secondary (``--no-x``) flag strings, the
    parameter taking the words (a list of str, or None), and every parameter's default in the
    function's order (:data:`REQUIRED` where it has none)."""

    __slots__ = ("defaults", "negations", "options", "positional")

    def __init__(
        self,
        options: dict[str, tuple[str, str]],
        negations: frozenset[str],
        positional: str | None,
        defaults: dict[str, Any],
    ) -> None:
        self.options = options
        self.negations = negations
        self.positional = positional
        self.defaults = defaults

    def _key(self) -> tuple[Any, ...]:
        return (self.options, self.negations, self.positional, list(self.defaults.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Spec{self._key()!r}"


def run_ask_plain(argv: list[str]) -> int | None:
    """Run ``ask`` from ``argv`` (after the program name) with the table of its flags, without
    importing typer; None when typer must parse the command line."""
    if not argv or argv[0] != "ask":
        return None
    from chatterm.cli.ask_line import SPEC, ask_from_args

    try:
        kwargs = parse(SPEC, argv[1:])
    except _Defer:
        return None
    return ask_from_args(**kwargs)


def run_ask_fast(app: Any, argv: list[str]) -> int | None:
    """Run the ``ask`` command of the typer ``app`` from ``argv`` and return its exit code, or
    None when ``argv`` is not a plain `ask` command line and typer must parse it."""
    import typer

    if not argv or argv[0] != "ask":
        return None
    try:
        function, spec = spec_of(app)
        kwargs = parse(spec, argv[1:])
    except _Defer:
        return None
    try:
        function(**kwargs)
    except typer.Exit as exc:
        return int(exc.exit_code)
    return 0


def spec_of(app: Any) -> tuple[Callable[..., Any], Spec]:
    """The ``ask`` function of the typer ``app`` and its :class:`Spec`, from the declaration
    typer builds; _Defer for a declaration outside what this module reads."""
    import inspect

    import typer.main

    function = next(
        (c.callback for c in app.registered_commands if _command_name(c) == "ask"), None
    )
    if function is None:
        raise _Defer
    kinds = _kinds(function)
    command = getattr(typer.main.get_command(app), "commands", {}).get("ask")
    if command is None:
        raise _Defer
    options: dict[str, tuple[str, str]] = {}  # option string -> (parameter, kind)
    negations: set[str] = set()  # secondary flag strings (--no-x)
    positional = None
    for param in command.params:
        if param.name not in kinds:
            raise _Defer
        kind = kinds[param.name]
        if param.param_type_name == "argument":
            if positional is not None or param.nargs != -1 or kind != "list":
                raise _Defer
            positional = param.name
            continue
        if getattr(param, "count", False) or param.nargs != 1:
            raise _Defer
        if getattr(param, "is_flag", False) != (kind == "bool"):
            raise _Defer
        if param.multiple != (kind == "list"):
            raise _Defer
        for name in param.opts:
            options[name] = (param.name, kind)
        for name in getattr(param, "secondary_opts", ()):
            options[name] = (param.name, kind)
            negations.add(name)
    if _HELP & options.keys():
        raise _Defer  # -h/--help re-declared: not ours to guess
    defaults = {
        name: REQUIRED if parameter.default is inspect.Parameter.empty else parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
    }
    return function, Spec(options, frozenset(negations), positional, defaults)


def parse(spec: Spec, args: list[str]) -> dict[str, Any]:
    """The keyword arguments typer would call the command with for ``args``; _Defer for a
    command line outside what this module reads."""
    options, negations = spec.options, spec.negations
    values: dict[str, Any] = {}
    words: list[str] = []

    def take(name: str, value: str | None, rest: list[str]) -> None:
        found = options.get(name)
        if found is None or name in _HELP:
            raise _Defer  # help, or an unknown option: typer says what is wrong
        param, kind = found
        if kind == "bool":
            if value is not None:
                raise _Defer
            values[param] = name not in negations
            return
        if value is None:
            if not rest:
                raise _Defer  # a missing value
            value = rest.pop(0)
        converted = _convert(kind, value)
        if kind == "list":
            values.setdefault(param, []).append(converted)
        else:
            values[param] = converted

    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            words += rest
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            take(name, value if eq else None, rest)
        elif arg.startswith("-") and len(arg) > 1:
            cluster = arg[1:]
            while cluster:
                name, cluster = "-" + cluster[0], cluster[1:]
                found = options.get(name)
                if found is not None and found[1] != "bool":
                    take(name, cluster or None, rest)
                    break
                take(name, None, rest)
        else:
            words.append(arg)
    positional = spec.positional
    if words and positional is None:
        raise _Defer
    kwargs: dict[str, Any] = {}
    for name, default in spec.defaults.items():
        if name in values:
            kwargs[name] = values[name]
        elif name == positional:
            kwargs[name] = words or None
        elif default is REQUIRED:
            raise _Defer
        else:
            kwargs[name] = default
    if positional is not None and positional not in kwargs:
        raise _Defer
    return kwargs


def _command_name(info: Any) -> str | None:
    name = getattr(info, "name", None)
    if name:
        return str(name)
    callback = getattr(info, "callback", None)
    return getattr(callback, "__name__", "").replace("_", "-") or None


def _kinds(function: Callable[..., Any]) -> dict[str, str]:
    """Each parameter's kind ("str", "int", "float", "bool", "list"), from its annotation;
    _Defer for any annotation the fast path does not convert."""
    import inspect
    import typing

    hints = typing.get_type_hints(function)
    kinds: dict[str, str] = {}
    for name in inspect.signature(function).parameters:
        kinds[name] = _kind(hints.get(name))
    return kinds


def _kind(annotation: Any) -> str:
    import types
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        if len(args) != 1:
            raise _Defer
        annotation = args[0]
    if typing.get_origin(annotation) is list:
        if typing.get_args(annotation) != (str,):
            raise _Defer
        return "list"
    kinds = {str: "str", int: "int", float: "float", bool: "bool"}
    if annotation not in kinds:
        raise _Defer
    return kinds[annotation]


def _convert(kind: str, value: str) -> Any:
    if kind in ("str", "list"):
        return value
    if kind == "int" and _INT.fullmatch(value):
        return int(value)
    if kind == "float" and _FLOAT.fullmatch(value):
        return float(value)
    raise _Defer  # typer explains a bad number
