"""What a well-formed event payload is, per event type: the check a bundle's events pass
before an import writes anything.

corral's own events are always well formed; these checks are for events that come
from outside (an export file today, API requests tomorrow). Each known key has a type
and a range; required keys must be there; unknown keys are allowed (the SDK adds
fields) but every string and list is bounded. A payload that passes can be folded,
described and shown by every part of corral without an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tui.core.errors import CorralError
from tui.core.session import events as ev

MAX_TEXT = 16 << 20  # one text field: a long tool output is far below this
MAX_TOKENS = 10**12  # per request: more is not a real usage count
STOP_REASONS = frozenset(
    {
        ev.END_TURN,
        ev.REQUIRES_ACTION,
        ev.RETRIES_EXHAUSTED,
        ev.BUDGET_REACHED,
        ev.PAUSED,
        ev.INTERRUPTED,
        ev.ERROR,
    }
)
PERMISSIONS = frozenset({"allow", "ask", "deny"})


class PayloadError(CorralError):
    """An event payload that does not have the shape its type requires."""


def check_time(value: Any, what: str) -> datetime:
    """A timezone-aware ISO time (naive times cannot be ordered against ours)."""
    if not isinstance(value, str) or len(value) > 64:
        raise PayloadError(f"{what} must be an ISO time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{what} must be an ISO time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise PayloadError(f"{what} must carry a timezone")
    return parsed


def check_payload(event_type: str, payload: Any) -> None:
    """Raise PayloadError unless ``payload`` is well formed for ``event_type``."""
    if event_type not in ev.EVENT_TYPES:
        raise PayloadError(f"unknown event type {event_type!r}")
    if not isinstance(payload, dict):
        raise PayloadError(f"{event_type}: the payload must be an object")
    check = _CHECKS.get(event_type)
    if check is not None:
        check(_Payload(event_type, payload))


class _Payload:
    """Typed access to one payload, naming the event type and key in every error."""

    def __init__(self, event_type: str, data: dict[str, Any]) -> None:
        self.type = event_type
        self.data = data

    def fail(self, key: str, problem: str) -> PayloadError:
        return PayloadError(f"{self.type}: {key} {problem}")

    def text(self, key: str, *, required: bool = True, nullable: bool = False) -> None:
        if key not in self.data:
            if required:
                raise self.fail(key, "is required")
            return
        value = self.data[key]
        if value is None and nullable:
            return
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise self.fail(key, "must be a string")

    def choice(self, key: str, options: frozenset[str]) -> None:
        if self.data.get(key) not in options:
            raise self.fail(key, f"must be one of {', '.join(sorted(options))}")

    def boolean(self, key: str, *, required: bool = True) -> None:
        if key not in self.data and not required:
            return
        if not isinstance(self.data.get(key), bool):
            raise self.fail(key, "must be true or false")

    def table(self, key: str, *, required: bool = True) -> dict[str, Any] | None:
        value = self.data.get(key)
        if value is None and not required and key not in self.data:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "must be an object")
        return value

    def content(self, key: str = "content") -> None:
        blocks = self.data.get(key)
        if not isinstance(blocks, list) or len(blocks) > 10_000:
            raise self.fail(key, "must be a list of content blocks")
        for block in blocks:
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise self.fail(key, "holds a block that is not an object with a type")
            if "text" in block and (
                not isinstance(block["text"], str) or len(block["text"]) > MAX_TEXT
            ):
                raise self.fail(key, "holds a text block whose text is not a string")


def _message(p: _Payload) -> None:
    p.content()


def _thinking(p: _Payload) -> None:
    p.text("thinking", required=False)


def _confirmation(p: _Payload) -> None:
    p.text("tool_use_id")
    p.choice("result", frozenset({"allow", "deny"}))
    p.text("deny_message", required=False, nullable=True)


def _tool_use(p: _Payload) -> None:
    p.text("name")
    p.table("input")
    p.choice("evaluated_permission", PERMISSIONS)
    p.text("permission_reason", required=False, nullable=True)
    p.text("permission_rule", required=False, nullable=True)
    evaluation = p.data.get("evaluation")
    if evaluation is not None and not isinstance(evaluation, dict):
        raise p.fail("evaluation", "must be an object or null")


def _tool_result(p: _Payload) -> None:
    p.text("tool_use_id")
    p.content()
    p.boolean("is_error", required=False)


def _request_start(p: _Payload) -> None:
    p.text("model", required=False)


def _request_end(p: _Payload) -> None:
    p.text("model_request_start_id")
    p.boolean("is_error", required=False)
    usage = p.table("model_usage")
    assert usage is not None
    for name, value in usage.items():
        if not isinstance(name, str):
            raise p.fail("model_usage", "has a key that is not a string")
        if name.endswith("_tokens") and not (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS
        ):
            raise p.fail(f"model_usage.{name}", f"must be a whole number from 0 to {MAX_TOKENS}")


def _idle(p: _Payload) -> None:
    reason = p.table("stop_reason")
    assert reason is not None
    if reason.get("type") not in STOP_REASONS:
        raise p.fail("stop_reason.type", f"must be one of {', '.join(sorted(STOP_REASONS))}")
    ids = reason.get("event_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise p.fail("stop_reason.event_ids", "must be a list of event ids")
    detail = reason.get("detail")
    if detail is not None and (not isinstance(detail, str) or len(detail) > MAX_TEXT):
        raise p.fail("stop_reason.detail", "must be a string")


def _error(p: _Payload) -> None:
    error = p.table("error")
    assert error is not None
    for key in ("type", "message"):
        if not isinstance(error.get(key), str) or len(error[key]) > MAX_TEXT:
            raise p.fail(f"error.{key}", "must be a string")


def _rewound(p: _Payload) -> None:
    to_seq = p.data.get("to_seq")
    if not isinstance(to_seq, int) or isinstance(to_seq, bool) or to_seq < 0:
        raise p.fail("to_seq", "must be a whole number ≥ 0")
    p.text("checkpoint_id")


def _budget(p: _Payload) -> None:
    from tui.core.money.amounts import MAX_HOURS, MAX_USD, parse_money

    for key, maximum in (("max_list_cost", MAX_USD), ("max_active_hours", MAX_HOURS)):
        value = p.data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise p.fail(key, "must be a decimal string or null")
        try:
            parse_money(value, p.type, key, maximum=maximum)
        except CorralError as exc:
            raise p.fail(key, str(exc).rsplit(": ", 1)[-1]) from None


def _budget_warning(p: _Payload) -> None:
    percent = p.data.get("percent")
    if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
        raise p.fail("percent", "must be a whole number from 0 to 100")
    p.text("limit")
    p.text("detail")


def _policy(p: _Payload) -> None:
    from tui.core.permissions.policy import check_policy_data

    policy = p.table("policy")
    p.text("change", required=False)
    try:
        check_policy_data(policy)
    except CorralError as exc:
        raise p.fail("policy", str(exc)) from None


_CHECKS: dict[str, Callable[[_Payload], None]] = {
    ev.USER_MESSAGE: _message,
    ev.AGENT_MESSAGE: _message,
    ev.AGENT_THINKING: _thinking,
    ev.USER_TOOL_CONFIRMATION: _confirmation,
    ev.AGENT_TOOL_USE: _tool_use,
    ev.AGENT_TOOL_RESULT: _tool_result,
    ev.SPAN_MODEL_REQUEST_START: _request_start,
    ev.SPAN_MODEL_REQUEST_END: _request_end,
    ev.STATUS_IDLE: _idle,
    ev.SESSION_ERROR: _error,
    ev.SESSION_REWOUND: _rewound,
    ev.SESSION_BUDGET: _budget,
    ev.SESSION_BUDGET_WARNING: _budget_warning,
    ev.SESSION_POLICY: _policy,
}
