"""Benchmark: ``corral serve``'s /v1 API against in-process peers on the same store.

One run starts the real server (``Daemon``, as ``corral serve`` runs it: uvicorn, the
Starlette app, the key check, a TCP listener on 127.0.0.1 and the Unix socket) in a
thread of this process, so events can be injected on the server's own event loop and
timed there. The clients run in a separate process (``multiprocessing``, spawned), so
they never share the server's loop or GIL. Clients are raw non-blocking sockets on an
asyncio loop speaking HTTP/1.1 with the key (``x-api-key``), to keep the client's own
cost small.

* SSE delivery latency: ``GET /v1/sessions/{id}/events/stream`` with 1 client on 1
  session, 100 clients on 1 session (every event fanned out to all 100) and 100
  clients spread over 10 sessions (10 each); plus 1 client over the Unix socket. The
  sessions were made through the API with a scripted model and no message, so no
  runner works on them. A coroutine on the server's loop appends ``agent.message``
  events (200 characters) at a fixed rate, round-robin over the case's sessions,
  with ``store.submit`` (not awaited in turn, so a slow commit does not delay the
  next event). The zero of every latency is the moment the store publishes the
  committed group on its bus (``bus.publish`` is wrapped on this store only: the
  transaction has committed just before; a time taken when ``append`` returns would
  come after the subscribers had already run). An event is received when the bytes
  holding its ``id:`` line arrive: over TCP the kernel's receive time for them
  (``SO_TIMESTAMPNS``), because 100 streams in one client process are read in turn
  and that queueing is the client's; over the Unix socket (no such time) the time the
  client's read returned. The time of the read is also kept (``read p99``, and
  ``sse_read`` in the JSON). Times are ``CLOCK_REALTIME`` (``time.time_ns()``, the
  kernel's clock for those stamps), one clock for both processes. Events in the
  warm-up are not counted; an event a client never received is "missing".
* peer, "in-process bus subscriber": ``store.bus.subscribe(session_id)`` on the
  server's loop, subscribed before the HTTP clients (so first in the bus's list) and
  running during the same injections, recording when it gets each event. The
  difference is what the HTTP/SSE layer adds. The JSON also has a second subscriber
  made after all clients (last in the list: it waits for every SSE stream's turn).
* ``GET /v1/sessions?limit=100`` with 16 and 64 sessions stored (limit=100 so every
  session is shaped and sent; the default page is 20): requests back to back on one
  keep-alive connection, and on 8 connections at once, over TCP; and on one connection
  over the Unix socket, to show what TCP alone adds. Peer: ``await
  store.list_sessions()`` in a loop on the server's loop (1 and 8 at once). For where
  the time goes, the JSON and the table also have the route's handler called in-process
  with a bare Starlette ``Request`` (store read, filters, ``session_shape`` for each
  session, JSON), without HTTP, uvicorn or the middleware.

Rate 200 events/s. ``--quick``: 1 s warm-up and 3 s measured per SSE case, 2 s per
listing case and 1 s for each in-process peer (under a minute in all); full: 3 s and
30 s, 10 s and 5 s. CPU over each measured window, as % of one core: the server
process (all its threads: the loop, aiosqlite's and the rest; the client process is
apart), the server's event loop thread, the client process, and the rest of the
machine ("other", from ``/proc/stat``: the machine may be shared). The output ends
with the verdict against the aim: p99 < 20 ms at 100 clients.

Run ``python bench/api.py [--quick] [--json]``; ``--json`` prints one JSON object
(figures, machine, verdict) instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import socket
import sqlite3
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

RATE = 200  # events/s injected, over all of a case's sessions
TEXT = ("The quick brown fox jumps over the lazy dog; " * 5)[:200]
DRAIN_S = 20.0  # how long clients may take after the last event before they give up
AIM_P99_MS = 20.0
AIM_CLIENTS = 100
PEER_NAME = "in-process bus subscriber"
LIST_PEER_NAME = "in-process store.list_sessions()"
SO_TIMESTAMPNS = 35  # Linux; the socket module does not name it (SCM_ is the same number)
ID_LINE = re.compile(rb"(?:^|\n)id: ([^\r\n]+)\r?\n")
T = TypeVar("T")


@dataclass(frozen=True)
class SseCase:
    name: str
    clients: int
    sessions: int
    transport: str  # "tcp" (with the key) or "unix"


SSE_CASES = (
    SseCase("1 client", 1, 1, "tcp"),
    SseCase("1 client, Unix socket", 1, 1, "unix"),
    SseCase("100 clients, 1 session", 100, 1, "tcp"),
    SseCase("100 clients, 10 sessions", 100, 10, "tcp"),
)


@dataclass(frozen=True)
class ListCase:
    sessions: int  # stored when it runs
    concurrency: int  # connections, each with requests back to back
    transport: str


LIST_CASES = (
    ListCase(16, 1, "tcp"),
    ListCase(16, 1, "unix"),  # the same over the socket: what TCP alone adds
    ListCase(16, 8, "tcp"),
    ListCase(64, 1, "tcp"),
    ListCase(64, 8, "tcp"),
)


@dataclass(frozen=True)
class Sizes:
    warmup_s: float
    measure_s: float
    list_s: float


SIZES = {
    "quick": Sizes(warmup_s=1.0, measure_s=3.0, list_s=2.0),
    "full": Sizes(warmup_s=3.0, measure_s=30.0, list_s=10.0),
}


@dataclass
class Latency:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class SseResult:
    case: str
    transport: str
    clients: int
    sessions: int
    events: int  # measured events injected
    injected_per_s: float  # achieved rate (below RATE when the loop cannot keep up)
    frames_per_s: float  # events x clients per session, per second of injection
    sse: Latency  # to the kernel's receive time (TCP), or to the client's read (Unix)
    sse_read: Latency  # to the client's read: adds the client's own queueing
    missing: int  # (client, event) pairs never received
    clients_missing: int
    peer: Latency
    peer_last: Latency
    p50_ratio: float
    p99_ratio: float
    cpu: Cpu


@dataclass
class ListResult:
    sessions: int
    concurrency: int
    transport: str
    requests: int
    per_s: float
    p50_ms: float
    p99_ms: float
    peer_per_s: float
    peer_p50_ms: float
    peer_p99_ms: float
    ratio: float  # HTTP requests/s over the peer's calls/s
    handler_per_s: float
    handler_p50_ms: float
    cpu: Cpu


@dataclass
class Timing:
    """Per-call durations and the wall time they took, from either side."""

    durations_ns: list[int] = field(default_factory=list)
    seconds: float = 0.0


# -- helpers ----------------------------------------------------------------------------


def percentile(sorted_values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency(values_ns: list[int]) -> Latency:
    if not values_ns:
        return Latency(0, float("nan"), float("nan"), float("nan"))
    ordered = sorted(values_ns)
    return Latency(
        samples=len(ordered),
        p50_ms=round(percentile(ordered, 0.50) / 1e6, 3),
        p99_ms=round(percentile(ordered, 0.99) / 1e6, 3),
        max_ms=round(ordered[-1] / 1e6, 3),
    )


def ratio(a: float, b: float) -> float:
    return round(a / b, 1) if b > 0 else float("inf")


# -- client process ---------------------------------------------------------------------
# Nothing from tui is imported on this side: the clients are what any HTTP client is.


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    key: str
    unix: str  # the server's Unix socket

    async def connect(self, transport: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if transport == "unix":
            return await asyncio.open_unix_connection(self.unix, limit=1 << 20)
        return await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    def request(self, path: str, transport: str, extra: str = "") -> bytes:
        key = f"x-api-key: {self.key}\r\n" if transport == "tcp" else ""
        return f"GET {path} HTTP/1.1\r\nhost: {self.host}\r\n{key}{extra}\r\n".encode()


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class SseStream:
    """One stream on a plain non-blocking socket, read from the selector's callback (no
    coroutine or timeout per read, so the client costs little next to the server).

    Over TCP each read also asks the kernel when the bytes arrived (``SO_TIMESTAMPNS``):
    100 streams read by one process are read in turn, and the kernel's time leaves out
    that queueing, which is the client's, not the server's. Unix stream sockets give no
    such time; there only the read time is known."""

    def __init__(self, sock: socket.socket, final_id: bytes, opened: Callable[[], None]) -> None:
        self.sock = sock
        self.final_id = final_id
        self.opened = opened
        self.got: list[tuple[bytes, int, int]] = []  # (event id, kernel time, read time)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head = True
        self.tail = b""

    def readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return
        except OSError as exc:
            self.finish(exc)
            return
        read = time.time_ns()
        kernel = read
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", value[:16])
                kernel = sec * 1_000_000_000 + nsec
        if not data:
            self.finish(None)
            return
        buf = self.tail + data
        if self.head:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.tail = buf
                return
            status = buf.split(b" ", 2)[1]
            if status != b"200":
                self.finish(RuntimeError(f"stream answered {status.decode()}"))
                return
            self.head = False
            self.opened()  # the server subscribed before it sent the head
            buf = buf[end + 4 :]
        # Chunked framing is left in: a chunk is one SSE frame, so an ``id:`` line is
        # never split by a chunk header; a line split by a read waits for the next one.
        end = buf.rfind(b"\n") + 1
        self.tail = buf[end:]
        for match in ID_LINE.finditer(buf, 0, end):
            event_id = match.group(1)
            self.got.append((event_id, kernel, read))
            if event_id == self.final_id:
                self.finish(None)

    def finish(self, error: BaseException | None) -> None:
        if self.done.done():
            return
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


async def open_stream(
    endpoint: Endpoint, transport: str, session: str, final_id: bytes, opened: Callable[[], None]
) -> SseStream:
    loop = asyncio.get_running_loop()
    if transport == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: Any = endpoint.unix
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        address = (endpoint.host, endpoint.port)
    sock.setblocking(False)
    await loop.sock_connect(sock, address)
    path = f"/v1/sessions/{session}/events/stream"
    await loop.sock_sendall(
        sock, endpoint.request(path, transport, "accept: text/event-stream\r\n")
    )
    stream = SseStream(sock, final_id, opened)
    loop.add_reader(sock.fileno(), stream.readable)
    return stream


async def sse_clients(endpoint: Endpoint, cmd: dict[str, Any], conn: Connection) -> dict[str, Any]:
    sessions: list[str] = cmd["sessions"]
    clients: int = cmd["clients"]
    finals: dict[str, bytes] = cmd["finals"]
    open_count = 0

    def opened() -> None:
        nonlocal open_count
        open_count += 1
        if open_count == clients:
            conn.send("ready")

    streams = []
    for n in range(clients):
        sid = sessions[n % len(sessions)]
        streams.append(await open_stream(endpoint, cmd["transport"], sid, finals[sid], opened))
    # A stream that never sees its last event is cut off at the deadline, as missing.
    await asyncio.wait([s.done for s in streams], timeout=cmd["timeout_s"])
    for stream in streams:
        stream.finish(None)
    for stream in streams:
        await stream.done
    return {"received": [(sessions[n % len(sessions)], s.got) for n, s in enumerate(streams)]}


async def list_client(
    endpoint: Endpoint, cmd: dict[str, Any], until: float, warm_until: float
) -> list[int]:
    """Requests back to back on one keep-alive connection; durations after the warm-up."""
    path, expect = cmd["path"], cmd["expect"]
    reader, writer = await endpoint.connect(cmd["transport"])
    request = endpoint.request(path, cmd["transport"])
    durations: list[int] = []
    checked = False
    try:
        while time.monotonic() < until:
            started = time.monotonic_ns()
            writer.write(request)
            status, headers = await read_head(reader)
            body = await reader.readexactly(int(headers[b"content-length"]))
            elapsed = time.monotonic_ns() - started
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
            if not checked:  # once: the page holds every stored session
                count = len(json.loads(body)["data"])
                if count != expect:
                    raise RuntimeError(f"GET {path} gave {count} sessions, not {expect}")
                checked = True
            if time.monotonic() >= warm_until:
                durations.append(elapsed)
    finally:
        writer.close()
    return durations


async def list_clients(endpoint: Endpoint, cmd: dict[str, Any]) -> dict[str, Any]:
    start = time.monotonic()
    warm_until = start + cmd["warmup_s"]
    until = warm_until + cmd["seconds"]
    runs = await asyncio.gather(
        *(list_client(endpoint, cmd, until, warm_until) for _ in range(cmd["concurrency"]))
    )
    return {
        "durations_ns": [d for run in runs for d in run],
        "seconds": time.monotonic() - warm_until,
    }


def client_main(conn: Connection, endpoint: Endpoint) -> None:
    """The client process: runs each command it is sent, answers with the figures."""
    while True:
        cmd = conn.recv()
        if cmd["kind"] == "quit":
            return
        try:
            if cmd["kind"] == "sse":
                result = asyncio.run(sse_clients(endpoint, cmd, conn))
            else:
                result = asyncio.run(list_clients(endpoint, cmd))
        except Exception as exc:  # reported by the parent, which stops the run
            result = {"error": f"{type(exc).__name__}: {exc}"}
        conn.send(result)


# -- server side ------------------------------------------------------------------------


class Server:
    """The real server in a thread of this process, and hooks into its store."""

    def __init__(self, data_dir: Path) -> None:
        from tui.server.daemon import Daemon, ServeOptions, hold_lock

        self.data_dir = data_dir
        self._lock = hold_lock(data_dir)
        self._lock.__enter__()
        self.daemon = Daemon(
            data_dir,
            ServeOptions(listen="127.0.0.1:0", script_speed=0, foreground_log=False),
        )
        self._failed: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="corral-bench-server", daemon=True)
        self.thread.start()
        if not self.daemon.ready.wait(60) or self._failed:
            raise RuntimeError(f"the server did not start: {self._failed}")
        info = json.loads((data_dir / "server.json").read_text())
        host, port = info["url"].removeprefix("http://").rsplit(":", 1)
        key = (data_dir / "server.key").read_text().strip()
        self.endpoint = Endpoint(host, int(port), key, info["socket"])
        # The daemon keeps its loop and app to itself; a benchmark reaches in for both.
        self.loop: asyncio.AbstractEventLoop = self.daemon._loop  # type: ignore[assignment]
        self.app: Any = self.daemon._servers[0].config.app
        self.store: Any = self.app.state.engine.store
        self.published: dict[str, int] = {}
        self._wrap_publish()

    def _run(self) -> None:
        try:
            asyncio.run(self.daemon.run())
        except BaseException as exc:
            self._failed.append(exc)
            self.daemon.ready.set()

    def _wrap_publish(self) -> None:
        # The writer publishes a group right after its COMMIT: the zero of every latency.
        from tui.core.session.events import Event

        bus = self.store.bus
        publish = bus.publish
        published = self.published

        def timed(items: list[Any]) -> None:
            now = time.time_ns()  # CLOCK_REALTIME, as the kernel stamps received bytes
            for item in items:
                if isinstance(item, Event):
                    published[item.id] = now
            publish(items)

        bus.publish = timed

    def call(self, coro: Awaitable[T], timeout: float = 600) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.daemon.stop()
        self.thread.join(60)
        self._lock.__exit__(None, None, None)


def make_sessions(server: Server, count: int, script: Path) -> list[str]:
    """Sessions made through the API (agent, environment, session; no message), so they
    are what a client lists and no runner has work."""
    import httpx2 as httpx

    ep = server.endpoint
    with httpx.Client(
        base_url=f"http://{ep.host}:{ep.port}", headers={"x-api-key": ep.key}, timeout=60
    ) as http:
        agent = http.post(
            "/v1/agents", json={"name": "bench", "model": f"scripted:{script}", "tools": []}
        )
        agent.raise_for_status()
        env = http.post(
            "/v1/environments",
            json={
                "name": "bench env",
                "config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": []}},
            },
        )
        env.raise_for_status()
        ids = []
        for n in range(count):
            made = http.post(
                "/v1/sessions",
                json={
                    "agent": agent.json()["id"],
                    "environment_id": env.json()["id"],
                    "title": f"bench {n}",
                    "metadata": {"bench": str(n)},
                },
            )
            made.raise_for_status()
            ids.append(made.json()["id"])
    return ids


async def subscriber(store: Any, session: str, final_id: str, got: dict[str, int]) -> None:
    """The peer: a bus subscription on the server's loop, timing each event it gets."""
    with store.bus.subscribe(session) as sub:
        while True:
            item = await sub.get()
            got[item.id] = time.time_ns()
            if item.id == final_id:
                return


