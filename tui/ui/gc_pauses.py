"""Garbage collection kept off the frame path.

A full collection stops everything while it walks every object the collector tracks and
frees the cycles among them. Textual's strips are cycles (a strip caches the pieces it
was cut into, and an uncut strip is its own one piece), and the app makes hundreds a
second at 16 streaming panes. With Python starting them (one per 100 second-generation
collections, the scheme before), full collections came every 30 to 60 seconds and freed
about 100,000 objects each: 115 to 200 ms with nothing drawn and no key answered
(bench/ui.py, ``gc.callbacks``). So, once enabled, Python never starts a full collection
itself; the app runs one every ``FULL_EVERY_S`` (``collect``), which has a second's
garbage to free: 7.5 ms at the median, 16 at most but one of 77 (74 ms). Each one walks
what is alive and not frozen, so it costs more with more sessions on screen. What
start-up made is moved out of these collections' reach (``settle``), once: frozen later,
with panes streaming, the strips alive then became cycles no collection reaches once
dropped (about 11,000 objects kept for good per freeze at 16 panes), and letting them
back in takes a whole-heap collection (0.4-0.7 s on a busy machine). Off in tests, where
many apps share one process.
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
    """Keep everything alive now out of later collections' reach (what was kept out
    before is let back in first, so nothing frozen then is kept for good)."""
    if _enabled:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
