"""The store's one writer: every write is queued; a task drains the queue and commits
what it holds as one transaction (a group), then publishes the group's events on the
bus. An event is durable before anyone hears of it, and a burst from many sessions costs
one commit, not one each."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tui.core.checkpoints.records import CheckpointRecord
from tui.core.errors import CorralError, NotFoundError, StoreError
from tui.core.money.pricing import PricingTable
from tui.core.session import events as ev
from tui.core.session.events import Event
from tui.core.session.state import SessionState
from tui.core.store.bus import EventBus
from tui.core.store.folds import LiveFolds
from tui.core.store.rows import (
    INSERT_CHECKPOINT,
    INSERT_EVENT,
    UPSERT_USAGE,
    checkpoint_row,
    event_row,
    usage_row,
)

MAX_GROUP = 4096  # events per transaction; bounds the latency a huge burst can add
# Events that change the usage projection; others (messages, thinking) leave it alone.
PROJECTED = frozenset(
    {
        ev.STATUS_RUNNING,
        ev.STATUS_IDLE,
        ev.STATUS_RESCHEDULED,
        ev.STATUS_TERMINATED,
        ev.SPAN_MODEL_REQUEST_END,
        ev.AGENT_TOOL_USE,
        ev.AGENT_TOOL_RESULT,
        ev.USER_TOOL_CONFIRMATION,
    }
)

Sql = Callable[[sqlite3.Connection], Any]


@dataclass
class Append:
    events: list[Event]
    future: asyncio.Future[list[Event]]
    # Committed with the events, at the position of the last of them.
    checkpoint: CheckpointRecord | None = None
    # A new session: its fold registered, then its row inserted, just before its events.
    create: tuple[str, SessionState, Sql] | None = None


@dataclass
class Op:
    """Any other write: ``fn`` runs on the database thread inside the next transaction;
    ``before`` runs on the event loop first, in queue order (e.g. registering an imported
    session so appends later in the same group can find it)."""

    fn: Sql
    future: asyncio.Future[Any]
    before: Callable[[], None] | None = None


@dataclass
class Group:
    """One transaction being put together: what the database thread does, in queue order,
    and what to tell whom once it has committed."""

    steps: list[tuple[str, Any]] = field(default_factory=list)  # (kind, what)
    results: list[tuple[asyncio.Future[Any], Any]] = field(default_factory=list)
    published: list[Event] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    dirty: dict[str, SessionState] = field(default_factory=dict)


_STOP = object()


class GroupWriter:
    def __init__(
        self,
        run_in_db: Callable[[Sql], Awaitable[Any]],
        folds: LiveFolds,
        bus: EventBus,
        pricing: Callable[[], PricingTable],
    ) -> None:
        self._run_in_db = run_in_db
        self._pricing = pricing  # the data dir's prices (an override file is read again)
        self._folds = folds
        self._bus = bus
        # A deque and a wake-up flag rather than asyncio.Queue: cheaper per event.
        self._pending: deque[Any] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed: lets tests see that writes are grouped

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="corral-store-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._enqueue(_STOP)
            await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def append(self, item: Append) -> asyncio.Future[list[Event]]:
        if not self.running:
            raise StoreError("the store is closed")
        self._enqueue(item)
        return item.future

    async def write(self, fn: Sql, before: Callable[[], None] | None = None) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(Op(fn, future, before))
        return await future

    def _enqueue(self, item: Any) -> None:
        self._pending.append(item)
        self._wakeup.set()

    async def _loop(self) -> None:
        pending = self._pending
        while True:
            if not pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Everything queued while the last transaction ran goes into this one.
            items: list[Any] = []
            size = 0
            stopping = False
            while pending and size < MAX_GROUP:
                item = pending.popleft()
                if item is _STOP:
                    stopping = True
                    break
                items.append(item)
                size += len(item.events) if isinstance(item, Append) else 1
            if items:
                await self._commit(items)
            if stopping:
                return

    async def _commit(self, items: list[Any]) -> None:
        """Stamp, fold and commit one group in a single transaction, then publish it."""
        seq_before = dict(self._folds.next_seq)
        group = Group()
        for item in items:
            if isinstance(item, Op):
                if item.before is not None:
                    item.before()
                group.steps.append(("op", item))
            else:
                await self._stage(item, group)
        usage_rows = [usage_row(s) for s in group.dirty.values()]
        try:
            op_results = await self._run_in_db(lambda conn: _transaction(conn, group, usage_rows))
        except Exception as exc:
            # The folds ran ahead of a transaction that did not land: forget them so they
            # are rebuilt from what the log really holds.
            self._folds.forget(group.touched, seq_before)
            error = (
                exc if isinstance(exc, CorralError) else StoreError(f"store write failed: {exc}")
            )
            for item in items:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        self.commits += 1
        self._bus.publish(group.published)
        ops = iter(op_results)
        for item in items:
            if isinstance(item, Op) and not item.future.done():
                item.future.set_result(next(ops))
        for future, value in group.results:
            if not future.done():
                future.set_result(value)

    async def _stage(self, item: Append, group: Group) -> None:
        """Give an append's events their seqs, fold them, and add its rows to the group."""
        folds = self._folds
        if item.create is not None:
            session_id, state, insert = item.create
            folds.register(session_id, state, 1)
            group.touched.add(session_id)
            group.steps.append(("sql", insert))
        try:
            states = [await folds.state(e.session_id) for e in item.events]
            if item.checkpoint is not None:
                checkpoint_state = await folds.state(item.checkpoint.session_id)
        except NotFoundError as exc:
            item.future.set_exception(exc)  # an append to a session that is not there
            return
        stamped = []
        pricing = self._pricing()
        for event, state in zip(item.events, states, strict=True):
            sid = event.session_id
            event = event.with_seq(folds.take_seq(sid))
            stamped.append(event)
            state.apply(event, pricing)
            group.touched.add(sid)
            if event.type in PROJECTED:
                group.dirty[sid] = state
        group.steps.append(("events", [event_row(e) for e in stamped]))
        if item.checkpoint is not None:
            cp = item.checkpoint
            group.touched.add(cp.session_id)
            cp = cp.with_position(
                folds.next_seq[cp.session_id] - 1,
                checkpoint_state.usage.model_cost,
                checkpoint_state.usage.total_tokens,
            )
            group.steps.append(("checkpoint", checkpoint_row(cp)))
        group.results.append((item.future, stamped))
        group.published.extend(stamped)


def _transaction(conn: sqlite3.Connection, group: Group, usage_rows: list[Any]) -> list[Any]:
    """On the database thread: the group's statements, all or nothing."""
    op_results = []
    conn.execute("BEGIN")
    try:
        for kind, what in group.steps:
            if kind == "op":
                op_results.append(what.fn(conn))
            elif kind == "sql":
                what(conn)
            elif kind == "checkpoint":
                conn.execute(INSERT_CHECKPOINT, what)
            else:
                conn.executemany(INSERT_EVENT, what)
        if usage_rows:
            conn.executemany(UPSERT_USAGE, usage_rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return op_results
