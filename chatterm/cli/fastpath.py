"""`chatterm ask ARGS` without click's per-parameter processing, from typer's own declarations.

Why: start-up is a feature of `ask`, and since typer 0.29 every parameter a command declares is
validated through a pydantic ``TypeAdapter`` built on first use: importing pydantic and
building ~20 adapters added ~0.1-0.4 s to every `ask`, whatever the user typed. The option
names, flags and defaults still come from the typer command (``typer.main.get_command``), so
there is one declaration; only the values are read here, for the plain shapes `ask` takes
(``--opt VALUE``, ``--opt=VALUE``, ``-oVALUE``, clustered short flags, repeated options, ``--``)
and the plain types it declares (str, int, float, bool flags, lists of str).

Anything else (``--help``, an unknown option, a missing value, a number that is not a plain
number, a type this module does not know) returns None, and typer parses the whole command
line as before, with its usual help and error messages. tests/test_fastpath.py checks that both
give the same result for every command line the fast path accepts.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

import typer
import typer.main

__all__ = ["run_ask_fast"]

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_HELP = frozenset({"-h", "--help"})


class _Defer(Exception):
    """This command line is not one the fast path reads: let typer parse it."""


def run_ask_fast(app: Any, argv: list[str]) -> int | None:
    """Run ``ask`` from ``argv`` (after the program name) and return its exit code, or None
    when ``argv`` is not a plain `ask` command line and typer must parse it."""
    if not argv or argv[0] != "ask":
        return None
    try:
        function, kwargs = parse_ask(app, argv[1:])
    except _Defer:
        return None
    try:
        function(**kwargs)
    except typer.Exit as exc:
        return int(exc.exit_code)
    return 0


def parse_ask(app: Any, args: list[str]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The ``ask`` function and the keyword arguments typer would call it with.

    Raises _Defer for a command line (or a declaration) outside what this module reads.
    """
    function = next(
        (c.callback for c in app.registered_commands if _command_name(c) == "ask"), None
    )
    if function is None:
        raise _Defer
    kinds = _kinds(function)
    command = getattr(typer.main.get_command(app), "commands", {}).get("ask")
    if command is None:
        raise _Defer
    options: dict[str, Any] = {}  # option string -> click parameter
    negations: set[str] = set()  # secondary flag strings (--no-x)
    positional = None
    for param in command.params:
        if param.name not in kinds:
            raise _Defer
        if param.param_type_name == "argument":
            if positional is not None or param.nargs != -1 or kinds[param.name] != "list":
                raise _Defer
            positional = param
            continue
        if getattr(param, "count", False) or param.nargs != 1:
            raise _Defer
        if getattr(param, "is_flag", False) != (kinds[param.name] == "bool"):
            raise _Defer
        if param.multiple != (kinds[param.name] == "list"):
            raise _Defer
        for name in param.opts:
            options[name] = param
        for name in getattr(param, "secondary_opts", ()):
            options[name] = param
            negations.add(name)
    if _HELP & options.keys():
        raise _Defer  # -h/--help re-declared: not ours to guess

    signature = inspect.signature(function)
    values: dict[str, Any] = {}
    words: list[str] = []

    def take(name: str, value: str | None, rest: list[str]) -> None:
        param = options.get(name)
        if param is None or name in _HELP:
            raise _Defer  # help, or an unknown option: typer says what is wrong
        kind = kinds[param.name]
        if kind == "bool":
            if value is not None:
                raise _Defer
            values[param.name] = name not in negations
            return
        if value is None:
            if not rest:
                raise _Defer  # a missing value
            value = rest.pop(0)
        converted = _convert(kind, value)
        if kind == "list":
            values.setdefault(param.name, []).append(converted)
        else:
            values[param.name] = converted

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
                param = options.get(name)
                if param is not None and kinds[param.name] != "bool":
                    take(name, cluster or None, rest)
                    break
                take(name, None, rest)
        else:
            words.append(arg)
    if words and positional is None:
        raise _Defer
    kwargs: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        if name in values:
            kwargs[name] = values[name]
        elif positional is not None and name == positional.name:
            kwargs[name] = words or None
        elif parameter.default is inspect.Parameter.empty:
            raise _Defer
        else:
            kwargs[name] = parameter.default
    if positional is not None and positional.name not in kwargs:
        raise _Defer
    return function, kwargs


def _command_name(info: Any) -> str | None:
    name = getattr(info, "name", None)
    if name:
        return str(name)
    callback = getattr(info, "callback", None)
    return getattr(callback, "__name__", "").replace("_", "-") or None


def _kinds(function: Callable[..., Any]) -> dict[str, str]:
    """Each parameter's kind ("str", "int", "float", "bool", "list"), from its annotation;
    _Defer for any annotation the fast path does not convert."""
    hints = typing.get_type_hints(function)
    kinds: dict[str, str] = {}
    for name in inspect.signature(function).parameters:
        kinds[name] = _kind(hints.get(name))
    return kinds


def _kind(annotation: Any) -> str:
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
