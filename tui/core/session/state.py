"""Folds over a session's events: status, usage, cost and pending approvals.

Nothing here is stored on its own: the store keeps a projection of this fold for
fast listing, and it can always be rebuilt from the event log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tui.core.money.pricing import PricingTable, default_pricing
from tui.core.session import events as ev

# A session's status, as the SDK's BetaManagedAgentsSession names it.
RUNNING = "running"
IDLE = "idle"
RESCHEDULING = "rescheduling"
TERMINATED = "terminated"
WORKING = (RUNNING, RESCHEDULING)  # a runner is (or was, if it died) doing its work

USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    model_cost: Decimal = Decimal(0)
    cost_known: bool = True
    requests: int = 0

    def add(self, model_usage: dict[str, Any], cost: Decimal | None) -> None:
        for name in USAGE_FIELDS:
            setattr(self, name, getattr(self, name) + int(model_usage.get(name, 0)))
        self.requests += 1
        if cost is None:
            self.cost_known = False
        else:
            self.model_cost += cost

    @property
    def total_tokens(self) -> int:
        return sum(getattr(self, name) for name in USAGE_FIELDS)


@dataclass
class SessionState:
    """What a session's events add up to, at the last event applied."""

    session_id: str
    created_at: datetime
    status: str = IDLE
    stop_reason: dict[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)
    active_seconds: Decimal = Decimal(0)
    running_since: datetime | None = None
    updated_at: datetime | None = None
    last_seq: int = 0
    status_seq: int = 0  # seq of the event that set the current status
    pending_approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    _request_models: dict[str, str] = field(default_factory=dict, repr=False)

    def apply(self, event: ev.Event, pricing: PricingTable | None = None) -> None:
        pricing = pricing or default_pricing()
        t = event.processed_at
        self.updated_at = t
        self.last_seq = max(self.last_seq, event.seq)
        if event.type.startswith("session.status_"):
            self.status_seq = event.seq
        match event.type:
            case ev.STATUS_RUNNING:
                self._stop_clock(t)
                self.status, self.stop_reason, self.running_since = RUNNING, None, t
            case ev.STATUS_IDLE:
                self._stop_clock(t)
                self.status, self.stop_reason = IDLE, event.payload.get("stop_reason")
            case ev.STATUS_RESCHEDULED:
                self._stop_clock(t)
                self.status, self.stop_reason = RESCHEDULING, None
            case ev.STATUS_TERMINATED:
                self._stop_clock(t)
                self.status = TERMINATED
                self.pending_approvals.clear()
            case ev.SPAN_MODEL_REQUEST_START:
                self._request_models[event.id] = event.payload.get("model", "")
            case ev.SPAN_MODEL_REQUEST_END:
                model = self._request_models.pop(event.payload.get("model_request_start_id"), "")
                usage = event.payload.get("model_usage", {})
                self.usage.add(usage, pricing.token_cost(model, usage))
            case ev.AGENT_TOOL_USE if event.payload.get("evaluated_permission") == "ask":
                self.pending_approvals[event.id] = event.payload
            case ev.SESSION_REWOUND:
                # Checkpoints sit after tool results, where nothing waits for approval;
                # a resumed runner asks again for anything still open on the new branch.
                self.pending_approvals.clear()
            case ev.USER_TOOL_CONFIRMATION | ev.AGENT_TOOL_RESULT:
                self.pending_approvals.pop(event.payload.get("tool_use_id", ""), None)

    def _stop_clock(self, t: datetime) -> None:
        if self.running_since is not None:
            self.active_seconds += _seconds(t - self.running_since)
            self.running_since = None

    def active_at(self, now: datetime) -> Decimal:
        """Active seconds including the stretch still running at ``now``."""
        if self.running_since is None:
            return self.active_seconds
        return self.active_seconds + max(Decimal(0), _seconds(now - self.running_since))

    def duration_at(self, now: datetime) -> Decimal:
        end = now if self.status != TERMINATED or self.updated_at is None else self.updated_at
        return max(Decimal(0), _seconds(end - self.created_at))

    def list_cost(
        self, pricing: PricingTable | None = None, now: datetime | None = None
    ) -> Decimal | None:
        """Tokens at list price plus the session-hour rate; None when a model is unpriced."""
        if not self.usage.cost_known:
            return None
        pricing = pricing or default_pricing()
        active = self.active_at(now) if now else self.active_seconds
        return self.usage.model_cost + pricing.runtime_cost(active)

    @property
    def stop_type(self) -> str | None:
        return self.stop_reason.get("type") if self.stop_reason else None


def _seconds(delta: Any) -> Decimal:
    # timedelta keeps whole microseconds, so this is exact.
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000


def is_settled(state: SessionState) -> bool:
    """Nothing is happening until the user acts: idle for any reason, or terminated."""
    # A new session is idle with no stop reason until its runner has had a turn.
    return state.status == TERMINATED or (state.status == IDLE and state.stop_reason is not None)


def is_finished(state: SessionState) -> bool:
    """Settled for a reason other than a pending approval."""
    return is_settled(state) and state.stop_type != ev.REQUIRES_ACTION


def finished_after(seq: int) -> Callable[[SessionState], bool]:
    """Finished by a status change later than ``seq``: not the stop a command just ended."""
    return lambda state: is_finished(state) and state.status_seq > seq