async def inject(store: Any, plan: list[tuple[str, str]], rate: float) -> float:
    """Append ``plan``'s events at ``rate``; the seconds it took (late when the loop is)."""
    from tui.core.session import events as ev

    loop = asyncio.get_running_loop()
    interval = 1 / rate
    start = loop.time()
    futures = []
    for n, (sid, eid) in enumerate(plan):
        delay = start + n * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        futures.append(store.submit([ev.agent_message(sid, TEXT, eid)]))
    seconds = loop.time() - start
    await asyncio.gather(*futures)
    return seconds


async def loop_cpu() -> float:
    return time.thread_time()  # on the server's loop thread


def machine_busy_s() -> float:
    """CPU seconds the whole machine has used (all cores), from /proc/stat."""
    jiffies = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(jiffies[:8]) - jiffies[3] - jiffies[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cpu:
    """CPU used over a window, as % of one core: this process (the server: its loop,
    aiosqlite's thread and the rest), its loop thread, the client process, and whatever
    else ran on the machine meanwhile (it was shared)."""

    server_pct: float
    loop_pct: float
    client_pct: float
    other_pct: float


class CpuMeter:
    def __init__(self, server: Server, client_pid: int) -> None:
        self.server = server
        self.client_pid = client_pid
        self.start = self.sample()

    def sample(self) -> tuple[float, float, float, float, float]:
        return (
            time.monotonic(),
            time.process_time(),
            self.server.call(loop_cpu()),
            process_cpu_s(self.client_pid),
            machine_busy_s(),
        )

    def stop(self) -> Cpu:
        end = self.sample()
        wall, server, loop, client, busy = (b - a for a, b in zip(self.start, end, strict=True))
        return Cpu(
            server_pct=round(100 * server / wall, 1),
            loop_pct=round(100 * loop / wall, 1),
            client_pct=round(100 * client / wall, 1),
            other_pct=round(100 * max(0.0, busy - server - client) / wall, 1),
        )


def recv(conn: Connection, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"the client process did not answer in {timeout:.0f} s")
    answer = conn.recv()
    if isinstance(answer, dict) and "error" in answer:
        raise RuntimeError(f"client process: {answer['error']}")
    return answer


def run_sse(
    server: Server,
    conn: Connection,
    client_pid: int,
    case: SseCase,
    sessions: list[str],
    sizes: Sizes,
) -> SseResult:
    from tui.core.ids import event_id

    ids = sessions[: case.sessions]
    warm = int(sizes.warmup_s * RATE)
    total = warm + int(sizes.measure_s * RATE)
    # Ids are made here, so the clients know each session's last event before it is sent.
    plan = [(ids[n % len(ids)], event_id()) for n in range(total)]
    finals = {sid: eid for sid, eid in plan[-len(ids) :]}
    measured = plan[warm:]

    first: dict[str, int] = {}
    peers = [
        asyncio.run_coroutine_threadsafe(subscriber(server.store, s, finals[s], first), server.loop)
        for s in ids
    ]
    conn.send(
        {
            "kind": "sse",
            "sessions": ids,
            "clients": case.clients,
            "transport": case.transport,
            "finals": {s: e.encode() for s, e in finals.items()},
            "timeout_s": 30 + sizes.warmup_s + sizes.measure_s + DRAIN_S,
        }
    )
    ready = recv(conn, 60)
    assert ready == "ready", ready
    last: dict[str, int] = {}
    peers += [
        asyncio.run_coroutine_threadsafe(subscriber(server.store, s, finals[s], last), server.loop)
        for s in ids
    ]
    time.sleep(0.2)  # the last subscriber is subscribed once its task has started

    meter = CpuMeter(server, client_pid)
    injected_s = server.call(inject(server.store, plan, RATE))
    cpu = meter.stop()  # the injection's window, warm-up included
    for peer in peers:
        peer.result(DRAIN_S)
    answer = recv(conn, 60 + sizes.warmup_s + sizes.measure_s + DRAIN_S)

    published = server.published
    measured_ids = {eid: sid for sid, eid in measured}
    per_session = Counter(measured_ids.values())
    sse_ns: list[int] = []
    read_ns: list[int] = []
    missing = clients_missing = 0
    for sid, got in answer["received"]:
        seen = 0
        for raw_id, kernel, read in got:
            eid = raw_id.decode()
            if eid in measured_ids:
                sse_ns.append(kernel - published[eid])
                read_ns.append(read - published[eid])
                seen += 1
        if seen < per_session[sid]:
            missing += per_session[sid] - seen
            clients_missing += 1
    peer = latency([first[e] - published[e] for e in measured_ids])
    peer_last = latency([last[e] - published[e] for e in measured_ids])
    sse = latency(sse_ns)
    window = injected_s or 1e-9  # from the first event to the last
    return SseResult(
        case=case.name,
        transport=case.transport,
        clients=case.clients,
        sessions=case.sessions,
        events=len(measured),
        injected_per_s=round((len(plan) - 1) / window, 1),
        frames_per_s=round(len(plan) * case.clients / len(ids) / window, 1),
        sse=sse,
        sse_read=latency(read_ns),
        missing=missing,
        clients_missing=clients_missing,
        peer=peer,
        peer_last=peer_last,
        p50_ratio=ratio(sse.p50_ms, peer.p50_ms),
        p99_ratio=ratio(sse.p99_ms, peer.p99_ms),
        cpu=cpu,
    )


async def time_calls(fn: Callable[[], Awaitable[Any]], seconds: float, concurrency: int) -> Timing:
    """``fn`` back to back on ``concurrency`` tasks for ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        await fn()
    timing = Timing()
    until = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < until:
            started = time.monotonic_ns()
            await fn()
            timing.durations_ns.append(time.monotonic_ns() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    timing.seconds = time.monotonic() - started
    return timing


def handler_call(server: Server, path: str, query: bytes) -> Callable[[], Awaitable[Any]]:
    """The route's handler on a bare request: store read, shapes and JSON, no HTTP."""
    from starlette.requests import Request

    from tui.server.sessions import listing

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [],
        "app": server.app,
    }

    async def call() -> Any:
        response = await listing(Request(scope))
        assert response.status_code == 200
        return response.body

    return call


