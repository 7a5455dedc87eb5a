"""The Textual front end. Imported only when the TUI opens: never on the ``ask`` path.

Entry points live in :mod:`chatterm.tui.app` (``build_app``, ``run_tui``); this package module
stays empty so importing a submodule does not pull in the whole UI.
"""
