"""``corral serve``: one server per data dir, owning its store, supervisor, sandboxes and
providers, until it is told to stop.

The data dir's lock (``fcntl``, released by the kernel when the process dies) makes
the server the only one; a killed server's lock is simply free, and the next server
takes over and resumes the sessions the dead one left running (their workspaces back
at their last checkpoints). The Unix socket is created 0600 (the umask is narrowed
before ``bind``, so it is never briefly open to others); TCP is opt-in, keyed, and
loopback unless ``--allow-remote``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import logging.handlers
import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from tui import __version__
from tui.client.discovery import (
    ServerError,
    info_path,
    lock_path,
    log_dir,
    private_dir,
    read_info,
    socket_path,
)
from tui.client.engine import EngineClient
from tui.core.clock import utc_now
from tui.core.session.state import WORKING
from tui.core.store.datadir import ensure_data_dir
from tui.server.app import build_app
from tui.server.auth import load_or_make_key
from tui.server.shapes import iso

log = logging.getLogger("corral.server")

LOCKED_EXIT = 3  # another server holds the data dir (its starter waits for that one)
LOG_BYTES = 4 << 20
LOG_BACKUPS = 3
IDLE_CHECK_S = 1.0


class ServerRunning(ServerError):
    exit_code = LOCKED_EXIT


@dataclass(frozen=True)
class ServeOptions:
    listen: str | None = None  # HOST:PORT for TCP besides the socket
    allow_remote: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_concurrent: int = 8
    script_speed: float = 1.0
    idle_exit: float = 0.0  # seconds with nothing live and nobody connected; 0: never
    foreground_log: bool = True  # also log to stderr


@dataclass(frozen=True)
class Listener:
    sock: socket.socket
    url: str | None  # None for the Unix socket
    tls: bool = False


def serve(data_dir: Path, options: ServeOptions) -> int:
    """Run the server until SIGTERM/SIGINT (or idle exit); the process's exit code."""
    ensure_data_dir(data_dir)
    with hold_lock(data_dir):
        _setup_logging(data_dir, options.foreground_log)
        asyncio.run(Daemon(data_dir, options).run())
    return 0


