"""Forecasts: what a spec is likely to cost before it runs, and where a running session
is heading.

Before a run the best evidence is history: finished sessions in the store with the same
title and model. Without history a scripted model is exact (its script says every
token), and a Claude model gets a wide, labelled guess. While a session runs, its burn
rate gives the time left to its budget, and history's typical length a projected total.
"""

from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tui.core.errors import SpecError
from tui.core.money.budget import Budget
from tui.core.money.pricing import default_pricing, format_usd
from tui.core.session import events as ev
from tui.core.session.spec import SessionSpec
from tui.core.session.state import SessionState
from tui.core.small_files import read_small_file
from tui.core.store.store import Store

# The no-history guess for a Claude session: how many turns, and tokens per turn.
GUESS_TURNS = (5, 40)
GUESS_OUTPUT_PER_TURN = 400
GUESS_CONTEXT_GROWTH_PER_TURN = 1500


@dataclass(frozen=True)
class Estimate:
    basis: str  # "history of N sessions", "the script", "a rough guess (no history)"
    cost_low: Decimal | None
    cost_high: Decimal | None
    cost_typical: Decimal | None
    hours_low: Decimal
    hours_high: Decimal
    turns_typical: int | None = None
    hosted_typical: Decimal | None = None  # tokens plus $0.08 per active hour


async def estimate_spec(store: Store, spec: SessionSpec) -> Estimate:
    history = await _history(store, spec)
    if history:
        return _from_history(history)
    if spec.agent.model.startswith("scripted:"):
        return _from_script(spec)
    return _guess(spec)


async def _history(store: Store, spec: SessionSpec) -> list[tuple[Decimal, Decimal, int]]:
    """(cost, active hours, model requests) of finished sessions like this spec."""
    out = []
    for record in await store.list_sessions():
        state = record.state
        if record.title != spec.title or record.model != spec.agent.model or state is None:
            continue
        cost = state.list_cost()
        if state.stop_type == ev.END_TURN and cost is not None:
            out.append((cost, state.active_seconds / 3600, state.usage.requests))
    return out


def _from_history(history: list[tuple[Decimal, Decimal, int]]) -> Estimate:
    costs = sorted(c for c, _, _ in history)
    hours = sorted(h for _, h, _ in history)
    typical_hours = Decimal(statistics.median(hours))
    pricing = default_pricing()
    typical = Decimal(statistics.median(costs))
    return Estimate(
        basis=f"history of {len(history)} finished session(s) with this title and model",
        cost_low=costs[0],
        cost_high=costs[-1],
        cost_typical=typical,
        hours_low=hours[0],
        hours_high=hours[-1],
        turns_typical=int(statistics.median(r for _, _, r in history)),
        hosted_typical=typical + pricing.runtime_cost(typical_hours * 3600, hosted=True),
    )


def _from_script(spec: SessionSpec) -> Estimate:
    path = spec.agent.model.removeprefix("scripted:")
    try:
        data = tomllib.loads(read_small_file(path).decode("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(path, "", f"cannot read the script: {exc}") from None
    pricing = default_pricing()
    model = data.get("price_as", "claude-sonnet-4-5")
    total = Decimal(0)
    known = True
    seconds = Decimal(0)
    for turn in data.get("turns", []):
        cost = pricing.token_cost(model, turn.get("usage", {}))
        known = known and cost is not None
        total += cost or 0
        seconds += Decimal(turn.get("latency_ms", 0)) / 1000
    hours = seconds / 3600
    cost = total if known else None
    return Estimate(
        basis="the script (every turn's tokens are written down); tools add time",
        cost_low=cost,
        cost_high=cost,
        cost_typical=cost,
        hours_low=hours,
        hours_high=hours,
        turns_typical=len(data.get("turns", [])),
        hosted_typical=None if cost is None else cost + pricing.runtime_cost(seconds, hosted=True),
    )


def _guess(spec: SessionSpec) -> Estimate:
    pricing = default_pricing()
    prompt = len(spec.agent.system) + sum(len(m) for m in spec.messages)
    base = 2500 + prompt // 4  # tool schemas and the prompt, in tokens

    def cost_for(turns: int) -> Decimal | None:
        total = Decimal(0)
        for n in range(turns):
            context = base + n * GUESS_CONTEXT_GROWTH_PER_TURN
            # With caching, each turn reads the context so far and writes what is new.
            usage = {
                "input_tokens": 200,
                "cache_read_input_tokens": context,
                "cache_creation_input_tokens": GUESS_CONTEXT_GROWTH_PER_TURN,
                "output_tokens": GUESS_OUTPUT_PER_TURN,
            }
            cost = pricing.token_cost(spec.agent.model, usage)
            if cost is None:
                return None
            total += cost
        return total

    low, high = cost_for(GUESS_TURNS[0]), cost_for(GUESS_TURNS[1])
    typical = cost_for(15)
    return Estimate(
        basis=f"a rough guess (no history): {GUESS_TURNS[0]}-{GUESS_TURNS[1]} turns with caching",
        cost_low=low,
        cost_high=high,
        cost_typical=typical,
        hours_low=Decimal("0.05"),
        hours_high=Decimal("1"),
        turns_typical=15,
        hosted_typical=None
        if typical is None
        else typical + pricing.runtime_cost(Decimal(900), hosted=True),
    )


def format_estimate(e: Estimate) -> str:
    def money(value: Decimal | None) -> str:
        return format_usd(value, 4)

    lines = [
        f"estimate: {money(e.cost_low)} to {money(e.cost_high)} (typical {money(e.cost_typical)})",
        f"active time: {_hours(e.hours_low)} to {_hours(e.hours_high)}",
        f"on a hosted service ($0.08/active hour plus the same tokens): {money(e.hosted_typical)}",
        f"basis: {e.basis}",
    ]
    return "\n".join(lines)


def _hours(hours: Decimal) -> str:
    seconds = float(hours * 3600)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@dataclass(frozen=True)
class Forecast:
    burn_per_hour: Decimal | None  # list cost per active hour so far
    projected_total: Decimal | None  # at completion, from history's typical length
    hours_to_budget: Decimal | None  # active hours until the cost cap at this burn rate
    hosted_equivalent: Decimal | None


def forecast(
    state: SessionState, budget: Budget, typical_turns: int | None, now: datetime | None = None
) -> Forecast:
    pricing = default_pricing()
    cost = state.list_cost(pricing, now)
    active = state.active_at(now) if now else state.active_seconds
    hours = active / 3600
    burn = cost / hours if cost is not None and hours > 0 else None
    projected = None
    if cost is not None and typical_turns and state.usage.requests:
        projected = cost * max(Decimal(1), Decimal(typical_turns) / state.usage.requests)
    to_budget = None
    if burn and budget.max_list_cost is not None and cost is not None:
        to_budget = max(Decimal(0), (budget.max_list_cost - cost) / burn)
    hosted = None
    if state.usage.cost_known:
        hosted = state.usage.model_cost + pricing.runtime_cost(active, hosted=True)
    return Forecast(burn, projected, to_budget, hosted)
