"""Garbage collection of the blob store: only blobs no checkpoint of any session needs.

A plan is computed first and shown; nothing is removed without one. Run it while no
supervisor is live on the data dir: a checkpoint being taken writes its blobs before
its record commits, and would look unreferenced. Two more guards: gc holds the blob
store's lease exclusively (an import holds it shared while it writes), and it never
removes a blob written after the plan started.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.store.store import Store


@dataclass(frozen=True)
class GcPlan:
    referenced: int
    unreferenced: list[tuple[str, int]]  # digest, size

    @property
    def free_bytes(self) -> int:
        return sum(size for _, size in self.unreferenced)


async def plan_gc(store: Store, checkpointer: Checkpointer) -> GcPlan:
    started = time.time()
    manifests = await store.manifests_in_use()
    return await asyncio.to_thread(_plan, checkpointer, manifests, started)


def _plan(checkpointer: Checkpointer, manifests: set[str], started: float) -> GcPlan:
    keep: set[str] = set()
    for digest in manifests:
        keep.update(checkpointer.manifests.chain(digest))
        keep.update(e[2] for e in checkpointer.load(digest).values() if e[0] == "f")
    unreferenced = [
        (d, size)
        for d, size, mtime in checkpointer.blobs.all()
        if d not in keep and mtime < started  # newer: a writer's, not yet recorded
    ]
    return GcPlan(len(keep), unreferenced)


async def apply_gc(checkpointer: Checkpointer, plan: GcPlan) -> None:
    def remove() -> None:
        for digest, _ in plan.unreferenced:
            checkpointer.blobs.remove(digest)
        checkpointer.blobs.clear_tmp()

    await asyncio.to_thread(remove)
