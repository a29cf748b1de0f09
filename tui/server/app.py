"""The ASGI app: the Managed Agents routes, corral's extras, errors in the API's
envelope, and the key check in front of all of it. The engine is opened and closed by
whoever serves the app (``tui.server.daemon``, or a test), not by the app itself."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from tui import __version__
from tui.client.engine import EngineClient
from tui.core.errors import CorralError
from tui.core.session.state import WORKING
from tui.server import agents, environments, extras, rpc, sessions
from tui.server.auth import KeyCheck
from tui.server.errors import ApiError, envelope, on_api_error, on_corral_error
from tui.server.requests import engine_of
from tui.server.responses import JSONResponse
from tui.server.shapes import iso

log = logging.getLogger("corral.server")

HTTP_KINDS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


async def server_info(request: Request) -> JSONResponse:
    """Who answers: what ``corral server status`` shows, and what clients wait for."""
    engine = engine_of(request)
    started: datetime = request.app.state.started_at
    records = await engine.store.list_sessions()
    working = [r.id for r in records if r.state is not None and r.state.status in WORKING]
    return JSONResponse(
        {
            "type": "server",
            "pid": os.getpid(),
            "version": __version__,
            "data_dir": str(engine.data_dir),
            "started_at": iso(started),
            "sessions": len(records),
            "sessions_working": len(working),
            "script_speed": engine.script_speed,
            "max_concurrent": engine.max_concurrent,
            "recovered": engine.recovered,
            "recovered_after": engine.recovered_after,
        }
    )


async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = HTTP_KINDS.get(exc.status_code, "invalid_request_error")
    return envelope(exc.status_code, kind, str(exc.detail))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server's log; the client gets one line, no internals.
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return envelope(500, "api_error", "internal error: see `corral server logs`")


def build_app(engine: EngineClient, *, key: str | None, started_at: datetime) -> Starlette:
    """``key``: required of TCP clients (None: no TCP listener, so no key)."""
    routes: list[Any] = [
        *agents.ROUTES,
        *environments.ROUTES,
        *sessions.ROUTES,
        *extras.ROUTES,
        *rpc.ROUTES,
        Route(extras.PREFIX + "/server", server_info, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(KeyCheck, key=key)],
        exception_handlers={
            ApiError: on_api_error,
            CorralError: on_corral_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.state.engine = engine
    app.state.started_at = started_at
    return app
