"""Benchmark: durably recording one agent step as a conversation grows, against LangGraph.

What is measured, at conversation lengths of 10, 100 and 1000 turns: the wall time
of recording one more agent step so that it survives a crash, on corral's store and
on LangGraph's SQLite checkpointer (``langgraph-checkpoint-sqlite``) saving the same
messages. Each side gets a fresh SQLite file in a temp directory per length.

* A turn (and a step) is: the model replies with ~300 characters of text and one
  tool call, and the tool returns ~800 characters. Every session/thread starts with
  one user message. Texts are the same on both sides.
* corral: ``Store.open``; sessions via ``create_session``; one step is
  ``await store.append(request_start, agent_message, agent_tool_use, request_end)``
  then ``await store.append(agent_tool_result)``, as the runner does: two group
  commits, each awaited until committed (WAL, ``synchronous=NORMAL``: the store's
  fixed setting). Only the step's five events are written, whatever the length.
* peer: ``SqliteSaver`` (sync) on a ``sqlite3`` connection. One step is one
  ``put()`` of a checkpoint whose ``channel_values["messages"]`` is the whole message
  list (``HumanMessage``, then ``AIMessage`` with a tool call and ``ToolMessage`` per
  turn), which is what a graph with an ``add_messages`` channel checkpoints: the saver
  serialises every channel value into one blob per checkpoint (no per-channel blob
  table, no diffs). ``put`` commits before it returns. A real graph checkpoints at
  every superstep (model node, then tools node: two puts, plus ``put_writes``, per
  such step); one put per step is the least it can do, so this flatters the peer.
  Two runs: with corral's pragmas (WAL, ``synchronous=NORMAL``,
  ``wal_autocheckpoint=4000``), the one the aim is checked against, and with the
  saver's defaults (it sets WAL; ``synchronous`` stays SQLite's FULL).

Lengths are kept: a session/thread is pre-filled to N turns and then takes at most
N/10 timed steps (one at N=10), so the timed steps happen between N and 1.1*N turns;
as many sessions as needed are pre-filled before timing starts. A few untimed steps
on a separate session warm each side up first. Reported per length: median and p95
ms per step, and the bytes each step stores.

Aims: flat per-step cost for corral (p50 at 1000 turns within 1.5x of p50 at 10),
and the peer (same pragmas) at least 10x slower per step at 1000 turns.

Run ``python bench/persist.py [--quick] [--json]`` in a venv holding both corral and
``langgraph-checkpoint-sqlite`` (see bench/README.md). ``--quick`` takes well under a
minute; ``--json`` prints one JSON object instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core.clock import utc_now
from tui.core.ids import session_id
from tui.core.session import events as ev
from tui.core.session.records import SessionRecord
from tui.core.store.store import Store

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langgraph.checkpoint.sqlite import SqliteSaver

TURN_COUNTS = (10, 100, 1000)
# A session takes at most N // GROWTH timed steps, so its length stays within N..1.1N.
GROWTH = 10
WARMUP_STEPS = 3
PREFILL_TURNS_PER_APPEND = 200  # pre-fill only: 1,000 events per append
MODEL = "scripted:bench"
USAGE = {
    "input_tokens": 1200,
    "output_tokens": 180,
    "cache_read_input_tokens": 0,
    "cache_creation_input_tokens": 0,
}
AIM_FLAT = 1.5  # corral p50 at the longest length over p50 at the shortest
AIM_RATIO = 10.0  # peer p50 over corral p50 at the longest length
INSTALL_HINT = (
    "python3 -m venv /tmp/bench-venv && "
    "/tmp/bench-venv/bin/pip install -e . langgraph-checkpoint-sqlite"
)
FILLER = (
    "Reading the module again, the failing branch only runs when the cache is cold, "
    "so the fix belongs in the loader rather than in the caller. "
)


@dataclass
class Sizes:
    corral_steps: int
    peer_steps: int


SIZES = {
    "quick": Sizes(corral_steps=500, peer_steps=60),
    "full": Sizes(corral_steps=2000, peer_steps=300),
}


@dataclass
class Timing:
    steps: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    bytes_per_step: int  # payload bytes the step stores (events, or one checkpoint blob)
    sessions: int  # sessions (threads) the steps were spread over
    pragmas: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    turns: int
    corral: Timing
    peer: Timing
    peer_defaults: Timing
    ratio: float  # peer p50 / corral p50
    ratio_defaults: float


# -- content: the same texts on both sides ----------------------------------------------


def user_text() -> str:
    return "Find why the loader test fails on a cold cache and fix it; run the tests after."


def assistant_text(turn: int) -> str:
    return (f"Step {turn}. " + FILLER * 3)[:300]


def tool_input(turn: int) -> dict[str, Any]:
    return {"command": f"grep -rn 'load_{turn}' src/ tests/ | head -40"}


def tool_result(turn: int) -> str:
    line = f"src/loader/module_{turn}.py:{turn % 400 + 1}: def load_{turn}(path, cache=None):\n"
    return (line * (800 // len(line) + 1))[:800]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def timing(latencies: list[float], stored: int, sessions: int, pragmas: dict[str, Any]) -> Timing:
    ordered = sorted(latencies)
    return Timing(
        steps=len(ordered),
        p50_ms=round(percentile(ordered, 0.50) * 1000, 3),
        p95_ms=round(percentile(ordered, 0.95) * 1000, 3),
        mean_ms=round(sum(ordered) / len(ordered) * 1000, 3),
        bytes_per_step=stored,
        sessions=sessions,
        pragmas=pragmas,
    )


def layout(turns: int, steps: int) -> tuple[int, int]:
    """(sessions, timed steps per session) for ``steps`` steps at about ``turns`` turns."""
    per_session = max(1, turns // GROWTH)
    return math.ceil(steps / per_session), per_session


# -- corral ------------------------------------------------------------------------------


def corral_turn(sid: str, turn: int) -> tuple[list[ev.Event], ev.Event]:
    """One step's events: the model's reply (one append) and the tool's result (another)."""
    start = ev.model_request_start(sid, MODEL)
    use = ev.agent_tool_use(sid, "bash", tool_input(turn), "allow", None, "bench")
    reply = [start, ev.agent_message(sid, assistant_text(turn)), use]
    reply.append(ev.model_request_end(sid, start.id, USAGE))
    return reply, ev.agent_tool_result(sid, use.id, tool_result(turn), False)


