"""Checkpoints: a save point of a session — its position in the log, usage so far, and
a snapshot of the whole workspace (whatever changed it: the file tools or ``bash``).

The snapshot is taken before the event it belongs to is appended, and the record is
committed in the same transaction as that event, so after a crash the last
checkpoint always matches the last tool result in the log.

A checkpoint costs what changed, not the size of the tree: a change tracker (inotify,
``tracker.py``) names the paths that may have changed since the last checkpoint, and
only those are looked at (``refresh.py``). When the tracker cannot vouch for what it
names (it was not running, the kernel dropped events, a watch could not be added, the
barrier did not come back in time) the checkpoint walks the whole tree instead and its
record says why. Every ``verify_every`` tracked checkpoints a full scan is compared
with the tracked result: a difference is a bug, logged as an error, and the full scan's
result is the one kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tui.core.checkpoints.blobs import BlobStore
from tui.core.checkpoints.manifests import Manifest, ManifestStore
from tui.core.checkpoints.records import FULL, TRACKED, CheckpointRecord
from tui.core.checkpoints.refresh import TreeState, refresh
from tui.core.checkpoints.restore import restore
from tui.core.checkpoints.scan import Change, ScanLimits, StatCache, diff, scan
from tui.core.checkpoints.tracker import ChangeFeed, WorkspaceTracker
from tui.core.ids import checkpoint_id
from tui.core.session import events as ev
from tui.core.session.branches import path_seqs

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST = "the first checkpoint of this workspace since corral started (the tracker arms on it)"
VERIFY = "periodic verification of the tracked state"


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


@dataclass(frozen=True)
class Tracking:
    enabled: bool = True
    verify_every: int = 100  # tracked checkpoints between two verifications; 0: never
    barrier_timeout_s: float = 10.0
    # Workspaces tracked at once (each holds a watch per directory, from a per-user
    # kernel allowance); past it the least recently checkpointed one is let go.
    max_workspaces: int = 64


def tracking_settings(settings: dict[str, object]) -> Tracking:
    """``checkpoint_tracking`` (bool), ``checkpoint_verify_every`` (whole number ≥ 0) and
    ``checkpoint_barrier_timeout_s`` (seconds > 0) from settings.json."""
    defaults = Tracking()
    enabled = settings.get("checkpoint_tracking", True)
    every = settings.get("checkpoint_verify_every")
    timeout = settings.get("checkpoint_barrier_timeout_s")
    return Tracking(
        enabled=enabled if isinstance(enabled, bool) else True,
        verify_every=every
        if isinstance(every, int) and not isinstance(every, bool) and every >= 0
        else defaults.verify_every,
        barrier_timeout_s=float(timeout)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0
        else defaults.barrier_timeout_s,
    )


@dataclass
class _Workspace:
    """What a checkpointer keeps of one workspace between checkpoints."""

    cache: StatCache = field(default_factory=StatCache)
    tracker: WorkspaceTracker | None = None
    state: TreeState | None = None  # as of the last checkpoint, when the tracker vouches
    tracked: int = 0  # tracked checkpoints since the last full scan
    used: float = 0.0  # monotonic time of its last checkpoint or restore
    gc_stamp: bytes = b""  # the blob store's gc stamp when ``state`` was taken


class Checkpointer:
    """Takes and restores workspace snapshots for every session of one data dir."""

    def __init__(
        self, blobs_dir: Path, limits: ScanLimits | None = None, tracking: Tracking | None = None
    ) -> None:
        self.blobs = BlobStore(blobs_dir)
        self.manifests = ManifestStore(self.blobs)
        self.limits = limits or ScanLimits()
        self.tracking = tracking or Tracking()
        self._workspaces: dict[str, _Workspace] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._feed: ChangeFeed | None = None
        self._no_feed = ""  # why there is none, once making one failed
        self._setup = threading.Lock()  # snapshots of two workspaces run in two threads

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _workspace(self, workspace: Path) -> _Workspace:
        ws = self._workspaces.setdefault(_key(workspace), _Workspace())
        ws.used = time.monotonic()
        return ws

    # -- tracking ------------------------------------------------------------------------

    def _tracker(self, workspace: Path, ws: _Workspace) -> WorkspaceTracker | None:
        """The workspace's tracker, made (not yet armed) if there is none; None when
        tracking is off or inotify cannot be used here."""
        if not self.tracking.enabled:
            return None
        current = ws.tracker
        live = current is not None and not current.closed and current.feed is self._feed
        if live and current is not None and not current.feed.dead:
            return current
        with self._setup:
            return self._new_tracker(workspace, ws)

    def _new_tracker(self, workspace: Path, ws: _Workspace) -> WorkspaceTracker | None:
        if self._feed is None or self._feed.dead:
            if self._no_feed:
                return None
            try:
                self._feed = ChangeFeed()
            except OSError as exc:
                self._no_feed = f"no change tracker: inotify is not usable here ({exc})"
                log.warning("checkpoints: %s; every checkpoint walks the whole tree", self._no_feed)
                return None
            # Its thread and watches go with this checkpointer even if close() is never
            # called (tests, a client that only reads).
            weakref.finalize(self, self._feed.close)
        tracked = [
            (w.used, k)
            for k, w in self._workspaces.items()
            if w.tracker is not None and k != _key(workspace)
        ]
        for _, key in sorted(tracked)[: max(0, len(tracked) + 1 - self.tracking.max_workspaces)]:
            self.release(Path(key))
        if ws.tracker is not None and ws.tracker.feed is not self._feed:
            ws.tracker.feed.forget(ws.tracker)
        ws.tracker = self._feed.tracker(str(workspace))
        ws.state = None
        return ws.tracker

    def release(self, workspace: Path) -> None:
        """Stop tracking ``workspace`` (its session ended, or others were used more
        lately); its next checkpoint will be a full scan."""
        ws = self._workspaces.pop(_key(workspace), None)
        if ws is not None and ws.tracker is not None and self._feed is not None:
            self._feed.forget(ws.tracker)

    def close(self) -> None:
        """Release every tracker and the inotify instance (a later checkpoint makes new
        ones)."""
        for key in list(self._workspaces):
            self.release(Path(key))
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    def _tracked_dirty(
        self, ws: _Workspace, before: TreeState | None
    ) -> tuple[dict[str, bool] | None, str]:
        """The paths changed since ``before`` (the last checkpoint), or None and why they
        cannot be known (then a full scan it is)."""
        tracker = ws.tracker
        if tracker is None or self._feed is None:
            return None, self._no_feed or "change tracking is off (checkpoint_tracking)"
        if before is None:
            return None, FIRST
        if self.blobs.gc_stamp() != ws.gc_stamp:
            # The state's entries were vouched for before blobs were collected; a walk
            # checks each against the store again.
            return None, "blobs were collected (gc) since the last checkpoint"
        if not self._feed.barrier(self.tracking.barrier_timeout_s):
            why = self._feed.dead or (
                f"the change tracker did not confirm its events within"
                f" {self.tracking.barrier_timeout_s:g} s"
            )
            return None, why
        dirty, lost = tracker.begin(full=False)
        if lost is not None:
            return None, lost
        return dirty, ""

    def _full(
        self, workspace: Path, ws: _Workspace, blobs: BlobStore | None
    ) -> tuple[TreeState, list[str], int, int]:
        """A walk of the whole tree, arming the tracker on the way: (state, notes,
        hashed bytes stored, skipped)."""
        tracker = ws.tracker
        if tracker is not None:
            tracker.begin(full=True)
        manifest, stats = self._trusted(
            lambda: scan(
                workspace, ws.cache, blobs, self.limits, tracker.watch_dir if tracker else None
            )
        )
        if tracker is not None:
            tracker.prune()
        ws.tracked = 0
        return TreeState.of(manifest, None, stats), stats.notes, stats.stored_bytes, stats.skipped

    def _trusted(self, work: Callable[[], T]) -> T:
        """Run a scan that stores blobs, trusting the digests this process knows are
        stored (no stat each); if a gc started meanwhile, run it again without."""
        stamp = self.blobs.trusting()
        result = work()
        if stamp is None or self.blobs.still_trusted(stamp):
            return result
        return work()

    # -- snapshots -----------------------------------------------------------------------

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
        async with self._lock(_key(workspace)):
            return await asyncio.to_thread(
                self._snapshot, session_id, workspace, base, kind, turn, label
            )

    def _snapshot(
        self, session_id: str, workspace: Path, base: str | None, kind: str, turn: int, label: str
    ) -> CheckpointRecord:
        ws = self._workspace(workspace)
        tracker = self._tracker(workspace, ws)
        # Read before anything is scanned: a gc from here on makes the next checkpoint
        # check every blob again.
        stamp = self.blobs.gc_stamp()
        before, ws.state = ws.state, None  # unknown until this checkpoint is stored
        dirty, why = self._tracked_dirty(ws, before)
        changed: list[str] | None = None
        if dirty is not None and before is not None and tracker is not None:
            done = self._trusted(
                lambda: refresh(
                    workspace, before, dirty, ws.cache, self.blobs, self.limits, tracker.watch_dir
                )
            )
            if done.replaced:
                tracker.prune(done.state.manifest)
            state, changed, stored_bytes = done.state, done.changed, done.stats.stored_bytes
            ws.tracked += 1
            mode, note = TRACKED, ""
            if self.tracking.verify_every and ws.tracked >= self.tracking.verify_every:
                state, stored_bytes, note = self._verify(workspace, ws, state)
                changed, mode = None, FULL
        else:
            state, _, stored_bytes, _ = self._full(workspace, ws, self.blobs)
            mode, note = FULL, why
        known = changed is not None and before is not None and before.digest == base
        if base is not None and known:
            stored = self.manifests.save_changes(state.manifest, base, changed or [])
            count = len(changed or [])
        else:
            previous = self.manifests.load(base) if base else {}
            stored = self.manifests.save(state.manifest, base)
            count = len(diff(previous, state.manifest))
        state.digest = stored.digest
        if tracker is not None and not tracker.closed:
            ws.state, ws.gc_stamp = state, stamp
        return CheckpointRecord(
            id=checkpoint_id(),
            session_id=session_id,
            kind=kind,
            label=label,
            manifest=stored.digest,
            files=state.files,
            bytes=state.bytes,
            changed=count,
            stored_bytes=stored_bytes + stored.bytes_written,
            turn=turn,
            skipped=len(state.skipped),
            notes=tuple(state.notes()),
            scan=mode,
            scan_note=note,
        )

    def _verify(
        self, workspace: Path, ws: _Workspace, tracked: TreeState
    ) -> tuple[TreeState, int, str]:
        """A full scan compared with the tracked result; the full scan's is kept."""
        full, _, stored_bytes, _ = self._full(workspace, ws, self.blobs)
        differs = diff(tracked.manifest, full.manifest)
        if not differs:
            return full, stored_bytes, f"{VERIFY}: equal to the tracked result"
        log.error(
            "checkpoints: the change tracker missed %d change(s) in %s (a bug; the full"
            " scan's result is kept): %s",
            len(differs),
            workspace,
            ", ".join(f"{c.path!r} {c.kind}" for c in differs[:20]),
        )
        return (
            full,
            stored_bytes,
            f"{VERIFY}: the tracked result differed at {len(differs)} path(s) (logged);"
            " the full scan's result was kept",
        )

    # -- restores ------------------------------------------------------------------------

    async def restore(self, workspace: Path, manifest: str) -> list[Change]:
        async with self._lock(_key(workspace)):
            return await asyncio.to_thread(self._restore, workspace, manifest)

    def _current(self, workspace: Path, ws: _Workspace) -> tuple[TreeState, dict[str, bool]] | None:
        """The tree as it is now, from the last checkpoint's state and the tracker's dirty
        paths (no walk), with those paths; None when the tracker cannot say."""
        before, tracker = ws.state, ws.tracker
        if before is None or tracker is None or not workspace.is_dir():
            return None
        dirty, _ = self._tracked_dirty(ws, before)
        if dirty is None:
            ws.state = None  # the next checkpoint walks the tree
            return None
        done = refresh(workspace, before, dirty, ws.cache, None, self.limits, tracker.watch_dir)
        if done.replaced:
            tracker.prune(done.state.manifest)
        return done.state, dirty

    def _restore(self, workspace: Path, manifest: str) -> list[Change]:
        ws = self._workspace(workspace)
        target = self.manifests.load(manifest)
        stamp = self.blobs.gc_stamp()
        now = self._current(workspace, ws)
        ws.state = None
        if now is None:
            return restore(workspace, target, self.blobs, ws.cache)
        current = now[0]
        changes = restore(
            workspace, target, self.blobs, ws.cache, current.manifest, current.odd_modes
        )
        # The tree is the target now (the restore's own writes come back as events and
        # are looked at again next time, cheaply: the stat cache knows what it wrote).
        ws.state, ws.gc_stamp = _restored(current, target, manifest, changes), stamp
        return changes

    async def pending_changes(self, workspace: Path, manifest: str) -> list[Change]:
        """What restoring ``manifest`` would change in ``workspace`` (nothing is written)."""
        async with self._lock(_key(workspace)):
            return await asyncio.to_thread(self._pending, workspace, manifest)

    def _pending(self, workspace: Path, manifest: str) -> list[Change]:
        ws = self._workspace(workspace)
        now = self._current(workspace, ws)
        current: Manifest
        if now is not None:
            current = now[0].manifest
            # Nothing was checkpointed: the next checkpoint looks at these paths again.
            assert ws.tracker is not None
            ws.tracker.give_back(now[1])
        else:
            current = scan(workspace, ws.cache)[0] if workspace.is_dir() else {}
        return diff(current, self.manifests.load(manifest))

    def load(self, manifest: str) -> Manifest:
        return self.manifests.load(manifest)

    async def copy_tree(self, source: Path, target: Path) -> list[str]:
        """Copy ``source`` into the new directory ``target`` through the blob store (the
        same safe walk and restore as a checkpoint: links kept as links, never followed;
        FIFOs, sockets and devices skipped, never read). Returns notes on what was skipped.
        """

        def copy() -> list[str]:
            manifest, stats = self._trusted(
                lambda: scan(source, StatCache(), self.blobs, self.limits)
            )
            restore(target, manifest, self.blobs, StatCache())
            return stats.notes

        return await asyncio.to_thread(copy)


def _key(workspace: Path) -> str:
    # The runner names a workspace by its real path, the store by the path it was given:
    # one tracker and one lock per directory either way.
    return os.path.realpath(workspace)


def _restored(
    current: TreeState, target: Manifest, digest: str, changes: list[Change]
) -> TreeState:
    """The state after restoring ``target`` over ``current``: the target's entries, with
    the counts moved by what changed."""
    files, size = current.files, current.bytes
    skipped = set(current.skipped)
    for change in changes:
        for entry, sign in ((change.before, -1), (change.after, 1)):
            if entry is not None and entry[0] == "f":
                files += sign
                size += sign * entry[3]
        skipped.discard(change.path)
        if change.after is not None and change.after[0] == "s":
            skipped.add(change.path)
    touched = {c.path for c in changes}
    multi = current.multi_link - touched
    return TreeState(target, digest, files, size, skipped, multi, current.link_inodes, set())


def latest_on_branch(
    checkpoints: list[CheckpointRecord], events: list[ev.Event]
) -> CheckpointRecord | None:
    on_path = path_seqs(events) | {0}
    mine = [c for c in checkpoints if c.seq in on_path]
    return mine[-1] if mine else None
