"""A fake Messages API on 127.0.0.1 that the real ``anthropic`` SDK talks HTTP to.

Each POST /v1/messages takes the next planned reply: a streamed message (SSE), an
HTTP error with headers, or a stream cut off part way. Requests are kept (headers and
JSON body) so tests can check what the SDK sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One planned answer. ``kind``: "message", "error" or "cut"."""

    kind: str
    text: str = ""
    tool_uses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def message(text: str, *tool_uses: tuple[str, dict[str, Any]], **usage: int) -> Reply:
    return Reply("message", text=text, tool_uses=list(tool_uses), usage=usage)


def error(status: int, kind: str, text: str, code: str | None = None, **headers: str) -> Reply:
    err: dict[str, Any] = {"type": kind, "message": text}
    if code:
        err["details"] = {"error_code": code}
    return Reply("error", status=status, body={"type": "error", "error": err}, headers=headers)


def cut(text: str) -> Reply:
    """Starts streaming ``text``, then the connection closes before message_stop."""
    return Reply("cut", text=text)


@dataclass
class Seen:
    headers: dict[str, str]
    body: dict[str, Any]


class FakeMessagesAPI:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Seen] = []
        self._server: asyncio.Server | None = None
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
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
                self.requests.append(Seen(headers, body))
                reply = self.replies.pop(0) if self.replies else message("(no reply planned)")
                keep = await self._answer(writer, reply, body)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, reply: Reply, body: dict) -> bool:
        if reply.kind == "error":
            data = json.dumps(reply.body).encode()
            extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} Error\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\n{extra}\r\n".encode()
                + data
            )
            await writer.drain()
            return True
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\nconnection: close\r\n\r\n"
        )
        self._count += 1
        for name, data in self._events(reply, body.get("model", "claude-sonnet-4-5")):
            writer.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            await writer.drain()
            if reply.kind == "cut" and name == "content_block_delta":
                return False  # the connection drops mid-message
        return False

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
            for i in range(0, len(reply.text), 8):
                out.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": reply.text[i : i + 8]},
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