async def corral_step(store: Store, sid: str, turn: int) -> None:
    reply, result = corral_turn(sid, turn)
    await store.append(*reply)
    await store.append(result)


async def corral_session(store: Store, turns: int) -> str:
    """A session holding a user message and ``turns`` turns, appended in big batches."""
    sid = session_id()
    await store.create_session(
        SessionRecord(
            id=sid,
            title="bench persist",
            created_at=utc_now(),
            spec={"bench": True},
            model=MODEL,
            workspace="/tmp",
        )
    )
    batch: list[ev.Event] = [ev.user_message(sid, user_text())]
    for turn in range(turns):
        reply, result = corral_turn(sid, turn)
        batch += [*reply, result]
        if (turn + 1) % PREFILL_TURNS_PER_APPEND == 0:
            await store.append(*batch)
            batch = []
    if batch:
        await store.append(*batch)
    return sid


async def corral_pragmas(store: Store) -> dict[str, Any]:
    found = {}
    for name in ("journal_mode", "synchronous", "wal_autocheckpoint"):
        async with store._db.execute(f"PRAGMA {name}") as cursor:  # read-only peek
            row = await cursor.fetchone()
        found[name] = row[0] if row else None
    return found


async def corral_run(path: Path, turns: int, steps: int) -> Timing:
    store = await Store.open(path)
    try:
        warm = await corral_session(store, turns)
        for n in range(WARMUP_STEPS):
            await corral_step(store, warm, turns + n)
        count, per_session = layout(turns, steps)
        sessions = [await corral_session(store, turns) for _ in range(count)]
        latencies: list[float] = []
        gc.collect()
        for sid in sessions:
            for n in range(min(per_session, steps - len(latencies))):
                before = time.perf_counter()
                await corral_step(store, sid, turns + n)
                latencies.append(time.perf_counter() - before)
        reply, result = corral_turn("x", turns)
        stored = sum(len(e.payload_json().encode()) for e in [*reply, result])
        return timing(latencies, stored, count, await corral_pragmas(store))
    finally:
        await store.close()


def bench_corral(turns: int, steps: int) -> Timing:
    with tempfile.TemporaryDirectory(prefix="corral-bench-persist-") as tmp:
        return asyncio.run(corral_run(Path(tmp) / "corral.db", turns, steps))


# -- peer: LangGraph's SqliteSaver -------------------------------------------------------


