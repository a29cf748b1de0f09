"""Session events, named and shaped as in the Managed Agents API.

An event is ``type`` plus a payload whose keys follow the SDK's
``anthropic.types.beta.sessions.BetaManagedAgents*Event`` models. The store gives
each one a session-local ``seq`` (1, 2, 3, ... without gaps) when it becomes durable.

corral extensions are marked as such: the ``model`` on a request span (so cost is
priced per request), and the idle stop reasons ``paused`` and ``interrupted``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from tui.core.clock import parse_time, utc_now
from tui.core.ids import event_id

USER_MESSAGE: Final = "user.message"
USER_INTERRUPT: Final = "user.interrupt"
USER_TOOL_CONFIRMATION: Final = "user.tool_confirmation"
AGENT_MESSAGE: Final = "agent.message"
AGENT_THINKING: Final = "agent.thinking"
AGENT_TOOL_USE: Final = "agent.tool_use"
AGENT_TOOL_RESULT: Final = "agent.tool_result"
SPAN_MODEL_REQUEST_START: Final = "span.model_request_start"
SPAN_MODEL_REQUEST_END: Final = "span.model_request_end"
STATUS_RUNNING: Final = "session.status_running"
STATUS_IDLE: Final = "session.status_idle"
STATUS_RESCHEDULED: Final = "session.status_rescheduled"
STATUS_TERMINATED: Final = "session.status_terminated"
SESSION_ERROR: Final = "session.error"
# corral's own: the session went back to a checkpoint; see history.py.
SESSION_REWOUND: Final = "session.rewound"
# corral's own: a budget set or raised, and a budget share crossed (50/80/95 %).
SESSION_BUDGET: Final = "session.budget_updated"
SESSION_BUDGET_WARNING: Final = "session.budget_warning"
# corral's own: the session's permission policy was edited (applies from the next tool use).
SESSION_POLICY: Final = "session.policy_updated"

EVENT_TYPES: Final = frozenset(
    {
        USER_MESSAGE,
        USER_INTERRUPT,
        USER_TOOL_CONFIRMATION,
        AGENT_MESSAGE,
        AGENT_THINKING,
        AGENT_TOOL_USE,
        AGENT_TOOL_RESULT,
        SPAN_MODEL_REQUEST_START,
        SPAN_MODEL_REQUEST_END,
        STATUS_RUNNING,
        STATUS_IDLE,
        STATUS_RESCHEDULED,
        STATUS_TERMINATED,
        SESSION_ERROR,
        SESSION_REWOUND,
        SESSION_BUDGET,
        SESSION_BUDGET_WARNING,
        SESSION_POLICY,
    }
)

# Stop reasons of session.status_idle. The first four are the SDK's; the others are
# corral's own (a user pause, an interrupt or a process that died, an internal error).
END_TURN: Final = "end_turn"
REQUIRES_ACTION: Final = "requires_action"
RETRIES_EXHAUSTED: Final = "retries_exhausted"
BUDGET_REACHED: Final = "budget_reached"
PAUSED: Final = "paused"
INTERRUPTED: Final = "interrupted"
# corral's own: something inside corral failed (a tool, the permission check, a
# checkpoint); the session.error before it says what. The session can be resumed.
ERROR: Final = "error"

# Starts the result of a tool call that was cut off (an interrupt, a crash): it did not
# finish and was not re-run. A model may call the tool again; the scripted one does.
INTERRUPTED_RESULT: Final = "[interrupted]"


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a session. ``seq`` is 0 until the store has made it durable."""

    session_id: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=event_id)
    processed_at: datetime = field(default_factory=utc_now)
    seq: int = 0

    def with_seq(self, seq: int) -> Event:
        # Direct construction: this is on the store's hot path, where replace() is slow.
        return Event(self.session_id, self.type, self.payload, self.id, self.processed_at, seq)

    def to_dict(self) -> dict[str, Any]:
        """The SDK-shaped view: ``id``, ``type``, ``processed_at``, payload keys, ``seq``."""
        return {
            "id": self.id,
            "seq": self.seq,
            "type": self.type,
            "processed_at": self.processed_at.isoformat(),
            **self.payload,
        }

    def payload_json(self) -> str:
        text = json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False)
        if text.isascii():
            return text
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (file names that are not UTF-8): kept as JSON escapes,
            # which SQLite can hold and which load back to the same string.
            return json.dumps(self.payload, separators=(",", ":"))
        return text

    @classmethod
    def from_row(
        cls, session_id: str, seq: int, id_: str, type_: str, processed_at: str, payload: str
    ) -> Event:
        return cls(
            session_id=session_id,
            type=type_,
            payload=json.loads(payload),
            id=id_,
            processed_at=parse_time(processed_at),
            seq=seq,
        )

    @property
    def text(self) -> str:
        """The text of a message or tool result's content blocks, joined."""
        blocks = self.payload.get("content") or []
        return "".join(b.get("text", "") for b in blocks if isinstance(b, dict))


