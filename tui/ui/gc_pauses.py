"""Garbage collection kept off the frame path.

A full collection stops everything while it walks every object the collector tracks and
frees the cycles among them. Textual's strips are cycles (a strip caches the pieces it
was cut into, and an uncut strip is its own one piece), and the app makes hundreds a
second at 16 streaming panes. Left to Python, full collections came every 30 to 60
seconds and freed about 100,000 objects each: 115 to 200 ms with nothing drawn and no key
answered (bench/ui.py, ``gc.callbacks``). So, once enabled, Python never starts a full
collection itself; the app runs one every ``FULL_EVERY_S`` (``collect``), which has a
second's garbage to free: 7 to 16 ms. What is made to last (start-up, each session's
pane) is moved out of every collection's reach (``settle``). Off in tests, where many
apps share one process.
"""

from __future__ import annotations

import gc

FULL_EVERY_S = 1.0
# Python runs a full collection after this many second-generation ones: never, here.
NEVER = 1_000_000_000

_enabled = False


def enable() -> None:
    global _enabled
    _enabled = True
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)
    settle()


def collect() -> None:
    """A full collection, on the app's timer."""
    if _enabled:
        gc.collect()


def settle() -> None:
    """Collect, then keep everything alive now out of later collections' reach."""
    if _enabled:
        gc.collect()
        gc.freeze()
