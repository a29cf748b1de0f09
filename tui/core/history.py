"""Branches in an append-only log.

The log never changes: a rewind appends a ``session.rewound`` event (a corral
extension) naming the position it goes back to. Every event's parent is the event
before it, except a rewind's, whose parent is that position. The session's history
as the model sees it is the path from the newest event back through the parents;
events off that path belong to abandoned branches, still readable, and what their
model requests cost is dead-end spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tui.core import events as ev
from tui.core.pricing import PricingTable, default_pricing


def parent_seq(event: ev.Event) -> int:
    if event.type == ev.SESSION_REWOUND:
        return int(event.payload["to_seq"])
    return event.seq - 1


def path_seqs(events: list[ev.Event], head: int | None = None) -> set[int]:
    """The seqs on the path from ``head`` (default: the newest event) back to the start."""
    by_seq = {e.seq: e for e in events}
    seq = head if head is not None else (events[-1].seq if events else 0)
    out: set[int] = set()
    while seq > 0 and seq in by_seq and seq not in out:
        out.add(seq)
        seq = parent_seq(by_seq[seq])
    return out


def visible(events: list[ev.Event]) -> list[ev.Event]:
    """The events of the current branch, oldest first (a log with no rewind: all of them)."""
    if not any(e.type == ev.SESSION_REWOUND for e in events):
        return events
    on_path = path_seqs(events)
    return [e for e in events if e.seq in on_path]


@dataclass(frozen=True)
class Branch:
    number: int  # 0 is the first line of events; each rewind starts the next
    first_seq: int  # the first event of the branch (for a rewind branch, the rewind)
    last_seq: int
    from_seq: int  # where it leaves its parent branch (0 for the first)
    abandoned: bool


def branches(events: list[ev.Event]) -> list[Branch]:
    """Each branch as a run of seqs: a new one starts at every rewind."""
    if not events:
        return []
    on_path = path_seqs(events)
    starts = [0] + [i for i, e in enumerate(events) if e.type == ev.SESSION_REWOUND]
    out = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(events)
        run = events[start:end]
        first = run[0]
        out.append(
            Branch(
                number=number,
                first_seq=first.seq,
                last_seq=run[-1].seq,
                from_seq=parent_seq(first) if number else 0,
                abandoned=any(e.seq not in on_path for e in run),
            )
        )
    return out


def branch_of(branch_list: list[Branch], seq: int) -> int:
    for branch in branch_list:
        if branch.first_seq <= seq <= branch.last_seq:
            return branch.number
    return 0


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
