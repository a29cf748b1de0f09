"""Budgets: a session's list-cost and active-hours caps, and a daily cap across sessions.

A session starts with its spec's budget; ``session.budget_updated`` events change it
(``corral budget``, the app), so the log says when a cap moved. At a cap no new model
request starts and the session goes idle with ``budget_reached``; raising it lets the
session go on. Caps are ceilings: a request is sent only with a ``max_tokens`` whose
worst case fits what is left (``ceiling.py``), and the daily cap's allowance is shared
through a ledger, so sessions requesting at once cannot together overspend it. Crossing
50, 80 and 95 % of a cap is recorded once per cap value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tui.core.clock import utc_day_start, utc_now
from tui.core.errors import CorralError
from tui.core.money.amounts import parse_money
from tui.core.money.pricing import format_usd
from tui.core.session import events as ev
from tui.core.session.spec import SessionSpec
from tui.core.session.state import SessionState

WARN_AT = (50, 80, 95)
COST, HOURS, DAILY = "max_list_cost", "max_active_hours", "daily_max_list_cost"


@dataclass(frozen=True)
class Budget:
    max_list_cost: Decimal | None = None
    max_active_hours: Decimal | None = None


def budget_of(spec: SessionSpec, events: list[ev.Event]) -> Budget:
    budget = Budget(spec.max_list_cost, spec.max_active_hours)
    for event in events:
        if event.type == ev.SESSION_BUDGET:
            budget = _updated(budget, event)
    return budget


def _updated(budget: Budget, event: ev.Event) -> Budget:
    p = event.payload
    cost, hours = p.get(COST), p.get(HOURS)
    return Budget(
        Decimal(cost) if cost else None,
        Decimal(hours) if hours else None,
    )


def apply(budget: Budget, event: ev.Event) -> Budget:
    return _updated(budget, event) if event.type == ev.SESSION_BUDGET else budget


class DailyLedger:
    """What requests in flight have set aside from today's allowance, across sessions.
    A session plans and reserves under ``changed``'s lock and releases once its request's
    cost is stored, so two sessions never both spend the same last dollars; one whose
    request fits only once others release waits for them instead of stopping."""

    def __init__(self) -> None:
        self.changed = asyncio.Condition()
        self.reserved = Decimal(0)

    async def release(self, amount: Decimal) -> None:
        async with self.changed:
            self.reserved -= amount
            self.changed.notify_all()


class DailyCap:
    """A cap on list spend across all sessions per UTC day (settings: daily_max_list_cost)."""

    def __init__(
        self,
        cap: Decimal,
        spent_today: Callable[[], Awaitable[Decimal]],
        ledger: DailyLedger | None = None,
    ) -> None:
        self.cap = cap
        self.spent_today = spent_today
        self.ledger = ledger if ledger is not None else DailyLedger()


@dataclass(frozen=True)
class Usage:
    """What counts against the caps right now."""

    cost: Decimal | None
    active_hours: Decimal
    today: Decimal | None = None  # across all sessions, for the daily cap


def usage_of(state: SessionState, today: Decimal | None = None) -> Usage:
    # Active time includes the stretch still running: a session busy for hours never
    # changes status, so the folded total alone would stay at zero.
    return Usage(state.list_cost(), state.active_at(utc_now()) / 3600, today)


def reached(budget: Budget, usage: Usage, daily_cap: Decimal | None) -> str | None:
    """Why no new request may start, or None."""
    cap, cost = budget.max_list_cost, usage.cost
    if cap is not None and cost is not None and cost >= cap:
        return f"max_list_cost {format_usd(cap)} reached ({format_usd(cost)} spent)"
    if budget.max_active_hours is not None and usage.active_hours >= budget.max_active_hours:
        return f"max_active_hours {budget.max_active_hours} reached"
    if daily_cap is not None and usage.today is not None and usage.today >= daily_cap:
        return (
            f"the daily cap {format_usd(daily_cap)} across all sessions is reached"
            f" ({format_usd(usage.today)} today)"
        )
    return None


def shares(budget: Budget, usage: Usage) -> dict[str, tuple[Decimal, Decimal]]:
    """Each cap that is set, with what counts against it: (used, limit)."""
    out: dict[str, tuple[Decimal, Decimal]] = {}
    if budget.max_list_cost and usage.cost is not None:
        out[COST] = (usage.cost, budget.max_list_cost)
    if budget.max_active_hours:
        out[HOURS] = (usage.active_hours, budget.max_active_hours)
    return out


def recorded_warnings(events: list[ev.Event], into: set[tuple[int, str]]) -> None:
    """Fold warnings into ``into``; a budget change clears it (those were for old caps)."""
    for event in events:
        if event.type == ev.SESSION_BUDGET:
            into.clear()
        elif event.type == ev.SESSION_BUDGET_WARNING:
            into.add((event.payload["percent"], event.payload["limit"]))


def due_warnings(
    budget: Budget, usage: Usage, recorded: set[tuple[int, str]]
) -> list[tuple[int, str, str]]:
    """(percent, cap, detail) for each 50/80/95 % line crossed and not yet recorded."""
    out = []
    for cap, (used, limit) in shares(budget, usage).items():
        percent = used * 100 / limit
        for level in WARN_AT:
            if percent >= level and (level, cap) not in recorded:
                shown = format_usd(used) if cap == COST else f"{used:.2f} h"
                out.append((level, cap, f"{level}% of {cap} used ({shown} of {limit})"))
    return out


def daily_cap(
    settings: dict[str, object],
    spend_since: Callable[[datetime], Awaitable[Decimal]],
    ledger: DailyLedger | None = None,
) -> DailyCap | None:
    """The cap across sessions per UTC day from settings.json, if one is set and valid (a
    bad value is reported by ``corral budget --daily`` and never blocks work)."""
    raw = settings.get(DAILY)
    if raw in (None, ""):
        return None
    try:
        cap = parse_money(raw, "settings.json", DAILY)
    except CorralError:
        return None
    return DailyCap(cap, lambda: spend_since(utc_day_start()), ledger)
