"""Budgets and forecasts: caps are ceilings (never overspent, not even by one request),
warnings once, raising goes on.

Every expected figure below is worked out by hand from the shipped claude-sonnet-4-5
list prices (per million tokens: input $3, output $15, cache writes $3.75 and $6), never
with corral's own pricing code. Planning takes a request's worst case: its prompt billed
as 1-hour cache writes ($6/M) plus ``max_tokens`` of output ($15/M)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tui.core.clock import set_clock, utc_day_start
from tui.core.engine.supervisor import Supervisor
from tui.core.money.budget import DAILY
from tui.core.money.estimate import estimate_spec
from tui.core.session import events as ev
from tui.core.session.state import finished_after, is_finished
from tui.core.store.settings import save_setting

from .conftest import make_spec, write_script

# Billed: 1000 x $3/M + 160 x $15/M = $0.0030 + $0.0024 = $0.0054 a request.
# Worst case of its prompt: 1000 x $6/M = $0.0060; the smallest answer corral sends is
# 64 tokens ($0.00096), so a request is sent only with at least $0.00696 left.
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
    detail = state.stop_reason["detail"]  # type: ignore[index]
    assert "max_list_cost $0.0200 reached: $0.0038 left" in detail and "not sent" in detail
    # $0.02 left $0.0146, $0.0092, then $0.0038: less than the $0.0060 prompt alone.
    assert state.usage.requests == 3
    assert state.list_cost() == Decimal("0.0162")  # under the cap, never over it
    events = await supervisor.store.events(sid)
    warnings = [e.payload["percent"] for e in events if e.type == ev.SESSION_BUDGET_WARNING]
    assert warnings == [50, 80]  # 54% after two requests, 81% after three; never 95%
    # Raise it: the session goes on by itself, and new warnings are for the new cap.
    await supervisor.set_budget(sid, Decimal("1.00"), None)
    state = await settle(supervisor, sid, state.last_seq)
    assert state.stop_type == ev.END_TURN and state.usage.requests == 6
    assert state.list_cost() == Decimal("0.0324")
    events = await supervisor.store.events(sid)
    assert [e.type for e in events].count(ev.SESSION_BUDGET) == 1
    assert [e.type for e in events].count(ev.SESSION_BUDGET_WARNING) == 2


async def test_a_cap_lowers_max_tokens_so_the_answer_fits(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    long_answer = [{"text": "x" * 2000, "usage": {"input_tokens": 1000, "output_tokens": 500}}]
    sid = await supervisor.create_session(make_spec(tmp_path, long_answer, budget="0.0092"))
    state = await settle(supervisor, sid)
    # $0.0092 - $0.0060 (prompt, worst case) = $0.0032 = 213.3 tokens at $15/M: the
    # request went out with max_tokens 213 and the answer stopped there.
    assert state.usage.output_tokens == 213
    # Billed: $0.0030 + 213 x $15/M ($0.003195).
    assert state.list_cost() == Decimal("0.006195")
    events = await supervisor.store.events(sid)
    (message,) = [e for e in events if e.type == ev.AGENT_MESSAGE]
    assert message.payload["content"][0]["text"] == "x" * 852  # 2000 x 213 / 500


async def test_an_unpriced_model_under_a_daily_cap_is_refused_not_free(
    supervisor: Supervisor, tmp_path: Path, data_dir: Path
) -> None:
    save_setting(data_dir, DAILY, "5.00")
    one_turn = [{"text": "hi", "usage": USAGE}]
    spec = make_spec(tmp_path, one_turn, name="unpriced")
    write_script(tmp_path / "unpriced.toml", one_turn, price_as="claude-mythos-preview")
    sid = await supervisor.create_session(spec)
    state = await settle(supervisor, sid)
    assert state.stop_type == ev.BUDGET_REACHED
    assert "has no price" in state.stop_reason["detail"]  # type: ignore[index]
    assert state.usage.requests == 0


async def test_active_hours_cap_is_a_ceiling(live_supervisor: Supervisor, tmp_path: Path) -> None:
    slow = [
        {"text": f"t{i}", "latency_ms": 1200, "tool_uses": [("glob", {"pattern": "*"})]}
        for i in range(5)
    ]
    spec = make_spec(tmp_path, slow)
    spec = dataclasses.replace(spec, max_active_hours=Decimal("0.0005"))  # 1.8 s
    sid = await live_supervisor.create_session(spec)
    state = await settle(live_supervisor, sid)
    assert state.stop_type == ev.BUDGET_REACHED
    assert "stopped at the cap" in state.stop_reason["detail"]  # type: ignore[index]
    # The first turn took ~1.2 s; the second would have ended near 2.4 s and was cut
    # at the cap instead: active time never passes it.
    assert state.active_seconds <= Decimal("1.8")
    events = await live_supervisor.store.events(sid)
    ends = [e for e in events if e.type == ev.SPAN_MODEL_REQUEST_END]
    assert [e.payload["is_error"] for e in ends] == [False, True]  # the cut one closed


async def test_a_daily_cap_counts_every_session(
    supervisor: Supervisor, tmp_path: Path, data_dir: Path
) -> None:
    first = await supervisor.create_session(make_spec(tmp_path, turns(2), name="a"))
    assert (await settle(supervisor, first)).stop_type == ev.END_TURN  # 3 x $0.0054
    save_setting(data_dir, DAILY, "0.02")
    second = await supervisor.create_session(make_spec(tmp_path, turns(3), name="b"))
    state = await settle(supervisor, second)
    assert state.stop_type == ev.BUDGET_REACHED
    assert "the daily cap $0.0200 reached: $0.0038 left" in state.stop_reason["detail"]  # type: ignore[index]
    assert state.usage.requests == 0  # $0.0038 left: not even the prompt fits
    assert await supervisor.store.spend_since(utc_day_start()) == Decimal("0.0162")


async def test_sessions_requesting_at_once_share_the_daily_cap(
    live_supervisor: Supervisor, tmp_path: Path, data_dir: Path
) -> None:
    save_setting(data_dir, DAILY, "0.03")
    slow = [
        {
            "text": f"t{i}",
            "latency_ms": 100,
            "usage": USAGE,
            "tool_uses": [("glob", {"pattern": "*"})],
        }
        for i in range(4)
    ]
    ids = [
        await live_supervisor.create_session(make_spec(tmp_path, slow, name=f"s{n}"))
        for n in range(4)
    ]
    states = [await settle(live_supervisor, sid) for sid in ids]
    # Each request reserves its worst case; with $0.03 or less left that is all of what
    # is left, so requests go one at a time: $0.03, $0.0246, $0.0192, $0.0138, $0.0084
    # left before each, and $0.0030 after the fifth (less than a prompt). Without the
    # shared reservation the sessions would all start on the same last dollars.
    assert sum(s.usage.requests for s in states) == 5
    assert await live_supervisor.store.spend_since(utc_day_start()) == Decimal("0.027")
    assert all(s.stop_type == ev.BUDGET_REACHED for s in states)


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


async def test_the_daily_cap_starts_again_at_midnight_utc(
    supervisor: Supervisor, tmp_path: Path, data_dir: Path
) -> None:
    late = datetime(2026, 11, 29, 23, 59, 0, tzinfo=UTC)
    set_clock(lambda: late)
    try:
        save_setting(data_dir, DAILY, "0.02")
        first = await supervisor.create_session(make_spec(tmp_path, turns(2), name="a"))
        assert (await settle(supervisor, first)).list_cost() == Decimal("0.0162")
        second = await supervisor.create_session(make_spec(tmp_path, turns(0), name="b"))
        assert (await settle(supervisor, second)).stop_type == ev.BUDGET_REACHED  # $0.0038 left
        set_clock(lambda: late + timedelta(minutes=2))  # 00:01 UTC, the next day
        third = await supervisor.create_session(make_spec(tmp_path, turns(0), name="c"))
        state = await settle(supervisor, third)
        assert state.stop_type == ev.END_TURN and state.list_cost() == Decimal("0.0054")
        assert await supervisor.store.spend_since(utc_day_start()) == Decimal("0.0054")
    finally:
        set_clock(None)
