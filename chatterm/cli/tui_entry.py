"""Opening the TUI from the command line; textual is imported only here."""

from __future__ import annotations

from chatterm.cli.options import CommonOptions
from chatterm.config import load_config, resolve


def open_tui(common: CommonOptions) -> int:
    from chatterm.tui.app import run_tui

    config = load_config()
    choice = resolve(
        config,
        profile=common.profile,
        backend=common.backend,
        model=common.model,
        base_url=common.base_url,
        options=common.raw_options(),
        system_prompt=common.system,
        debug=common.debug,
    )
    return run_tui(
        choice, config, continue_last=common.continue_last, session_id=common.session,
        debug=common.debug,
    )
