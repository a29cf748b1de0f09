"""Which process runs the sessions of a data dir: the lease, kept alive by heartbeats, so
that no second engine (a server, or a test's supervisor) runs the same sessions."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from tui.core.errors import StoreBusyError

LEASE_STALE_SECONDS = 10.0


def lease_is_live(pid: int, heartbeat: float) -> bool:
    if time.time() - heartbeat > LEASE_STALE_SECONDS:
        return False
    return pid_alive(pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Killed but not yet reaped by its parent: dead, whatever kill(0) says."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (macOS): kill(0) is all there is
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def claim(conn: sqlite3.Connection, data_dir: Path) -> None:
    row = conn.execute("SELECT pid, heartbeat FROM lease WHERE id=1").fetchone()
    if row is not None and row[0] != os.getpid() and lease_is_live(row[0], row[1]):
        raise StoreBusyError(f"another corral (pid {row[0]}) is running sessions on {data_dir}")
    conn.execute(
        "INSERT OR REPLACE INTO lease (id, pid, heartbeat) VALUES (1, ?, ?)",
        (os.getpid(), time.time()),
    )


def beat(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE lease SET heartbeat=? WHERE id=1 AND pid=?", (time.time(), os.getpid()))


def release(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM lease WHERE id=1 AND pid=?", (os.getpid(),))
