"""A fake Messages API on 127.0.0.1 that the real ``anthropic`` SDK talks HTTP to.

It answers the way the service does: a stream is ``text/event-stream`` in chunked
transfer encoding (no Content-Length), with ``event: ping`` between the message events,
on a connection that stays open for the next request; an HTTP error is a JSON envelope
with a Content-Length. Each POST /v1/messages takes the next planned reply: a streamed
message, an HTTP error before any stream (``error``), or one of the faults a stream can
have (``cut``, ``stream_error``, ``reset``, ``empty``). Requests are kept (headers and
JSON body), so tests can count them and check what the SDK sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

DELTA_CHARS = 8  # the text each content delta carries
PING_EVERY = 3  # content deltas between pings, after the one that follows message_start
GATE_TIMEOUT_S = 5.0  # a reset waits at most this long for its gate, then resets anyway


@dataclass
class Reply:
    """One planned answer. ``kind``: "message", "error", "cut", "stream_error", "reset" or
    "empty".

    For the faults, ``after`` is how many content deltas go out before it."""

    kind: str
    text: str = ""
    tool_uses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 1
    gate: asyncio.Event | None = None


def message(text: str, *tool_uses: tuple[str, dict[str, Any]], **usage: int) -> Reply:
    return Reply("message", text=text, tool_uses=list(tool_uses), usage=usage)


def error(status: int, kind: str, text: str, code: str | None = None, **headers: str) -> Reply:
    """An HTTP error status before any stream (``overloaded_error`` is 529)."""
    return Reply("error", status=status, body=_envelope(kind, text, code), headers=headers)


def cut(text: str, after: int = 1) -> Reply:
    """Starts streaming ``text``, then ends the body cleanly before message_stop."""
    return Reply("cut", text=text, after=after)


def empty() -> Reply:
    """A 200 event stream that ends before any event, as a failing proxy may send."""
    return Reply("empty")


def stream_error(
    text: str, after: int = 2, kind: str = "overloaded_error", detail: str = "Overloaded"
) -> Reply:
    """Starts streaming ``text`` with status 200, then sends ``event: error`` and ends the
    body: how the service reports a failure once the stream has begun."""
    return Reply("stream_error", text=text, after=after, body=_envelope(kind, detail))


def reset(text: str, after: int = 2, gate: asyncio.Event | None = None) -> Reply:
    """Starts streaming ``text``, then resets the connection (RST) mid-body. With a
    ``gate`` the reset waits until it is set, so a test can first see the partial
    answer arrive; unread data would otherwise be lost with the reset."""
    return Reply("reset", text=text, after=after, gate=gate)


def _envelope(kind: str, text: str, code: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": kind, "message": text}
    if code:
        err["details"] = {"error_code": code}
    return {"type": "error", "error": err}


@dataclass
class Seen:
    headers: dict[str, str]
    body: dict[str, Any]


class FakeMessagesAPI:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Seen] = []  # every request, in order: a retry is one more
        # POST /v1/messages/count_tokens: what it answers, and what it was asked.
        self.prompt_tokens = 1000
        self.counted: list[Seen] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._count = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> FakeMessagesAPI:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        # Connections are kept alive: close them and let their handlers see the end, or
        # they would be cancelled with the loop (which asyncio reports as an error).
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=GATE_TIMEOUT_S)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None  # a handler always runs as a task
        self._handlers.add(task)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = json.loads(await reader.readexactly(length)) if length else {}
                if request_line.split()[1].startswith(b"/v1/messages/count_tokens"):
                    self.counted.append(Seen(headers, body))
                    data = json.dumps({"input_tokens": self.prompt_tokens}).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        + f"content-length: {len(data)}\r\n\r\n".encode()
                        + data
                    )
                    await writer.drain()
                    continue
                self.requests.append(Seen(headers, body))
                reply = self.replies.pop(0) if self.replies else message("(no reply planned)")
                if not await self._answer(writer, reply, body):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, reply: Reply, body: dict) -> bool:
        """Writes ``reply``; False when the connection is gone afterwards."""
        request_id = f"req_fake_{len(self.requests):04d}"
        if reply.kind == "error":
            data = json.dumps(reply.body).encode()
            extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} {_reason(reply.status)}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(data)}\r\n"
                f"request-id: {request_id}\r\n{extra}\r\n".encode()
                + data
            )
            await writer.drain()
            return True
        self._count += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
            + f"request-id: {request_id}\r\n\r\n".encode()
        )
        for name, data in self._stream(reply, body.get("model", "claude-sonnet-4-6")):
            frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await writer.drain()
        if reply.kind == "reset":
            if reply.gate is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reply.gate.wait(), GATE_TIMEOUT_S)
            _reset(writer)
            return False
        writer.write(b"0\r\n\r\n")  # the last chunk: the body is complete
        await writer.drain()
        return True

    def _stream(self, reply: Reply, model: str) -> list[tuple[str, dict[str, Any]]]:
        """The events ``reply`` sends: the whole message with pings, or its start up to the
        fault (followed by the error event for a stream_error)."""
        if reply.kind == "empty":
            return []
        events = self._events(reply, model)
        if reply.kind != "message":
            events = _before_delta(events, reply.after)
        if reply.kind == "stream_error":
            assert reply.body is not None
            events.append(("error", reply.body))
        return _with_pings(events)

    def _events(self, reply: Reply, model: str) -> list[tuple[str, dict[str, Any]]]:
        usage = {
            "input_tokens": reply.usage.get("input_tokens", 100),
            "output_tokens": 1,
            "cache_read_input_tokens": reply.usage.get("cache_read_input_tokens", 0),
            "cache_creation_input_tokens": reply.usage.get("cache_creation_input_tokens", 0),
        }
        out: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_{self._count:04d}",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": usage,
                    },
                },
            )
        ]
        index = 0
        if reply.text:
            out.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            for i in range(0, len(reply.text), DELTA_CHARS):
                piece = reply.text[i : i + DELTA_CHARS]
                out.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
                )
            out.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for n, (name, tool_input) in enumerate(reply.tool_uses):
            block = {
                "type": "tool_use",
                "id": f"toolu_{self._count:03d}_{n}",
                "name": name,
                "input": {},
            }
            out.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
            out.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": json.dumps(tool_input),
                        },
                    },
                )
            )
            out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": "tool_use" if reply.tool_uses else "end_turn",
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": reply.usage.get("output_tokens", 20)},
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        return out


def _before_delta(
    events: list[tuple[str, dict[str, Any]]], n: int
) -> list[tuple[str, dict[str, Any]]]:
    """The events before the ``n``-th content delta (0-based): the partial answer."""
    out = []
    for name, data in events:
        if name == "content_block_delta":
            if n == 0:
                break
            n -= 1
        out.append((name, data))
    return out


def _with_pings(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    # As the service does: a ping right after message_start, then now and then.
    ping = ("ping", {"type": "ping"})
    out = []
    deltas = 0
    for name, data in events:
        out.append((name, data))
        if name == "message_start":
            out.append(ping)
        elif name == "content_block_delta":
            deltas += 1
            if deltas % PING_EVERY == 0:
                out.append(ping)
    return out


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


def _reset(writer: asyncio.StreamWriter) -> None:
    # A zero linger makes the close an RST, not a FIN: the client's read fails with
    # ECONNRESET, as when a proxy or the service drops the connection.
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
