"""Benchmark: corral's event store against SQLite committing once per event.

What is measured, for 1, 10 and 100 sessions and for bursts of 1 and 6 events per
append call (1 is the worst case; 6 is what one model turn appends at once), each
configuration on a fresh SQLite file in a temp directory:

* corral: ``Store.open`` on a temp file, one session per producer, and one producer
  coroutine per session appending ``agent.message`` events, ``burst`` at a time, with
  ``await store.append(*batch)``. A single bus subscriber (``store.bus.subscribe()``)
  measures append-to-published latency: from just before the producer calls
  ``append`` to the moment the subscriber receives the event. Reported: events/s
  (all events over wall time, until the subscriber has seen the last one), p50/p99
  latency, and the number of transactions the store committed (its grouping).
  Each producer's event count is rounded down to a multiple of the burst.
* peer, "sqlite3 commit-per-event": the standard ``sqlite3`` module, the same
  ``events`` table as corral's schema (a rowid table with ``UNIQUE (session_id,
  seq)``, unique ``id``, foreign key to ``sessions``), WAL with
  ``synchronous=NORMAL`` (corral's durability setting), one connection, one
  ``BEGIN; INSERT; COMMIT`` per event. SQLite has one writer at a time, so the N
  producers are interleaved round-robin on that one connection; latency is per
  event, from just before the INSERT to the end of its COMMIT (it leaves out the
  wait for the other producers' turns, so it flatters the peer at 10 and 100
  sessions). Rows are built with the same ``events.agent_message`` constructor, so
  both sides pay for ids, timestamps and JSON. The peer commits every event on its
  own, so bursts make no difference to it: it runs once per session count and both
  burst rows are compared with that run. This peer isolates what group commits buy.
* naive peer: the same as the peer but with SQLite's defaults (rollback journal,
  ``synchronous=FULL``), i.e. what code that simply commits each event gets. Only
  its events/s is in the table (the JSON has its latencies too).

Events per configuration: full run, 100,000 (corral), 50,000 (peer) and 5,000
(naive peer); ``--quick``, 20,000, 10,000 and 1,000. The output ends with the
verdict against the aim: at 100 sessions, >= 50,000 events/s and >= 10x the peer.

Run ``python bench/store.py [--quick] [--json]``. ``--quick`` finishes in well under
a minute; ``--json`` prints one JSON object (figures, machine, verdict) instead of
the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tui.core.clock import utc_now
from tui.core.ids import session_id
from tui.core.session import events
from tui.core.session.events import Event
from tui.core.session.records import SessionRecord
from tui.core.store.bus import Subscription
from tui.core.store.store import Store

SESSION_COUNTS = (1, 10, 100)
# Events per append: 1 is the worst case; 6 is what one model turn appends at once in the
# runner (thinking, message, a few tool uses, the request's end span).
BURSTS = (1, 6)
TEXT = ("The quick brown fox jumps over the lazy dog; " * 5)[:200]
PEER_NAME = "sqlite3 commit-per-event"
PEER_MODE = (
    "one connection, producers interleaved round-robin, BEGIN/INSERT/COMMIT per event;"
    " latency = that event's INSERT+COMMIT, not the wait for other producers' turns"
)
AIM_EVENTS_PER_S = 50_000
AIM_RATIO = 10.0
AIM_SESSIONS = 100

PEER_SCHEMA = """
CREATE TABLE sessions (id TEXT PRIMARY KEY);
CREATE TABLE events (
    session_id   TEXT NOT NULL REFERENCES sessions(id),
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    payload      TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
"""
PEER_INSERT = (
    "INSERT INTO events (session_id, seq, id, type, processed_at, payload) VALUES (?,?,?,?,?,?)"
)


@dataclass
class Sizes:
    corral_events: int
    peer_events: int
    naive_events: int


SIZES = {
    "quick": Sizes(corral_events=20_000, peer_events=10_000, naive_events=1_000),
    "full": Sizes(corral_events=100_000, peer_events=50_000, naive_events=5_000),
}


@dataclass
class Result:
    events: int
    seconds: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    commits: int | None = None


@dataclass
class Row:
    sessions: int
    burst: int
    corral: Result
    peer: Result
    ratio: float
    naive_peer: Result
    naive_ratio: float


# -- helpers ----------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise(latencies: list[float], seconds: float, commits: int | None = None) -> Result:
    ordered = sorted(latencies)
    return Result(
        events=len(ordered),
        seconds=round(seconds, 4),
        events_per_s=round(len(ordered) / seconds, 1),
        p50_ms=round(percentile(ordered, 0.50) * 1000, 3),
        p99_ms=round(percentile(ordered, 0.99) * 1000, 3),
        commits=commits,
    )


def per_producer(total: int, producers: int) -> int:
    return max(1, total // producers)


# -- corral -----------------------------------------------------------------------------


async def create_sessions(store: Store, count: int) -> list[str]:
    ids = []
    for n in range(count):
        record = SessionRecord(
            id=session_id(),
            title=f"bench {n}",
            created_at=utc_now(),
            spec={"bench": True},
            model="scripted:x",
            workspace="/tmp",
        )
        await store.create_session(record)
        ids.append(record.id)
    return ids


async def produce(store: Store, sid: str, count: int, burst: int, sent: dict[str, float]) -> None:
    for _ in range(count // burst):
        batch = [events.agent_message(sid, TEXT) for _ in range(burst)]
        now = time.perf_counter()
        for event in batch:
            sent[event.id] = now
        await store.append(*batch)


async def listen(sub: Subscription, expected: int, sent: dict[str, float]) -> list[float]:
    latencies: list[float] = []
    while len(latencies) < expected:
        item = await sub.get()
        received = time.perf_counter()
        if isinstance(item, Event):
            latencies.append(received - sent.pop(item.id))
    return latencies


async def corral_run(path: Path, sessions: int, total: int, burst: int = 1) -> Result:
    store = await Store.open(path)
    try:
        ids = await create_sessions(store, sessions)
        count = per_producer(total, sessions) // burst * burst
        sent: dict[str, float] = {}
        commits_before = store.commits
        with store.bus.subscribe() as sub:
            started = time.perf_counter()
            listener = asyncio.create_task(listen(sub, count * sessions, sent))
            await asyncio.gather(*(produce(store, sid, count, burst, sent) for sid in ids))
            latencies = await listener
            seconds = time.perf_counter() - started
        return summarise(latencies, seconds, store.commits - commits_before)
    finally:
        await store.close()


def bench_corral(sessions: int, total: int, burst: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        return asyncio.run(corral_run(Path(tmp) / "corral.db", sessions, total, burst))


# -- peer: sqlite3, one commit per event -------------------------------------------------


def peer_connect(path: Path, naive: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    if not naive:
        # Same durability trade as corral's store; the naive peer keeps sqlite's
        # defaults (rollback journal, synchronous=FULL), as code that just commits does.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(PEER_SCHEMA)
    return db


def peer_run(db: sqlite3.Connection, sessions: int, total: int) -> Result:
    ids = [session_id() for _ in range(sessions)]
    db.executemany("INSERT INTO sessions (id) VALUES (?)", [(sid,) for sid in ids])
    next_seq = dict.fromkeys(ids, 1)
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(per_producer(total, sessions)):
        for sid in ids:  # round-robin: each producer in turn gets the one writer
            event = events.agent_message(sid, TEXT)
            before = time.perf_counter()
            seq = next_seq[sid]
            next_seq[sid] = seq + 1
            db.execute("BEGIN")
            db.execute(PEER_INSERT, peer_row(event, seq))
            db.execute("COMMIT")
            latencies.append(time.perf_counter() - before)
    return summarise(latencies, time.perf_counter() - started, commits=len(latencies))


def peer_row(event: Event, seq: int) -> tuple[str, int, str, str, str, str]:
    iso = event.processed_at.isoformat()
    return (event.session_id, seq, event.id, event.type, iso, event.payload_json())


def bench_peer(sessions: int, total: int, naive: bool = False) -> Result:
    with tempfile.TemporaryDirectory(prefix="corral-bench-peer-") as tmp:
        db = peer_connect(Path(tmp) / "peer.db", naive)
        try:
            return peer_run(db, sessions, total)
        finally:
            db.close()


# -- machine and output ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_kib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "mem_total_kib": mem_total_kib(),
        "sqlite": sqlite3.sqlite_version,
    }


def aim(rows: list[Row]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {"checked": False}
    for row in rows:
        if row.sessions != AIM_SESSIONS:
            continue
        verdicts["checked"] = True
        verdicts[f"burst_{row.burst}"] = {
            "events_per_s_met": row.corral.events_per_s >= AIM_EVENTS_PER_S,
            "ratio_met": row.ratio >= AIM_RATIO,
            "naive_ratio_met": row.naive_ratio >= AIM_RATIO,
        }
    verdicts.update(
        sessions=AIM_SESSIONS, events_per_s_target=AIM_EVENTS_PER_S, ratio_target=AIM_RATIO
    )
    return verdicts


def report_json(mode: str, rows: list[Row]) -> str:
    return json.dumps(
        {
            "benchmark": "store",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "peer": {"name": PEER_NAME, "mode": PEER_MODE},
            "machine": machine(),
            "results": [asdict(r) for r in rows],
            "aim": aim(rows),
        },
        indent=2,
    )


def report_table(mode: str, rows: list[Row]) -> str:
    header = (
        f"{'sessions':>8} {'burst':>5} {'corral ev/s':>12} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'commits':>8}"
        f" {'peer ev/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'corral/peer':>11}"
        f" {'naive ev/s':>10} {'corral/naive':>12}"
    )
    lines = [
        f"corral store vs {PEER_NAME} ({PEER_MODE}); mode={mode}",
        f"machine: {machine()}",
        "",
        header,
    ]
    for r in rows:
        c, p = r.corral, r.peer
        lines.append(
            f"{r.sessions:>8} {r.burst:>5} {c.events_per_s:>12,.0f} {c.p50_ms:>8.3f}"
            f" {c.p99_ms:>8.3f} {c.commits:>8} {p.events_per_s:>10,.0f}"
            f" {p.p50_ms:>8.3f} {p.p99_ms:>8.3f}"
            f" {r.ratio:>10.2f}x {r.naive_peer.events_per_s:>10,.0f} {r.naive_ratio:>11.2f}x"
        )
    verdict = aim(rows)
    for burst in BURSTS:
        v = verdict.get(f"burst_{burst}")
        if v:
            lines.append(
                f"aim at {AIM_SESSIONS} sessions, {burst} event(s) per append:"
                f" >= {AIM_EVENTS_PER_S:,} events/s"
                f" {'met' if v['events_per_s_met'] else 'NOT met'};"
                f" >= {AIM_RATIO:g}x peer {'met' if v['ratio_met'] else 'NOT met'}"
                f" (naive peer {'met' if v['naive_ratio_met'] else 'NOT met'})"
            )
    return "\n".join(lines)


def run(sizes: Sizes, counts: tuple[int, ...], progress: bool) -> list[Row]:
    rows = []
    for sessions in counts:
        # The peer commits every event on its own, so bursts make no difference to it.
        peer = bench_peer(sessions, sizes.peer_events)
        naive = bench_peer(sessions, sizes.naive_events, naive=True)
        for burst in BURSTS:
            corral = bench_corral(sessions, sizes.corral_events, burst)
            ratio = round(corral.events_per_s / peer.events_per_s, 2)
            naive_ratio = round(corral.events_per_s / naive.events_per_s, 2)
            rows.append(Row(sessions, burst, corral, peer, ratio, naive, naive_ratio))
        if progress:
            print(f"  {sessions} sessions done", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events: under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    rows = run(SIZES[mode], SESSION_COUNTS, progress=not args.json)
    print(report_json(mode, rows) if args.json else report_table(mode, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
