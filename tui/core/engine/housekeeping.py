"""Collecting what no session needs: blobs no checkpoint refers to, and the containers
of sessions that are gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.checkpoints.gc import GcResult, apply_gc, plan_gc
from tui.core.session.state import TERMINATED
from tui.core.store.store import Store

# While sessions run, a checkpoint's blobs are on disk a moment before its record is:
# gc leaves alone whatever was written or reused this recently.
RUNNING_GRACE_S = 600.0


async def collect_garbage(
    store: Store, checkpointer: Checkpointer, data_dir: Path, *, dry_run: bool, grace_s: float
) -> GcResult:
    from tui.core.sandboxes.docker import orphan_containers, remove_containers

    with checkpointer.blobs.lease(exclusive=True):
        plan = await plan_gc(store, checkpointer, grace_s=grace_s)
        live = {
            r.id for r in await store.list_sessions() if r.state and r.state.status != TERMINATED
        }
        orphans = await asyncio.to_thread(orphan_containers, data_dir, live)
        if not dry_run:
            await apply_gc(checkpointer, plan)
            await asyncio.to_thread(remove_containers, [cid for cid, _ in orphans])
    return GcResult(plan, orphans, not dry_run)
