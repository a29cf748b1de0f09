"""``EngineClient``: the engine in this process. It owns the store; the supervisor (which
claims the data dir and recovers what a dead process left running) starts on the first
command that needs it, so reading never takes the data dir from anyone."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tui.client.protocol import CONTROLS, Feed, RewindPreview, Rewound
from tui.client.reads import StoreReads
from tui.core.checkpoints.gc import GcResult
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.engine.housekeeping import RUNNING_GRACE_S, collect_garbage
from tui.core.engine.supervisor import Supervisor
from tui.core.errors import UsageError
from tui.core.permissions.policy import Policy
from tui.core.session.spec import SessionSpec
from tui.core.session.state import SessionState
from tui.core.store.datadir import db_path
from tui.core.store.store import Store


class EngineClient(StoreReads):
    runs_here = True

    def __init__(
        self, store: Store, data_dir: Path, *, max_concurrent: int = 8, script_speed: float = 1.0
    ) -> None:
        super().__init__(store, data_dir)
        self.max_concurrent = max_concurrent
        self.script_speed = script_speed
        self._supervisor: Supervisor | None = None
        self.recovered: list[str] = []  # sessions a dead process left running, recovered here
        self.recovered_after: dict[str, int] = {}

    @classmethod
    async def open(
        cls, data_dir: Path, *, max_concurrent: int = 8, script_speed: float = 1.0
    ) -> EngineClient:
        store = await Store.open(db_path(data_dir))
        return cls(store, data_dir, max_concurrent=max_concurrent, script_speed=script_speed)

    async def start(self, *, resume_recovered: bool = False) -> Supervisor:
        """Claim the data dir and run sessions here (idempotent)."""
        if self._supervisor is None:
            supervisor = Supervisor(
                self.store,
                self.data_dir,
                max_concurrent=self.max_concurrent,
                script_speed=self.script_speed,
                checkpointer=self.checkpointer,
            )
            await supervisor.start(resume_recovered=resume_recovered)
            self._supervisor = supervisor
            self.recovered = list(supervisor.recovered)
            self.recovered_after = dict(supervisor.recovered_after)
        return self._supervisor

    async def attach(self, *, resume_recovered: bool = False) -> list[str]:
        await self.start(resume_recovered=resume_recovered)
        return list(self.recovered)

    async def close(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.close()
            self._supervisor = None
        await self.store.close()

    # -- reads that the live engine knows best -------------------------------------------

    async def state(self, session_id: str) -> SessionState:
        record = await self.store.get_session(session_id)
        return await self.store.state(record.id)

    async def subscribe(self, session_id: str | None = None, *, deltas: bool = False) -> Feed:
        return self.store.bus.subscribe(session_id, deltas=deltas)

    # -- commands ---------------------------------------------------------------------

    async def create(self, spec: SessionSpec) -> str:
        return await (await self.start()).create_session(spec)

    async def send(self, session_id: str, text: str) -> None:
        await (await self.start()).send_message(session_id, text)

    async def confirm(
        self, session_id: str, tool_use_id: str, allow: bool, message: str | None = None
    ) -> None:
        await (await self.start()).confirm(session_id, tool_use_id, allow, message)

    async def control(self, session_id: str, kind: str, *, accept: bool = False) -> None:
        if kind not in CONTROLS:
            raise UsageError(f"unknown control {kind!r}")
        supervisor = await self.start()
        if kind == "resume":
            await supervisor.resume(session_id, accept=accept)
        else:
            await getattr(supervisor, kind)(session_id)

    async def set_budget(
        self, session_id: str, max_list_cost: Decimal | None, max_active_hours: Decimal | None
    ) -> bool:
        return await (await self.start()).set_budget(session_id, max_list_cost, max_active_hours)

    async def set_policy(self, session_id: str, policy: Policy) -> str:
        return await (await self.start()).set_policy(session_id, policy)

    async def checkpoint(self, session_id: str, label: str = "") -> CheckpointRecord:
        return await (await self.start()).checkpoint(session_id, label)

    async def rewind_preview(self, session_id: str, checkpoint: str) -> RewindPreview:
        record = await self.store.get_session(session_id)
        target = await self.store.get_checkpoint(record.id, checkpoint)
        changes = await self.checkpointer.pending_changes(Path(record.workspace), target.manifest)
        return RewindPreview(record, target, changes)

    async def rewind(self, session_id: str, checkpoint: str) -> Rewound:
        target, changes = await (await self.start()).rewind(session_id, checkpoint)
        return Rewound(target, changes)

    async def fork(self, session_id: str, checkpoint: str) -> str:
        return await (await self.start()).fork(session_id, checkpoint)

    async def gc(self, *, dry_run: bool) -> GcResult:
        if self._supervisor is None:
            return await super().gc(dry_run=dry_run)
        # Sessions may be taking checkpoints: recent blobs are spared.
        return await collect_garbage(
            self.store, self.checkpointer, self.data_dir, dry_run=dry_run, grace_s=RUNNING_GRACE_S
        )

    def is_running_here(self, session_id: str) -> bool:
        """A runner of this process works on (or waits in) the session."""
        return self._supervisor is not None and self._supervisor.is_live(session_id)
