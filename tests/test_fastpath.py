"""The `ask` fast path reads a command line exactly as typer does, or hands it to typer.

Each command line is run twice in-process with ``run_ask`` replaced by a recorder: once through
typer (the full click parsing) and once through chatterm.cli.fastpath. Where the fast path
accepts a line, both must call ``run_ask`` with the same options, output settings and prompt.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from cli_run import modules_loaded_by
from hypothesis import given, settings
from hypothesis import strategies as st

from chatterm.cli import app
from chatterm.cli.ask_line import SPEC
from chatterm.cli.fastpath import run_ask_fast, run_ask_plain, spec_of
from chatterm.cli.options import normalise_option_args

# The module, not the `ask` command function that shadows it on the package.
ask_module = importlib.import_module("chatterm.cli.ask")


def through_typer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...] | None:
    """What typer calls run_ask with for ``chatterm ARGV`` (None: typer refused the line)."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(ask_module, "run_ask", lambda *a, **k: calls.append((a, k)) or 0)
    try:
        app(args=normalise_option_args(argv), prog_name="chatterm", standalone_mode=False)
    except Exception:  # a usage error: typer's own message in real use
        return None
    return calls[0] if calls else None


def through_fast_path(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...] | None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(ask_module, "run_ask", lambda *a, **k: calls.append((a, k)) or 7)
    code = run_ask_fast(app, normalise_option_args(argv))
    if code is None:
        assert not calls
        return None
    assert code == 7  # run_ask's exit code is what main() exits with
    return calls[0]


def through_plain_path(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...] | None:
    """What `chatterm ARGV` runs without typer (the table in chatterm.cli.ask_line)."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(ask_module, "run_ask", lambda *a, **k: calls.append((a, k)) or 7)
    code = run_ask_plain(normalise_option_args(argv))
    if code is None:
        assert not calls
        return None
    assert code == 7
    return calls[0]


PLAIN = [
    ["ask", "hello"],
    ["ask", "-m", "gpt-4o", "what", "is", "2+2"],
    ["ask", "--model=gpt-4o", "-s", "be brief", "--raw", "hi"],
    ["ask", "-rn", "-mqwen", "hi"],
    ["ask", "-o", "temperature", "0.2", "-o", "stop=X", "-o", "stop", "Y", "hi"],
    ["ask", "--temperature", "0.5", "--max-tokens", "20", "--json", "-u", "hi"],
    ["ask", "hi", "--no-stream", "there"],  # options between prompt words
    ["ask", "--", "-not-an-option", "--help"],
    ["ask", "-c", "--session", "abc123", "--base-url", "http://localhost:8000/v1", "again"],
    ["ask", "--backend", "local", "-p", "work", "--debug"],
    ["ask"],
    ["ask", "-m", "a", "-m", "b", "last model wins"],
    ["ask", "--temperature", "-0.5", "x"],
    ["ask", "-s", "-looks like an option-", "x"],
    ["ask", "-f", "notes.txt", "--file=b.md", "-t", "brief", "-a", "cat.png", "hi"],
]


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_plain_command_lines_take_the_fast_path_with_typers_result(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = through_fast_path(argv, monkeypatch)
    assert fast is not None, "a plain ask command line must not need typer"
    assert fast == through_typer(argv, monkeypatch)


DEFERRED = [
    ["ask", "--help"],
    ["ask", "-h"],
    ["ask", "hi", "-h"],
    ["ask", "--no-such-option", "hi"],
    ["ask", "-m"],  # a missing value
    ["ask", "--temperature", "warm"],
    ["ask", "--max-tokens", "1_000"],
    ["ask", "--raw=yes"],
    ["ask", "-Z"],
    ["models"],
    ["-m", "x", "ask", "hi"],
    [],
]


@pytest.mark.parametrize("argv", DEFERRED, ids=" ".join)
def test_anything_else_is_left_to_typer(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert through_fast_path(argv, monkeypatch) is None
    assert through_plain_path(argv, monkeypatch) is None


def test_the_table_of_asks_flags_is_what_typer_declares() -> None:
    """chatterm.cli.ask_line copies `ask`'s flags so `ask` need not import typer: any flag
    added, renamed, retyped or given another default in commands.py must be copied there."""
    _, declared = spec_of(app)
    assert declared == SPEC


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_without_typer_plain_command_lines_give_typers_result(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = through_plain_path(argv, monkeypatch)
    assert plain is not None
    assert plain == through_typer(argv, monkeypatch)


TOKENS = st.sampled_from(
    [
        "-m", "--model", "-s", "--system", "-o", "--option", "--temperature", "--max-tokens",
        "-r", "-n", "-u", "-c", "-rn", "-nu", "-rm", "--raw", "--json", "--no-stream",
        "--no-log", "--usage", "--debug", "--continue", "--session", "--base-url", "--backend",
        "-p", "--profile", "--", "-", "-h", "--help", "--bogus", "-x", "0.5", "-1", "12", "1e3",
        "nan", "k=v", "stop", "word", "two words", "--model=m", "-mm", "-o=k=v", "=", "",
        "--temperature=0.7", "--max-tokens=3", "--raw=1", "é", "-f", "--file", "-t", "-a",
    ]
)


@settings(max_examples=300, deadline=None)
@given(rest=st.lists(TOKENS, max_size=8))
def test_any_command_line_gives_typers_result_or_goes_to_typer(rest: list[str]) -> None:
    argv = ["ask", *rest]
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast = through_fast_path(argv, monkeypatch)
        if fast is not None:
            assert fast == through_typer(argv, monkeypatch), argv
        assert through_plain_path(argv, monkeypatch) == fast, argv


def test_declarations_the_fast_path_cannot_read_send_everything_to_typer() -> None:
    import typer

    odd = typer.Typer()

    @odd.command()
    def ask(where: Path = Path(".")) -> None:  # typer converts paths; the fast path does not
        raise AssertionError("not called")

    assert run_ask_fast(odd, ["ask"]) is None
    assert run_ask_fast(odd, ["ask", "x"]) is None


def test_ask_imports_neither_pydantic_nor_click_processing(openai_server: Any) -> None:
    """Whatever typer is installed (0.29+ validates parameters through pydantic)."""
    env = {"OPENAI_BASE_URL": openai_server.base_url}
    code, loaded, _ = modules_loaded_by(["ask", "-m", "echo", "-n", "hi"], ["pydantic"], env)
    assert code == 0
    assert loaded == []


def test_a_plain_ask_imports_no_typer_or_click_and_help_still_works(openai_server: Any) -> None:
    env = {"OPENAI_BASE_URL": openai_server.base_url}
    watched = ["typer", "click", "chatterm.cli.commands", "chatterm.cli.options"]
    code, loaded, out = modules_loaded_by(["ask", "-m", "echo", "-n", "hi there"], watched, env)
    assert code == 0 and out == "hi there\n"
    assert loaded == []
    # Anything the table does not read still goes to typer, with its help and errors.
    code, loaded, out = modules_loaded_by(["ask", "--help"], ["typer"], env)
    assert code == 0 and "--no-log" in out and "typer" in loaded


def test_chatterm_alone_with_piped_stdin_asks_without_typer(openai_server: Any) -> None:
    """`echo hi | chatterm` is `chatterm ask` with stdin: no typer either (an empty stdin is
    the usual usage error)."""
    env = {"OPENAI_BASE_URL": openai_server.base_url}
    code, loaded, out = modules_loaded_by([], ["typer", "click"], env)
    assert (code, loaded, out) == (2, [], "")
