"""``/v1/corral/…``: what corral does that the hosted API has no endpoint for: its raw
event log and stream, checkpoints, rewind (with a dry run), fork, diff, budgets, policies
(show, apply, simulate), export and import, estimates, gc. Same style as the rest: ids,
``type``, ISO times, decimal strings for money."""

from __future__ import annotations

import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from tui.core.checkpoints.scan import Change
from tui.core.errors import CorralError
from tui.core.money.amounts import MAX_HOURS, MAX_USD, parse_money
from tui.core.permissions.policy import Policy, check_policy_data
from tui.core.permissions.simulator import simulate, summary
from tui.core.session.spec_reader import parse_spec
from tui.server.errors import ApiError, invalid
from tui.server.requests import body_of, engine_of
from tui.server.responses import JSONResponse
from tui.server.shapes import corral_event
from tui.server.streams import stream_response

MAX_IMPORT = 8 << 30


def _change(change: Change) -> dict[str, Any]:
    entry = change.after or change.before
    return {"path": change.path, "kind": change.kind, "entry": entry[0] if entry else None}


async def events(request: Request) -> JSONResponse:
    engine = engine_of(request)
    record = await engine.session(request.path_params["session_id"])
    try:
        after = int(request.query_params.get("after", "0"))
        limit = int(request.query_params.get("limit", "1000"))
    except ValueError:
        raise invalid("after and limit must be whole numbers") from None
    limit = max(1, min(limit, 10_000))
    found = await engine.store.events(record.id, after_seq=after, limit=limit)
    last_seq = record.state.last_seq if record.state else 0
    return JSONResponse({"data": [corral_event(e) for e in found], "last_seq": last_seq})


async def stream(request: Request) -> Response:
    engine = engine_of(request)
    record = await engine.session(request.path_params["session_id"])
    return await stream_response(request, engine.store, record.id, raw=True)


async def checkpoints(request: Request) -> JSONResponse:
    engine = engine_of(request)
    timeline = await engine.timeline(request.path_params["session_id"])
    rows = [
        {
            **r.checkpoint.to_json(),
            "type": "checkpoint",
            "number": r.number,
            "branch": r.branch,
            "current": r.current,
        }
        for r in timeline.rows
    ]
    spend = timeline.dead_end_spend
    return JSONResponse({"data": rows, "dead_end_spend": None if spend is None else str(spend)})


async def checkpoint(request: Request) -> JSONResponse:
    data = await body_of(request)
    label = data.get("label", "")
    if not isinstance(label, str) or len(label) > 1000:
        raise invalid("label: must be a short string")
    cp = await engine_of(request).checkpoint(request.path_params["session_id"], label)
    return JSONResponse({**cp.to_json(), "type": "checkpoint"})


async def rewind(request: Request) -> JSONResponse:
    data = await body_of(request)
    target = data.get("checkpoint")
    if not isinstance(target, str):
        raise invalid("checkpoint: an id, id prefix or #N is required")
    engine = engine_of(request)
    session_id = request.path_params["session_id"]
    if data.get("dry_run"):
        preview = await engine.rewind_preview(session_id, target)
        return JSONResponse(
            {
                "type": "rewind_preview",
                "checkpoint": preview.target.to_json(),
                "changes": [_change(c) for c in preview.changes],
            }
        )
    done = await engine.rewind(session_id, target)
    return JSONResponse(
        {
            "type": "rewound",
            "checkpoint": done.target.to_json(),
            "changes": [_change(c) for c in done.changes],
        }
    )


async def fork(request: Request) -> JSONResponse:
    data = await body_of(request)
    target = data.get("checkpoint")
    if not isinstance(target, str):
        raise invalid("checkpoint: an id, id prefix or #N is required")
    new_id = await engine_of(request).fork(request.path_params["session_id"], target)
    return JSONResponse({"type": "fork", "session_id": new_id})