def run_list(
    server: Server,
    conn: Connection,
    client_pid: int,
    case: ListCase,
    sizes: Sizes,
    peers: dict[tuple[int, int], tuple[Timing, Timing]],
) -> ListResult:
    path = "/v1/sessions"
    query = b"limit=100"
    # In-process first, so the HTTP run's connections are the only thing on the loop later;
    # once per stored count and concurrency (the transport makes no difference to them).
    key = (case.sessions, case.concurrency)
    if key not in peers:
        peer = server.call(
            time_calls(server.store.list_sessions, sizes.list_s / 2, case.concurrency)
        )
        handler = server.call(
            time_calls(handler_call(server, path, query), sizes.list_s / 2, case.concurrency)
        )
        peers[key] = (peer, handler)
    peer, handler = peers[key]
    meter = CpuMeter(server, client_pid)
    conn.send(
        {
            "kind": "list",
            "path": f"{path}?{query.decode()}",
            "transport": case.transport,
            "concurrency": case.concurrency,
            "seconds": sizes.list_s,
            "warmup_s": 0.5,
            "expect": case.sessions,
        }
    )
    answer = recv(conn, 60 + sizes.list_s)
    cpu = meter.stop()  # connecting and the client's warm-up included
    http = latency(answer["durations_ns"])
    per_s = len(answer["durations_ns"]) / answer["seconds"]
    peer_lat = latency(peer.durations_ns)
    peer_per_s = len(peer.durations_ns) / peer.seconds
    return ListResult(
        sessions=case.sessions,
        concurrency=case.concurrency,
        transport=case.transport,
        requests=http.samples,
        per_s=round(per_s, 1),
        p50_ms=http.p50_ms,
        p99_ms=http.p99_ms,
        peer_per_s=round(peer_per_s, 1),
        peer_p50_ms=peer_lat.p50_ms,
        peer_p99_ms=peer_lat.p99_ms,
        ratio=round(per_s / peer_per_s, 3),
        handler_per_s=round(len(handler.durations_ns) / handler.seconds, 1),
        handler_p50_ms=latency(handler.durations_ns).p50_ms,
        cpu=cpu,
    )


