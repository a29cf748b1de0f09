"""Garbage collection of the blob store: only blobs no checkpoint of any session needs.

A plan is computed first and shown; nothing is removed without one. A checkpoint being
taken writes its blobs before its record commits, so they look unreferenced for a
moment: gc never removes a blob written (or reused: a write that finds its blob already
there touches it) within ``grace_s`` before the plan started. That is what lets the
server collect while its sessions run. gc also holds the blob store's lease
exclusively (an import holds it shared while it writes).
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


@dataclass(frozen=True)
class GcResult:
    plan: GcPlan
    containers: list[tuple[str, str]]  # (container id, session id) of dead sessions
    applied: bool

    def to_json(self) -> dict[str, object]:
        return {
            "referenced": self.plan.referenced,
            "unreferenced": [list(u) for u in self.plan.unreferenced],
            "containers": [list(c) for c in self.containers],
            "applied": self.applied,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> GcResult:
        unreferenced = [(str(d), int(n)) for d, n in data["unreferenced"]]  # type: ignore[attr-defined]
        containers = [(str(c), str(s)) for c, s in data["containers"]]  # type: ignore[attr-defined]
        plan = GcPlan(int(data["referenced"]), unreferenced)  # type: ignore[call-overload]
        return cls(plan, containers, bool(data["applied"]))


async def plan_gc(store: Store, checkpointer: Checkpointer, *, grace_s: float = 0) -> GcPlan:
    before = time.time() - grace_s
    manifests = await store.manifests_in_use()
    return await asyncio.to_thread(_plan, checkpointer, manifests, before)


def _plan(checkpointer: Checkpointer, manifests: set[str], before: float) -> GcPlan:
    keep: set[str] = set()
    for digest in manifests:
        keep.update(checkpointer.manifests.chain(digest))
        keep.update(e[2] for e in checkpointer.load(digest).values() if e[0] == "f")
    unreferenced = [
        (d, size)
        for d, size, mtime in checkpointer.blobs.all()
        if d not in keep and mtime < before  # newer: a writer's, maybe not yet recorded
    ]
    return GcPlan(len(keep), unreferenced)


async def apply_gc(checkpointer: Checkpointer, plan: GcPlan) -> None:
    def remove() -> None:
        blobs = checkpointer.blobs
        # Scans that trust the blobs they know of see the stamp change and look again.
        blobs.stamp_gc(busy=True)
        blobs.forget([digest for digest, _ in plan.unreferenced])
        for digest, _ in plan.unreferenced:
            blobs.remove(digest)
        blobs.clear_tmp()
        blobs.stamp_gc(busy=False)

    await asyncio.to_thread(remove)
