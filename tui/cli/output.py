"""What the CLI prints: event lines, session tables and JSON, the review of an import.
Everything from outside goes through ``printable`` first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import humanize

from tui.core.checkpoints.archive import IMPORTED, review
from tui.core.money.pricing import default_pricing, format_usd
from tui.core.money.spend import hosted_cost
from tui.core.permissions.profiles import profile_toml
from tui.core.permissions.session_policy import policy_of
from tui.core.printable import printable_line
from tui.core.session import events as ev
from tui.core.session.describe import describe
from tui.core.session.records import SessionRecord
from tui.core.session.spec import spec_from_json
from tui.core.session.state import SessionState

SUMMARY_HEADER = [
    "id",
    "title",
    "status",
    "stop",
    "sandbox",
    "reqs",
    "tokens",
    "cost",
    "hosted",
    "active",
]


def short(session_id: str) -> str:
    # Ids start with their creation time, so the random tail is what tells them apart.
    return session_id[:5] + "…" + session_id[-8:]


def event_line(event: ev.Event, titles: dict[str, str]) -> str:
    title = titles.get(event.session_id, short(event.session_id))
    return f"{event.processed_at:%H:%M:%S} {title[:22]:<22} #{event.seq:<3} {describe(event)}"


def session_json(record: SessionRecord, now: datetime) -> dict[str, Any]:
    """A session shaped like the SDK's ``BetaManagedAgentsSession`` where it has the field."""
    state = record.state or SessionState(record.id, record.created_at)
    cost = state.list_cost(default_pricing(), now)
    u = state.usage
    spec = record.spec
    budget = spec.get("max_list_cost")
    hosted = hosted_cost(state, now)
    return {
        "id": record.id,
        "type": "session",
        "title": record.title,
        "status": state.status,
        "stop_reason": state.stop_type,
        "created_at": record.created_at.isoformat(),
        "updated_at": (state.updated_at or record.created_at).isoformat(),
        "agent": {
            "name": spec["agent"].get("name", "agent"),
            "model": {"id": record.model},
            "system": spec["agent"].get("system", ""),
            "tools": spec["agent"].get("tools", {}),
        },
        "sandbox": {"backend": record.sandbox, "isolation": record.isolation},
        "workspace": record.workspace,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "list_cost": None if cost is None else str(cost),
            "hosted_equivalent_cost": str(hosted) if hosted else None,
            "model_requests": u.requests,
        },
        "stats": {
            "active_seconds": float(round(state.active_at(now), 3)),
            "duration_seconds": float(round(state.duration_at(now), 3)),
        },
        "budget": {"type": "limit", "max_list_cost": budget} if budget else None,
        "pending_approvals": sorted(state.pending_approvals),
        "metadata": record.metadata,
    }


def print_table(rows: list[list[str]], header: list[str]) -> None:
    rows = [[printable_line(str(c)) for c in row] for row in rows]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def summary_rows(records: list[SessionRecord], now: datetime) -> list[list[str]]:
    rows = []
    for r in records:
        s = r.state or SessionState(r.id, r.created_at)
        cost = s.list_cost(default_pricing(), now)
        rows.append(
            [
                short(r.id),
                r.title[:34],
                s.status,
                s.stop_type or "",
                r.sandbox,
                str(s.usage.requests),
                humanize.intcomma(s.usage.total_tokens),
                format_usd(cost),
                format_usd(hosted_cost(s, now)),
                humanize.naturaldelta(float(s.active_at(now))),
            ]
        )
    return rows


def print_import_review(record: SessionRecord, events: list[ev.Event]) -> None:
    """What an imported, not yet accepted session would be allowed to do."""
    info = record.metadata.get(IMPORTED, {})
    spec = spec_from_json(record.spec)
    print(f"  imported   from {printable_line(str(info.get('from', '?')))}; NOT ACCEPTED yet")
    for line in review(spec, policy_of(spec, events)):
        print(f"    - {printable_line(line)}")
    print("  policy     (the spec's, with every edit in its log applied)")
    for line in profile_toml(policy_of(spec, events)).splitlines():
        if line.strip() and not line.startswith("#"):
            print(f"    {printable_line(line)}")
    print(f"  accept it and let it run: corral resume {record.id}")
