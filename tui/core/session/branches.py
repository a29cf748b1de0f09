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
from typing import Any

from tui.core.ids import event_id
from tui.core.session import events as ev


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


CONVERSATION_TYPES = frozenset(
    {
        ev.USER_MESSAGE,
        ev.AGENT_MESSAGE,
        ev.AGENT_THINKING,
        ev.AGENT_TOOL_USE,
        ev.USER_TOOL_CONFIRMATION,
        ev.AGENT_TOOL_RESULT,
    }
)


def fork_events(events: list[ev.Event], upto_seq: int, new_session: str) -> list[ev.Event]:
    """The conversation up to ``upto_seq`` on its branch, as events of ``new_session``."""
    on_path = path_seqs(events, head=upto_seq)
    ids: dict[str, str] = {}
    out = []
    for event in events:
        if event.seq not in on_path or event.type not in CONVERSATION_TYPES:
            continue
        ids[event.id] = new_id = event_id()
        out.append(
            ev.Event(
                session_id=new_session,
                type=event.type,
                payload=_remap(event.payload, ids),
                id=new_id,
                processed_at=event.processed_at,
            )
        )
    return out


def _remap(payload: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    out = dict(payload)
    if "tool_use_id" in out:
        out["tool_use_id"] = ids.get(out["tool_use_id"], out["tool_use_id"])
    return out
