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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx

from tui.server.daemon import Daemon, ServeOptions, hold_lock

from .conftest import REPO

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


@contextmanager
def server_in_thread(data_dir: Path, options: ServeOptions | None = None) -> Iterator[Daemon]:
    data_dir.mkdir(parents=True, exist_ok=True)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(daemon.run())
        except BaseException as exc:
            failed.append(exc)
            daemon.ready.set()

    with hold_lock(data_dir):
        daemon = Daemon(data_dir, options or ServeOptions(script_speed=0, foreground_log=False))
        thread = threading.Thread(target=run, name="corral-test-server", daemon=True)
        thread.start()
        assert daemon.ready.wait(60), "the server did not start"
        if failed:
            raise failed[0]
        try:
            yield daemon
        finally:
            daemon.stop()
            thread.join(60)
            assert not thread.is_alive(), "the server did not stop"


@contextmanager
def socket_client(daemon: Daemon) -> Iterator[httpx.Client]:
    """An HTTP client over the server's Unix socket (no key: the socket's mode decides)."""
    transport = httpx.HTTPTransport(uds=str(daemon.data_dir / "corral.sock"))
    with httpx.Client(transport=transport, base_url="http://corral", timeout=60) as client:
        yield client
