"""The ``chatterm`` command tree, declared with typer: every command, its flags and its help.

Start-up time is a feature: this module imports only typer and the light parts of chatterm.
httpx, rich rendering, the TUI (textual) and backends are imported inside the commands that
need them, so ``chatterm --help`` stays fast and ``ask`` never loads textual or torch. A plain
`chatterm ask` command line does not come here at all (see :func:`chatterm.cli.main`).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chatterm.cli import options as opt
from chatterm.cli.failures import Failure
from chatterm.cli.inputs import stdin_is_terminal

app = typer.Typer(
    name="chatterm",
    help="Chat with language models in your terminal: a TUI, one-shot `ask`, stdin pipes.\n\n"
    "With no command: opens the TUI on a terminal; asks with stdin when stdin is piped.",
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
sessions_app = typer.Typer(help="Browse, search, export and delete saved conversations.")
config_app = typer.Typer(help="Find and check the configuration file.")
templates_app = typer.Typer(help="List and show the templates in the config file.")
app.add_typer(sessions_app, name="sessions")
app.add_typer(config_app, name="config")
app.add_typer(templates_app, name="templates")


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    model: opt.Model = None,
    backend: opt.BackendName = None,
    base_url: opt.BaseUrl = None,
    profile: opt.ProfileName = None,
    system: opt.System = None,
    continue_last: opt.Continue = False,
    session: opt.Session = None,
    option: opt.Options = None,
    temperature: opt.Temperature = None,
    max_tokens: opt.MaxTokens = None,
    debug: opt.Debug = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    """Without a command: the TUI on a terminal, or `ask` with piped stdin."""
    if version:
        from chatterm import __version__

        typer.echo(f"chatterm {__version__}")
        raise typer.Exit(0)
    common = opt.CommonOptions.pick(locals())
    if ctx.invoked_subcommand is not None:
        if common != opt.CommonOptions(debug=debug):
            raise Failure(
                f"options go after the command: chatterm {ctx.invoked_subcommand} [OPTIONS] ..."
            )
        return
    if not stdin_is_terminal():
        from chatterm.cli.ask import run_ask

        raise typer.Exit(run_ask(common, opt.AskOutput(), prompt=None))
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise Failure("the TUI needs a terminal; use `chatterm ask PROMPT` in scripts", 2)
    from chatterm.cli.tui_entry import open_tui

    raise typer.Exit(open_tui(common))


@app.command()
def ask(
    prompt: Annotated[
        list[str] | None,
        typer.Argument(help="The prompt (words are joined). Piped stdin comes first."),
    ] = None,
    model: opt.Model = None,
    backend: opt.BackendName = None,
    base_url: opt.BaseUrl = None,
    profile: opt.ProfileName = None,
    system: opt.System = None,
    continue_last: opt.Continue = False,
    session: opt.Session = None,
    option: opt.Options = None,
    temperature: opt.Temperature = None,
    max_tokens: opt.MaxTokens = None,
    raw: Annotated[
        bool, typer.Option("--raw", "-r", help="Plain text, no markdown rendering.")
    ] = False,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Print the reply once it is complete.")
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object: reply, usage, model, timings, ids."),
    ] = False,
    no_log: Annotated[
        bool, typer.Option("--no-log", "-n", help="Do not save this exchange in the history.")
    ] = False,
    usage: Annotated[
        bool, typer.Option("--usage", "-u", help="Print token usage to stderr.")
    ] = False,
    file: opt.Files = None,
    attach: opt.Images = None,
    template: opt.TemplateName = None,
    debug: opt.Debug = False,
) -> None:
    """Ask once and stream the reply to stdout.

    Piped stdin is sent first, then a blank line, then PROMPT; with no PROMPT, stdin alone.
    Files (-f) come before both, each under a "File: PATH" header; images (-a) go along.
    """
    args = dict(locals())  # the parameters, before anything else is named here
    from chatterm.cli.ask_line import ask_from_args

    raise typer.Exit(ask_from_args(**args))


@app.command()
def models(
    backend: opt.BackendName = None,
    base_url: opt.BaseUrl = None,
    profile: opt.ProfileName = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    debug: opt.Debug = False,
) -> None:
    """List the models the backend offers."""
    from chatterm.cli.info import list_models

    common = opt.CommonOptions(backend=backend, base_url=base_url, profile=profile, debug=debug)
    raise typer.Exit(list_models(common, json_out))


@app.command()
def backends() -> None:
    """List installed backends (without loading them)."""
    from chatterm.plugins import available_backends

    for name in available_backends():
        typer.echo(name)


@app.command()
def doctor(
    profile: opt.ProfileName = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the server.")
    ] = 5.0,
) -> None:
    """Check config, history, backends, devices, server and model cache (for bug reports)."""
    from chatterm.cli.doctor import run_doctor

    raise typer.Exit(run_doctor(profile, timeout))


@config_app.command("path")
def config_path() -> None:
    """Print where the config file is (or would be)."""
    from chatterm.config import config_file_path

    typer.echo(str(config_file_path()))


@config_app.command("show")
def config_show(profile: opt.ProfileName = None) -> None:
    """Check the config file and show the settings chatterm would use (keys masked)."""
    from chatterm.cli.info import show_config

    raise typer.Exit(show_config(profile))


# sessions subcommands live in their own module; importing it registers them.
from chatterm.cli import sessions as _sessions  # noqa: E402

_sessions.register(sessions_app)


@templates_app.command("list")
def templates_list() -> None:
    """Template names and descriptions."""
    from chatterm.cli.templates import list_templates

    raise typer.Exit(list_templates())


@templates_app.command("show")
def templates_show(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """What a template sets."""
    from chatterm.cli.templates import show_template

    raise typer.Exit(show_template(name))

