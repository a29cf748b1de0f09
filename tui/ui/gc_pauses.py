"""Garbage collection kept off the frame path.

A full collection walks every object the collector tracks and stops everything while it
does: 21 ms at the median and up to 70 ms in the app at 16 streaming sessions
(bench/ui.py), which is a dropped frame each time. So, once enabled, full collections
are rarer (one per 100 second-generation collections instead of 10), and what is made
to last (start-up, each session's pane) is moved out of their reach after a collection,
so none of today's garbage is kept. Off in tests, where many apps share one process.
"""

from __future__ import annotations

import gc

_enabled = False


def enable() -> None:
    global _enabled
    _enabled = True
    gc.set_threshold(gc.get_threshold()[0], 10, 100)
    settle()


def settle() -> None:
    """Collect, then keep everything alive now out of later collections' reach."""
    if _enabled:
        gc.collect()
        gc.freeze()
