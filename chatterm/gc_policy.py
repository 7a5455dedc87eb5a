"""Keeping Python's garbage collector from stalling the UI while a reply streams.

Why this exists: a full collection walks every tracked object of the process. A Textual app
holds a few hundred thousand (widgets, styles, cached lines), and streaming a long reply makes
the collector run a full pass every few hundred milliseconds, each one blocking the event loop
for 100-150 ms on a modest machine (bench/bench_tui.py: most of the stalls of a 20,000-chunk
reply were collections, not rendering).

The policy, used by ``chatterm`` itself (tests leave the collector alone: it is process-wide):

* when the app is ready, everything alive is frozen (``gc.freeze``): modules and the app live
  as long as the process, so automatic full collections need not walk them;
* at *checkpoints* (each time a streaming reply moves on to a new segment, and when a reply
  ends) the objects allocated since the previous checkpoint are collected and the survivors
  frozen. The widgets of the finished segment have just been removed, so they are collected
  here, while they are still young and unfrozen; the pass only walks what the last few
  hundred characters of the reply allocated, a few milliseconds;
* a *full* pass (unfreeze, collect, freeze) reclaims what died after being frozen (the
  widgets of a conversation the user leaves); it runs when the user switches conversations,
  never while a reply streams.

Plain Python: no Textual here.
"""

from __future__ import annotations

import gc
import time


class CollectorPolicy:
    """The collection passes chatterm chooses to run; each returns its pause in seconds."""

    def __init__(self) -> None:
        self.longest_checkpoint_s = 0.0
        self.last_full_s = 0.0

    def freeze_startup(self) -> float:
        return self.full()

    def checkpoint(self) -> float:
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        pause = time.perf_counter() - started
        self.longest_checkpoint_s = max(self.longest_checkpoint_s, pause)
        return pause

    def full(self) -> float:
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.last_full_s = time.perf_counter() - started
        return self.last_full_s
