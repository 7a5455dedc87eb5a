"""Flags shared by `ask`, the TUI and `models`, declared once so they read the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

from chatterm.cli.completion import complete_backend, complete_conversation, complete_profile

# The values these flags fill, re-exported for the commands that import them from here.
from chatterm.cli.settings import AskOutput, CommonOptions, normalise_option_args  # noqa: F401

Model = Annotated[str | None, typer.Option("--model", "-m", help="Model id or local folder.")]
BackendName = Annotated[
    str | None,
    typer.Option(
        "--backend", help="Backend name (openai, local, or a plugin).",
        autocompletion=complete_backend,
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible server URL, e.g. http://localhost:8000/v1."),
]
ProfileName = Annotated[
    str | None,
    typer.Option(
        "--profile", "-p", help="Profile from the config file.", autocompletion=complete_profile
    ),
]
System = Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")]
Continue = Annotated[
    bool, typer.Option("--continue", "-c", help="Continue the most recent conversation.")
]
Session = Annotated[
    str | None,
    typer.Option(
        "--session", help="Continue the conversation with this id.",
        autocompletion=complete_conversation,
    ),
]
Options = Annotated[
    list[str] | None,
    typer.Option(
        "--option", "-o", metavar="KEY VALUE",
        help="Backend option: -o temperature 0.2 or -o temperature=0.2 (repeat -o stop X).",
    ),
]
Temperature = Annotated[
    float | None, typer.Option("--temperature", help="Same as -o temperature VALUE.")
]
MaxTokens = Annotated[int | None, typer.Option("--max-tokens", help="Same as -o max_tokens N.")]
Files = Annotated[
    list[str] | None,
    typer.Option(
        "--file", "-f", metavar="PATH",
        help="Put a text file (or a directory's text files; - for stdin) in the prompt, "
        "with its name. Repeatable.",
    ),
]
Images = Annotated[
    list[str] | None,
    typer.Option(
        "--attach", "-a", metavar="IMAGE",
        help="Send an image (PNG, JPEG, WebP, GIF; - for stdin) with the prompt. Repeatable.",
    ),
]
TemplateName = Annotated[
    str | None,
    typer.Option("--template", "-t", help="Template from the config file (chatterm templates list)."),
]
Debug = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks and backend details on stderr.")
]
