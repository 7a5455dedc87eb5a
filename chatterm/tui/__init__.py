"""The Textual front end. Imported only when the TUI opens: never on the ``ask`` path.

Entry points live in :mod:`chatterm.tui.app` (``build_app``, ``run_tui``); this package module
stays nearly empty so importing a submodule does not pull in the whole UI.

It sets one thing, before Textual is first imported (Textual reads it then): up to 120 frames
a second, unless the user's ``TEXTUAL_FPS`` says otherwise. Textual draws on a fixed grid of
``1 / TEXTUAL_FPS``, and a frame that runs past a grid point makes the next one wait for the
grid point after the next: at 60, a key typed while a streaming reply's frame was drawn (15-20
ms) waited 20-35 ms more for the frame that shows it. At 120 typing's p99 went from 58 to 40
ms (bench/bench_tui.py); at 240 the stream's stalls grew. Frames are only drawn when
something changed, so an idle app costs the same.
"""

import os

os.environ.setdefault("TEXTUAL_FPS", "120")
