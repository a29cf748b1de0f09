"""``/v1/agents``: create, list, retrieve, update (each update a new version), versions,
archive."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from tui.core.clock import utc_now
from tui.core.ids import new_id
from tui.core.session.definitions import AgentRecord, InvalidRequest, check_agent
from tui.server.errors import ApiError, not_found
from tui.server.pages import page
from tui.server.requests import body_of, engine_of
from tui.server.responses import JSONResponse
from tui.server.shapes import agent_shape, iso


async def create(request: Request) -> JSONResponse:
    body = check_agent(await body_of(request))
    now = iso(utc_now())
    agent = AgentRecord(new_id("agent"), 1, now, now, None, body)
    await engine_of(request).store.definitions.put_agent(agent)
    return JSONResponse(agent_shape(agent))


async def retrieve(request: Request) -> JSONResponse:
    version = request.query_params.get("version")
    if version is not None and not (version.isdigit() and len(version) < 10):
        raise InvalidRequest("version", "must be a version number")
    store = engine_of(request).store
    agent = await store.definitions.agent(
        request.path_params["agent_id"], int(version) if version else None
    )
    return JSONResponse(agent_shape(agent))


async def update(request: Request) -> JSONResponse:
    data = await body_of(request)
    definitions = engine_of(request).store.definitions
    current = await definitions.agent(request.path_params["agent_id"])
    if current.archived_at is not None:
        raise ApiError(400, "invalid_request_error", f"agent {current.id} is archived")
    expected = data.pop("version", None)
    if expected is not None and expected != current.version:
        raise ApiError(
            409,
            "conflict_error",
            f"agent {current.id} is at version {current.version}, not {expected}",
        )
    body = check_agent(data, base=current.body)
    if body == current.body:
        return JSONResponse(agent_shape(current))  # nothing changed: no new version
    agent = AgentRecord(
        current.id, current.version + 1, current.created_at, iso(utc_now()), None, body
    )
    await definitions.put_agent(agent)
    return JSONResponse(agent_shape(agent))


async def listing(request: Request) -> JSONResponse:
    agents = await engine_of(request).store.definitions.agents()
    if request.query_params.get("include_archived") != "true":
        agents = [a for a in agents if a.archived_at is None]
    return JSONResponse(page(agents, lambda a: [a.created_at, a.id], request, agent_shape))


async def versions(request: Request) -> JSONResponse:
    agents = await engine_of(request).store.definitions.agents(request.path_params["agent_id"])
    if not agents:
        raise not_found(f"no agent {request.path_params['agent_id']!r}")
    return JSONResponse(page(agents, lambda a: a.version, request, agent_shape))


async def archive(request: Request) -> JSONResponse:
    definitions = engine_of(request).store.definitions
    agent_id = request.path_params["agent_id"]
    await definitions.agent(agent_id)  # 404 when there is none
    await definitions.archive_agent(agent_id, iso(utc_now()))
    return JSONResponse(agent_shape(await definitions.agent(agent_id)))


ROUTES = [
    Route("/v1/agents", create, methods=["POST"]),
    Route("/v1/agents", listing, methods=["GET"]),
    Route("/v1/agents/{agent_id}", retrieve, methods=["GET"]),
    Route("/v1/agents/{agent_id}", update, methods=["POST"]),
    Route("/v1/agents/{agent_id}/versions", versions, methods=["GET"]),
    Route("/v1/agents/{agent_id}/archive", archive, methods=["POST"]),
]