async def diff(request: Request) -> JSONResponse:
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if not a or not b:
        raise invalid("a and b: two checkpoints are required")
    result = await engine_of(request).diff(request.path_params["session_id"], a, b)
    return JSONResponse(
        {
            "type": "diff",
            "a": result.a.to_json(),
            "b": result.b.to_json(),
            "changes": [_change(c) for c in result.changes],
            "texts": result.texts,
            "events": [corral_event(e) for e in result.events],
            "cost": None if result.cost is None else str(result.cost),
        }
    )


def _amount(data: dict[str, Any], key: str, maximum: Decimal) -> tuple[bool, Decimal | None]:
    if key not in data:
        return False, None
    value = data[key]
    if value is None:
        return True, None
    try:
        return True, parse_money(value, "request", key, maximum=maximum)
    except CorralError as exc:
        raise invalid(str(exc)) from None


async def budget(request: Request) -> JSONResponse:
    engine = engine_of(request)
    session_id = request.path_params["session_id"]
    if request.method == "GET":
        current = await engine.budget(session_id)
    else:
        data = await body_of(request)
        current = await engine.budget(session_id)
        given_cost, cost = _amount(data, "max_list_cost", MAX_USD)
        given_hours, hours = _amount(data, "max_active_hours", MAX_HOURS)
        went_on = await engine.set_budget(
            session_id,
            cost if given_cost else current.max_list_cost,
            hours if given_hours else current.max_active_hours,
        )
        current = await engine.budget(session_id)
        return JSONResponse({**_budget_json(current), "resumed": went_on})
    return JSONResponse(_budget_json(current))


def _budget_json(budget: Any) -> dict[str, Any]:
    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "type": "budget",
        "max_list_cost": text(budget.max_list_cost),
        "max_active_hours": text(budget.max_active_hours),
    }


async def policy(request: Request) -> JSONResponse:
    engine = engine_of(request)
    session_id = request.path_params["session_id"]
    if request.method == "POST":
        data = await body_of(request)
        try:
            check_policy_data(data.get("policy"))
        except CorralError as exc:
            raise invalid(f"policy: {exc}") from None
        change = await engine.set_policy(session_id, Policy.from_data(data["policy"]))
        return JSONResponse(
            {
                "type": "policy",
                "change": change,
                "policy": (await engine.policy(session_id)).to_data(),
            }
        )
    return JSONResponse({"type": "policy", "policy": (await engine.policy(session_id)).to_data()})


async def simulate_policy(request: Request) -> JSONResponse:
    data = await body_of(request)
    try:
        check_policy_data(data.get("policy"))
    except CorralError as exc:
        raise invalid(f"policy: {exc}") from None
    engine = engine_of(request)
    ids = data.get("sessions")
    if ids is not None and (
        not isinstance(ids, list) or len(ids) > 1000 or not all(isinstance(i, str) for i in ids)
    ):
        raise invalid("sessions: a list of session ids")
    records = [await engine.session(s) for s in ids] if ids else await engine.sessions()
    sessions = {r.id: (await engine.events(r.id), Path(r.workspace)) for r in records}
    rows = simulate(Policy.from_data(data["policy"]), sessions)
    return JSONResponse(
        {
            "type": "simulation",
            "rows": [
                {
                    "session_id": r.session_id,
                    "seq": r.seq,
                    "tool": r.tool,
                    "subject": r.subject,
                    "recorded": r.recorded,
                    "simulated": r.simulated,
                    "rule": r.rule,
                }
                for r in rows
            ],
            "summary": dict(summary(rows)),
        }
    )


async def export(request: Request) -> Response:
    engine = engine_of(request)
    record = await engine.session(request.path_params["session_id"])
    fd, name = tempfile.mkstemp(prefix="corral-export-", suffix=".corral")
    os.close(fd)
    os.unlink(name)
    summary_ = await engine.export(record.id, Path(name))
    return FileResponse(
        summary_.path,
        media_type="application/x-tar",
        filename=f"{record.id}.corral",
        headers={"x-corral-redacted": ",".join(sorted(summary_.redacted))},
        background=BackgroundTask(Path(name).unlink, missing_ok=True),
    )


