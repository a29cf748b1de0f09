"""Spend over a session's log: the list cost of its model requests (all, or those on
certain branches), dead-end spend, what caching saved, and the hosted equivalent."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from tui.core.money.pricing import PricingTable, default_pricing
from tui.core.session import events as ev
from tui.core.session.branches import path_seqs
from tui.core.session.state import SessionState


def _request_usages(
    events: list[ev.Event], seqs: set[int] | None
) -> list[tuple[str, dict[str, int]]]:
    """(priced model, model_usage) of each model request that ended at ``seqs`` (all: None)."""
    models = {
        e.id: e.payload.get("model", "") for e in events if e.type == ev.SPAN_MODEL_REQUEST_START
    }
    return [
        (
            models.get(e.payload.get("model_request_start_id", ""), ""),
            e.payload.get("model_usage", {}),
        )
        for e in events
        if e.type == ev.SPAN_MODEL_REQUEST_END and (seqs is None or e.seq in seqs)
    ]


def spend(
    events: list[ev.Event], seqs: set[int] | None = None, pricing: PricingTable | None = None
) -> Decimal | None:
    """List cost of the model requests that ended at ``seqs`` (all when None); None if unpriced."""
    pricing = pricing or default_pricing()
    total = Decimal(0)
    for model, usage in _request_usages(events, seqs):
        cost = pricing.token_cost(model, usage)
        if cost is None:
            return None
        total += cost
    return total


def cache_saving(events: list[ev.Event], pricing: PricingTable | None = None) -> Decimal | None:
    """What prompt caching saved across a session's requests; None if a model is unpriced."""
    pricing = pricing or default_pricing()
    total = Decimal(0)
    for model, usage in _request_usages(events, None):
        saved = pricing.cache_saving(model, usage)
        if saved is None:
            return None
        total += saved
    return total


def dead_end_spend(events: list[ev.Event]) -> Decimal | None:
    """What the model requests on abandoned branches cost."""
    on_path = path_seqs(events)
    off = {e.seq for e in events if e.seq not in on_path}
    return spend(events, off) if off else Decimal(0)


def hosted_cost(state: SessionState, now: datetime) -> Decimal | None:
    """The same tokens on a hosted service that bills $0.08 per active session-hour."""
    if not state.usage.cost_known:
        return None
    return state.usage.model_cost + default_pricing().runtime_cost(
        state.active_at(now), hosted=True
    )
