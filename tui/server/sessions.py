"""``/v1/sessions`` and their events: create from an agent and an environment, list,
retrieve, update, archive, delete; send ``user.message`` / ``user.interrupt`` /
``user.tool_confirmation``; list the log; stream it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tui.core.clock import utc_now
from tui.core.session import events as ev
from tui.core.session.definitions import (
    InvalidRequest,
    NotSupported,
    budget_amount,
    metadata_of,
    spec_for,
    workspace_of,
)
from tui.core.session.records import SessionRecord
from tui.core.session.state import TERMINATED, WORKING
from tui.core.store.datadir import workspaces_dir
from tui.server.errors import ApiError, invalid
from tui.server.pages import limit_of, page
from tui.server.requests import body_of, engine_of, query_list
from tui.server.responses import JSONResponse
from tui.server.shapes import event_shape, iso, session_shape
from tui.server.streams import stream_response

MAX_INITIAL_EVENTS = 50


async def create(request: Request) -> JSONResponse:
    data = await body_of(request)
    for feature in ("resources", "vault_ids"):
        if data.get(feature):
            raise NotSupported(feature)
    engine = engine_of(request)
    definitions = engine.store.definitions
    agent = await _agent_of(definitions, data.get("agent"))
    if agent.archived_at is not None:
        raise invalid(f"agent {agent.id} is archived")
    env_id = data.get("environment_id")
    if not isinstance(env_id, str):
        raise InvalidRequest("environment_id", "is required")
    environment = await definitions.environment(env_id)
    if environment.archived_at is not None:
        raise invalid(f"environment {env_id} is archived")
    title = data.get("title")
    if title is not None and (not isinstance(title, str) or len(title) > 1000):
        raise InvalidRequest("title", "must be a string")
    cap = budget_amount(data.get("budget"))  # the engine refuses one on an unpriced model
    spec = spec_for(
        agent,
        environment,
        title=title,
        messages=_initial_messages(data.get("initial_events")),
        max_list_cost=cap,
        workspace=workspace_of(data.get("corral")),
    )
    body = agent.body
    api = {
        "agent": {
            "id": agent.id,
            "version": agent.version,
            "name": body["name"],
            "description": body.get("description"),
            "system": body.get("system"),
            "model": body["model"],
            "tools": body["tools"],
        },
        "environment_id": environment.id,
        "metadata": metadata_of(data.get("metadata")),
        "archived_at": None,
    }
    session_id = await (await engine.start()).create_session(spec, api=api)
    return JSONResponse(session_shape(await engine.session(session_id), utc_now()))


async def _agent_of(definitions: Any, ref: Any) -> Any:
    if isinstance(ref, str):
        return await definitions.agent(ref)
    if isinstance(ref, dict) and isinstance(ref.get("id"), str):
        version = ref.get("version")
        if version is not None and (not isinstance(version, int) or version < 1):
            raise InvalidRequest("agent.version", "must be a version number")
        return await definitions.agent(ref["id"], version)
    raise InvalidRequest("agent", "is required: an agent id, or {id, version}")


def _initial_messages(events: Any) -> list[str]:
    if events is None:
        return []
    if not isinstance(events, list) or len(events) > MAX_INITIAL_EVENTS:
        raise InvalidRequest("initial_events", f"must be a list of at most {MAX_INITIAL_EVENTS}")
    return [_message_text(e, f"initial_events[{i}]") for i, e in enumerate(events)]


def _message_text(event: Any, where: str) -> str:
    kind = event.get("type") if isinstance(event, dict) else None
    if kind == "user.define_outcome":
        raise NotSupported("user.define_outcome events")
    if kind != ev.USER_MESSAGE:
        raise InvalidRequest(f"{where}.type", "must be user.message")
    content = event.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise InvalidRequest(f"{where}.content", "must be a list of content blocks")
    texts = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "text":
            raise NotSupported(
                f"{block.get('type') if isinstance(block, dict) else 'that'} content"
            )
        if not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{where}.content", "text blocks need text")
        texts.append(block["text"])
    text = "".join(texts)
    if not text.strip():
        raise InvalidRequest(f"{where}.content", "is empty")
    return text


async def retrieve(request: Request) -> JSONResponse:
    record = await _session(request)
    return JSONResponse(session_shape(record, utc_now()))


async def _session(request: Request) -> SessionRecord:
    session_id = request.path_params["session_id"]
    record = await engine_of(request).store.get_session(session_id)
    if record.id != session_id:  # the CLI takes prefixes; the API takes ids
        raise ApiError(404, "not_found_error", f"no session {session_id!r}")
    return record


async def listing(request: Request) -> JSONResponse:
    records = await engine_of(request).store.list_sessions()
    q = request.query_params
    if q.get("include_archived") != "true":
        records = [r for r in records if not r.api.get("archived_at")]
    if q.get("agent_id"):
        records = [r for r in records if r.api.get("agent", {}).get("id") == q["agent_id"]]
        if q.get("agent_version"):
            v = q["agent_version"]
            records = [r for r in records if str(r.api["agent"].get("version")) == v]
    statuses = query_list(request, "statuses")
    if statuses:
        records = [r for r in records if r.state and r.state.status in statuses]
    for op, test in (
        ("gt", lambda a, b: a > b),
        ("gte", lambda a, b: a >= b),
        ("lt", lambda a, b: a < b),
        ("lte", lambda a, b: a <= b),
    ):
        bound = q.get(f"created_at[{op}]")
        if bound:
            records = [r for r in records if test(iso(r.created_at), bound.replace("+00:00", "Z"))]
    now = utc_now()
    return JSONResponse(
        page(
            records,
            lambda r: [iso(r.created_at), r.id],
            request,
            lambda r: session_shape(r, now),
            descending=q.get("order", "desc") != "asc",
            bidirectional=True,
        )
    )


async def update(request: Request) -> JSONResponse:
    record = await _session(request)
    data = await body_of(request)
    for feature in ("agent", "vault_ids"):
        if data.get(feature):
            raise NotSupported(f"updating a session's {feature}")
    engine = engine_of(request)
    if "budget" in data:
        if record.state is not None and record.state.status == TERMINATED:
            raise invalid(f"session {record.id} is terminated")
        cap = budget_amount(data["budget"])
        hours = (await engine.budget(record.id)).max_active_hours
        await engine.set_budget(record.id, cap, hours)
        record = await engine.session(record.id)  # the budget is in its api now
    api = dict(record.api)
    if "metadata" in data:
        merged = dict(api.get("metadata", {}))
        given = data["metadata"] or {}
        if not isinstance(given, dict):
            raise InvalidRequest("metadata", "must be an object")
        for key, value in given.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        api["metadata"] = metadata_of(merged)
    if "title" in data and data["title"] is not None:
        raise NotSupported("renaming a session")  # the title lives in its spec and log
    if api != record.api:
        await engine.store.update_api(record.id, api)
    return JSONResponse(session_shape(await engine.session(record.id), utc_now()))


async def archive(request: Request) -> JSONResponse:
    record = await _session(request)
    engine = engine_of(request)
    if record.state is not None and record.state.status in WORKING:
        raise invalid(f"session {record.id} is running; interrupt it first")
    api = {**record.api, "archived_at": record.api.get("archived_at") or iso(utc_now())}
    await engine.store.update_api(record.id, api)
    return JSONResponse(session_shape(await engine.session(record.id), utc_now()))


async def delete(request: Request) -> JSONResponse:
    record = await _session(request)
    engine = engine_of(request)
    if record.state is not None and record.state.status != TERMINATED:
        await engine.control(record.id, "cancel")
    await engine.store.delete_session(record.id)
    workspace = Path(record.workspace)
    # Only a workspace corral made for the session goes; an in-place one is the user's.
    if workspace.parent == workspaces_dir(engine.data_dir):
        shutil.rmtree(workspace, ignore_errors=True)
    return JSONResponse({"type": "session_deleted", "id": record.id})


# -- events -------------------------------------------------------------------------------


async def send(request: Request) -> JSONResponse:
    record = await _session(request)
    data = await body_of(request)
    events = data.get("events")
    if not isinstance(events, list) or not events:
        raise InvalidRequest("events", "must be a non-empty list")
    supervisor = await engine_of(request).start()
    stored = []
    for index, event in enumerate(events):
        kind = event.get("type") if isinstance(event, dict) else None
        where = f"events[{index}]"
        if kind == ev.USER_MESSAGE:
            stored.append(await supervisor.send_message(record.id, _message_text(event, where)))
        elif kind == ev.USER_INTERRUPT:
            stored.append(await supervisor.interrupt(record.id))
        elif kind == ev.USER_TOOL_CONFIRMATION:
            tool_use_id, result = event.get("tool_use_id"), event.get("result")
            if not isinstance(tool_use_id, str) or result not in ("allow", "deny"):
                raise InvalidRequest(where, "needs tool_use_id and result allow or deny")
            message = event.get("deny_message")
            if message is not None and not isinstance(message, str):
                raise InvalidRequest(f"{where}.deny_message", "must be a string")
            stored.append(
                await supervisor.confirm(record.id, tool_use_id, result == "allow", message)
            )
        elif kind in ("user.custom_tool_result", "user.define_outcome", "user.tool_result"):
            raise NotSupported(f"{kind} events")
        else:
            raise InvalidRequest(
                f"{where}.type", "must be user.message, user.interrupt or user.tool_confirmation"
            )
    return JSONResponse({"data": [event_shape(e) for e in stored]})


async def list_events(request: Request) -> JSONResponse:
    record = await _session(request)
    q = request.query_params
    store = engine_of(request).store
    events = await store.events(record.id)
    types = set(query_list(request, "types"))
    shaped = [(e, s) for e in events if (s := event_shape(e)) is not None]
    if types:
        shaped = [(e, s) for e, s in shaped if e.type in types]
    limit_of(request)  # refuse a bad limit before paging
    return JSONResponse(
        page(
            shaped,
            lambda pair: pair[0].seq,
            request,
            lambda pair: pair[1],
            descending=q.get("order") == "desc",
        )
    )


async def stream(request: Request) -> Response:
    record = await _session(request)
    return await stream_response(request, engine_of(request).store, record.id, raw=False)


ROUTES = [
    Route("/v1/sessions", create, methods=["POST"]),
    Route("/v1/sessions", listing, methods=["GET"]),
    Route("/v1/sessions/{session_id}", retrieve, methods=["GET"]),
    Route("/v1/sessions/{session_id}", update, methods=["POST"]),
    Route("/v1/sessions/{session_id}", delete, methods=["DELETE"]),
    Route("/v1/sessions/{session_id}/archive", archive, methods=["POST"]),
    Route("/v1/sessions/{session_id}/events", send, methods=["POST"]),
    Route("/v1/sessions/{session_id}/events", list_events, methods=["GET"]),
    Route("/v1/sessions/{session_id}/events/stream", stream, methods=["GET"]),
]
