"""Which process runs the sessions of a data dir (the lease, kept alive by heartbeats),
and the inbox through which other processes send it commands and hear the answers."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from tui.core.clock import utc_now
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


def inbox_put(conn: sqlite3.Connection, session_id: str, kind: str, payload: dict[str, Any]) -> int:
    cursor = conn.execute(
        "INSERT INTO inbox (session_id, kind, payload, created_at) VALUES (?,?,?,?)",
        (session_id, kind, json.dumps(payload), utc_now().isoformat()),
    )
    return int(cursor.lastrowid or 0)


def inbox_take(conn: sqlite3.Connection) -> list[tuple[int, str, str, dict[str, Any]]]:
    rows = conn.execute(
        "SELECT id, session_id, kind, payload FROM inbox WHERE taken = 0 ORDER BY id"
    ).fetchall()
    if rows:
        conn.execute("UPDATE inbox SET taken = 1 WHERE taken = 0 AND id <= ?", (rows[-1][0],))
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


def inbox_answer(conn: sqlite3.Connection, command_id: int, outcome: str) -> None:
    conn.execute("UPDATE inbox SET outcome = ? WHERE id = ?", (outcome, command_id))
    # Answers nobody collected (the sender gave up) do not pile up.
    conn.execute(
        "DELETE FROM inbox WHERE outcome IS NOT NULL AND created_at < ?",
        ((utc_now() - timedelta(hours=1)).isoformat(),),
    )