async def import_file(request: Request) -> JSONResponse:
    """The body is an export file, streamed to a temporary file (never held in memory)."""
    fd, name = tempfile.mkstemp(prefix="corral-import-", suffix=".corral")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_IMPORT:
                    raise ApiError(413, "request_too_large", f"over {MAX_IMPORT} bytes")
                out.write(chunk)
        try:
            result = await engine_of(request).import_file(Path(name))
        except CorralError as exc:
            # The temporary file's name means nothing to the client: it sent "the bundle".
            raise invalid(str(exc).replace(name, "the bundle")) from None
    finally:
        Path(name).unlink(missing_ok=True)
    return JSONResponse(
        {
            "type": "import",
            "session_id": result.session_id,
            "events": result.events,
            "checkpoints": result.checkpoints,
            "warnings": result.warnings,
        }
    )


async def estimate(request: Request) -> JSONResponse:
    """A spec's likely cost and time: ``{"spec": TOML-shaped object, "base": DIR}``."""
    data = await body_of(request)
    spec_data, base = data.get("spec"), data.get("base", "/")
    if not isinstance(spec_data, dict) or not isinstance(base, str):
        raise invalid("spec: a spec as an object (the TOML's tables), base: a directory")
    spec = parse_spec(spec_data, source="request", base=Path(base))
    found = await engine_of(request).estimate(spec)
    return JSONResponse(
        {
            "type": "estimate",
            "basis": found.basis,
            "cost_low": _decimal(found.cost_low),
            "cost_high": _decimal(found.cost_high),
            "cost_typical": _decimal(found.cost_typical),
            "hosted_typical": _decimal(found.hosted_typical),
            "hours_low": str(found.hours_low),
            "hours_high": str(found.hours_high),
            "turns_typical": found.turns_typical,
        }
    )


def _decimal(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


async def gc(request: Request) -> JSONResponse:
    data = await body_of(request)
    dry_run = data.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise invalid("dry_run: must be true or false")
    done = await engine_of(request).gc(dry_run=dry_run)
    return JSONResponse(
        {
            "type": "gc",
            "applied": done.applied,
            "referenced": done.plan.referenced,
            "unreferenced": len(done.plan.unreferenced),
            "free_bytes": done.plan.free_bytes,
            "containers": [c for c, _ in done.containers],
        }
    )


PREFIX = "/v1/corral"
ROUTES = [
    Route(PREFIX + "/sessions/{session_id}/events", events, methods=["GET"]),
    Route(PREFIX + "/sessions/{session_id}/events/stream", stream, methods=["GET"]),
    Route(PREFIX + "/sessions/{session_id}/checkpoints", checkpoints, methods=["GET"]),
    Route(PREFIX + "/sessions/{session_id}/checkpoints", checkpoint, methods=["POST"]),
    Route(PREFIX + "/sessions/{session_id}/rewind", rewind, methods=["POST"]),
    Route(PREFIX + "/sessions/{session_id}/fork", fork, methods=["POST"]),
    Route(PREFIX + "/sessions/{session_id}/diff", diff, methods=["GET"]),
    Route(PREFIX + "/sessions/{session_id}/budget", budget, methods=["GET", "POST"]),
    Route(PREFIX + "/sessions/{session_id}/policy", policy, methods=["GET", "POST"]),
    Route(PREFIX + "/sessions/{session_id}/export", export, methods=["GET"]),
    Route(PREFIX + "/import", import_file, methods=["POST"]),
    Route(PREFIX + "/policy/simulate", simulate_policy, methods=["POST"]),
    Route(PREFIX + "/estimate", estimate, methods=["POST"]),
    Route(PREFIX + "/gc", gc, methods=["POST"]),
]
