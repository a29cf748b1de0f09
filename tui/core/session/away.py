"""What happened while nobody watched: when the app detaches it notes, per session, how
far it had seen (requests, cost, the last event); when it attaches again each session
that moved on gets one line saying how (requests, cost, how it stands now).

The notes live in this machine's data dir (``app-seen.json``), one set per server, and
hold nothing but counts, so a stale or hand-edited file can only make a line wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tui.core.money.pricing import format_usd
from tui.core.session.state import SessionState

SEEN_FILE = "app-seen.json"
MAX_SEEN_BYTES = 4 << 20


@dataclass(frozen=True)
class Seen:
    seq: int
    requests: int
    cost: Decimal | None


def seen_of(state: SessionState) -> Seen:
    return Seen(state.last_seq, state.usage.requests, state.list_cost())


def load_seen(data_dir: Path, where: str) -> dict[str, Seen]:
    try:
        raw = (data_dir / SEEN_FILE).read_bytes()[:MAX_SEEN_BYTES]
        notes = json.loads(raw).get(where, {})
    except (OSError, ValueError, AttributeError):
        return {}
    seen = {}
    for sid, note in notes.items() if isinstance(notes, dict) else ():
        try:
            cost = None if note.get("cost") is None else Decimal(str(note["cost"]))
            seen[str(sid)] = Seen(int(note["seq"]), int(note["requests"]), cost)
        except (AttributeError, KeyError, TypeError, ValueError, InvalidOperation):
            continue
    return seen


def save_seen(data_dir: Path, where: str, seen: dict[str, Seen]) -> None:
    path = data_dir / SEEN_FILE
    try:
        everything = json.loads(path.read_bytes()[:MAX_SEEN_BYTES])
        if not isinstance(everything, dict):
            everything = {}
    except (OSError, ValueError):
        everything = {}
    everything[where] = {
        sid: {"seq": s.seq, "requests": s.requests, "cost": None if s.cost is None else str(s.cost)}
        for sid, s in seen.items()
    }
    tmp = path.with_name(f".{SEEN_FILE}.{os.getpid()}")
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as ensure_data_dir
        tmp.write_text(json.dumps(everything), "utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a note lost is a line not shown, nothing more


def away_line(before: Seen, state: SessionState) -> str | None:
    """One line on what a session did since ``before``; None if nothing."""
    if state.last_seq <= before.seq:
        return None
    parts = []
    requests = state.usage.requests - before.requests
    if requests > 0:
        parts.append(f"{requests} model request{'s' if requests != 1 else ''}")
    cost = state.list_cost()
    if cost is not None and before.cost is not None and cost > before.cost:
        parts.append(f"+{format_usd(cost - before.cost, 4)}")
    waiting = len(state.pending_approvals)
    if waiting:
        parts.append(f"{waiting} approval{'s' if waiting != 1 else ''} waiting")
    elif state.status == "idle" and state.stop_reason:
        parts.append(f"stopped: {state.stop_reason.get('type', '?')}")
    elif state.status in ("running", "rescheduling"):
        parts.append("still working")
    elif state.status == "terminated":
        parts.append("ended")
    return "while you were away: " + ", ".join(parts or ["its log moved on"])
