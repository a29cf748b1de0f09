"""The local store: one SQLite file (WAL) that the user owns.

One aiosqlite connection, owned here; nothing else issues SQL. Every write goes
through one writer task that drains its queue and commits the whole group in one
transaction, then publishes the group's events on the bus: an event is durable
before anyone hears of it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from tui.core.checkpoints.records import CheckpointRecord
from tui.core.clock import parse_time, utc_now
from tui.core.errors import NotFoundError, StoreError
from tui.core.money.pricing import PricingTable, load_pricing
from tui.core.printable import printable_line
from tui.core.session import events as ev
from tui.core.session.events import Event
from tui.core.session.records import SessionRecord
from tui.core.session.state import SessionState
from tui.core.store import lease
from tui.core.store.bus import EventBus
from tui.core.store.datadir import ensure_data_dir
from tui.core.store.definitions import Definitions
from tui.core.store.folds import LiveFolds
from tui.core.store.lease import lease_is_live
from tui.core.store.rows import (
    CHECKPOINT_COLUMNS,
    INSERT_CHECKPOINT,
    INSERT_EVENT,
    UPSERT_USAGE,
    checkpoint_from_row,
    checkpoint_row,
    event_row,
    insert_session,
    record_from_row,
    usage_row,
)
from tui.core.store.schema import migrate
from tui.core.store.writer import Append, GroupWriter


class Store:
    def __init__(self, path: Path, db: aiosqlite.Connection, bus: EventBus) -> None:
        self.path = path
        self.bus = bus
        self._db = db
        self.folds = LiveFolds(self._load_state)
        self._writer = GroupWriter(self._in_db_thread, self.folds, bus, self.pricing)
        self.definitions = Definitions(db, self._write)  # agents and environments

    def pricing(self) -> PricingTable:
        """The prices of this data dir: the shipped table under its ``pricing.toml``."""
        return load_pricing(self.path.parent)

    @property
    def commits(self) -> int:
        """Transactions committed so far: lets tests see that writes are grouped."""
        return self._writer.commits

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path, bus: EventBus | None = None) -> Store:
        ensure_data_dir(path.parent)
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
            await migrate(db, path)
        except (sqlite3.Error, StoreError) as exc:
            await db.close()  # its thread would otherwise keep the process alive
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
        store = cls(path, db, bus or EventBus())
        store._writer.start()
        return store

    async def close(self) -> None:
        await self._writer.stop()
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
        return self._writer.append(Append(events, future, checkpoint))

    async def append(
        self, *events: Event, checkpoint: CheckpointRecord | None = None
    ) -> list[Event]:
        """Append events and return once they are committed and published.

        A ``checkpoint`` is recorded in the same transaction, positioned at the last of
        ``events`` (or at the session's last event when there are none).
        """
        return await self.submit(list(events), checkpoint)

    async def create_session(
        self,
        record: SessionRecord,
        *events: Event,
        checkpoint: CheckpointRecord | None = None,
    ) -> list[Event]:
        """Store a new session with its first events and checkpoint, in one transaction
        (a crash never leaves a session without its start)."""
        state = SessionState(session_id=record.id, created_at=record.created_at)

        def insert(conn: sqlite3.Connection) -> None:
            insert_session(conn, record)
            conn.execute(UPSERT_USAGE, usage_row(state))

        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        return await self._writer.append(
            Append(list(events), future, checkpoint, create=(record.id, state, insert))
        )

    async def import_session(
        self, record: SessionRecord, events: list[Event], checkpoints: list[CheckpointRecord]
    ) -> None:
        """Store a whole session at once (an import): record, log and checkpoints together."""
        state = SessionState(session_id=record.id, created_at=record.created_at)
        pricing = self.pricing()
        for event in events:
            state.apply(event, pricing)

        def insert(conn: sqlite3.Connection) -> None:
            insert_session(conn, record)
            conn.executemany(INSERT_EVENT, [event_row(e) for e in events])
            conn.executemany(INSERT_CHECKPOINT, [checkpoint_row(c) for c in checkpoints])
            conn.execute(UPSERT_USAGE, usage_row(state))

        await self._writer.write(
            insert, before=lambda: self.folds.register(record.id, state, state.last_seq + 1)
        )

    async def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return await self._writer.write(fn)

    async def _in_db_thread(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` with the raw connection on aiosqlite's own thread, in one hop.

        A group's transaction is one call instead of one per statement: at one event
        per commit the hops, not SQLite, were most of the cost. aiosqlite offers no
        public way to do this, so this leans on ``_execute``/``_conn`` (the dependency
        is bounded to the versions that have them).
        """
        db = self._db
        return await db._execute(lambda: fn(db._conn))

    async def _load_state(self, session_id: str) -> SessionState:
        async with self._db.execute(
            "SELECT created_at FROM sessions WHERE id=?", (session_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFoundError(f"no session {session_id}")
        state = SessionState(session_id=session_id, created_at=parse_time(row[0]))
        pricing = self.pricing()
        for event in await self.events(session_id):
            state.apply(event, pricing)
        return state

    # -- reads ---------------------------------------------------------------------

    async def state(self, session_id: str) -> SessionState:
        """The live fold of a session, current as of the last committed event."""
        return await self.folds.state(session_id)

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
            " s.workspace, s.metadata, s.api, u.status, u.stop_reason, u.input_tokens,"
            " u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens,"
            " u.requests, u.model_cost,"
            " u.cost_known, u.active_seconds, u.running_since, u.status_seq, u.pending,"
            # The last event's seq and time are read from the log, not kept twice.
            " (SELECT MAX(e.seq) FROM events e WHERE e.session_id = s.id),"
            " (SELECT e.processed_at FROM events e WHERE e.session_id = s.id"
            "  ORDER BY e.seq DESC LIMIT 1)"
            f" FROM sessions s JOIN usage u ON u.session_id = s.id {where} ORDER BY s.id"
        )
        async with self._db.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [record_from_row(row) for row in rows]

    async def checkpoints(self, session_id: str) -> list[CheckpointRecord]:
        """A session's checkpoints in log order (every branch; see history.py)."""
        async with self._db.execute(
            f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE session_id=? ORDER BY seq, id",
            (session_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [checkpoint_from_row(row) for row in rows]

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
        pricing = self.pricing()
        # Bounded above too: an event stamped in the future (a bad clock, a crafted
        # import) must not count against every day's cap from now on.
        until = utc_now() + timedelta(minutes=5)
        sql = (
            "SELECT s.payload, e.payload FROM events e JOIN events s"
            " ON s.id = json_extract(e.payload, '$.model_request_start_id')"
            " WHERE e.type = ? AND e.processed_at >= ? AND e.processed_at <= ?"
        )
        params = (ev.SPAN_MODEL_REQUEST_END, since.isoformat(), until.isoformat())
        async with self._db.execute(sql, params) as cur:
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

    async def event_seq(self, session_id: str, event_id: str) -> int | None:
        """The seq of one of the session's events, by its id."""
        async with self._db.execute(
            "SELECT seq FROM events WHERE id = ? AND session_id = ?", (event_id, session_id)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else int(row[0])

    async def update_metadata(self, session_id: str, metadata: dict[str, Any]) -> None:
        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE sessions SET metadata=? WHERE id=?", (json.dumps(metadata), session_id)
            )

        await self._write(update)

    async def update_api(self, session_id: str, api: dict[str, Any]) -> None:
        """Replace what ties a session to the API's nouns (its metadata, archiving)."""
        await self._write(
            lambda c: c.execute(
                "UPDATE sessions SET api = ? WHERE id = ?", (json.dumps(api), session_id)
            )
        )

    async def delete_session(self, session_id: str) -> None:
        """Remove a session and everything of it from the store (its blobs stay until gc)."""

        def delete(conn: sqlite3.Connection) -> None:
            for table in ("checkpoints", "events", "usage"):
                conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

        await self._write(delete)
        self.folds.states.pop(session_id, None)
        self.folds.next_seq.pop(session_id, None)

    async def manifests_in_use(self) -> set[str]:
        """The manifest of every checkpoint of every session (what gc must keep)."""
        async with self._db.execute("SELECT DISTINCT manifest FROM checkpoints") as cursor:
            return {row[0] for row in await cursor.fetchall()}

    # -- lease -----------------------------------------------------------------------

    async def claim_lease(self) -> None:
        """Become the one process that runs sessions on this data dir, or say who is."""
        await self._write(lambda c: lease.claim(c, self.path.parent))

    async def heartbeat(self) -> None:
        await self._write(lease.beat)

    async def release_lease(self) -> None:
        await self._write(lease.release)

    async def live_lease_pid(self) -> int | None:
        async with self._db.execute("SELECT pid, heartbeat FROM lease WHERE id=1") as cursor:
            row = await cursor.fetchone()
        if row is not None and lease_is_live(row[0], row[1]):
            return int(row[0])
        return None
