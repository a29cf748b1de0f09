"""Checkpoints: a save point of a session — its position in the log, usage so far, and
a snapshot of the whole workspace (whatever changed it: the file tools or ``bash``).

The snapshot is taken before the event it belongs to is appended, and the record is
committed in the same transaction as that event, so after a crash the last
checkpoint always matches the last tool result in the log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tui.core.checkpoints.blobs import BlobStore
from tui.core.checkpoints.manifests import Manifest, ManifestStore
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.restore import restore
from tui.core.checkpoints.scan import Change, ScanLimits, StatCache, diff, scan
from tui.core.ids import checkpoint_id
from tui.core.session import events as ev
from tui.core.session.branches import path_seqs


def scan_limits(settings: dict[str, object]) -> ScanLimits:
    """The caps on what a checkpoint reads, from settings.json (whole bytes, > 0)."""
    defaults = ScanLimits()

    def positive(key: str, default: int) -> int:
        value = settings.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return value if ok else default  # type: ignore[return-value]

    return ScanLimits(
        max_file_bytes=positive("checkpoint_max_file_bytes", defaults.max_file_bytes),
        max_checkpoint_bytes=positive("checkpoint_max_bytes", defaults.max_checkpoint_bytes),
    )


class Checkpointer:
    """Takes and restores workspace snapshots for every session of one data dir."""

    def __init__(self, blobs_dir: Path, limits: ScanLimits | None = None) -> None:
        self.blobs = BlobStore(blobs_dir)
        self.manifests = ManifestStore(self.blobs)
        self.limits = limits or ScanLimits()
        self._caches: dict[str, StatCache] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def snapshot(
        self,
        session_id: str,
        workspace: Path,
        base: str | None,
        *,
        kind: str,
        turn: int,
        label: str = "",
    ) -> CheckpointRecord:
        """Snapshot ``workspace`` (off the event loop); ``base`` is the previous manifest."""
        async with self._lock(str(workspace)):
            return await asyncio.to_thread(
                self._snapshot, session_id, workspace, base, kind, turn, label
            )

    def _snapshot(
        self, session_id: str, workspace: Path, base: str | None, kind: str, turn: int, label: str
    ) -> CheckpointRecord:
        cache = self._caches.setdefault(str(workspace), StatCache())
        manifest, stats = scan(workspace, cache, self.blobs, self.limits)
        previous = self.manifests.load(base) if base else {}
        stored = self.manifests.save(manifest, base)
        return CheckpointRecord(
            id=checkpoint_id(),
            session_id=session_id,
            kind=kind,
            label=label,
            manifest=stored.digest,
            files=stats.files,
            bytes=stats.bytes,
            changed=len(diff(previous, manifest)),
            stored_bytes=stats.stored_bytes + stored.bytes_written,
            turn=turn,
            skipped=stats.skipped,
            notes=tuple(stats.notes),
        )

    async def restore(self, workspace: Path, manifest: str) -> list[Change]:
        async with self._lock(str(workspace)):
            return await asyncio.to_thread(self._restore, workspace, manifest)

    def _restore(self, workspace: Path, manifest: str) -> list[Change]:
        cache = self._caches.setdefault(str(workspace), StatCache())
        return restore(workspace, self.manifests.load(manifest), self.blobs, cache)

    async def pending_changes(self, workspace: Path, manifest: str) -> list[Change]:
        """What restoring ``manifest`` would change in ``workspace`` (nothing is written)."""
        async with self._lock(str(workspace)):
            return await asyncio.to_thread(self._pending, workspace, manifest)

    def _pending(self, workspace: Path, manifest: str) -> list[Change]:
        cache = self._caches.setdefault(str(workspace), StatCache())
        current: Manifest = scan(workspace, cache)[0] if workspace.is_dir() else {}
        return diff(current, self.manifests.load(manifest))

    def load(self, manifest: str) -> Manifest:
        return self.manifests.load(manifest)

    async def copy_tree(self, source: Path, target: Path) -> list[str]:
        """Copy ``source`` into the new directory ``target`` through the blob store (the
        same safe walk and restore as a checkpoint: links kept as links, never followed;
        FIFOs, sockets and devices skipped, never read). Returns notes on what was skipped.
        """

        def copy() -> list[str]:
            manifest, stats = scan(source, StatCache(), self.blobs, self.limits)
            restore(target, manifest, self.blobs, StatCache())
            return stats.notes

        return await asyncio.to_thread(copy)


def latest_on_branch(
    checkpoints: list[CheckpointRecord], events: list[ev.Event]
) -> CheckpointRecord | None:
    on_path = path_seqs(events) | {0}
    mine = [c for c in checkpoints if c.seq in on_path]
    return mine[-1] if mine else None
