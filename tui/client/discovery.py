"""Finding the server of a data dir, and starting one when there is none.

A server leaves ``server.json`` (0600) in its data dir once it answers: its pid, its
Unix socket and, if asked to listen on TCP, its URL. A client trusts that file only as
far as a ping over the socket agrees with it, since a killed server leaves it behind.
Starting is race-free because only a server ever takes the data dir's lock: two
commands that both start one get one server, and the loser's child exits at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tui.core.errors import CorralError
from tui.core.printable import printable_line
from tui.core.store.datadir import ensure_data_dir

INFO_FILE = "server.json"
LOCK_FILE = "server.lock"
SOCKET_FILE = "corral.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
START_TIMEOUT_S = 60.0
SERVE_COMMAND = (sys.executable, "-m", "tui")
DETACHED = ("--foreground", "--detached")  # in the child, with no terminal to log to
# A server started on demand stops after this long with no session working and no client
# connected (idle sessions lose nothing: the next command starts a server that has them).
ON_DEMAND_IDLE_EXIT_S = 3600


class ServerError(CorralError):
    """No server answers for the data dir, and none could be started."""


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    socket: Path
    url: str | None  # TCP, when the server listens there too
    started_at: str
    version: str


def info_path(data_dir: Path) -> Path:
    return data_dir / INFO_FILE


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_FILE


def log_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


def socket_path(data_dir: Path) -> Path:
    """The socket in the data dir; a data dir too deep for a socket path gets one in a
    private directory of the user's (0700) named by the data dir's hash."""
    path = data_dir / SOCKET_FILE
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return base / f"corral-{os.getuid()}" / f"{digest}.sock"


def private_dir(path: Path) -> None:
    """Make ``path`` a directory only its owner can enter; refuse one someone else owns
    (in a shared /tmp, a directory made first by another user would hold our socket)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if st.st_uid != os.getuid() or not path.is_dir() or path.is_symlink():
        raise ServerError(f"{path} is not a directory of yours; refusing to put a socket there")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


def read_info(data_dir: Path) -> ServerInfo | None:
    try:
        raw = json.loads(info_path(data_dir).read_text("utf-8"))
        info = ServerInfo(
            pid=int(raw["pid"]),
            socket=Path(str(raw["socket"])),
            url=None if raw.get("url") is None else str(raw["url"]),
            started_at=str(raw["started_at"]),
            version=str(raw["version"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def ping(info: ServerInfo, timeout: float = 2.0) -> dict[str, Any] | None:
    """The server's own account of itself over its socket, or None if nobody answers."""
    try:
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=str(info.socket)), timeout=timeout
        ) as http:
            response = http.get("http://corral/v1/corral/server")
        body = response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    if response.status_code != 200 or not isinstance(body, dict) or body.get("pid") != info.pid:
        return None
    return body


def running_server(data_dir: Path) -> ServerInfo | None:
    info = read_info(data_dir)
    if info is None or ping(info) is None:
        return None
    return info


def ensure_server(
    data_dir: Path,
    serve_args: tuple[str, ...] = (),
    *,
    idle_exit: float | None = None,
    timeout: float = START_TIMEOUT_S,
) -> ServerInfo:
    """The running server of ``data_dir``, started (detached, left running) if need be,
    with ``serve_args`` (``--speed``, ``--max-concurrent``) if this call starts it.
    ``idle_exit``: seconds idle before it stops (0: never; None: as started on demand)."""
    info = running_server(data_dir)
    if info is not None:
        return info
    ensure_data_dir(data_dir)
    logs = log_dir(data_dir)
    private_dir(logs)
    start_log = logs / "server-start.log"
    if idle_exit is None:
        idle_exit = float(os.environ.get("CORRAL_SERVER_IDLE_EXIT") or ON_DEMAND_IDLE_EXIT_S)
    idle = ("--idle-exit", repr(idle_exit))
    with open(start_log, "ab") as out:
        os.chmod(start_log, 0o600)
        child = subprocess.Popen(
            [*SERVE_COMMAND, "--data-dir", str(data_dir), "serve", *DETACHED, *idle, *serve_args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C spares it
            close_fds=True,
        )
    # Reap it if it dies while we live (a zombie would look alive to the next command).
    threading.Thread(target=child.wait, name="corral-server-reaper", daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = running_server(data_dir)
        if info is not None:
            return info
        code = child.returncode
        if code is not None and code != 3:  # 3: another server won the lock; wait for it
            raise ServerError(f"the corral server did not start: {_last_line(start_log)}")
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        child.terminate()
    raise ServerError(f"the corral server did not answer within {timeout:g}s (see {start_log})")


def _last_line(path: Path) -> str:
    try:
        lines = path.read_bytes()[-4096:].decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return "no output"
    return printable_line(lines[-1]) if lines else "no output"
