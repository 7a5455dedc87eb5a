"""Opening the TUI from the command line; textual is imported only here."""

from __future__ import annotations

from chatterm.cli.settings import CommonOptions
from chatterm.config import load_config


def open_tui(common: CommonOptions) -> int:
    from chatterm.cli import start_collecting
    from chatterm.continuation import flags_choose_route
    from chatterm.tui.app import run_tui

    start_collecting()
    config = load_config()
    return run_tui(
        common.resolve(config), config, continue_last=common.continue_last,
        session_id=common.session, debug=common.debug,
        # As `ask -c`: a conversation goes back to where it was answered unless flags say
        # otherwise (a default profile or OPENAI_BASE_URL is not a flag).
        follow_routes=not flags_choose_route(
            profile=common.profile, backend=common.backend, base_url=common.base_url
        ),
    )