def write_script(path: Path) -> Path:
    # One turn the sessions never get to: nothing is ever sent to them.
    path.write_text('price_as = "claude-sonnet-4-5"\n[[turns]]\ntext = "ok"\n')
    return path


def run(sizes: Sizes, progress: bool) -> tuple[list[SseResult], list[ListResult]]:
    say: Callable[[str], None] = (
        (lambda m: print(m, file=sys.stderr)) if progress else (lambda m: None)
    )
    with tempfile.TemporaryDirectory(prefix="corral-bench-api-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        script = write_script(Path(tmp) / "idle.toml")
        server = Server(data_dir)
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        client = ctx.Process(target=client_main, args=(child, server.endpoint), daemon=True)
        client.start()
        pid = client.pid
        assert pid is not None
        try:
            lists: list[ListResult] = []
            sessions: list[str] = []
            peers: dict[tuple[int, int], tuple[Timing, Timing]] = {}
            for lc in LIST_CASES:
                if lc.sessions > len(sessions):
                    sessions += make_sessions(server, lc.sessions - len(sessions), script)
                lists.append(run_list(server, parent, pid, lc, sizes, peers))
                say(f"  GET /v1/sessions, {lc.sessions} sessions, {lc.concurrency} {lc.transport}")
            # The SSE cases need 10 sessions; make them if the listing cases did not.
            if len(sessions) < 10:
                sessions += make_sessions(server, 10 - len(sessions), script)
            sses = []
            for case in SSE_CASES:
                sses.append(run_sse(server, parent, pid, case, sessions, sizes))
                say(f"  SSE {case.name}: done")
                time.sleep(0.5)  # closed streams' subscriptions go before the next case
            parent.send({"kind": "quit"})
            client.join(10)
        finally:
            if client.is_alive():
                client.kill()
            server.close()
    return sses, lists


# -- machine and output ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    import h11
    import sse_starlette
    import starlette
    import uvicorn

    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "sqlite": sqlite3.sqlite_version,
        "uvicorn": uvicorn.__version__,
        "h11": h11.__version__,
        "starlette": starlette.__version__,
        "sse_starlette": getattr(sse_starlette, "__version__", "?"),
    }


