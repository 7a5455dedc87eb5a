"""Opening the TUI from the command line; textual is imported only here."""

from __future__ import annotations

from chatterm.cli.options import CommonOptions
from chatterm.config import load_config


def open_tui(common: CommonOptions) -> int:
    from chatterm.cli import start_collecting
    from chatterm.tui.app import run_tui

    start_collecting()
    config = load_config()
    return run_tui(
        common.resolve(config), config, continue_last=common.continue_last,
        session_id=common.session, debug=common.debug,
    )
