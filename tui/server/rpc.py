"""``/v1/corral/rpc/{method}``: the ``CorralClient`` protocol over HTTP, for corral's own
app and CLI (``tui.client.remote``). Each call's arguments are read by the protocol's
type hints and checked (``tui.core.wire``); its result goes back in the engine's own
types. Not a public API: the documented one is ``/v1`` and the rest of ``/v1/corral``.

And ``/v1/corral/stream``: every session's events (and, if asked, streaming deltas) as
the engine's events, one SSE frame each, for a client that follows the whole fleet.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tui.client.protocol import CorralClient
from tui.core.session.events import Event
from tui.core.store.bus import Delta, Overflowed, Subscription
from tui.core.wire import WireError, decode, encode
from tui.server.errors import invalid, not_found
from tui.server.requests import body_of, engine_of
from tui.server.responses import JSONResponse
from tui.server.streams import BUFFER, PING_S

# What a client may call. Not here: subscribe (the stream below), export and import
# (streamed files: /v1/corral/sessions/{id}/export, /v1/corral/import), close.
METHODS = frozenset(
    {
        "sessions", "session", "state", "events", "checkpoints", "checkpoint_record",
        "timeline", "diff", "policy", "budget", "estimate", "spent_today", "attach",
        "create", "send", "confirm", "control", "set_budget", "set_policy", "checkpoint",
        "rewind_preview", "rewind", "fork", "gc",
    }
)  # fmt: skip


@cache
def signature_of(name: str) -> tuple[inspect.Signature, dict[str, Any]]:
    method = getattr(CorralClient, name)
    return inspect.signature(method), typing.get_type_hints(method)


def arguments(name: str, data: dict[str, Any]) -> dict[str, Any]:
    signature, hints = signature_of(name)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    unknown = set(data) - {p.name for p in params}
    if unknown:
        raise invalid(f"{name}: unexpected argument {sorted(unknown)[0]!r}")
    kwargs = {}
    for param in params:
        if param.name in data:
            try:
                kwargs[param.name] = decode(hints[param.name], data[param.name], param.name)
            except WireError as exc:
                raise invalid(f"{name}: {exc}") from None
        elif param.default is inspect.Parameter.empty:
            raise invalid(f"{name}: {param.name} is required")
    return kwargs


async def call(request: Request) -> JSONResponse:
    name = request.path_params["method"]
    if name not in METHODS:
        raise not_found(f"no method {name!r}")
    kwargs = arguments(name, await body_of(request))
    result = await getattr(engine_of(request), name)(**kwargs)
    return JSONResponse({"result": encode(result)})


async def stream(request: Request) -> Response:
    """Events of one session (``?session_id=``) or all, from now on; ``deltas=true``
    adds the streaming previews. A client that falls behind is dropped: it reads what it
    missed with ``events`` and subscribes again."""
    store = engine_of(request).store
    session_id = request.query_params.get("session_id") or None
    if session_id is not None:
        session_id = (await store.get_session(session_id)).id
    deltas = request.query_params.get("deltas") == "true"
    sub = store.bus.subscribe(session_id, deltas=deltas, limit=BUFFER)
    return EventSourceResponse(
        _frames(sub), ping=PING_S, send_timeout=30, background=BackgroundTask(sub.close)
    )


async def _frames(sub: Subscription) -> AsyncIterator[bytes]:
    # What is ready at once goes out as one write: with 16 streaming sessions a write
    # (and, in the client, a read) per item was a good part of both processes' work.
    try:
        while True:
            try:
                items = [await sub.get(), *sub.take_ready()]
            except (Overflowed, StopAsyncIteration):
                return
            yield b"".join(_frame(item) for item in items)
    finally:
        sub.close()


def _frame(item: Event | Delta) -> bytes:
    kind = "event" if isinstance(item, Event) else "delta"
    body = json.dumps({"kind": kind, "item": encode(item)}, separators=(",", ":"))
    return ServerSentEvent(data=body, event=kind).encode()


PREFIX = "/v1/corral"
ROUTES = [
    Route(PREFIX + "/rpc/{method}", call, methods=["POST"]),
    Route(PREFIX + "/stream", stream, methods=["GET"]),
]
