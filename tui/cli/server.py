"""``corral serve`` and ``corral server status|stop|logs|key``: the data dir's server."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path

from tui.cli.options import bounded, engine_options
from tui.client.discovery import (
    ServerError,
    ensure_server,
    log_dir,
    ping,
    read_info,
    running_server,
)
from tui.core.errors import UsageError
from tui.core.printable import printable_line
from tui.core.store.datadir import resolve_data_dir

STOP_TIMEOUT_S = 30.0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the server of this data dir (the engine, over an API)")
    p.add_argument(
        "--foreground", action="store_true", help="run in this process (for systemd, launchd)"
    )
    p.add_argument("--listen", metavar="HOST:PORT", help="also serve TCP (needs the key)")
    p.add_argument(
        "--allow-remote", action="store_true", help="let --listen bind a non-loopback address"
    )
    p.add_argument("--tls-cert", type=Path, help="serve TCP over TLS with this certificate")
    p.add_argument("--tls-key", type=Path, help="the certificate's private key")
    engine_options(p)
    p.add_argument(
        "--idle-exit",
        type=bounded(float, 0, 10**7),
        default=0.0,
        metavar="SECONDS",
        help="stop after this long with no session working and no client (default: never)",
    )
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("server", help="the server of this data dir: status, stop, logs, key")
    what = p.add_subparsers(dest="server_command", required=True)
    what.add_parser("status", help="whether it runs, where, and since when")
    what.add_parser("stop", help="stop it (running sessions are left idle and resumable)")
    q = what.add_parser("logs", help="its log")
    q.add_argument("-n", "--lines", type=bounded(int, 1, 10**6), default=50)
    q.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    q = what.add_parser("key", help="the key TCP clients send as x-api-key")
    q.add_argument("--show", action="store_true", help="print the key itself (for scripts)")


async def cmd_serve(args: argparse.Namespace) -> int:
    """``corral serve``: make sure the server runs (started detached if need be)."""
    if args.listen or args.tls_cert or args.tls_key:
        raise UsageError("--listen and TLS options need --foreground (or a service file)")
    data_dir = resolve_data_dir(args.data_dir)
    info = await asyncio.to_thread(ensure_server, data_dir, (), idle_exit=args.idle_exit)
    print(f"corral server {info.pid} on unix:{printable_line(str(info.socket))}")
    return 0


def serve_foreground(args: argparse.Namespace) -> int:
    """``corral serve --foreground``: the server in this process, on the main thread (its
    signal handlers need it), until SIGTERM or SIGINT."""
    # Imported here: only the server needs uvicorn and Starlette.
    from tui.server.daemon import ServeOptions, serve

    options = ServeOptions(
        listen=args.listen,
        allow_remote=args.allow_remote,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_concurrent=args.max_concurrent,
        script_speed=args.speed,
        idle_exit=args.idle_exit,
        foreground_log=not args.detached,
    )
    return serve(resolve_data_dir(args.data_dir), options)


async def cmd_server(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data_dir)
    command = args.server_command
    if command == "status":
        return _status(data_dir)
    if command == "stop":
        return await asyncio.to_thread(_stop, data_dir)
    if command == "logs":
        return await _logs(data_dir, args.lines, args.follow)
    return _key(data_dir, args.show)


def _status(data_dir: Path) -> int:
    info = read_info(data_dir)
    about = ping(info) if info is not None else None
    if info is None or about is None:
        print(f"corral: no corral server runs on {printable_line(str(data_dir))}", file=sys.stderr)
        return 1
    print(f"corral server {info.pid} (version {printable_line(info.version)})")
    print(f"  data dir   {printable_line(str(data_dir))}")
    print(f"  socket     unix:{printable_line(str(info.socket))}")
    if info.url:
        print(f"  tcp        {printable_line(info.url)} (key: corral server key)")
    print(f"  since      {printable_line(info.started_at)}")
    print(f"  sessions   {about.get('sessions')} stored, {about.get('sessions_working')} working")
    return 0


def _stop(data_dir: Path) -> int:
    info = running_server(data_dir)
    if info is None:
        print(f"no corral server runs on {printable_line(str(data_dir))}")
        return 0
    about = ping(info) or {}
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise ServerError(f"the server (pid {info.pid}) did not stop within {STOP_TIMEOUT_S:g}s")
    working = about.get("sessions_working") or 0
    note = (
        f"; {working} working session(s) left idle: `corral resume` carries on" if working else ""
    )
    print(f"stopped corral server {info.pid}{note}")
    return 0


async def _logs(data_dir: Path, lines: int, follow: bool) -> int:
    path = log_dir(data_dir) / "server.log"
    try:
        handle = open(path, "rb")  # noqa: SIM115 - kept open to follow
    except FileNotFoundError:
        print(f"no server log yet ({printable_line(str(path))})")
        return 0
    with handle:
        for line in deque(handle, maxlen=lines):
            _print_log_line(line)
        while follow:
            line = handle.readline()
            if line:
                _print_log_line(line)
                continue
            if _rotated(path, handle):
                handle.close()
                handle = open(path, "rb")  # noqa: SIM115
                continue
            await asyncio.sleep(0.25)
    return 0


def _rotated(path: Path, handle: object) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino  # type: ignore[attr-defined]
    except FileNotFoundError:
        return False


def _print_log_line(raw: bytes) -> None:
    # The log holds model and tool text too: shown with escapes, never interpreted.
    sys.stdout.write(printable_line(raw.decode("utf-8", "replace").rstrip("\n")) + "\n")
    sys.stdout.flush()


def _key(data_dir: Path, show: bool) -> int:
    from tui.server.auth import key_path, load_or_make_key

    key = load_or_make_key(data_dir)
    if show:
        print(key)
        return 0
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:12]
    print(f"key file     {printable_line(str(key_path(data_dir)))} (0600)")
    print(f"fingerprint  sha256:{fingerprint}")
    print("print it with: corral server key --show   (SDK: api_key=..., sent as x-api-key)")
    return 0


COMMANDS = {"serve": cmd_serve, "server": cmd_server}
