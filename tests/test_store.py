"""The store: gapless seq, unique ids, grouped commits, durable before published, migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tui.core.clock import utc_now
from tui.core.errors import NotFoundError, StoreBusyError, StoreError
from tui.core.session import events as ev
from tui.core.session.records import SessionRecord
from tui.core.store.datadir import db_path
from tui.core.store.schema import SCHEMA_VERSION
from tui.core.store.store import Store


def record(sid: str) -> SessionRecord:
    return SessionRecord(
        id=sid, title=sid, created_at=utc_now(), spec={}, model="scripted:x", workspace="/tmp"
    )


async def test_seq_is_gapless_per_session_under_concurrency(store: Store) -> None:
    sids = [f"sesn_{i}" for i in range(10)]
    for sid in sids:
        await store.create_session(record(sid))

    async def producer(sid: str) -> None:
        for n in range(50):
            await store.append(ev.agent_message(sid, f"message {n}"))

    await asyncio.gather(*(producer(s) for s in sids))
    all_ids = set()
    for sid in sids:
        events = await store.events(sid)
        assert [e.seq for e in events] == list(range(1, 51))
        assert [e.text for e in events] == [f"message {n}" for n in range(50)]
        all_ids |= {e.id for e in events}
    assert len(all_ids) == 500
    # Grouped: far fewer transactions than events.
    assert store.commits < 250


async def test_subscribers_only_see_durable_events(store: Store) -> None:
    sids = [f"sesn_{i}" for i in range(5)]
    for sid in sids:
        await store.create_session(record(sid))
    checker = sqlite3.connect(store.path)  # a second, independent reader of the file
    seen = 0
    missing = []

    async def watch() -> None:
        nonlocal seen
        with store.bus.subscribe() as sub:
            async for item in sub:
                row = checker.execute("SELECT seq FROM events WHERE id=?", (item.id,)).fetchone()
                if row is None or row[0] != item.seq:
                    missing.append(item.id)
                seen += 1
                if seen == 5 * 40:
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)

    async def producer(sid: str) -> None:
        for n in range(40):
            store.submit([ev.agent_message(sid, str(n))])  # fire and forget: a burst
            if n % 10 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(producer(s) for s in sids))
    await asyncio.wait_for(watcher, 30)
    checker.close()
    assert seen == 200
    assert missing == []


async def test_per_session_subscription_filters(store: Store) -> None:
    await store.create_session(record("sesn_a"))
    await store.create_session(record("sesn_b"))
    with store.bus.subscribe("sesn_b") as sub:
        await store.append(ev.agent_message("sesn_a", "a"), ev.agent_message("sesn_b", "b"))
        item = await asyncio.wait_for(sub.get(), 5)
        assert item.session_id == "sesn_b" and sub.queue.empty()


async def test_seq_continues_after_reopen(data_dir: Path) -> None:
    path = db_path(data_dir)
    store = await Store.open(path)
    await store.create_session(record("sesn_r"))
    await store.append(ev.agent_message("sesn_r", "one"), ev.agent_message("sesn_r", "two"))
    await store.close()
    store = await Store.open(path)
    (third,) = await store.append(ev.agent_message("sesn_r", "three"))
    assert third.seq == 3
    assert (await store.get_session("sesn_r")).state.last_seq == 3
    await store.close()


async def test_wal_and_schema_version(store: Store) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_newer_schema_is_refused(data_dir: Path) -> None:
    path = db_path(data_dir)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this corral"):
        await Store.open(path)


async def test_not_a_database_is_a_clear_error(data_dir: Path) -> None:
    path = db_path(data_dir)
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        await Store.open(path)


async def test_bad_append_fails_alone_and_seq_stays_gapless(store: Store) -> None:
    await store.create_session(record("sesn_x"))
    await store.append(ev.agent_message("sesn_x", "ok"))
    good = store.submit([ev.agent_message("sesn_x", "same group")])
    bad = store.submit([ev.agent_message("sesn_nope", "no such session")])
    with pytest.raises(NotFoundError):
        await bad
    assert [e.seq for e in await good] == [2]
    # A duplicate id breaks the transaction itself: it rolls back and loses nothing else.
    (dup,) = await store.append(ev.agent_message("sesn_x", "three"))
    with pytest.raises(StoreError):
        await store.append(ev.Event("sesn_x", ev.AGENT_MESSAGE, {}, id=dup.id))
    (event,) = await store.append(ev.agent_message("sesn_x", "still ok"))
    assert event.seq == 4
    assert [e.seq for e in await store.events("sesn_x")] == [1, 2, 3, 4]


async def test_one_live_supervisor_per_data_dir(store: Store, data_dir: Path) -> None:
    await store.claim_lease()
    other = await Store.open(db_path(data_dir))
    try:
        # Same pid counts as ours; pretend another process holds it.
        conn = sqlite3.connect(store.path)
        conn.execute("UPDATE lease SET pid=1")
        conn.commit()
        conn.close()
        with pytest.raises(StoreBusyError, match="pid 1"):
            await other.claim_lease()
    finally:
        await other.close()
