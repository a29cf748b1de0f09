"""Full garbage collections in the app: never Python's own (one freed ~100,000 of
Textual's strip cycles at once, 115-200 ms with no frame drawn), one a second from the
app's timer instead (see tui/ui/gc_pauses.py)."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.cli.sessions import demo_spec_list
from tui.ui import gc_pauses

from .app_helpers import demo_app, until

# Makes two million small cycles, as the app makes strips, each kept alive for a while
# (5,000 at a time), so that they reach the old generation and die there: only a full
# collection frees them. Python's own thresholds start full collections here, and so
# does one per 100 second-generation collections (the scheme before).
PROBE = """
import gc, weakref
from tui.ui import gc_pauses
full = []
def seen(phase, info):
    if phase == "start" and info["generation"] == 2:
        full.append(1)
gc.callbacks.append(seen)
gc_pauses.enable()
full.clear()
class Node:
    pass
ring = [None] * 5_000
for i in range(2_000_000):
    node = Node()
    node.me = node
    ring[i % len(ring)] = node
old = weakref.ref(ring[0])
del node
ring.clear()
print(len(full), old() is not None)
gc_pauses.collect()
print(len(full), old() is None)
"""


def test_python_starts_no_full_collection_once_enabled_and_collect_runs_one() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    automatic, collected = out.stdout.splitlines()
    assert automatic == "0 True"  # none started, so the old dead cycle is still there
    assert collected == "1 True"  # collect ran one, and it freed that cycle


@pytest.fixture
def gc_restored() -> Iterator[None]:
    """The app enables corral's collection scheme for the whole process: put Python's
    back for the tests that follow."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc_pauses._enabled = False
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_the_app_runs_a_full_collection_every_second(
    data_dir: Path, gc_restored: None
) -> None:
    app = demo_app(data_dir, [], freeze_gc=True)
    full: list[float] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, app.ready.is_set, "the app")
        assert gc.get_threshold()[2] == gc_pauses.NEVER
        gc.callbacks.append(seen)
        try:
            await until(pilot, lambda: len(full) >= 2, "two full collections", tries=60)
        finally:
            gc.callbacks.remove(seen)


class Cycle:
    me: Cycle | None = None


async def test_what_was_alive_when_a_session_was_added_is_still_collected(
    data_dir: Path, gc_restored: None
) -> None:
    """Panes added later are not frozen: the strips alive at that moment would be kept
    for good once dropped (they are cycles), at every new session."""
    app = demo_app(data_dir, [], freeze_gc=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, app.ready.is_set, "the app")
        cycle = Cycle()
        cycle.me = cycle
        gc.collect()  # it is old now: only a full collection can free it
        gone = weakref.ref(cycle)
        await app.client.create(demo_spec_list()[0])
        await until(pilot, lambda: len(app.dashboard.panes()) == 1, "the new session's pane")
        await pilot.pause(0.1)  # past the refresh after the panes were mounted
        del cycle
        await until(pilot, lambda: gone() is None, "the cycle to be collected", tries=60)