def aim(sses: list[SseResult]) -> dict[str, Any]:
    verdict: dict[str, Any] = {"p99_ms_target": AIM_P99_MS, "clients": AIM_CLIENTS}
    for r in sses:
        if r.clients == AIM_CLIENTS:
            verdict[r.case] = {
                "p99_ms": r.sse.p99_ms,
                "missing": r.missing,
                "met": r.sse.p99_ms < AIM_P99_MS and r.missing == 0,
            }
    return verdict


def report_json(mode: str, sses: list[SseResult], lists: list[ListResult]) -> str:
    return json.dumps(
        {
            "benchmark": "api",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "rate_events_per_s": RATE,
            "peer": PEER_NAME,
            "list_peer": LIST_PEER_NAME,
            "machine": machine(),
            "sse": [asdict(r) for r in sses],
            "list": [asdict(r) for r in lists],
            "aim": aim(sses),
        },
        indent=2,
    )


def report_table(mode: str, sses: list[SseResult], lists: list[ListResult]) -> str:
    lines = [
        f"corral serve /v1 vs {PEER_NAME} / {LIST_PEER_NAME}; mode={mode}, {RATE} events/s",
        f"machine: {machine()}",
        "",
        "SSE delivery, publish -> received (ms; TCP: kernel receive time, Unix: read time;"
        " read p99: to the client's read); peer: bus subscriber on the server's loop",
        f"{'case':<26} {'tr':>4} {'cl':>4} {'events':>6} {'ev/s':>6} {'frames/s':>8}"
        f" {'p50':>7} {'p99':>7} {'max':>7} {'read p99':>8} {'missing':>7}"
        f" {'peer p50':>8} {'peer p99':>8} {'peer max':>8} {'p50 x':>6} {'p99 x':>6}"
        f" {'srv%':>5} {'loop%':>5} {'cli%':>5} {'oth%':>5}",
    ]
    for r in sses:
        lines.append(
            f"{r.case:<26} {r.transport:>4} {r.clients:>4} {r.events:>6} {r.injected_per_s:>6.0f}"
            f" {r.frames_per_s:>8,.0f} {r.sse.p50_ms:>7.2f} {r.sse.p99_ms:>7.2f}"
            f" {r.sse.max_ms:>7.1f} {r.sse_read.p99_ms:>8.2f} {r.missing:>7}"
            f" {r.peer.p50_ms:>8.3f} {r.peer.p99_ms:>8.3f}"
            f" {r.peer.max_ms:>8.2f} {r.p50_ratio:>5.0f}x {r.p99_ratio:>5.0f}x"
            f" {r.cpu.server_pct:>5.0f} {r.cpu.loop_pct:>5.0f} {r.cpu.client_pct:>5.0f}"
            f" {r.cpu.other_pct:>5.0f}"
        )
    lines += [
        "",
        "GET /v1/sessions?limit=100; peer: store.list_sessions() on the server's loop",
        f"{'sessions':>8} {'conc':>4} {'tr':>4} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'peer/s':>8} {'peer p50':>8} {'peer p99':>8} {'http/peer':>9}"
        f" {'handler/s':>9} {'hdl p50':>7} {'srv%':>5} {'loop%':>5} {'cli%':>5} {'oth%':>5}",
    ]
    for r in lists:
        lines.append(
            f"{r.sessions:>8} {r.concurrency:>4} {r.transport:>4} {r.per_s:>8,.0f} {r.p50_ms:>7.2f}"
            f" {r.p99_ms:>7.2f} {r.peer_per_s:>8,.0f} {r.peer_p50_ms:>8.3f}"
            f" {r.peer_p99_ms:>8.3f} {r.ratio:>8.3f}x {r.handler_per_s:>9,.0f}"
            f" {r.handler_p50_ms:>7.2f} {r.cpu.server_pct:>5.0f} {r.cpu.loop_pct:>5.0f}"
            f" {r.cpu.client_pct:>5.0f} {r.cpu.other_pct:>5.0f}"
        )
    lines.append("")
    for case, v in aim(sses).items():
        if isinstance(v, dict):
            lines.append(
                f"aim p99 < {AIM_P99_MS:g} ms at {AIM_CLIENTS} clients ({case}):"
                f" {'met' if v['met'] else 'NOT met'} (p99 {v['p99_ms']:.2f} ms,"
                f" {v['missing']} missing)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows: under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    sses, lists = run(SIZES[mode], progress=not args.json)
    print(report_json(mode, sses, lists) if args.json else report_table(mode, sses, lists))
    return 0


if __name__ == "__main__":
    sys.exit(main())
