"""One-line human descriptions of events, for the CLI's live log and the UI's tails."""

from __future__ import annotations

import json
from typing import Any

from tui.core.printable import printable_line
from tui.core.session import events as ev

TOOL_SUBJECT = {
    "bash": "command",
    "read": "file_path",
    "write": "file_path",
    "edit": "file_path",
    "glob": "pattern",
    "grep": "pattern",
}


def one_line(text: str, width: int = 100) -> str:
    """``text`` on one line, at most ``width`` characters, safe to print (see printable)."""
    flat = printable_line(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def tool_subject(name: str, tool_input: dict[str, Any]) -> str:
    key = TOOL_SUBJECT.get(name)
    value = tool_input.get(key) if key else None
    return str(value) if value is not None else json.dumps(tool_input, ensure_ascii=False)


def describe(event: ev.Event, width: int = 100) -> str:
    """One line for ``event``, safe to print: nothing in it can control a terminal."""
    return printable_line(_describe(event, width))


def _describe(event: ev.Event, width: int) -> str:
    p = event.payload
    match event.type:
        case ev.USER_MESSAGE:
            return f"user: {one_line(event.text, width)}"
        case ev.AGENT_MESSAGE:
            return f"agent: {one_line(event.text, width)}"
        case ev.AGENT_THINKING:
            return f"thinking: {one_line(p.get('thinking', ''), width)}"
        case ev.AGENT_TOOL_USE:
            verdict = p.get("evaluated_permission", "?")
            subject = one_line(tool_subject(p.get("name", "?"), p.get("input", {})), width)
            return f"tool {p.get('name')} [{verdict}]: {subject}"
        case ev.AGENT_TOOL_RESULT:
            mark = "error" if p.get("is_error") else "ok"
            return f"result {mark}: {one_line(event.text, width)}"
        case ev.USER_TOOL_CONFIRMATION:
            extra = f" ({p['deny_message']})" if p.get("deny_message") else ""
            return f"confirmation: {p.get('result')}{extra}"
        case ev.USER_INTERRUPT:
            return "user interrupt"
        case ev.SPAN_MODEL_REQUEST_START:
            return f"model request ({p.get('model', '?')})"
        case ev.SPAN_MODEL_REQUEST_END:
            u = p.get("model_usage", {})
            failed = " FAILED" if p.get("is_error") else ""
            return (
                f"model done{failed}: in {u.get('input_tokens', 0)} out {u.get('output_tokens', 0)}"
                f" cache r/w {u.get('cache_read_input_tokens', 0)}"
                f"/{u.get('cache_creation_input_tokens', 0)}"
            )
        case ev.STATUS_IDLE:
            reason = p.get("stop_reason") or {}
            return f"status idle ({reason.get('type', '?')})"
        case ev.SESSION_REWOUND:
            return (
                f"rewound to seq {p.get('to_seq')} (checkpoint {p.get('checkpoint_id', '')[-8:]})"
            )
        case ev.SESSION_BUDGET:
            return (
                f"budget: max_list_cost {p.get('max_list_cost') or 'none'},"
                f" max_active_hours {p.get('max_active_hours') or 'none'}"
            )
        case ev.SESSION_POLICY:
            return f"policy: {p.get('change', '')}"
        case ev.SESSION_BUDGET_WARNING:
            return f"budget warning: {p.get('detail', '')}"
        case ev.SESSION_ERROR:
            err = p.get("error", {})
            return f"error {err.get('type', '?')}: {one_line(err.get('message', ''), width)}"
        case _:
            return event.type.replace("session.status_", "status ")
