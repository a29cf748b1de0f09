"""A session's events as a server-sent event stream that survives: every stored event
carries its id as the SSE id, so a client that reconnects with ``Last-Event-ID`` (or
``?after=``, an event id or a seq) gets exactly what it missed (read back from the log,
across a server restart too) and then the live tail, with no gap and no duplicate. Each
client's buffer is bounded: one that falls behind is dropped, and resumes the same way.

With ``event_deltas`` the stream also previews the message and thinking a model request
is still producing (``event_start``, ``event_delta``), named by the id the stored event
will have; previews are never stored and never replayed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import Request

from tui.core.session.events import Event
from tui.core.store.bus import Delta, Overflowed, Subscription
from tui.core.store.store import Store
from tui.server.errors import invalid
from tui.server.requests import query_list
from tui.server.shapes import corral_event, event_shape

BUFFER = 2048  # items a client may fall behind before it is dropped (and resumes)
BACKLOG_CHUNK = 500
PING_S = 15
DELTA_TYPES = {"agent.message": "text", "agent.thinking": "thinking"}


async def resume_point(request: Request, store: Store, session_id: str) -> int | None:
    """The seq a client has seen up to: ``Last-Event-ID`` (what an EventSource sends back:
    the id of the last event it got) or ``?after=``, as an event id or a seq."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return None
    if raw.isdigit() and len(raw) < 19:
        return int(raw)
    seq = await store.event_seq(session_id, raw) if len(raw) < 200 else None
    if seq is None:
        raise invalid("Last-Event-ID / after: not an event of this session, nor a seq")
    return seq


async def stream_response(
    request: Request, store: Store, session_id: str, *, raw: bool
) -> EventSourceResponse:
    """``raw``: corral's own events as stored (``/v1/corral``), not the SDK's shapes.

    The subscription is made here, before the response starts: a client that sends a
    message as soon as its stream is open gets every event the message causes."""
    wanted = set(query_list(request, "event_deltas"))
    unknown = wanted - set(DELTA_TYPES)
    if unknown:
        raise invalid(f"event_deltas: {', '.join(sorted(unknown))} cannot be previewed")
    after = await resume_point(request, store, session_id)
    kinds = {DELTA_TYPES[w] for w in wanted}
    sub = store.bus.subscribe(session_id, deltas=bool(kinds), limit=BUFFER)
    try:
        last = (await store.state(session_id)).last_seq
    except BaseException:
        sub.close()
        raise
    return EventSourceResponse(
        _events(store, sub, session_id, last if after is None else after, kinds, raw),
        ping=PING_S,
        send_timeout=30,
        background=BackgroundTask(sub.close),  # also if the body never starts
    )


async def _events(
    store: Store, sub: Subscription, session_id: str, after: int, deltas: set[str], raw: bool
) -> AsyncIterator[bytes]:
    # The subscription came first, so nothing committed since is missed: the log is read
    # from ``after`` (what a resuming client missed), then the live tail, each seq once.
    # What is ready at once goes out as one write, and each event is encoded once for
    # every client that streams it.
    last = after
    try:
        while True:
            chunk = await store.events(session_id, after_seq=last, limit=BACKLOG_CHUNK)
            if chunk:
                if backlog := b"".join(_event_bytes(event, raw) for event in chunk):
                    yield backlog
                last = chunk[-1].seq
            if len(chunk) < BACKLOG_CHUNK:
                break
        started: set[str] = set()
        while True:
            try:
                items = [await sub.get(), *sub.take_ready()]
            except (Overflowed, StopAsyncIteration):
                return  # the client resumes from the last id it got
            parts: list[bytes] = []
            for item in items:
                if isinstance(item, Event):
                    if item.seq <= last:
                        continue
                    last = item.seq
                    parts.append(_event_bytes(item, raw))
                elif isinstance(item, Delta) and item.kind in deltas and item.event_id:
                    parts.extend(sse.encode() for sse in _delta_sse(item, started))
            if batch := b"".join(parts):
                yield batch
    finally:
        sub.close()


_ENCODED: OrderedDict[tuple[str, str, bool], bytes] = OrderedDict()
ENCODED_KEPT = 1024  # recent events' bytes, shared by every stream of their session


def _event_bytes(event: Event, raw: bool) -> bytes:
    """The event as an SSE frame (``b""`` for one the API does not show), encoded once."""
    key = (event.session_id, event.id, raw)
    encoded = _ENCODED.get(key)
    if encoded is None:
        sse = _event_sse(event, raw)
        encoded = sse.encode() if sse is not None else b""
        _ENCODED[key] = encoded
        if len(_ENCODED) > ENCODED_KEPT:
            _ENCODED.popitem(last=False)
    return encoded


def _event_sse(event: Event, raw: bool) -> ServerSentEvent | None:
    shaped = corral_event(event) if raw else event_shape(event)
    if shaped is None:
        return None
    # The id is the event's: what the SDK hands its caller, so the caller can resume.
    return ServerSentEvent(
        data=json.dumps(shaped, separators=(",", ":")), event=event.type, id=event.id
    )


def _delta_sse(delta: Delta, started: set[str]) -> list[ServerSentEvent]:
    out = []
    if delta.event_id not in started:
        started.add(delta.event_id)
        kind = "agent.message" if delta.kind == "text" else "agent.thinking"
        start: dict[str, Any] = {
            "type": "event_start",
            "event": {"type": kind, "id": delta.event_id},
        }
        out.append(ServerSentEvent(data=json.dumps(start), event="event_start"))
    if delta.kind == "text" and delta.text:
        body = {
            "type": "event_delta",
            "event_id": delta.event_id,
            "delta": {
                "type": "content_delta",
                "index": 0,
                "content": {"type": "text", "text": delta.text},
            },
        }
        out.append(ServerSentEvent(data=json.dumps(body), event="event_delta"))
    return out
