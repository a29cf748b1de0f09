"""Budgets and forecasts: caps stop new requests, warnings once, raising goes on."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path

from tui.core.engine.supervisor import Supervisor
from tui.core.money.budget import DAILY
from tui.core.money.estimate import estimate_spec
from tui.core.session import events as ev
from tui.core.session.state import finished_after, is_finished
from tui.core.store.settings import save_setting

from .conftest import make_spec

# $0.0054 a request at claude-sonnet-4-5 rates.
USAGE = {"input_tokens": 1000, "output_tokens": 160}


def turns(n: int) -> list[dict]:
    return [
        {"text": f"t{i}", "usage": USAGE, "tool_uses": [("glob", {"pattern": "*"})]}
        for i in range(n)
    ] + [{"text": "done", "usage": USAGE}]


async def settle(supervisor: Supervisor, sid: str, after: int = 0):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(supervisor.wait_for(sid, finished_after(after)), 30)


async def test_warnings_once_then_the_cap_then_raising_goes_on(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    sid = await supervisor.create_session(make_spec(tmp_path, turns(5), budget="0.02"))
    state = await settle(supervisor, sid)
    assert state.stop_type == ev.BUDGET_REACHED
    assert "max_list_cost $0.0200 reached" in state.stop_reason["detail"]  # type: ignore[index]
    assert state.usage.requests == 4  # 3 x $0.0054 < $0.02 <= 4 x $0.0054
    events = await supervisor.store.events(sid)
    warnings = [e.payload["percent"] for e in events if e.type == ev.SESSION_BUDGET_WARNING]
    assert warnings == [50, 80, 95]  # each line once, in order
    # Raise it: the session goes on by itself, and new warnings are for the new cap.
    await supervisor.set_budget(sid, Decimal("1.00"), None)
    state = await settle(supervisor, sid, state.last_seq)
    assert state.stop_type == ev.END_TURN and state.usage.requests == 6
    events = await supervisor.store.events(sid)
    assert [e.type for e in events].count(ev.SESSION_BUDGET) == 1
    assert [e.type for e in events].count(ev.SESSION_BUDGET_WARNING) == 3


async def test_active_hours_cap(live_supervisor: Supervisor, tmp_path: Path) -> None:
    slow = [
        {"text": f"t{i}", "latency_ms": 300, "tool_uses": [("glob", {"pattern": "*"})]}
        for i in range(20)
    ]
    spec = make_spec(tmp_path, slow)
    spec = dataclasses.replace(spec, max_active_hours=Decimal("0.0002"))  # 0.72 s
    sid = await live_supervisor.create_session(spec)
    state = await settle(live_supervisor, sid)
    assert state.stop_type == ev.BUDGET_REACHED
    assert "max_active_hours" in state.stop_reason["detail"]  # type: ignore[index]
    assert 1 < state.usage.requests < 20


async def test_a_daily_cap_counts_every_session(
    supervisor: Supervisor, tmp_path: Path, data_dir: Path
) -> None:
    first = await supervisor.create_session(make_spec(tmp_path, turns(2), name="a"))
    assert (await settle(supervisor, first)).stop_type == ev.END_TURN  # $0.0162 spent
    save_setting(data_dir, DAILY, "0.02")
    second = await supervisor.create_session(make_spec(tmp_path, turns(3), name="b"))
    state = await settle(supervisor, second)
    assert state.stop_type == ev.BUDGET_REACHED
    assert "daily cap" in state.stop_reason["detail"]  # type: ignore[index]
    assert state.usage.requests == 1  # $0.0162 + $0.0054 ≥ $0.02 after one


async def test_estimate_from_the_script_then_from_history(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, turns(3))
    before = await estimate_spec(supervisor.store, spec)
    assert before.cost_typical == Decimal("0.0054") * 4 and "script" in before.basis
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    after = await estimate_spec(supervisor.store, spec)
    assert "history of 1" in after.basis
    assert after.cost_typical == state.list_cost() == before.cost_typical
    assert after.turns_typical == 4
    # The hosted comparison adds $0.08 per active hour to the same tokens.
    assert after.hosted_typical is not None and after.hosted_typical >= after.cost_typical
