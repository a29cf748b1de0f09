"""Commands by name, as another process sends them through the store's inbox, and the
loop that serves them: each is applied to the supervisor and answered (a JSON result, or
the one-line error it met), so the sender learns what happened, not just that it sent."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from tui.core.engine.housekeeping import RUNNING_GRACE_S, collect_garbage
from tui.core.engine.supervisor import Supervisor
from tui.core.errors import CorralError, UsageError
from tui.core.permissions.policy import Policy
from tui.core.session.spec import spec_from_json

POLL_S = 0.05


async def serve_inbox(supervisor: Supervisor) -> None:
    """Apply every command other processes put in the inbox, in order, and answer each."""
    store = supervisor.store
    while True:
        await asyncio.sleep(POLL_S)
        for command_id, session_id, kind, payload in await store.inbox_take():
            try:
                answer = {"result": await apply_command(supervisor, session_id, kind, payload)}
            except (CorralError, KeyError, TypeError, ValueError) as exc:
                answer = {"error": str(exc), "exit_code": getattr(exc, "exit_code", 1)}
            await store.inbox_answer(command_id, json.dumps(answer))


async def apply_command(
    supervisor: Supervisor, session_id: str, kind: str, payload: dict[str, Any]
) -> Any:
    """One command; returns what the sender needs back (JSON-shaped), or None."""
    match kind:
        case "create":
            return {"session_id": await supervisor.create_session(spec_from_json(payload["spec"]))}
        case "confirm":
            allow = payload["result"] == "allow"
            await supervisor.confirm(
                session_id, payload["tool_use_id"], allow, payload.get("message")
            )
        case "message":
            await supervisor.send_message(session_id, payload["text"])
        case "resume":
            await supervisor.resume(session_id, accept=bool(payload.get("accept")))
        case "pause" | "interrupt" | "cancel":
            await getattr(supervisor, kind)(session_id)
        case "checkpoint":
            return (await supervisor.checkpoint(session_id, payload.get("label", ""))).to_json()
        case "rewind":
            target, changes = await supervisor.rewind(session_id, payload["checkpoint"])
            return {"target": target.to_json(), "changes": [c.to_json() for c in changes]}
        case "fork":
            return {"session_id": await supervisor.fork(session_id, payload["checkpoint"])}
        case "policy":
            change = await supervisor.set_policy(session_id, Policy.from_data(payload["policy"]))
            return {"change": change}
        case "budget":
            cost, hours = payload.get("max_list_cost"), payload.get("max_active_hours")
            return await supervisor.set_budget(
                session_id, Decimal(cost) if cost else None, Decimal(hours) if hours else None
            )
        case "gc":
            result = await collect_garbage(
                supervisor.store,
                supervisor.checkpointer,
                supervisor.data_dir,
                dry_run=bool(payload.get("dry_run", True)),
                grace_s=RUNNING_GRACE_S,
            )
            return result.to_json()
        case _:
            raise UsageError(f"unknown command {kind!r}")
    return None
