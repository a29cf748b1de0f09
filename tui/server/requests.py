"""Reading requests: a JSON object body of bounded size, the engine the app holds."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from tui.client.engine import EngineClient
from tui.server.errors import ApiError, invalid

MAX_BODY = 8 << 20


async def body_of(request: Request) -> dict[str, Any]:
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        raise ApiError(413, "request_too_large", f"the body is over {MAX_BODY} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "request_too_large", f"the body is over {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("the body must be a JSON object")
    return data


def engine_of(request: Request) -> EngineClient:
    engine: EngineClient = request.app.state.engine
    return engine


def query_list(request: Request, name: str) -> list[str]:
    """A repeated query parameter, as ``name=a&name=b`` or (as the SDK sends lists)
    ``name[]=a&name[]=b``."""
    params = request.query_params
    return params.getlist(name) + params.getlist(name + "[]")
