"""corral's records and events in the shapes the ``anthropic`` SDK parses (``anthropic.types
.beta``: ``BetaManagedAgentsSession``, ``...Agent``, ``BetaEnvironment``, session events).

Where corral knows more than the shape has room for, it goes in a ``corral`` field (the
SDK keeps unknown fields): the sandbox, the workspace, rules, corral's own stop reasons.
corral-only events (``session.rewound``, budget and policy updates) are left out of the
Managed Agents event endpoints; ``/v1/corral/sessions/{id}/events`` has them all.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tui.core.checkpoints.archive import import_pending
from tui.core.money.pricing import default_pricing
from tui.core.money.spend import hosted_cost
from tui.core.session import events as ev
from tui.core.session.definitions import TOOLSET, AgentRecord, EnvironmentRecord
from tui.core.session.records import SessionRecord
from tui.core.session.spec import TOOL_NAMES
from tui.core.session.state import SessionState

SPEC_AGENT = "agent_spec"  # sessions started from a spec file, not from an API agent
SPEC_ENVIRONMENT = "env_spec"
SERVICE_ACCOUNT = {"type": "service_account"}
SDK_STOP_REASONS = {ev.END_TURN, ev.REQUIRES_ACTION, ev.RETRIES_EXHAUSTED, ev.BUDGET_REACHED}
# corral's own stop reasons, as the nearest the SDK has a word for.
STOP_AS = {ev.PAUSED: ev.END_TURN, ev.INTERRUPTED: ev.END_TURN, ev.ERROR: ev.RETRIES_EXHAUSTED}
SDK_ERROR_TYPES = {
    "unknown_error",
    "model_overloaded_error",
    "model_rate_limited_error",
    "model_request_failed_error",
    "billing_error",
}
CORRAL_ONLY = {ev.SESSION_REWOUND, ev.SESSION_BUDGET, ev.SESSION_BUDGET_WARNING, ev.SESSION_POLICY}


def money(amount: Decimal | None) -> dict[str, str] | None:
    return None if amount is None else {"amount": str(amount), "currency": "USD"}


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# -- agents and environments -------------------------------------------------------------


def agent_shape(agent: AgentRecord) -> dict[str, Any]:
    body = agent.body
    return {
        "type": "agent",
        "id": agent.id,
        "version": agent.version,
        "name": body["name"],
        "description": body.get("description"),
        "system": body.get("system"),
        "model": body["model"],
        "tools": body["tools"],
        "mcp_servers": [],
        "skills": [],
        "metadata": body.get("metadata", {}),
        "execution_identity": SERVICE_ACCOUNT,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
        "archived_at": agent.archived_at,
    }


def environment_shape(env: EnvironmentRecord) -> dict[str, Any]:
    body = env.body
    return {
        "type": "environment",
        "id": env.id,
        "name": body["name"],
        "description": body.get("description"),
        "config": body["config"],
        "metadata": body.get("metadata", {}),
        "scope": "account",
        "created_at": env.created_at,
        "updated_at": env.updated_at,
        "archived_at": env.archived_at,
    }


def toolset_of_spec(tools: dict[str, Any]) -> dict[str, Any]:
    """A spec's tools as the built-in toolset (a `deny` default: disabled, said in full
    under ``corral``; rules likewise)."""
    configs = []
    for name in TOOL_NAMES:
        config = tools.get(name, {})
        policy = config.get("permission_policy", "always_allow")
        entry: dict[str, Any] = {
            "name": name,
            "type": name,
            "enabled": bool(config.get("enabled", True)) and policy != "deny",
            "permission_policy": {
                "type": "always_ask" if policy == "always_ask" else "always_allow"
            },
        }
        if policy == "deny" or config.get("rules"):
            entry["corral"] = {"permission_policy": policy, "rules": config.get("rules", [])}
        configs.append(entry)
    return {
        "type": TOOLSET,
        "default_config": {"enabled": True, "permission_policy": {"type": "always_allow"}},
        "configs": configs,
    }


def session_agent(record: SessionRecord) -> dict[str, Any]:
    """The agent a session runs, as resolved when it was made."""
    kept = record.api.get("agent")
    if kept:
        return {
            "type": "agent",
            "mcp_servers": [],
            "skills": [],
            "execution_identity": SERVICE_ACCOUNT,
            **kept,
        }
    agent = record.spec["agent"]
    return {
        "type": "agent",
        "id": SPEC_AGENT,
        "version": 1,
        "name": agent.get("name", "agent"),
        "description": None,
        "system": agent.get("system") or None,
        "model": {"id": record.model},
        "tools": [toolset_of_spec(agent.get("tools", {}))],
        "mcp_servers": [],
        "skills": [],
        "execution_identity": SERVICE_ACCOUNT,
    }


# -- sessions --------------------------------------------------------------------------------


def session_shape(record: SessionRecord, now: datetime) -> dict[str, Any]:
    state = record.state or SessionState(record.id, record.created_at)
    cost = state.list_cost(default_pricing(), now)
    u = state.usage
    # The cap set since (budget raises, lifts), else the one the session started with.
    cap = record.api.get("max_list_cost", record.spec.get("max_list_cost"))
    stop = state.stop_reason or {}
    return {
        "type": "session",
        "id": record.id,
        "title": record.title,
        "status": state.status,
        "agent": session_agent(record),
        "environment_id": record.api.get("environment_id", SPEC_ENVIRONMENT),
        "metadata": record.api.get("metadata", {}),
        "budget": {"type": "limit", "max_list_cost": money(Decimal(cap))} if cap else None,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "list_cost": money(cost),
            "active_seconds": float(round(state.active_at(now), 3)),
        },
        "stats": {
            "active_seconds": float(round(state.active_at(now), 3)),
            "duration_seconds": float(round(state.duration_at(now), 3)),
        },
        "outcome_evaluations": [],
        "resources": [],
        "vault_ids": [],
        "created_at": iso(record.created_at),
        "updated_at": iso(state.updated_at or record.created_at),
        "archived_at": record.api.get("archived_at"),
        "corral": {
            "stop_reason": stop or None,
            "pending_approvals": sorted(state.pending_approvals),
            "sandbox": record.sandbox,
            "isolation": record.isolation,
            "workspace": record.workspace,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "model_requests": u.requests,
            "hosted_equivalent_cost": money(hosted_cost(state, now)),
            "last_seq": state.last_seq,
            # An imported session runs only once accepted (`corral resume SESSION`).
            "import_accepted": not import_pending(record),
        },
    }


# -- events ------------------------------------------------------------------------------------


def event_shape(event: ev.Event) -> dict[str, Any] | None:
    """An event as the SDK types it, or None for corral-only events."""
    if event.type in CORRAL_ONLY:
        return None
    p = event.payload
    out: dict[str, Any] = {
        "type": event.type,
        "id": event.id,
        "processed_at": iso(event.processed_at),
    }
    match event.type:
        case ev.USER_MESSAGE | ev.AGENT_MESSAGE:
            out["content"] = p.get("content", [])
        case ev.AGENT_THINKING:
            out["corral"] = {"thinking": p.get("thinking", "")}
        case ev.USER_TOOL_CONFIRMATION:
            out.update(tool_use_id=p["tool_use_id"], result=p["result"])
            if p.get("deny_message"):
                out["deny_message"] = p["deny_message"]
        case ev.AGENT_TOOL_USE:
            out.update(
                name=p["name"],
                input=p["input"],
                evaluated_permission=p.get("evaluated_permission"),
                evaluation=_evaluation(p),
                corral={"reason": p.get("permission_reason"), "rule": p.get("permission_rule")},
            )
        case ev.AGENT_TOOL_RESULT:
            out.update(tool_use_id=p["tool_use_id"], content=p.get("content", []))
            out["is_error"] = bool(p.get("is_error"))
        case ev.SPAN_MODEL_REQUEST_START:
            out["corral"] = {"model": p.get("model")}
        case ev.SPAN_MODEL_REQUEST_END:
            usage = p.get("model_usage", {})
            out.update(
                model_request_start_id=p["model_request_start_id"],
                is_error=bool(p.get("is_error")),
                model_usage={
                    k: int(usage.get(k, 0))
                    for k in (
                        "input_tokens",
                        "output_tokens",
                        "cache_read_input_tokens",
                        "cache_creation_input_tokens",
                    )
                },
            )
        case ev.STATUS_IDLE:
            reason = dict(p.get("stop_reason") or {"type": ev.END_TURN})
            kind = reason.get("type")
            if kind not in SDK_STOP_REASONS:
                out["corral"] = {"stop_reason": reason}
                reason = {"type": STOP_AS.get(kind, ev.END_TURN)}
            elif kind == ev.REQUIRES_ACTION:
                reason = {"type": kind, "event_ids": list(reason.get("event_ids", []))}
            else:
                out["corral"] = {"stop_reason": reason}
                reason = {"type": kind}
            out["stop_reason"] = reason
        case ev.SESSION_ERROR:
            error = dict(p.get("error", {}))
            kind = error.get("type", "unknown_error")
            shaped = {
                "type": kind if kind in SDK_ERROR_TYPES else "unknown_error",
                "message": str(error.get("message", "")),
                "retry_status": {"type": (error.get("retry_status") or {}).get("type", "terminal")},
            }
            if shaped["retry_status"]["type"] not in ("retrying", "exhausted", "terminal"):
                shaped["retry_status"] = {"type": "terminal"}
            if kind not in SDK_ERROR_TYPES:
                out["corral"] = {"error_type": kind}
            out["error"] = shaped
    return out


def _evaluation(payload: dict[str, Any]) -> dict[str, Any] | None:
    """How the permission was decided: a tool's default policy as itself; a rule of
    corral's as the SDK's `auto` (the server judged), naming the rule."""
    evaluation = payload.get("evaluation") or {}
    kind = evaluation.get("type")
    if kind in ("always_allow", "always_ask"):
        return {"type": kind}
    permission = payload.get("evaluated_permission")
    if permission not in ("allow", "ask", "deny"):
        return None
    judged: dict[str, Any] = {"type": permission}
    if permission != "allow":
        judged["reason_code"] = "corral_rule" if payload.get("permission_rule") else "corral_policy"
    return {"type": "auto", "evaluated_permission": judged}


def corral_event(event: ev.Event) -> dict[str, Any]:
    """Any event as corral keeps it (for ``/v1/corral``): id, seq, type, time, payload."""
    return event.to_dict()
