"""What a screen shows of a session, kept current from the bus; no Textual here.

A ``SessionView`` holds the store's live fold (status, usage, cost) by reference
and adds what only a viewer wants: a capped tail of the transcript, the text
still streaming, and labels. ``SpendHistory`` turns total spend over time into a
burn rate and sparkline data.

Titles, model names, tail lines and streamed text come from outside (a spec, a model, a
workspace), so every string a view hands out for display has been through
``printable_line``: no control character, bidi override or lone surrogate in it. Whether
the text is then parsed as markup is the UI's concern (it never is).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from tui.core.money.pricing import PricingTable, default_pricing
from tui.core.printable import printable_line
from tui.core.session import events as ev
from tui.core.session.describe import one_line, tool_subject
from tui.core.session.records import SessionRecord
from tui.core.session.state import RESCHEDULING, RUNNING, TERMINATED, WORKING, SessionState
from tui.core.store.bus import Delta

TAIL_LINES = 200  # per session: a tail, never the whole log, so memory stays bounded
STREAM_CHARS = 2000


@dataclass(frozen=True)
class TailLine:
    kind: str  # user, agent, thinking, tool, result, error, status
    text: str


# (status, stop reason) -> (label, key); the key is the CSS class suffix.
def status_of(state: SessionState) -> tuple[str, str]:
    if state.status == RUNNING:
        return "running", "running"
    if state.status == RESCHEDULING:
        return "rescheduling", "rescheduling"
    if state.status == TERMINATED:
        return "terminated", "terminated"
    stop = state.stop_type
    return {
        ev.REQUIRES_ACTION: ("waiting for approval", "approval"),
        ev.END_TURN: ("done", "done"),
        ev.PAUSED: ("paused", "paused"),
        ev.INTERRUPTED: ("interrupted", "interrupted"),
        ev.BUDGET_REACHED: ("budget reached", "budget"),
        ev.RETRIES_EXHAUSTED: ("failed: retries exhausted", "error"),
        ev.ERROR: ("error inside corral", "error"),
        None: ("starting", "running"),
    }.get(stop, (f"idle ({printable_line(str(stop))})", "done"))


def model_label(model: str) -> str:
    """``scripted:/long/path/x.toml`` reads as ``scripted:x.toml``."""
    if model.startswith("scripted:"):
        model = "scripted:" + Path(model.removeprefix("scripted:")).name
    return printable_line(model)


def tail_line(event: ev.Event) -> TailLine | None:
    line = _raw_tail_line(event)
    # one_line has already made whitespace (newlines, CR, tabs) spaces; what is left of
    # the kind a terminal would obey becomes a visible escape.
    return None if line is None else TailLine(line.kind, printable_line(line.text))


def _raw_tail_line(event: ev.Event) -> TailLine | None:
    p = event.payload
    match event.type:
        case ev.USER_MESSAGE:
            return TailLine("user", one_line(event.text, 400))
        case ev.AGENT_MESSAGE:
            return TailLine("agent", one_line(event.text, 400))
        case ev.AGENT_THINKING:
            return TailLine("thinking", one_line(p.get("thinking", ""), 400))
        case ev.AGENT_TOOL_USE:
            subject = one_line(tool_subject(p.get("name", "?"), p.get("input", {})), 200)
            mark = {"ask": " ?", "deny": " ✗"}.get(p.get("evaluated_permission", ""), "")
            return TailLine("tool", f"{p.get('name')}{mark}: {subject}")
        case ev.AGENT_TOOL_RESULT:
            kind = "error" if p.get("is_error") else "result"
            return TailLine(kind, one_line(event.text, 200) or "(no output)")
        case ev.USER_TOOL_CONFIRMATION:
            return TailLine(
                "status",
                f"{p.get('result')}ed by you"
                + (f": {p['deny_message']}" if p.get("deny_message") else ""),
            )
        case ev.SESSION_ERROR:
            return TailLine("error", one_line(p.get("error", {}).get("message", ""), 200))
        case ev.USER_INTERRUPT:
            return TailLine("status", "interrupted by you")
    return None


class Shown:
    """What a screen shows of a session, for anything with its record, state and the
    text still streaming (a live view, or a frozen snapshot of one)."""

    record: SessionRecord
    state: SessionState
    streaming: str

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def title(self) -> str:
        return printable_line(self.record.title)

    @property
    def model(self) -> str:
        return model_label(self.record.model)

    @property
    def status(self) -> tuple[str, str]:
        """(label, key): the label to show and the CSS class suffix."""
        return status_of(self.state)

    def streaming_line(self, chars: int) -> str:
        """The end of the text still streaming, as one printable line."""
        flat = self.streaming[-chars:].replace("\n", " ").replace("\t", " ")
        return printable_line(flat)


@dataclass
class SessionView(Shown):
    record: SessionRecord
    state: SessionState
    tail: deque[TailLine] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    streaming: str = ""
    version: int = 0
    # The last messages stored: a preview of one of them arriving late (a feed that
    # loaded the log first) is stale, and must not reopen the streaming line.
    finished: deque[str] = field(default_factory=lambda: deque(maxlen=32))

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.state.pending_approvals.items())

    def apply(self, event: ev.Event) -> None:
        """Note an event (the fold itself is the store's, already updated)."""
        line = tail_line(event)
        if line is not None:
            self.tail.append(line)
        if event.type in (ev.AGENT_MESSAGE, ev.AGENT_THINKING):
            self.finished.append(event.id)
        if event.type in (ev.AGENT_MESSAGE, ev.AGENT_THINKING, ev.SPAN_MODEL_REQUEST_END):
            self.streaming = ""
        self.version += 1

    def apply_delta(self, delta: Delta) -> None:
        if delta.event_id and delta.event_id in self.finished:
            return
        if delta.kind == "text":
            self.streaming = (self.streaming + delta.text)[-STREAM_CHARS:]
            self.version += 1

    def matches(self, text: str) -> bool:
        """Does the filter text name this session's status, title, model or tail?"""
        needle = text.strip().lower()
        if not needle:
            return True
        label, key = self.status
        haystack = " ".join([label, key, self.title, self.model, self.record.sandbox])
        if needle in haystack.lower():
            return True
        return any(needle in line.text.lower() for line in list(self.tail)[-20:])


@dataclass(frozen=True)
class Totals:
    cost: Decimal | None
    model_cost: Decimal
    runtime_cost: Decimal
    tokens: int
    running: int
    approvals: int
    sessions: int


class HasState(Protocol):
    @property
    def state(self) -> SessionState: ...


def totals(views: Iterable[HasState], now: datetime, pricing: PricingTable | None = None) -> Totals:
    pricing = pricing or default_pricing()
    model_cost = runtime = Decimal(0)
    known = True
    tokens = running = approvals = count = 0
    for view in views:
        s = view.state
        count += 1
        known = known and s.usage.cost_known
        model_cost += s.usage.model_cost
        runtime += pricing.runtime_cost(s.active_at(now))
        tokens += s.usage.total_tokens
        running += s.status in WORKING
        approvals += len(s.pending_approvals)
    return Totals(
        cost=model_cost + runtime if known else None,
        model_cost=model_cost,
        runtime_cost=runtime,
        tokens=tokens,
        running=running,
        approvals=approvals,
        sessions=count,
    )


class SpendHistory:
    """Total spend sampled over time (monotonic seconds): burn rate and sparkline buckets."""

    def __init__(self, window_s: float = 300.0, clock: Any = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.samples: deque[tuple[float, Decimal]] = deque()

    def add(self, spend: Decimal) -> None:
        now = self.clock()
        self.samples.append((now, spend))
        while self.samples and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    def burn_per_hour(self, over_s: float = 60.0) -> Decimal:
        if len(self.samples) < 2:
            return Decimal(0)
        t_end, end = self.samples[-1]
        start_t, start = self.samples[0]
        for t, value in self.samples:
            if t_end - t <= over_s:
                start_t, start = t, value
                break
        elapsed = t_end - start_t
        if elapsed <= 0:
            return Decimal(0)
        # Seconds are a float clock reading; the money stays Decimal.
        return (end - start) * Decimal(3600) / Decimal(str(round(elapsed, 3)))

    def buckets(self, count: int = 30) -> list[float]:
        """Spend added per bucket across the window (floats: only a sparkline's heights)."""
        if not self.samples:
            return [0.0] * count
        now = self.clock()
        width = self.window_s / count
        out = [0.0] * count
        previous = self.samples[0][1]
        for t, value in self.samples:
            index = min(count - 1, max(0, count - 1 - int((now - t) / width)))
            out[index] += float(value - previous)
            previous = value
        return out
