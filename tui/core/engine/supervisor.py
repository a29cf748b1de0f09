"""The supervisor: starts, steers and stops sessions; one per data dir at a time.

It owns the runners (one task per live session), the sandboxes, and a concurrency
cap on sessions doing work at once (a parked or idle session holds no slot). It runs
inside ``corral serve``; everything else reaches it through the server's API. (One class
a little past 400 lines: it owns every live runner and sandbox; what needs neither lives
beside it, in ``workspaces.py``, ``forks.py``, ``recovery.py`` and ``housekeeping.py``.)
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from tui.core.checkpoints.archive import IMPORTED, import_pending
from tui.core.checkpoints.checkpointer import (
    Checkpointer,
    latest_on_branch,
    scan_limits,
    tracking_settings,
)
from tui.core.checkpoints.records import MANUAL, START, CheckpointRecord
from tui.core.checkpoints.scan import Change
from tui.core.clock import utc_now
from tui.core.engine.forks import fork_session
from tui.core.engine.recovery import recover, settle_if_working
from tui.core.engine.runner import SessionRunner
from tui.core.engine.stops import cancel_and_wait
from tui.core.engine.workspaces import prepare_workspace
from tui.core.errors import CorralError, NotFoundError, UsageError
from tui.core.ids import session_id as new_session_id
from tui.core.money.budget import Budget, DailyCap, DailyLedger, daily_cap, reached, usage_of
from tui.core.money.pricing import require_budgetable
from tui.core.permissions.policy import Policy
from tui.core.permissions.session_policy import describe_change, policy_of
from tui.core.providers.base import ModelProvider
from tui.core.providers.registry import priced_as, resolve_provider
from tui.core.sandboxes import Sandbox, open_sandbox
from tui.core.session import events as ev
from tui.core.session.conversation import build_conversation
from tui.core.session.records import SANDBOX_NOTICE, SessionRecord
from tui.core.session.spec import SessionSpec, spec_from_json
from tui.core.session.state import IDLE, TERMINATED, WORKING, SessionState, is_settled
from tui.core.store.bus import EventBus, Subscription
from tui.core.store.datadir import blobs_dir
from tui.core.store.settings import load_settings
from tui.core.store.store import Store
from tui.core.tools.toolset import Toolset
from tui.core.tools.workspace import Workspace

HEARTBEAT_S = 2.0


class Supervisor:
    def __init__(
        self,
        store: Store,
        data_dir: Path,
        *,
        max_concurrent: int = 8,
        script_speed: float = 1.0,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self.script_speed = script_speed
        self.max_concurrent = max_concurrent
        self._slot = asyncio.Semaphore(max_concurrent)
        self._ledger = DailyLedger()
        self._runners: dict[str, SessionRunner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sandboxes: dict[str, Sandbox] = {}
        self._background: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self.recovered: list[str] = []
        # Each recovered session's last seq before it resumed: its next stop comes after.
        self.recovered_after: dict[str, int] = {}
        self._answer_locks: dict[str, asyncio.Lock] = {}
        settings = load_settings(data_dir)
        self.checkpointer = checkpointer or Checkpointer(
            blobs_dir(data_dir), scan_limits(settings), tracking_settings(settings)
        )

    @property
    def bus(self) -> EventBus:
        return self.store.bus

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, *, resume_recovered: bool = False) -> None:
        """Claim the data dir, recover sessions a dead process left running, start chores.

        A recovered session's workspace goes back to its last checkpoint (which is
        committed with the last tool result, so it matches the log); with
        ``resume_recovered`` each then carries on where it was.
        """
        await self.store.claim_lease()
        self.checkpointer.blobs.clear_tmp()
        for record in await self.store.list_sessions():
            state = record.state
            if import_pending(record):
                continue  # never started by anything but the user's resume
            if state and state.status in WORKING:
                await recover(self.store, self.checkpointer, record, rescheduled=resume_recovered)
            elif not (state and state.status == IDLE and state.stop_reason is None):
                continue
            # (Idle with no stop: created, but the process died before its runner's first
            # step. It was about to run, so it is recovered too, with nothing to settle.)
            self.recovered.append(record.id)
            self.recovered_after[record.id] = (await self.store.state(record.id)).last_seq
        if resume_recovered:
            for sid in self.recovered:
                try:
                    await self.resume(sid)
                except CorralError as exc:
                    why = f"corral restarted but could not resume this session: {exc}"
                    await settle_if_working(self.store, sid, why)
        self._background = [asyncio.create_task(self._heartbeat(), name="corral-heartbeat")]

    async def close(self) -> None:
        """Stop every runner, leaving each session idle and resumable; release the data dir."""
        for task in self._background:
            await cancel_and_wait(task)
        for sid, task in list(self._tasks.items()):
            await cancel_and_wait(task)
            why = "corral was closed while this session was running"
            await settle_if_working(self.store, sid, why)
        self._tasks.clear()
        self._runners.clear()
        for sandbox in self._sandboxes.values():
            await sandbox.close()
        self._sandboxes.clear()
        if self._closing:
            await asyncio.gather(*self._closing)
        self.checkpointer.close()  # its change trackers: inotify watches and a thread
        await self.store.release_lease()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self.store.heartbeat()

    # -- sessions ---------------------------------------------------------------------

    async def create_session(self, spec: SessionSpec, *, api: dict | None = None) -> str:
        """Store a new session and start it. Everything that can fail is checked first.
        ``api``: what ties it to an API agent and environment, when it was made that way."""
        provider = self._provider(spec.agent.model)
        if spec.max_list_cost is not None:
            require_budgetable(provider.price_model, self.store.pricing())
        sid = new_session_id()
        workspace, skipped = await prepare_workspace(self.checkpointer, self.data_dir, sid, spec)
        try:
            sandbox = open_sandbox(spec.environment, workspace, sid, self.data_dir)
        except CorralError:
            if spec.workspace.mode == "copy":
                shutil.rmtree(workspace, ignore_errors=True)
            raise
        record = SessionRecord(
            id=sid,
            title=spec.title,
            created_at=utc_now(),
            spec=spec.to_json(),
            model=spec.agent.model,
            workspace=str(workspace),
            sandbox=sandbox.backend,
            isolation=sandbox.isolation,
            metadata={
                **({"workspace_copy_skipped": skipped} if skipped else {}),
                **({SANDBOX_NOTICE: sandbox.notice} if sandbox.notice else {}),
            },
            api=api or {},
        )
        try:
            start = await self.checkpointer.snapshot(sid, workspace, None, kind=START, turn=0)
        except OSError as exc:
            await sandbox.close()
            raise CorralError(f"cannot snapshot the workspace {workspace}: {exc}") from None
        await self.store.create_session(
            record, *(ev.user_message(sid, text) for text in spec.messages), checkpoint=start
        )
        self._sandboxes[sid] = sandbox
        self._start_runner(sid, spec, provider, sandbox, workspace)
        return sid

    def _provider(self, model: str) -> ModelProvider:
        key_file = load_settings(self.data_dir).get("api_key_file")
        return resolve_provider(
            model,
            script_speed=self.script_speed,
            key_file=key_file if isinstance(key_file, str) else None,
        )

    def _daily_cap(self) -> DailyCap | None:
        # One ledger for every runner: the daily allowance is shared.
        return daily_cap(load_settings(self.data_dir), self.store.spend_since, self._ledger)

    async def set_budget(
        self,
        session_id: str,
        max_list_cost: Decimal | None,
        max_active_hours: Decimal | None,
    ) -> bool:
        """Set a session's caps (None lifts one). A session stopped at its budget goes on
        if the new one allows it: True when it did."""
        record = await self.store.get_session(session_id)
        if max_list_cost is not None:
            # As the hosted API: no cost cap on a model whose prices are unknown.
            require_budgetable(priced_as(record.model), self.store.pricing())
        state = await self.store.state(record.id)
        await self.store.append(
            ev.session_budget(
                record.id,
                None if max_list_cost is None else str(max_list_cost),
                None if max_active_hours is None else str(max_active_hours),
            )
        )
        # What the API shows as the session's budget, without reading its whole log.
        cap = None if max_list_cost is None else str(max_list_cost)
        await self.store.update_api(record.id, {**record.api, "max_list_cost": cap})
        if state.stop_type == ev.BUDGET_REACHED:
            budget = Budget(max_list_cost, max_active_hours)
            daily = self._daily_cap()
            today = await daily.spent_today() if daily else None
            if reached(budget, usage_of(state, today), daily.cap if daily else None) is None:
                await self.resume(record.id)
                return True
        return False

    async def policy(self, session_id: str) -> Policy:
        """The session's policy now: its spec's, with every edit since applied."""
        record = await self.store.get_session(session_id)
        return policy_of(spec_from_json(record.spec), await self.store.events(record.id))

    async def set_policy(self, session_id: str, policy: Policy) -> str:
        """Replace a session's policy from its next tool use on; returns what changed."""
        record = await self.store.get_session(session_id)
        before = await self.policy(record.id)
        change = describe_change(before, policy)
        await self.store.append(ev.session_policy(record.id, policy.to_data(), change))
        return change

    def _start_runner(
        self, sid: str, spec: SessionSpec, provider: object, sandbox: Sandbox, workspace: Path
    ) -> SessionRunner:
        runner = SessionRunner(
            sid,
            spec,
            self.store,
            provider,  # type: ignore[arg-type]
            Toolset(Workspace(workspace), sandbox),
            self._slot,
            checkpointer=self.checkpointer,
            daily=self._daily_cap(),
        )
        self._runners[sid] = runner
        task = asyncio.create_task(runner.run(), name=f"corral-runner-{sid}")
        self._tasks[sid] = task
        task.add_done_callback(lambda _t, sid=sid: self._runner_done(sid, _t))
        return runner

    def _runner_done(self, sid: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(sid) is task:
            del self._tasks[sid]
            self._runners.pop(sid, None)
            if not task.cancelled() and task.exception() is not None:
                # The runner's own fault handling failed too (the store, say): the log
                # must still say the session stopped, or it would show running forever.
                why = f"the session's runner failed: {task.exception()}"
                settling = asyncio.get_running_loop().create_task(
                    settle_if_working(self.store, sid, why)
                )
                self._closing.add(settling)
                settling.add_done_callback(self._closing.discard)
            sandbox = self._sandboxes.pop(sid, None)
            if sandbox is not None:
                closing = asyncio.get_running_loop().create_task(self._close_sandbox(sid, sandbox))
                self._closing.add(closing)  # close() waits for these
                closing.add_done_callback(self._closing.discard)

    def is_live(self, session_id: str) -> bool:
        """A runner is working on (or waiting in) this session in this process."""
        return session_id in self._tasks

    async def _close_sandbox(self, sid: str, sandbox: Sandbox) -> None:
        """Close a session's shell; a terminated session's container goes too, and so
        does its workspace's change tracker (an idle one keeps it: a rewind or the next
        turn then needs no walk of the tree)."""
        terminated = (await self.store.state(sid)).status == TERMINATED
        if terminated:
            self.checkpointer.release(sandbox.workspace)
        if sandbox.backend == "docker":
            await sandbox.close(remove=terminated)  # type: ignore[call-arg]
        else:
            await sandbox.close()

    async def runner(self, session_id: str, *, accept: bool = False) -> SessionRunner:
        """The live runner of a session, starting one for a stored session if needed.

        An imported session starts only when the user accepts it (``accept``: an explicit
        resume); anything else that would run it is refused.
        """
        record = await self.store.get_session(session_id)
        sid = record.id
        if sid in self._runners:
            return self._runners[sid]
        if record.state and record.state.status == TERMINATED:
            raise UsageError(f"session {sid} is terminated")
        if import_pending(record):
            if not accept:
                raise UsageError(
                    f"session {sid} was imported and is not accepted yet: review it with"
                    f" `corral show {sid}`, then accept and run it with `corral resume {sid}`"
                )
            info = dict(record.metadata[IMPORTED], accepted=True, accepted_at=utc_now().isoformat())
            await self.store.update_metadata(sid, {**record.metadata, IMPORTED: info})
        spec = spec_from_json(record.spec)
        provider = self._provider(record.model)
        workspace = Path(record.workspace)
        if not workspace.is_dir():
            raise NotFoundError(f"session {sid}: its workspace {workspace} is gone")
        sandbox = self._sandboxes.get(sid) or open_sandbox(
            spec.environment, workspace, sid, self.data_dir
        )
        self._sandboxes[sid] = sandbox
        return self._start_runner(sid, spec, provider, sandbox, workspace)

    async def send_message(self, session_id: str, text: str) -> ev.Event:
        """A user message (it resumes an idle session); the event as stored."""
        if not text.strip():
            raise UsageError("the message is empty")
        runner = await self.runner(session_id)
        (stored,) = await self.store.append(ev.user_message(runner.session_id, text))
        runner.resume()
        return stored

    async def confirm(
        self, session_id: str, tool_use_id: str, allow: bool, message: str | None = None
    ) -> ev.Event:
        record = await self.store.get_session(session_id)
        # Check and answer under one lock: of two racing answers, the second is told
        # the tool use was already answered, never that it was sent.
        async with self._answer_lock(record.id):
            state = await self.store.state(record.id)
            if tool_use_id not in state.pending_approvals:
                raise NotFoundError(
                    f"session {record.id}: tool use {tool_use_id} is not waiting for approval"
                    " (already answered, or not a tool use of this session)"
                )
            runner = await self.runner(record.id)
            (stored,) = await self.store.append(
                ev.user_tool_confirmation(
                    record.id, tool_use_id, "allow" if allow else "deny", None if allow else message
                )
            )
        runner.wake()
        return stored

    def _answer_lock(self, session_id: str) -> asyncio.Lock:
        return self._answer_locks.setdefault(session_id, asyncio.Lock())

    async def pause(self, session_id: str) -> None:
        (await self.runner(session_id)).pause()

    async def resume(self, session_id: str, *, accept: bool = False) -> None:
        """Go on after a pause, an interrupt or a stop; ``accept`` also accepts an
        imported session (the user has seen what it may do)."""
        (await self.runner(session_id, accept=accept)).resume()

    async def interrupt(self, session_id: str) -> ev.Event:
        runner = await self.runner(session_id)
        (stored,) = await self.store.append(ev.user_interrupt(runner.session_id))
        runner.interrupt()
        return stored

    async def cancel(self, session_id: str) -> None:
        record = await self.store.get_session(session_id)
        if import_pending(record) and record.id not in self._runners:
            # Ending an import needs no acceptance: nothing of it runs.
            if record.state is None or record.state.status != TERMINATED:
                await self.store.append(ev.status_terminated(record.id))
            return
        runner = await self.runner(record.id)
        runner.terminate()
        task = self._tasks.get(runner.session_id)
        if task is not None:
            await asyncio.shield(task)

    # -- checkpoints, rewind, fork -------------------------------------------------------

    async def checkpoint(self, session_id: str, label: str = "") -> CheckpointRecord:
        """A save point on demand, at the session's current position."""
        record = await self.store.get_session(session_id)
        events = await self.store.events(record.id)
        latest = latest_on_branch(await self.store.checkpoints(record.id), events)
        checkpoint = await self.checkpointer.snapshot(
            record.id,
            Path(record.workspace),
            latest.manifest if latest else None,
            kind=MANUAL,
            turn=build_conversation(events).assistant_turns,
            label=label,
        )
        await self.store.append(checkpoint=checkpoint)
        return await self.store.get_checkpoint(record.id, checkpoint.id)

    async def rewind(
        self, session_id: str, checkpoint: str
    ) -> tuple[CheckpointRecord, list[Change]]:
        """Put the workspace back as it was at ``checkpoint`` and branch the log there.

        The session stops if it was working and stays idle (paused) on the new branch
        until resumed or given a message; the abandoned branch stays in the log.
        """
        record = await self.store.get_session(session_id)
        sid = record.id
        target = await self.store.get_checkpoint(sid, checkpoint)
        if record.state and record.state.status == TERMINATED:
            raise UsageError(f"session {sid} is terminated; fork it from a checkpoint instead")
        await self._stop_runner(sid, "the session was rewound")
        changes = await self.checkpointer.restore(Path(record.workspace), target.manifest)
        await self.store.append(
            ev.session_rewound(sid, target.seq, target.id),
            ev.status_idle(sid, ev.PAUSED, detail=f"rewound to checkpoint {target.id}"),
        )
        return target, changes

    async def fork(self, session_id: str, checkpoint: str) -> str:
        """A new session from ``checkpoint``; the original is left as it is."""
        record = await self.store.get_session(session_id)
        target = await self.store.get_checkpoint(record.id, checkpoint)
        return await fork_session(self.store, self.checkpointer, self.data_dir, record, target)

    async def _stop_runner(self, sid: str, why: str) -> None:
        task = self._tasks.get(sid)
        if task is not None:
            await cancel_and_wait(task)
        await settle_if_working(self.store, sid, why)

    async def wait_for(
        self,
        session_id: str,
        predicate: Callable[[SessionState], bool] = is_settled,
        subscription: Subscription | None = None,
    ) -> SessionState:
        """Wait on the bus (never by polling) until the session's fold satisfies ``predicate``."""
        sub = subscription or self.bus.subscribe(session_id)
        try:
            while True:
                state = await self.store.state(session_id)
                if predicate(state):
                    return state
                await sub.get()
        finally:
            if subscription is None:
                sub.close()