def text_blocks(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text}]


# Constructors: one per event type, so field names live in one place.


def user_message(session_id: str, text: str) -> Event:
    return Event(session_id, USER_MESSAGE, {"content": text_blocks(text)})


def user_interrupt(session_id: str) -> Event:
    return Event(session_id, USER_INTERRUPT, {})


def user_tool_confirmation(
    session_id: str, tool_use_id: str, result: str, deny_message: str | None = None
) -> Event:
    payload: dict[str, Any] = {"tool_use_id": tool_use_id, "result": result}
    if deny_message:
        payload["deny_message"] = deny_message
    return Event(session_id, USER_TOOL_CONFIRMATION, payload)


def agent_message(session_id: str, text: str, event_id_: str | None = None) -> Event:
    """``event_id_``: the id its streamed preview already announced, if there was one."""
    payload = {"content": text_blocks(text)}
    if event_id_:
        return Event(session_id, AGENT_MESSAGE, payload, id=event_id_)
    return Event(session_id, AGENT_MESSAGE, payload)


def agent_thinking(session_id: str, thinking: str, event_id_: str | None = None) -> Event:
    # The SDK's thinking event is a progress signal; corral keeps the text too.
    if event_id_:
        return Event(session_id, AGENT_THINKING, {"thinking": thinking}, id=event_id_)
    return Event(session_id, AGENT_THINKING, {"thinking": thinking})


def agent_tool_use(
    session_id: str,
    name: str,
    tool_input: dict[str, Any],
    evaluated_permission: str,
    evaluation: str | None,
    reason: str,
    rule: str | None = None,
) -> Event:
    payload: dict[str, Any] = {
        "name": name,
        "input": tool_input,
        "evaluated_permission": evaluated_permission,
        "evaluation": {"type": evaluation} if evaluation else None,
        "permission_reason": reason,  # corral: why, in words
        "permission_rule": rule,  # corral: the rule that decided, None for a tool default
    }
    return Event(session_id, AGENT_TOOL_USE, payload)


def agent_tool_result(session_id: str, tool_use_id: str, text: str, is_error: bool) -> Event:
    return Event(
        session_id,
        AGENT_TOOL_RESULT,
        {"tool_use_id": tool_use_id, "content": text_blocks(text), "is_error": is_error},
    )


def model_request_start(session_id: str, model: str) -> Event:
    return Event(session_id, SPAN_MODEL_REQUEST_START, {"model": model})


def model_request_end(
    session_id: str, start_id: str, model_usage: dict[str, int], is_error: bool = False
) -> Event:
    return Event(
        session_id,
        SPAN_MODEL_REQUEST_END,
        {"model_request_start_id": start_id, "model_usage": model_usage, "is_error": is_error},
    )


def failed_request_end(session_id: str, start_id: str) -> Event:
    """The end of a request that produced nothing: zero usage, so nothing is billed twice."""
    zero = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    return model_request_end(session_id, start_id, zero, is_error=True)


def status_running(session_id: str) -> Event:
    return Event(session_id, STATUS_RUNNING, {})


def status_idle(session_id: str, stop_reason: str, **details: Any) -> Event:
    return Event(session_id, STATUS_IDLE, {"stop_reason": {"type": stop_reason, **details}})


def status_rescheduled(session_id: str) -> Event:
    return Event(session_id, STATUS_RESCHEDULED, {})


def status_terminated(session_id: str) -> Event:
    return Event(session_id, STATUS_TERMINATED, {})


def session_error(session_id: str, kind: str, message: str, retry: str = "terminal") -> Event:
    return Event(
        session_id,
        SESSION_ERROR,
        {"error": {"type": kind, "message": message, "retry_status": {"type": retry}}},
    )


def session_rewound(session_id: str, to_seq: int, checkpoint_id: str) -> Event:
    return Event(session_id, SESSION_REWOUND, {"to_seq": to_seq, "checkpoint_id": checkpoint_id})


def session_budget(
    session_id: str, max_list_cost: str | None, max_active_hours: str | None
) -> Event:
    return Event(
        session_id,
        SESSION_BUDGET,
        {"max_list_cost": max_list_cost, "max_active_hours": max_active_hours},
    )


def session_budget_warning(session_id: str, percent: int, what: str, detail: str) -> Event:
    return Event(
        session_id, SESSION_BUDGET_WARNING, {"percent": percent, "limit": what, "detail": detail}
    )


def session_policy(session_id: str, policy: dict[str, Any], change: str) -> Event:
    return Event(session_id, SESSION_POLICY, {"policy": policy, "change": change})