@dataclass
class PeerThread:
    config: dict[str, Any]
    messages: list[BaseMessage]
    step: int = 0
    version: str | None = None


def peer_turn(turn: int) -> list[BaseMessage]:
    from langchain_core.messages import AIMessage, ToolMessage

    call_id = f"toolu_{uuid.uuid4().hex[:24]}"
    usage = {
        "input_tokens": USAGE["input_tokens"],
        "output_tokens": USAGE["output_tokens"],
        "total_tokens": USAGE["input_tokens"] + USAGE["output_tokens"],
    }
    reply = AIMessage(
        content=assistant_text(turn),
        id=str(uuid.uuid4()),
        tool_calls=[{"name": "bash", "args": tool_input(turn), "id": call_id, "type": "tool_call"}],
        usage_metadata=usage,  # type: ignore[arg-type]
        response_metadata={"model_name": MODEL},
    )
    result = ToolMessage(content=tool_result(turn), tool_call_id=call_id, id=str(uuid.uuid4()))
    return [reply, result]


def peer_save(saver: SqliteSaver, thread: PeerThread) -> None:
    """One checkpoint of the thread's state, as a graph's loop writes it after a superstep."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    thread.step += 1
    version = saver.get_next_version(thread.version, None)
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=thread.step))
    checkpoint["channel_values"] = {"messages": thread.messages}
    checkpoint["channel_versions"] = {"messages": version}
    checkpoint["versions_seen"] = {"agent": {"messages": thread.version or version}}
    checkpoint["updated_channels"] = ["messages"]
    meta: dict[str, Any] = {"source": "loop", "step": thread.step, "parents": {}}
    thread.config = saver.put(thread.config, checkpoint, meta, {"messages": version})  # type: ignore[arg-type]
    thread.version = version


def peer_step(saver: SqliteSaver, thread: PeerThread, turn: int) -> None:
    # Appending in place is the cheapest list update; add_messages would copy the list.
    thread.messages.extend(peer_turn(turn))
    peer_save(saver, thread)


def peer_thread(saver: SqliteSaver, turns: int) -> PeerThread:
    """A thread whose latest checkpoint holds a user message and ``turns`` turns.

    Only that one checkpoint is written, not one per earlier turn: a real thread would
    also hold its older checkpoints, which changes little for a put and would cost the
    pre-fill O(N^2) bytes.
    """
    from langchain_core.messages import HumanMessage

    messages: list[BaseMessage] = [HumanMessage(content=user_text(), id=str(uuid.uuid4()))]
    for turn in range(turns):
        messages += peer_turn(turn)
    config = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
    thread = PeerThread(config=config, messages=messages)
    peer_save(saver, thread)
    return thread


def peer_run(path: Path, turns: int, steps: int, corral_pragmas: bool) -> Timing:
    from langgraph.checkpoint.sqlite import SqliteSaver

    # check_same_thread=False as the saver's own from_conn_string does.
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        saver.setup()  # sets journal_mode=WAL and creates the tables
        if corral_pragmas:
            # The same durability and checkpoint cadence as corral's store.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=4000")
        pragmas = {
            name: conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "wal_autocheckpoint")
        }
        warm = peer_thread(saver, turns)
        for n in range(WARMUP_STEPS):
            peer_step(saver, warm, turns + n)
        count, per_session = layout(turns, steps)
        threads = [peer_thread(saver, turns) for _ in range(count)]
        latencies: list[float] = []
        gc.collect()
        for thread in threads:
            for n in range(min(per_session, steps - len(latencies))):
                before = time.perf_counter()
                peer_step(saver, thread, turns + n)
                latencies.append(time.perf_counter() - before)
        last = threads[-1].config["configurable"]["checkpoint_id"]
        (stored,) = conn.execute(
            "SELECT length(checkpoint) FROM checkpoints WHERE checkpoint_id=?", (last,)
        ).fetchone()
        return timing(latencies, stored, count, pragmas)
    finally:
        conn.close()


def bench_peer(turns: int, steps: int, corral_pragmas: bool) -> Timing:
    with tempfile.TemporaryDirectory(prefix="corral-bench-persist-peer-") as tmp:
        return peer_run(Path(tmp) / "peer.db", turns, steps, corral_pragmas)


# -- machine and output ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in (
        "aiosqlite",
        "langgraph-checkpoint-sqlite",
        "langgraph-checkpoint",
        "langchain-core",
        "ormsgpack",
    ):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "sqlite": sqlite3.sqlite_version,
        "packages": package_versions(),
    }


def aim(rows: list[Row]) -> dict[str, Any]:
    first, last = rows[0], rows[-1]
    flat = round(last.corral.p50_ms / first.corral.p50_ms, 2)
    return {
        "flat": {
            "corral_p50_growth": flat,
            "from_turns": first.turns,
            "to_turns": last.turns,
            "target": AIM_FLAT,
            "met": flat <= AIM_FLAT,
        },
        "ratio": {
            "turns": last.turns,
            "peer_over_corral": last.ratio,
            "target": AIM_RATIO,
            "met": last.ratio >= AIM_RATIO,
            "peer_defaults_over_corral": last.ratio_defaults,
        },
    }


def report_json(mode: str, rows: list[Row]) -> str:
    return json.dumps(
        {
            "benchmark": "persist",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "machine": machine(),
            "results": [asdict(r) for r in rows],
            "aim": aim(rows),
        },
        indent=2,
    )


def report_table(mode: str, rows: list[Row]) -> str:
    header = (
        f"{'turns':>5} | {'corral p50':>10} {'p95':>7} {'B/step':>6}"
        f" | {'peer p50':>8} {'p95':>7} {'B/step':>9} {'peer/corral':>11}"
        f" | {'peer-dflt p50':>13} {'p95':>7} {'ratio':>7}"
    )
    c0, p0, d0 = rows[0].corral.pragmas, rows[0].peer.pragmas, rows[0].peer_defaults.pragmas
    lines = [
        f"one agent step, durably recorded (ms per step); mode={mode}",
        f"corral: 2 appends/step, pragmas {c0}",
        f"peer:   SqliteSaver.put of the whole message list, 1 put/step, pragmas {p0}",
        f"peer-dflt: the same with the saver's defaults, pragmas {d0}",
        f"machine: {machine()}",
        "",
        header,
    ]
    for r in rows:
        c, p, d = r.corral, r.peer, r.peer_defaults
        lines.append(
            f"{r.turns:>5} | {c.p50_ms:>10.3f} {c.p95_ms:>7.3f} {c.bytes_per_step:>6,}"
            f" | {p.p50_ms:>8.3f} {p.p95_ms:>7.3f} {p.bytes_per_step:>9,} {r.ratio:>10.1f}x"
            f" | {d.p50_ms:>13.3f} {d.p95_ms:>7.3f} {r.ratio_defaults:>6.1f}x"
        )
    verdict = aim(rows)
    flat, ratio = verdict["flat"], verdict["ratio"]
    lines.append(
        f"aim, flat: corral p50 at {flat['to_turns']} turns is {flat['corral_p50_growth']}x"
        f" that at {flat['from_turns']} (target <= {AIM_FLAT}x):"
        f" {'met' if flat['met'] else 'NOT met'}"
    )
    lines.append(
        f"aim, >= {AIM_RATIO:g}x peer at {ratio['turns']} turns:"
        f" {ratio['peer_over_corral']}x {'met' if ratio['met'] else 'NOT met'}"
        f" (peer with its defaults: {ratio['peer_defaults_over_corral']}x)"
    )
    return "\n".join(lines)


def run(sizes: Sizes, progress: bool) -> list[Row]:
    rows = []
    for turns in TURN_COUNTS:
        corral = bench_corral(turns, sizes.corral_steps)
        peer = bench_peer(turns, sizes.peer_steps, corral_pragmas=True)
        defaults = bench_peer(turns, sizes.peer_steps, corral_pragmas=False)
        rows.append(
            Row(
                turns=turns,
                corral=corral,
                peer=peer,
                peer_defaults=defaults,
                ratio=round(peer.p50_ms / corral.p50_ms, 2),
                ratio_defaults=round(defaults.p50_ms / corral.p50_ms, 2),
            )
        )
        if progress:
            print(f"  {turns} turns done", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps: under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    try:
        import langgraph.checkpoint.sqlite  # noqa: F401
    except ImportError:
        print(
            "bench/persist.py: langgraph.checkpoint.sqlite is not importable; install the"
            f" peer in a bench-only venv ({INSTALL_HINT}) and run this with its python",
            file=sys.stderr,
        )
        return 2
    mode = "quick" if args.quick else "full"
    rows = run(SIZES[mode], progress=not args.json)
    print(report_json(mode, rows) if args.json else report_table(mode, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
