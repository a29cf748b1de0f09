"""Servers for tests: a real ``corral serve`` process (over TCP with its key, and its
socket), or the server of a data dir in a thread of the test process, so that what a
test monkeypatches reaches the engine while the CLI or the SDK talk to it as to any
server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx2 as httpx

from tui.client.engine import EngineClient
from tui.server.daemon import Daemon, ServeOptions, hold_lock

from .conftest import REPO, remove_test_containers

T = TypeVar("T")
CORRAL = (sys.executable, "-m", "tui")
LISTEN = ("--listen", "127.0.0.1:0")


@dataclass
class Served:
    data_dir: Path
    proc: subprocess.Popen[bytes]
    url: str
    socket: str
    key: str

    def client(self, **kwargs: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.url,
            api_key=kwargs.pop("api_key", self.key),
            _strict_response_validation=True,
            max_retries=0,
            **kwargs,
        )


def start_server(data_dir: Path, *extra: str) -> Served:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "server.json").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [*CORRAL, "--data-dir", str(data_dir), "serve", "--foreground", *LISTEN, *extra],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            info = json.loads((data_dir / "server.json").read_text())
            if info["pid"] == proc.pid:
                key = (data_dir / "server.key").read_text().strip()
                return Served(data_dir, proc, info["url"], info["socket"], key)
        except (OSError, ValueError, KeyError):
            pass
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not start")


def stop_server(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(30)
    remove_test_containers(served.data_dir.parent)  # a module's server outlives tmp_path


class ThreadServer:
    """The data dir's server in a thread of this process, holding the data dir's lock."""

    def __init__(self, data_dir: Path, options: ServeOptions) -> None:
        self.data_dir = data_dir
        self.daemon = Daemon(data_dir, options)
        self._failed: list[BaseException] = []
        self._lock = hold_lock(data_dir)
        self._thread = threading.Thread(target=self._run, name="corral-test-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.daemon.run())
        except BaseException as exc:
            self._failed.append(exc)
            self.daemon.ready.set()

    def start(self) -> Daemon:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.__enter__()
        self._thread.start()
        assert self.daemon.ready.wait(60), "the server did not start"
        if self._failed:
            self._lock.__exit__(None, None, None)
            raise self._failed[0]
        return self.daemon

    def stop(self) -> None:
        self.daemon.stop()
        self._thread.join(60)
        self._lock.__exit__(None, None, None)
        assert not self._thread.is_alive(), "the server did not stop"


@contextmanager
def server_in_thread(data_dir: Path, options: ServeOptions | None = None) -> Iterator[Daemon]:
    server = ThreadServer(data_dir, options or ServeOptions(script_speed=0, foreground_log=False))
    daemon = server.start()
    try:
        yield daemon
    finally:
        server.stop()
        remove_test_containers(data_dir.parent)


# Servers a test started without a with-block (``demo_app``): stopped when it ends.
STARTED: dict[Path, ThreadServer] = {}


def app_server(data_dir: Path, speed: float = 0) -> Daemon:
    """The data dir's server for this test, in this process (so a frozen clock or a
    monkeypatch reaches the engine), started on first use."""
    if data_dir not in STARTED:
        options = ServeOptions(script_speed=speed, foreground_log=False)
        STARTED[data_dir] = server = ThreadServer(data_dir, options)
        server.start()
    return STARTED[data_dir].daemon


def stop_test_servers() -> None:
    while STARTED:
        _, server = STARTED.popitem()
        server.stop()


@contextmanager
def socket_client(daemon: Daemon) -> Iterator[httpx.Client]:
    """An HTTP client over the server's Unix socket (no key: the socket's mode decides)."""
    transport = httpx.HTTPTransport(uds=str(daemon.data_dir / "corral.sock"))
    with httpx.Client(transport=transport, base_url="http://corral", timeout=60) as client:
        yield client


async def on_server(daemon: Daemon, work: Callable[[EngineClient], Awaitable[T]]) -> T:
    """Run ``work`` with the engine, on the server's own event loop (from a test's)."""
    assert daemon.loop is not None and daemon.engine is not None
    engine = daemon.engine
    future = asyncio.run_coroutine_threadsafe(_call(work, engine), daemon.loop)
    return await asyncio.wrap_future(future)


async def _call(work: Callable[[EngineClient], Awaitable[T]], engine: EngineClient) -> T:
    return await work(engine)