@contextlib.contextmanager
def hold_lock(data_dir: Path) -> Iterator[None]:
    fd = os.open(lock_path(data_dir), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_info(data_dir)
            who = f" (pid {holder.pid})" if holder else ""
            raise ServerRunning(f"a corral server{who} already runs on {data_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the fd drops the lock


class Daemon:
    """The engine of a data dir behind its listeners, from start to a clean stop. The
    caller holds the data dir's lock."""

    def __init__(self, data_dir: Path, options: ServeOptions) -> None:
        self.data_dir = data_dir
        self.options = options
        self._servers: list[_Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.ready = threading.Event()  # set once server.json says where it listens
        self.engine: EngineClient | None = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        options = self.options
        engine = await EngineClient.open(
            self.data_dir, max_concurrent=options.max_concurrent, script_speed=options.script_speed
        )
        self.engine = engine  # for a test that runs the server in a thread of its own
        listeners: list[Listener] = []
        try:
            recovered = await engine.attach(resume_recovered=True)
            if recovered:
                log.info("took over from a server that died: resumed %s", ", ".join(recovered))
            key = load_or_make_key(self.data_dir) if options.listen else None
            app = build_app(engine, key=key, started_at=utc_now())
            listeners = [_unix_listener(self.data_dir)]
            if options.listen:
                listeners.append(_tcp_listener(options))
            self._servers = [_uvicorn(app, listener, options) for listener in listeners]
            _write_info(self.data_dir, listeners)
            if threading.current_thread() is threading.main_thread():
                self._on_signals()
            if options.idle_exit > 0:
                watch = asyncio.create_task(self._idle_exit(engine, options.idle_exit))
            log.info("serving %s", ", ".join(_describe(lst) for lst in listeners))
            self.ready.set()
            if self._stopping:
                return
            pairs = zip(self._servers, listeners, strict=True)
            await asyncio.gather(*(server.serve(sockets=[lst.sock]) for server, lst in pairs))
            if options.idle_exit > 0:
                watch.cancel()
        finally:
            _remove_info(self.data_dir, listeners)
            await engine.close()
            log.info("stopped")

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def stop(self) -> None:
        """Ask for a clean stop, from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop)

    def _stop(self, force: bool = False) -> None:
        self._stopping = True
        for server in self._servers:
            if server.should_exit or force:
                server.force_exit = True  # asked twice: stop waiting for clients
            server.should_exit = True

    def _on_signals(self) -> None:
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            log.info("%s: stopping", sig.name)
            self._stop()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, on_signal, sig)

    async def _idle_exit(self, engine: EngineClient, after: float) -> None:
        """Stop once no session works and no client is connected for ``after`` seconds."""
        idle = 0.0
        while True:
            await asyncio.sleep(IDLE_CHECK_S)
            # Idle sessions need no server: the next command starts one, which picks them up.
            sessions = await engine.store.list_sessions()
            busy = any(r.state is not None and r.state.status in WORKING for r in sessions) or any(
                s.server_state.connections for s in self._servers
            )
            idle = 0.0 if busy else idle + IDLE_CHECK_S
            if idle >= after:
                log.info("idle for %gs: stopping", after)
                self._stop()
                return


def _unix_listener(data_dir: Path) -> Listener:
    path = socket_path(data_dir)
    if path.parent != data_dir:
        private_dir(path.parent)
    # We hold the lock, so a socket file here is a dead server's; anything else is not ours.
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise ServerError(f"{path} exists and is not a socket; refusing to replace it")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(256)
    return Listener(sock, None)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ServerError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8765")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name might resolve anywhere


def _tcp_listener(options: ServeOptions) -> Listener:
    assert options.listen is not None
    host, port = parse_listen(options.listen)
    tls = options.tls_cert is not None
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ServerError("--tls-cert and --tls-key go together")
    if not is_loopback(host):
        if not options.allow_remote:
            raise ServerError(
                f"--listen {options.listen} is reachable from other machines: pass"
                " --allow-remote to mean it (and see to TLS: --tls-cert/--tls-key or a proxy)"
            )
        if not tls:
            print(
                "corral serve: plain HTTP on a non-loopback address; requests and the key"
                " cross the network unencrypted. TLS is yours to add (--tls-cert/--tls-key"
                " or a proxy in front).",
                file=sys.stderr,
            )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off only on sockets whose proto says
    # TCP, and with Nagle a response written as head then body waits out the client's
    # delayed ACK (about 40 ms a request, measured by bench/api.py).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {options.listen}: {exc.strerror}") from None
    sock.listen(256)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return Listener(sock, f"{'https' if tls else 'http'}://{shown}:{bound}", tls)


class _Server(uvicorn.Server):
    # Several of these share one process: the daemon handles signals for all of them.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn(app: object, listener: Listener, options: ServeOptions) -> _Server:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        ssl_certfile=str(options.tls_cert) if listener.tls and options.tls_cert else None,
        ssl_keyfile=str(options.tls_key) if listener.tls and options.tls_key else None,
    )
    return _Server(config)


def _write_info(data_dir: Path, listeners: list[Listener]) -> None:
    unix = next(lst for lst in listeners if lst.url is None)
    tcp = next((lst.url for lst in listeners if lst.url is not None), None)
    body = {
        "pid": os.getpid(),
        "socket": unix.sock.getsockname(),
        "url": tcp,
        "started_at": iso(utc_now()),
        "version": __version__,
    }
    tmp = info_path(data_dir).with_name(f".server.json.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(body, f)
    os.replace(tmp, info_path(data_dir))


def _remove_info(data_dir: Path, listeners: list[Listener]) -> None:
    info = read_info(data_dir)
    if info is not None and info.pid == os.getpid():
        info_path(data_dir).unlink(missing_ok=True)
    for listener in listeners:
        if listener.url is None:
            with contextlib.suppress(OSError):
                os.unlink(listener.sock.getsockname())
        listener.sock.close()


def _describe(listener: Listener) -> str:
    return listener.url or f"unix:{listener.sock.getsockname()}"


def _setup_logging(data_dir: Path, to_stderr: bool) -> None:
    logs = log_dir(data_dir)
    private_dir(logs)
    path = logs / "server.log"
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    os.chmod(path, 0o600)
    handlers: list[logging.Handler] = [handler]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(logging.INFO)
