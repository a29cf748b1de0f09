"""``InboxClient``: the corral server of this data dir runs its sessions (started on
demand by the first command that needs it); reads come straight from the store file,
commands go through the store's inbox and wait for the server's answer, and events are
followed by reading the log as it grows.

A stop-gap until the app and the CLI speak the server's HTTP API: the answer is honest
(an approval that lost a race says so), but a command waits on the server's next poll
of its inbox, and the log carries no streaming previews.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from tui.client.discovery import ensure_server, ping, read_info
from tui.client.protocol import CONTROLS, RewindPreview, Rewound
from tui.client.reads import StoreReads
from tui.core.checkpoints.gc import GcResult
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.scan import Change
from tui.core.errors import CorralError, UsageError
from tui.core.permissions.policy import Policy
from tui.core.session.events import Event
from tui.core.session.spec import SessionSpec
from tui.core.session.state import SessionState
from tui.core.store.bus import Item
from tui.core.store.lease import pid_alive
from tui.core.store.store import Store

ANSWER_S = 15.0
POLL_S = 0.05  # how often an answer, or new events, are looked for in the file


class AnsweredError(CorralError):
    """The server's refusal of a command, with the exit code it would have had here."""

    def __init__(self, message: str, exit_code: object) -> None:
        super().__init__(message)
        if isinstance(exit_code, int) and 1 <= exit_code <= 125:
            self.exit_code = exit_code


class InboxClient(StoreReads):
    runs_here = False

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        pid: int | None,
        *,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(store, data_dir)
        self.pid = pid  # the process that runs the sessions; None: none yet
        self.serve_args = serve_args  # for the server, if this client starts it
        self.recovered_after: dict[str, int] = {}

    async def engine_pid(self) -> int:
        """The pid of the process running the sessions, starting the server if none does."""
        if self.pid is not None and not pid_alive(self.pid):
            self.pid = None  # it died since: its successor takes over
        if self.pid is None:
            info = await asyncio.to_thread(ensure_server, self.data_dir, self.serve_args)
            self.pid = info.pid
        return self.pid

    async def attach(self, *, resume_recovered: bool = False) -> list[str]:
        """The sessions the server resumed when it took over from a dead one."""
        await self.engine_pid()
        info = read_info(self.data_dir)
        about = (await asyncio.to_thread(ping, info) if info is not None else None) or {}
        after = about.get("recovered_after")
        if isinstance(after, dict):
            self.recovered_after = {str(k): int(v) for k, v in after.items() if isinstance(v, int)}
        return [str(s) for s in about.get("recovered", [])]

    async def close(self) -> None:
        await self.store.close()

    async def state(self, session_id: str) -> SessionState:
        # The projection the other process commits with each event, never a stale fold.
        state = (await self.store.get_session(session_id)).state
        assert state is not None
        return state

    async def subscribe(self, session_id: str | None = None, *, deltas: bool = False) -> LogFeed:
        return LogFeed(self.store, session_id, await self.store.last_rowid())

    # -- commands ---------------------------------------------------------------------

    async def _ask(self, session_id: str, kind: str, payload: dict[str, Any]) -> Any:
        """Hand a command to the live corral and wait for its answer; its error, if any,
        is raised here as a CorralError."""
        pid = await self.engine_pid()
        command_id = await self.store.inbox_put(session_id, kind, payload)
        deadline = time.monotonic() + ANSWER_S
        # Another process answers through the store: polling it is the only way to hear.
        while (outcome := await self.store.inbox_outcome(command_id)) is None:
            if time.monotonic() > deadline:
                raise CorralError(
                    f"the corral running here (pid {pid}) has not answered {kind} within"
                    f" {ANSWER_S:g}s; it may still apply it"
                )
            await asyncio.sleep(POLL_S)
        answer = json.loads(outcome)
        if "error" in answer:
            raise AnsweredError(str(answer["error"]), answer.get("exit_code"))
        return answer.get("result")

    async def _session_id(self, session_id: str) -> str:
        return (await self.store.get_session(session_id)).id

    async def create(self, spec: SessionSpec) -> str:
        result = await self._ask("", "create", {"spec": spec.to_json()})
        return str(result["session_id"])

    async def send(self, session_id: str, text: str) -> None:
        await self._ask(await self._session_id(session_id), "message", {"text": text})

    async def confirm(
        self, session_id: str, tool_use_id: str, allow: bool, message: str | None = None
    ) -> None:
        payload = {"tool_use_id": tool_use_id, "result": "allow" if allow else "deny"}
        await self._ask(
            await self._session_id(session_id), "confirm", {**payload, "message": message}
        )

    async def control(self, session_id: str, kind: str, *, accept: bool = False) -> None:
        if kind not in CONTROLS:
            raise UsageError(f"unknown control {kind!r}")
        await self._ask(await self._session_id(session_id), kind, {"accept": accept})

    async def set_budget(
        self, session_id: str, max_list_cost: Decimal | None, max_active_hours: Decimal | None
    ) -> bool:
        payload = {
            "max_list_cost": None if max_list_cost is None else str(max_list_cost),
            "max_active_hours": None if max_active_hours is None else str(max_active_hours),
        }
        return bool(await self._ask(await self._session_id(session_id), "budget", payload))

    async def set_policy(self, session_id: str, policy: Policy) -> str:
        sid = await self._session_id(session_id)
        result = await self._ask(sid, "policy", {"policy": policy.to_data()})
        return str(result["change"])

    async def checkpoint(self, session_id: str, label: str = "") -> CheckpointRecord:
        sid = await self._session_id(session_id)
        return CheckpointRecord.from_json(await self._ask(sid, "checkpoint", {"label": label}))

    async def rewind_preview(self, session_id: str, checkpoint: str) -> RewindPreview:
        record = await self.store.get_session(session_id)
        target = await self.store.get_checkpoint(record.id, checkpoint)
        changes = await self.checkpointer.pending_changes(Path(record.workspace), target.manifest)
        return RewindPreview(record, target, changes)

    async def rewind(self, session_id: str, checkpoint: str) -> Rewound:
        sid = await self._session_id(session_id)
        result = await self._ask(sid, "rewind", {"checkpoint": checkpoint})
        return Rewound(
            CheckpointRecord.from_json(result["target"]),
            [Change.from_json(c) for c in result["changes"]],
        )

    async def fork(self, session_id: str, checkpoint: str) -> str:
        sid = await self._session_id(session_id)
        return str((await self._ask(sid, "fork", {"checkpoint": checkpoint}))["session_id"])

    async def gc(self, *, dry_run: bool) -> GcResult:
        if self.pid is None:  # no server: nothing is taking checkpoints, collect here
            return await super().gc(dry_run=dry_run)
        # The server collects: it knows which checkpoints are being taken.
        return GcResult.from_json(await self._ask("", "gc", {"dry_run": dry_run}))


class LogFeed:
    """Events of this data dir as they land in the log, read by polling the file (the
    process that writes them is another one). Streaming deltas never reach the file."""

    def __init__(self, store: Store, session_id: str | None, after_rowid: int) -> None:
        self.store = store
        self.session_id = session_id
        self._after = after_rowid  # the events table's rowid read up to
        self._buffer: list[Event] = []
        self._closed = False

    async def get(self) -> Item:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._buffer, self._after = await self.store.events_after_rowid(
                self._after, self.session_id
            )
            if not self._buffer:
                await asyncio.sleep(POLL_S)
        return self._buffer.pop(0)

    def __aiter__(self) -> LogFeed:
        return self

    async def __anext__(self) -> Item:
        return await self.get()

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> LogFeed:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
