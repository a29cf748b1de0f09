"""The read side of the engine's client: what needs only the store and the blobs (diffs,
estimates, export, import, gc), as the server serves it."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from tui.core.checkpoints.archive import (
    ExportSummary,
    ImportSummary,
    export_session,
    import_session,
)
from tui.core.checkpoints.checkpointer import Checkpointer, scan_limits
from tui.core.checkpoints.diff import CheckpointDiff, compare
from tui.core.checkpoints.gc import GcResult
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.timeline import Timeline, build_timeline
from tui.core.clock import utc_day_start
from tui.core.engine.housekeeping import collect_garbage
from tui.core.errors import UsageError
from tui.core.money.budget import Budget, budget_of
from tui.core.money.estimate import Estimate, estimate_spec
from tui.core.permissions.policy import Policy
from tui.core.permissions.session_policy import policy_of
from tui.core.session.events import Event
from tui.core.session.records import SessionRecord
from tui.core.session.spec import SessionSpec, spec_from_json
from tui.core.store.datadir import blobs_dir, workspaces_dir
from tui.core.store.settings import load_settings
from tui.core.store.store import Store


class StoreReads:
    """Reads straight from the store file; commands are the subclasses' business."""

    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self.data_dir = data_dir
        self.checkpointer = Checkpointer(blobs_dir(data_dir), scan_limits(load_settings(data_dir)))

    async def sessions(self) -> list[SessionRecord]:
        return await self.store.list_sessions()

    async def session(self, session_id: str) -> SessionRecord:
        return await self.store.get_session(session_id)

    async def events(
        self, session_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        record = await self.store.get_session(session_id)
        return await self.store.events(record.id, after_seq, limit)

    async def checkpoints(self, session_id: str) -> list[CheckpointRecord]:
        record = await self.store.get_session(session_id)
        return await self.store.checkpoints(record.id)

    async def checkpoint_record(self, session_id: str, checkpoint: str) -> CheckpointRecord:
        record = await self.store.get_session(session_id)
        return await self.store.get_checkpoint(record.id, checkpoint)

    async def timeline(self, session_id: str) -> Timeline:
        record = await self.store.get_session(session_id)
        events = await self.store.events(record.id)
        return build_timeline(events, await self.store.checkpoints(record.id))

    async def diff(self, session_id: str, a: str, b: str) -> CheckpointDiff:
        record = await self.store.get_session(session_id)
        first = await self.store.get_checkpoint(record.id, a)
        second = await self.store.get_checkpoint(record.id, b)
        events = await self.store.events(record.id)
        return await asyncio.to_thread(compare, self.checkpointer, events, first, second)

    async def policy(self, session_id: str) -> Policy:
        record = await self.store.get_session(session_id)
        return policy_of(spec_from_json(record.spec), await self.store.events(record.id))

    async def budget(self, session_id: str) -> Budget:
        record = await self.store.get_session(session_id)
        return budget_of(spec_from_json(record.spec), await self.store.events(record.id))

    async def estimate(self, spec: SessionSpec) -> Estimate:
        return await estimate_spec(self.store, spec)

    async def spent_today(self) -> Decimal:
        return await self.store.spend_since(utc_day_start())

    async def export(self, session_id: str, target: Path) -> ExportSummary:
        return await export_session(self.store, self.checkpointer, session_id, target)

    async def import_file(self, source: Path) -> ImportSummary:
        if not source.is_file():  # a FIFO or a device would block or never end
            raise UsageError(f"{source}: not a regular file")
        return await import_session(
            self.store, self.checkpointer, source, workspaces_dir(self.data_dir)
        )

    async def gc(self, *, dry_run: bool) -> GcResult:
        pid = await self.store.live_lease_pid()
        if pid is not None:
            raise UsageError(
                f"a corral (pid {pid}) is running sessions on {self.data_dir}; stop it before gc"
            )
        return await collect_garbage(
            self.store, self.checkpointer, self.data_dir, dry_run=dry_run, grace_s=0
        )
