"""``/v1/environments``: where a session's tools run (corral's backend, image, networking,
packages and limits)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from tui.core.clock import utc_now
from tui.core.ids import new_id
from tui.core.session.definitions import EnvironmentRecord, check_environment
from tui.server.errors import ApiError
from tui.server.pages import page
from tui.server.requests import body_of, engine_of
from tui.server.responses import JSONResponse
from tui.server.shapes import environment_shape, iso


async def create(request: Request) -> JSONResponse:
    body = check_environment(await body_of(request))
    now = iso(utc_now())
    env = EnvironmentRecord(new_id("env"), now, now, None, body)
    await engine_of(request).store.definitions.put_environment(env)
    return JSONResponse(environment_shape(env))


async def retrieve(request: Request) -> JSONResponse:
    env = await engine_of(request).store.definitions.environment(request.path_params["env_id"])
    return JSONResponse(environment_shape(env))


async def update(request: Request) -> JSONResponse:
    definitions = engine_of(request).store.definitions
    env = await definitions.environment(request.path_params["env_id"])
    if env.archived_at is not None:
        raise ApiError(400, "invalid_request_error", f"environment {env.id} is archived")
    body = check_environment(await body_of(request), base=env.body)
    updated = EnvironmentRecord(env.id, env.created_at, iso(utc_now()), None, body)
    await definitions.put_environment(updated)
    return JSONResponse(environment_shape(updated))


async def listing(request: Request) -> JSONResponse:
    envs = await engine_of(request).store.definitions.environments()
    if request.query_params.get("include_archived") != "true":
        envs = [e for e in envs if e.archived_at is None]
    return JSONResponse(page(envs, lambda e: [e.created_at, e.id], request, environment_shape))


async def delete(request: Request) -> JSONResponse:
    definitions = engine_of(request).store.definitions
    env = await definitions.environment(request.path_params["env_id"])
    await definitions.delete_environment(env.id)
    return JSONResponse({"type": "environment_deleted", "id": env.id})


async def archive(request: Request) -> JSONResponse:
    definitions = engine_of(request).store.definitions
    env = await definitions.environment(request.path_params["env_id"])
    now = iso(utc_now())
    archived = EnvironmentRecord(env.id, env.created_at, now, env.archived_at or now, env.body)
    await definitions.put_environment(archived)
    return JSONResponse(environment_shape(archived))


ROUTES = [
    Route("/v1/environments", create, methods=["POST"]),
    Route("/v1/environments", listing, methods=["GET"]),
    Route("/v1/environments/{env_id}", retrieve, methods=["GET"]),
    Route("/v1/environments/{env_id}", update, methods=["POST"]),
    Route("/v1/environments/{env_id}", delete, methods=["DELETE"]),
    Route("/v1/environments/{env_id}/archive", archive, methods=["POST"]),
]
