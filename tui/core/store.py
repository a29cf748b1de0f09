"""The local store: one SQLite file (WAL) that the user owns.

One aiosqlite connection, owned here; nothing else issues SQL. Every write goes
through one writer task that drains its queue and commits the whole group in one
transaction, then publishes the group's events on the bus: an event is durable
before anyone hears of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from tui.core import events as ev
from tui.core.bus import EventBus
from tui.core.checkpoints import CheckpointRecord
from tui.core.errors import CorralError, NotFoundError, StoreBusyError, StoreError
from tui.core.events import Event
from tui.core.ids import parse_time, utc_now
from tui.core.pricing import default_pricing
from tui.core.printable import printable_line
from tui.core.schema import MIGRATIONS, SCHEMA_VERSION
from tui.core.state import SessionState, Usage

LEASE_STALE_SECONDS = 10.0
MAX_GROUP = 4096  # events per transaction; bounds the latency a huge burst can add


@dataclass
class SessionRecord:
    id: str
    title: str
    created_at: datetime
    spec: dict[str, Any]
    model: str
    workspace: str
    sandbox: str = ""
    isolation: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    state: SessionState | None = None


@dataclass
class _Append:
    events: list[Event]
    future: asyncio.Future[list[Event]]
    # Committed with the events, at the position of the last of them.
    checkpoint: CheckpointRecord | None = None
    # A new session's registration and insert, run just before its first events.
    create: tuple[Callable[[], None], Callable[[sqlite3.Connection], Any]] | None = None
    create_id: str = ""


@dataclass
class _Op:
    """Any other write: ``fn`` runs on the database thread inside the next transaction.

    ``before`` runs on the event loop first, in queue order (e.g. registering a new
    session so appends later in the same group can find it).
    """

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    before: Callable[[], None] | None = None


@dataclass
class _Create:
    fn: Callable[[sqlite3.Connection], Any]


@dataclass
class _Checkpoint:
    row: tuple[Any, ...]


_STOP = object()
# Events that change the usage projection; others (messages, thinking) leave it alone.
_PROJECTED = frozenset(
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


class Store:
    def __init__(self, path: Path, db: aiosqlite.Connection, bus: EventBus) -> None:
        self.path = path
        self.bus = bus
        self._db = db
        # A deque and a wake-up flag rather than asyncio.Queue: cheaper per event.
        self._pending: deque[Any] = deque()
        self._wakeup = asyncio.Event()
        self._next_seq: dict[str, int] = {}
        self._states: dict[str, SessionState] = {}
        self._loading: dict[str, asyncio.Task[SessionState]] = {}
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed: lets tests see that writes are grouped

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, bus: EventBus | None = None) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only a power cut can
            # lose the last commits. That trade is what makes grouping cheap.
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.execute("PRAGMA foreign_keys=ON")
            # Checkpoint the WAL less often than every 1000 pages: fewer stalls under load.
            await db.execute("PRAGMA wal_autocheckpoint=4000")
            await _migrate(db, path)
        except (sqlite3.Error, StoreError) as exc:
            await db.close()  # its thread would otherwise keep the process alive
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
        store = cls(path, db, bus or EventBus())
        store._writer = asyncio.create_task(store._write_loop(), name="corral-store-writer")
        return store

    async def close(self) -> None:
        if self._writer is not None:
            self._enqueue(_STOP)
            await self._writer
            self._writer = None
        await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- writes --------------------------------------------------------------------

    def submit(
        self, events: list[Event], checkpoint: CheckpointRecord | None = None
    ) -> asyncio.Future[list[Event]]:
        """Queue events for the next group commit; the future gives them with their ``seq``."""
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Append(events, future, checkpoint))
        return future

    def _enqueue(self, item: Any) -> None:
        self._pending.append(item)
        self._wakeup.set()

    async def append(
        self, *events: Event, checkpoint: CheckpointRecord | None = None
    ) -> list[Event]:
        """Append events and return once they are committed and published.

        A ``checkpoint`` is recorded in the same transaction, positioned at the last of
        ``events`` (or at the session's last event when there are none).
        """
        if self._writer is None or self._writer.done():
            raise StoreError("the store is closed")
        return await self.submit(list(events), checkpoint)

    async def _write(
        self, fn: Callable[[sqlite3.Connection], Any], before: Callable[[], None] | None = None
    ) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Op(fn, future, before))
        return await future

    async def create_session(
        self,
        record: SessionRecord,
        *events: Event,
        checkpoint: CheckpointRecord | None = None,
    ) -> list[Event]:
        """Store a new session with its first events and checkpoint, in one transaction
        (a crash never leaves a session without its start)."""
        state = SessionState(session_id=record.id, created_at=record.created_at)

        def register() -> None:
            self._states[record.id] = state
            self._next_seq[record.id] = 1

        def insert(conn: sqlite3.Connection) -> None:
            _insert_session(conn, record)
            conn.execute(_UPSERT_USAGE, _usage_row(state))

        if self._writer is None or self._writer.done():
            raise StoreError("the store is closed")
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._enqueue(
            _Append(
                list(events), future, checkpoint, create=(register, insert), create_id=record.id
            )
        )
        return await future

    async def import_session(
        self, record: SessionRecord, events: list[Event], checkpoints: list[CheckpointRecord]
    ) -> None:
        """Store a whole session at once (an import): record, log and checkpoints together."""
        state = SessionState(session_id=record.id, created_at=record.created_at)
        for event in events:
            state.apply(event)

        def register() -> None:
            self._states[record.id] = state
            self._next_seq[record.id] = state.last_seq + 1

        def insert(conn: sqlite3.Connection) -> None:
            _insert_session(conn, record)
            conn.executemany(
                _INSERT_EVENT,
                [
                    (
                        e.session_id,
                        e.seq,
                        e.id,
                        e.type,
                        e.processed_at.isoformat(),
                        e.payload_json(),
                    )
                    for e in events
                ],
            )
            conn.executemany(_INSERT_CHECKPOINT, [_checkpoint_row(c) for c in checkpoints])
            conn.execute(_UPSERT_USAGE, _usage_row(state))

        await self._write(insert, before=register)

    async def set_sandbox(self, session_id: str, sandbox: str, isolation: str) -> None:
        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE sessions SET sandbox=?, isolation=? WHERE id=?",
                (sandbox, isolation, session_id),
            )

        await self._write(update)

    async def _write_loop(self) -> None:
        pending = self._pending
        while True:
            if not pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Everything queued while the last transaction ran goes into this one.
            group: list[Any] = []
            size = 0
            stopping = False
            while pending and size < MAX_GROUP:
                item = pending.popleft()
                if item is _STOP:
                    stopping = True
                    break
                group.append(item)
                size += len(item.events) if isinstance(item, _Append) else 1
            if group:
                await self._commit_group(group)
            if stopping:
                return

    async def _commit_group(self, group: list[Any]) -> None:
        """Stamp, fold and commit one group in a single transaction, then publish it."""
        seq_before = dict(self._next_seq)
        touched: set[str] = set()
        dirty: dict[str, SessionState] = {}
        steps: list[Any] = []  # what the database thread does, in queue order
        results: list[tuple[asyncio.Future[Any], Any]] = []
        published: list[Event] = []
        for item in group:
            if isinstance(item, _Op):
                if item.before is not None:
                    item.before()
                steps.append(item)
                continue
            if item.create is not None:
                register, insert = item.create
                register()
                touched.add(item.create_id)
                steps.append(_Create(insert))
            try:
                states = [await self._state_for(e.session_id) for e in item.events]
                if item.checkpoint is not None:
                    checkpoint_state = await self._state_for(item.checkpoint.session_id)
            except NotFoundError as exc:
                # An append to a session that does not exist fails alone.
                item.future.set_exception(exc)
                continue
            stamped = []
            for event, state in zip(item.events, states, strict=True):
                sid = event.session_id
                seq = self._next_seq[sid]
                self._next_seq[sid] = seq + 1
                event = event.with_seq(seq)
                stamped.append(event)
                state.apply(event)
                touched.add(sid)
                if event.type in _PROJECTED:
                    dirty[sid] = state
            steps.append(
                [
                    (
                        e.session_id,
                        e.seq,
                        e.id,
                        e.type,
                        e.processed_at.isoformat(),
                        e.payload_json(),
                    )
                    for e in stamped
                ]
            )
            if item.checkpoint is not None:
                cp = item.checkpoint
                touched.add(cp.session_id)
                cp = cp.with_position(
                    self._next_seq[cp.session_id] - 1,
                    checkpoint_state.usage.model_cost,
                    checkpoint_state.usage.total_tokens,
                )
                steps.append(_Checkpoint(_checkpoint_row(cp)))
            results.append((item.future, stamped))
            published.extend(stamped)
        usage_rows = [_usage_row(s) for s in dirty.values()]

        def transaction(conn: sqlite3.Connection) -> list[Any]:
            op_results = []
            conn.execute("BEGIN")
            try:
                for step in steps:
                    if isinstance(step, _Op):
                        op_results.append(step.fn(conn))
                    elif isinstance(step, _Create):
                        step.fn(conn)
                    elif isinstance(step, _Checkpoint):
                        conn.execute(_INSERT_CHECKPOINT, step.row)
                    else:
                        conn.executemany(_INSERT_EVENT, step)
                if usage_rows:
                    conn.executemany(_UPSERT_USAGE, usage_rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return op_results

        try:
            op_results = await self._in_db_thread(transaction)
        except Exception as exc:
            # The in-memory folds and counters ran ahead of a transaction that did not
            # land: forget them so they are rebuilt from what the log really holds.
            self._next_seq = seq_before
            for session_id in touched:
                self._states.pop(session_id, None)
                self._next_seq.pop(session_id, None)
            error = (
                exc if isinstance(exc, CorralError) else StoreError(f"store write failed: {exc}")
            )
            for item in group:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        self.commits += 1
        self.bus.publish(published)
        ops = iter(op_results)
        for item in group:
            if isinstance(item, _Op) and not item.future.done():
                item.future.set_result(next(ops))
        for future, value in results:
            if not future.done():
                future.set_result(value)

    async def _in_db_thread(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` with the raw connection on aiosqlite's own thread, in one hop.

        A group's transaction is one call instead of one per statement: at one event
        per commit the hops, not SQLite, were most of the cost. aiosqlite offers no
        public way to do this, so this leans on ``_execute``/``_conn`` (version pinned).
        """
        db = self._db
        return await db._execute(lambda: fn(db._conn))

    async def _state_for(self, session_id: str) -> SessionState:
        """The fold for a session, rebuilt from its events the first time it is touched."""
        state = self._states.get(session_id)
        if state is not None:
            return state
        task = self._loading.get(session_id)
        if task is None:
            task = asyncio.ensure_future(self._load_state(session_id))
            self._loading[session_id] = task
            task.add_done_callback(lambda _t: self._loading.pop(session_id, None))
        return await asyncio.shield(task)

    async def _load_state(self, session_id: str) -> SessionState:
        async with self._db.execute(
            "SELECT created_at FROM sessions WHERE id=?", (session_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(f"no session {session_id}")
        state = SessionState(session_id=session_id, created_at=parse_time(row[0]))
        for event in await self.events(session_id):
            state.apply(event)
        if session_id not in self._states:  # a create_session may have won the race
            self._states[session_id] = state
            self._next_seq[session_id] = state.last_seq + 1
        return self._states[session_id]

    # -- reads ---------------------------------------------------------------------

    async def state(self, session_id: str) -> SessionState:
        """The live fold of a session, current as of the last committed event."""
        return await self._state_for(session_id)

    async def events(
        self, session_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        sql = (
            "SELECT seq, id, type, processed_at, payload FROM events"
            " WHERE session_id=? AND seq>? ORDER BY seq"
        )
        params: tuple[Any, ...] = (session_id, after_seq)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        async with self._db.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [Event.from_row(session_id, *row) for row in rows]

    async def get_session(self, session_id: str) -> SessionRecord:
        if not session_id.isascii() or not session_id.strip():
            # Ids are ASCII: anything else (escapes, undecodable bytes) names nothing.
            raise NotFoundError(f"no session {printable_line(session_id)!r} (see `corral ls`)")
        records = await self._sessions(
            "WHERE s.id = ? OR s.id LIKE ?", (session_id, f"{session_id}%")
        )
        exact = [r for r in records if r.id == session_id]
        if exact:
            return exact[0]
        if len(records) == 1:
            return records[0]
        if not records:
            raise NotFoundError(f"no session {session_id!r} (see `corral ls`)")
        raise NotFoundError(f"{session_id!r} matches {len(records)} sessions; give more of the id")

    async def list_sessions(self) -> list[SessionRecord]:
        return await self._sessions("", ())

    async def _sessions(self, where: str, params: tuple[Any, ...]) -> list[SessionRecord]:
        sql = (
            "SELECT s.id, s.title, s.created_at, s.spec, s.model, s.sandbox, s.isolation,"
            " s.workspace, s.metadata, u.status, u.stop_reason, u.input_tokens, u.output_tokens,"
            " u.cache_read_input_tokens, u.cache_creation_input_tokens, u.requests, u.model_cost,"
            " u.cost_known, u.active_seconds, u.running_since, u.status_seq, u.pending,"
            # The last event's seq and time are read from the log, not kept twice.
            " (SELECT MAX(e.seq) FROM events e WHERE e.session_id = s.id),"
            " (SELECT e.processed_at FROM events e WHERE e.session_id = s.id"
            "  ORDER BY e.seq DESC LIMIT 1)"
            f" FROM sessions s JOIN usage u ON u.session_id = s.id {where} ORDER BY s.id"
        )
        async with self._db.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [_record_from_row(row) for row in rows]

    async def checkpoints(self, session_id: str) -> list[CheckpointRecord]:
        """A session's checkpoints in log order (every branch; see history.py)."""
        async with self._db.execute(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE session_id=? ORDER BY seq, id",
            (session_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_checkpoint_from_row(row) for row in rows]

    async def get_checkpoint(self, session_id: str, checkpoint: str) -> CheckpointRecord:
        """A checkpoint by id, unique id prefix, or ``#N`` (its place in the timeline, from 1)."""
        found = await self.checkpoints(session_id)
        if checkpoint.startswith("#") and checkpoint[1:].isdigit():
            index = int(checkpoint[1:])
            if 1 <= index <= len(found):
                return found[index - 1]
            raise NotFoundError(f"session {session_id} has {len(found)} checkpoints, not {index}")
        matches = [c for c in found if c.id == checkpoint] or [
            c for c in found if c.id.startswith(checkpoint)
        ]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(
                f"session {session_id} has no checkpoint {checkpoint!r}"
                " (see `corral checkpoints SESSION`)"
            )
        raise NotFoundError(f"{checkpoint!r} matches {len(matches)} checkpoints; give more of it")

    async def spend_since(self, since: datetime) -> Decimal:
        """List cost of every model request of every session that ended at or after ``since``
        (an unpriced model counts 0 here: the daily cap cannot see what it cannot price)."""
        pricing = default_pricing()
        sql = (
            "SELECT s.payload, e.payload FROM events e JOIN events s"
            " ON s.id = json_extract(e.payload, '$.model_request_start_id')"
            " WHERE e.type = ? AND e.processed_at >= ?"
        )
        async with self._db.execute(sql, (ev.SPAN_MODEL_REQUEST_END, since.isoformat())) as cur:
            rows = await cur.fetchall()
        total = Decimal(0)
        for start, end in rows:
            model = json.loads(start).get("model", "")
            cost = pricing.token_cost(model, json.loads(end).get("model_usage", {}))
            total += cost or 0
        return total

    async def event_ids_taken(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` some stored event already has."""
        taken: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                f"SELECT id FROM events WHERE id IN ({marks})", chunk
            ) as cursor:
                taken.update(row[0] for row in await cursor.fetchall())
        return taken

    async def update_metadata(self, session_id: str, metadata: dict[str, Any]) -> None:
        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE sessions SET metadata=? WHERE id=?", (json.dumps(metadata), session_id)
            )

        await self._write(update)

    async def manifests_in_use(self) -> set[str]:
        """The manifest of every checkpoint of every session (what gc must keep)."""
        async with self._db.execute("SELECT DISTINCT manifest FROM checkpoints") as cursor:
            return {row[0] for row in await cursor.fetchall()}

    # -- inbox and lease -------------------------------------------------------------

    async def inbox_put(self, session_id: str, kind: str, payload: dict[str, Any]) -> int:
        """Queue a command for the live supervisor; returns its id (see ``inbox_outcome``)."""

        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO inbox (session_id, kind, payload, created_at) VALUES (?,?,?,?)",
                (session_id, kind, json.dumps(payload), utc_now().isoformat()),
            )
            return int(cursor.lastrowid or 0)

        return int(await self._write(insert))

    async def inbox_take(self) -> list[tuple[int, str, str, dict[str, Any]]]:
        """Commands not taken yet, oldest first, marked taken."""

        def take(conn: sqlite3.Connection) -> list[tuple[int, str, str, dict[str, Any]]]:
            rows = conn.execute(
                "SELECT id, session_id, kind, payload FROM inbox WHERE taken = 0 ORDER BY id"
            ).fetchall()
            if rows:
                conn.execute(
                    "UPDATE inbox SET taken = 1 WHERE taken = 0 AND id <= ?", (rows[-1][0],)
                )
            return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

        return await self._write(take)

    async def inbox_answer(self, command_id: int, outcome: str) -> None:
        """Say how a command went: ``ok``, or the one-line error it met."""

        def answer(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE inbox SET outcome = ? WHERE id = ?", (outcome, command_id))
            # Answers nobody collected (the sender gave up) do not pile up.
            conn.execute(
                "DELETE FROM inbox WHERE outcome IS NOT NULL AND created_at < ?",
                ((utc_now() - timedelta(hours=1)).isoformat(),),
            )

        await self._write(answer)

    async def inbox_outcome(self, command_id: int) -> str | None:
        """The answer to a command, once the supervisor gave one (then the row goes)."""
        async with self._db.execute("SELECT outcome FROM inbox WHERE id=?", (command_id,)) as cur:
            row = await cur.fetchone()
        if row is None or row[0] is None:
            return None

        def forget(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM inbox WHERE id = ?", (command_id,))

        await self._write(forget)
        return str(row[0])

    async def claim_lease(self) -> None:
        """Become the one process that runs sessions on this data dir, or say who is."""

        def claim(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT pid, heartbeat FROM lease WHERE id=1").fetchone()
            if row is not None and row[0] != os.getpid() and lease_is_live(row[0], row[1]):
                raise StoreBusyError(
                    f"another corral (pid {row[0]}) is running sessions on {self.path.parent}"
                )
            conn.execute(
                "INSERT OR REPLACE INTO lease (id, pid, heartbeat) VALUES (1, ?, ?)",
                (os.getpid(), time.time()),
            )

        await self._write(claim)

    async def heartbeat(self) -> None:
        def beat(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE lease SET heartbeat=? WHERE id=1 AND pid=?", (time.time(), os.getpid())
            )

        await self._write(beat)

    async def release_lease(self) -> None:
        def release(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM lease WHERE id=1 AND pid=?", (os.getpid(),))

        await self._write(release)

    async def live_lease_pid(self) -> int | None:
        async with self._db.execute("SELECT pid, heartbeat FROM lease WHERE id=1") as cursor:
            row = await cursor.fetchone()
        if row is not None and lease_is_live(row[0], row[1]):
            return int(row[0])
        return None


def lease_is_live(pid: int, heartbeat: float) -> bool:
    if time.time() - heartbeat > LEASE_STALE_SECONDS:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this corral knows ({SCHEMA_VERSION});"
            " upgrade corral"
        )
    for number in range(version, SCHEMA_VERSION):
        await db.execute("BEGIN")
        await _run_script(db, MIGRATIONS[number])
        await db.execute(f"PRAGMA user_version={number + 1}")
        await db.commit()


async def _run_script(db: aiosqlite.Connection, script: str) -> None:
    # executescript would commit the open transaction; run statement by statement so a
    # migration lands whole or not at all.
    for statement in script.split(";"):
        if statement.strip():
            await db.execute(statement)


_INSERT_EVENT = (
    "INSERT INTO events (session_id, seq, id, type, processed_at, payload) VALUES (?,?,?,?,?,?)"
)

_CHECKPOINT_COLUMNS = (
    "id, session_id, seq, created_at, kind, label, manifest, files, bytes, changed,"
    " stored_bytes, turn, model_cost, tokens, skipped, notes"
)
_INSERT_CHECKPOINT = (
    f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _insert_session(conn: sqlite3.Connection, record: SessionRecord) -> None:
    conn.execute(
        "INSERT INTO sessions (id, title, created_at, spec, model, sandbox, isolation,"
        " workspace, metadata) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            record.id,
            record.title,
            record.created_at.isoformat(),
            json.dumps(record.spec),
            record.model,
            record.sandbox,
            record.isolation,
            record.workspace,
            json.dumps(record.metadata),
        ),
    )


def _event_key(e: Event) -> tuple[str, int, str]:
    return (e.session_id, e.seq, e.id)


def _checkpoint_row(cp: CheckpointRecord) -> tuple[Any, ...]:
    return (
        cp.id,
        cp.session_id,
        cp.seq,
        cp.created_at.isoformat(),
        cp.kind,
        cp.label,
        cp.manifest,
        cp.files,
        cp.bytes,
        cp.changed,
        cp.stored_bytes,
        cp.turn,
        str(cp.model_cost),
        cp.tokens,
        cp.skipped,
        json.dumps(list(cp.notes)),
    )


def _checkpoint_from_row(row: tuple[Any, ...]) -> CheckpointRecord:
    (cid, sid, seq, created, kind, label, manifest, files, size, changed, stored) = row[:11]
    turn, cost, tokens, skipped, notes = row[11:]
    return CheckpointRecord(
        id=cid,
        session_id=sid,
        kind=kind,
        manifest=manifest,
        files=files,
        bytes=size,
        changed=changed,
        stored_bytes=stored,
        turn=turn,
        created_at=parse_time(created),
        label=label,
        seq=seq,
        model_cost=Decimal(cost),
        tokens=tokens,
        skipped=skipped,
        notes=tuple(json.loads(notes)),
    )


_UPSERT_USAGE = (
    "INSERT OR REPLACE INTO usage (session_id, status, stop_reason, input_tokens, output_tokens,"
    " cache_read_input_tokens, cache_creation_input_tokens, requests, model_cost, cost_known,"
    " active_seconds, running_since, status_seq, pending)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _usage_row(state: SessionState) -> tuple[Any, ...]:
    u = state.usage
    return (
        state.session_id,
        state.status,
        json.dumps(state.stop_reason) if state.stop_reason else None,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
        u.requests,
        str(u.model_cost),
        int(u.cost_known),
        str(state.active_seconds),
        state.running_since.isoformat() if state.running_since else None,
        state.status_seq,
        json.dumps(state.pending_approvals),
    )


def _record_from_row(row: tuple[Any, ...]) -> SessionRecord:
    (sid, title, created, spec, model, sandbox, isolation, workspace, metadata) = row[:9]
    (status, stop, inp, out, cread, ccreate, requests, cost, known, active) = row[9:19]
    since, status_seq, pending, seq, upd = row[19:]
    created_at = parse_time(created)
    state = SessionState(
        session_id=sid,
        created_at=created_at,
        status=status,
        stop_reason=json.loads(stop) if stop else None,
        usage=Usage(inp, out, cread, ccreate, Decimal(cost), bool(known), requests),
        active_seconds=Decimal(active),
        running_since=parse_time(since) if since else None,
        updated_at=parse_time(upd) if upd else created_at,
        last_seq=seq or 0,
        status_seq=status_seq,
        pending_approvals=json.loads(pending),
    )
    return SessionRecord(
        id=sid,
        title=title,
        created_at=created_at,
        spec=json.loads(spec),
        model=model,
        workspace=workspace,
        sandbox=sandbox,
        isolation=isolation,
        metadata=json.loads(metadata),
        state=state,
    )
