"""Requests the server must refuse, in one clear line of the API's error envelope, without
losing or writing anything: bodies that are not JSON, too big or too deep; bad paging
and resume points; numbers out of range; routes and methods that do not exist. And
clients that misbehave: one that never reads its stream must not slow a session."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tui.client.remote import RemoteFeed
from tui.core.session import events as ev
from tui.core.store.bus import Delta, EventBus, Overflowed
from tui.core.wire import encode
from tui.server.daemon import Daemon, ServeOptions, _tcp_listener
from tui.server.rpc import _frames

from .conftest import write_script
from .server_helpers import server_in_thread, socket_client

TOOLSET = "agent_toolset_20260401"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with server_in_thread(tmp_path_factory.mktemp("hostile") / "data") as served:
        yield served


@pytest.fixture
def http(daemon: Daemon) -> Iterator[httpx.Client]:
    with socket_client(daemon) as client:
        yield client


def refused(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and isinstance(body["error"]["type"], str)
    message: str = body["error"]["message"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


def agent_and_env(
    http: httpx.Client, tmp_path: Path, turns: list[dict[str, Any]]
) -> tuple[str, str]:
    model = "scripted:" + str(write_script(tmp_path / "script.toml", turns))
    tools = [{"type": TOOLSET, "default_config": {"permission_policy": {"type": "always_allow"}}}]
    agent = http.post("/v1/agents", json={"name": "a", "model": model, "tools": tools}).json()
    env = http.post("/v1/environments", json={"name": "e", "config": {"type": "cloud"}}).json()
    return agent["id"], env["id"]


def all_events(http: httpx.Client, sid: str) -> list[dict[str, Any]]:
    events, page = [], None
    while True:
        params = {"limit": 1000, **({"page": page} if page else {})}
        body = http.get(f"/v1/sessions/{sid}/events", params=params).json()
        events += body["data"]
        page = body["next_page"]
        if not page:
            return events


def test_bodies_that_are_not_a_json_object_are_400(http: httpx.Client) -> None:
    refused(http.post("/v1/agents", content=b"{not json"), 400, "not valid JSON")
    refused(http.post("/v1/agents", content=b"[1, 2]"), 400, "JSON object")
    refused(http.post("/v1/agents", content=b"\xff\xfe\x00"), 400)
    deep = b"[" * 100_000 + b"]" * 100_000
    refused(http.post("/v1/agents", content=deep), 400)
    refused(http.post("/v1/agents", content=b" " * (9 << 20)), 413)
    refused(http.post("/v1/agents", json={"name": "x"}), 400, "model")
    refused(http.post("/v1/agents", json={"name": 7, "model": "claude-sonnet-4-6"}), 400, "name")


def test_paging_and_resume_points_that_are_not_ours_are_400(
    http: httpx.Client, tmp_path: Path
) -> None:
    for limit in ("0", "-3", "abc", "100000", "1e3"):
        refused(http.get("/v1/sessions", params={"limit": limit}), 400, "limit")
    refused(http.get("/v1/sessions", params={"page": "!!not-a-cursor"}), 400, "page")
    agent, env = agent_and_env(http, tmp_path, [{"text": "hi"}])
    sid = http.post("/v1/sessions", json={"agent": agent, "environment_id": env}).json()["id"]
    stream = f"/v1/sessions/{sid}/events/stream"
    refused(http.get(stream, headers={"Last-Event-ID": "sevt_of_another_session"}), 400)
    refused(http.get(stream, params={"after": "-1"}), 400)
    refused(http.get(stream, params={"after": "9" * 40}), 400)
    refused(http.get(stream, params={"event_deltas[]": "agent.tool_use"}), 400, "agent.tool_use")


def test_numbers_out_of_range_name_their_field(http: httpx.Client, tmp_path: Path) -> None:
    for limits, field in (
        ({"pids": -5}, "pids"),
        ({"memory_mb": 10**30}, "memory_mb"),
        ({"cpus": "many"}, "limits"),
        ({"swap": 1}, "limits"),
    ):
        config = {"type": "cloud", "corral": {"limits": limits}}
        refused(http.post("/v1/environments", json={"name": "e", "config": config}), 400, field)
    agent, env = agent_and_env(http, tmp_path, [{"text": "hi"}])
    for budget in (
        {"max_list_cost": {"amount": "-1", "currency": "USD"}},
        {"max_list_cost": {"amount": "1e400", "currency": "USD"}},
        {"max_list_cost": {"amount": "1", "currency": "EUR"}},
        {"max_list_cost": 2.5},
    ):
        body = {"agent": agent, "environment_id": env, "budget": budget}
        refused(http.post("/v1/sessions", json=body), 400, "budget")
    sessions_before = len(http.get("/v1/sessions", params={"limit": 1000}).json()["data"])
    body = {"agent": agent, "environment_id": env, "initial_events": [{"type": "user.message"}]}
    refused(http.post("/v1/sessions", json=body), 400, "initial_events")
    # A refusal made nothing.
    assert len(http.get("/v1/sessions", params={"limit": 1000}).json()["data"]) == sessions_before


def test_unknown_routes_methods_and_ids_are_enveloped(http: httpx.Client) -> None:
    refused(http.get("/v1/nothing/here"), 404)
    refused(http.delete("/v1/agents"), 405)
    refused(http.get("/v1/sessions/sesn_missing"), 404, "sesn_missing")
    refused(http.get("/v1/agents/agent_missing"), 404)
    refused(http.post("/v1/sessions/sesn_missing/events", json={"events": []}), 404)


def test_a_client_that_never_reads_its_stream_does_not_slow_a_session(
    daemon: Daemon, http: httpx.Client, tmp_path: Path
) -> None:
    # Enough output to fill any socket buffer many times over.
    big = "x" * 4000
    turns = [
        {"text": f"{n} {big}", "tool_uses": [("bash", {"command": "true"})]} for n in range(150)
    ]
    agent, env = agent_and_env(http, tmp_path, [*turns, {"text": "done"}])
    sid = http.post("/v1/sessions", json={"agent": agent, "environment_id": env}).json()["id"]
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(str(daemon.data_dir / "corral.sock"))
    stalled.sendall(
        f"GET /v1/sessions/{sid}/events/stream?event_deltas[]=agent.message HTTP/1.1\r\n"
        "Host: corral\r\n\r\n".encode()
    )
    try:
        began = time.monotonic()
        message = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
        http.post(f"/v1/sessions/{sid}/events", json={"events": [message]})
        while not (log := all_events(http, sid)) or log[-1]["type"] != "session.status_idle":
            assert time.monotonic() - began < 60, "the session was held up"
            time.sleep(0.2)
        assert log[-1]["stop_reason"]["type"] == "end_turn"
        # Everything is in the log for the client to resume from when it reads again.
        assert sum(e["type"] == "agent.message" for e in log) == 151
    finally:
        stalled.close()


async def test_a_full_subscriber_is_dropped_and_the_publisher_never_waits() -> None:
    bus = EventBus()
    slow = bus.subscribe("sesn_a", limit=3)
    fast = bus.subscribe("sesn_a")
    items = [ev.Event("sesn_a", ev.USER_MESSAGE, {"n": n}).with_seq(n + 1) for n in range(10)]
    for item in items:
        bus.publish([item])  # synchronous: it cannot wait on anyone
    assert [(await fast.get()).seq for _ in range(10)] == list(range(1, 11))
    assert [(await slow.get()).seq for _ in range(3)] == [1, 2, 3]
    with pytest.raises(Overflowed):
        await asyncio.wait_for(slow.get(), 1)


async def test_a_burst_is_taken_whole_and_a_close_still_ends_the_reader() -> None:
    bus = EventBus()
    sub = bus.subscribe("sesn_a", limit=10)
    items = [ev.Event("sesn_a", ev.USER_MESSAGE, {"n": n}).with_seq(n + 1) for n in range(4)]
    bus.publish(items)
    sub.close()
    first = await sub.get()
    assert [first.seq, *(i.seq for i in sub.take_ready())] == [1, 2, 3, 4]
    assert sub.take_ready() == []  # the close is not an item, and stays queued
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(sub.get(), 1)


async def test_corral_feed_sends_a_burst_as_one_write_that_reads_back_item_by_item() -> None:
    bus = EventBus()
    sub = bus.subscribe(None, deltas=True, limit=10)
    events = [ev.Event("sesn_a", ev.USER_MESSAGE, {"n": n}).with_seq(n + 1) for n in range(3)]
    delta = Delta("sesn_a", "text", "hi", "evt_4")
    bus.publish([*events, delta])
    frames = _frames(sub)
    chunk = await anext(frames)
    await frames.aclose()
    # The client's reader (the app's feed), fed that one chunk, gives back all four.
    assert await read_feed(chunk.decode()) == [*events, delta]


async def test_corral_feed_skips_frames_that_are_not_json_objects_and_reads_on() -> None:
    good = ev.Event("sesn_a", ev.USER_MESSAGE, {"n": 1}).with_seq(1)
    body = '{"kind":"event","item":' + json.dumps(encode(good)) + "}"
    frames = ["not json", "[" * 100_000 + "]" * 100_000, "[1, 2]", '"text"', body]
    stream = "".join(f"event: event\ndata: {frame}\n\n" for frame in frames)
    assert await read_feed(stream) == [good]


async def read_feed(stream: str) -> list[Any]:
    """What corral's feed reader (the app's) hands out for this stream text."""
    feed = RemoteFeed(None, None, deltas=True)  # type: ignore[arg-type]  # reads only

    class Response:
        async def aiter_lines(self) -> AsyncIterator[str]:
            for line in stream.splitlines():
                yield line

    await feed._read(Response())  # type: ignore[arg-type]
    return [feed._queue.get_nowait() for _ in range(feed._queue.qsize())]


async def test_tcp_connections_send_without_waiting_for_acks() -> None:
    # Nagle on an accepted socket makes a response written as head then body wait out
    # the client's delayed ACK: ~40 ms on every request over TCP.
    listener = _tcp_listener(ServeOptions(listen="127.0.0.1:0"))
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener.sock)
    try:
        port = listener.sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
