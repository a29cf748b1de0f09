"""The store's schema, as numbered migrations applied in order (PRAGMA user_version)."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from tui.core.errors import StoreError

MIGRATIONS: tuple[str, ...] = (
    # 1: sessions, the append-only event log, the usage projection, the inbox, the lease.
    """
    CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,
        title       TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        spec        TEXT NOT NULL,
        model       TEXT NOT NULL,
        sandbox     TEXT NOT NULL DEFAULT '',
        isolation   TEXT NOT NULL DEFAULT '',
        workspace   TEXT NOT NULL,
        metadata    TEXT NOT NULL DEFAULT '{}'
    );
    -- A rowid table: a group commit across many sessions appends to one b-tree
    -- instead of touching a page per session.
    CREATE TABLE events (
        session_id   TEXT NOT NULL REFERENCES sessions(id),
        seq          INTEGER NOT NULL,
        id           TEXT NOT NULL UNIQUE,
        type         TEXT NOT NULL,
        processed_at TEXT NOT NULL,
        payload      TEXT NOT NULL,
        UNIQUE (session_id, seq)
    );
    -- A projection of the fold in state.py, rewritten in the same transaction as
    -- the events it reflects, rebuildable from the log at any time.
    CREATE TABLE usage (
        session_id     TEXT PRIMARY KEY REFERENCES sessions(id),
        status         TEXT NOT NULL,
        stop_reason    TEXT,
        input_tokens   INTEGER NOT NULL,
        output_tokens  INTEGER NOT NULL,
        cache_read_input_tokens      INTEGER NOT NULL,
        cache_creation_input_tokens  INTEGER NOT NULL,
        requests       INTEGER NOT NULL,
        model_cost     TEXT NOT NULL,
        cost_known     INTEGER NOT NULL,
        active_seconds TEXT NOT NULL,
        running_since  TEXT,
        status_seq     INTEGER NOT NULL,
        pending        TEXT NOT NULL
    );
    -- Commands from other processes (corral approve/deny) for the live supervisor.
    CREATE TABLE inbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        kind       TEXT NOT NULL,
        payload    TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    -- Which process runs sessions on this data dir, and when it last said so.
    CREATE TABLE lease (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        pid       INTEGER NOT NULL,
        heartbeat REAL NOT NULL
    );
    """,
    # 2: checkpoints: a position in a session's log plus its workspace's manifest.
    """
    CREATE TABLE checkpoints (
        id           TEXT PRIMARY KEY,
        session_id   TEXT NOT NULL REFERENCES sessions(id),
        seq          INTEGER NOT NULL,
        created_at   TEXT NOT NULL,
        kind         TEXT NOT NULL,
        label        TEXT NOT NULL DEFAULT '',
        manifest     TEXT NOT NULL,
        files        INTEGER NOT NULL,
        bytes        INTEGER NOT NULL,
        changed      INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        turn         INTEGER NOT NULL,
        model_cost   TEXT NOT NULL,
        tokens       INTEGER NOT NULL
    );
    CREATE INDEX checkpoints_by_session ON checkpoints (session_id, seq);
    """,
    # 3: what a checkpoint could not capture (FIFOs, files over the cap), and the answer
    # to each inbox command, so the process that sent it learns whether it took effect.
    """
    ALTER TABLE checkpoints ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE checkpoints ADD COLUMN notes TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE inbox ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE inbox ADD COLUMN outcome TEXT;
    """,
    # 4: the API's nouns: agents (versioned) and environments, and what ties a session to
    # them (its agent and version, environment, the caller's metadata, archiving).
    """
    ALTER TABLE sessions ADD COLUMN api TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE agents (
        id          TEXT NOT NULL,
        version     INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        archived_at TEXT,
        body        TEXT NOT NULL,
        PRIMARY KEY (id, version)
    );
    CREATE TABLE environments (
        id          TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        archived_at TEXT,
        body        TEXT NOT NULL
    );
    """,
    # 5: how each checkpoint's manifest was made (a full scan, or tracked changes) and
    # why a full scan; older checkpoints were all full scans.
    """
    ALTER TABLE checkpoints ADD COLUMN scan TEXT NOT NULL DEFAULT 'full';
    ALTER TABLE checkpoints ADD COLUMN scan_note TEXT NOT NULL DEFAULT '';
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(db: aiosqlite.Connection, path: Path) -> None:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this corral knows ({SCHEMA_VERSION});"
            " upgrade corral"
        )
    for number in range(version, SCHEMA_VERSION):
        await db.execute("BEGIN")
        await _run_script(db, MIGRATIONS[number])
        await db.execute(f"PRAGMA user_version={number + 1}")
        await db.commit()


async def _run_script(db: aiosqlite.Connection, script: str) -> None:
    # executescript would commit the open transaction; run statement by statement so a
    # migration lands whole or not at all.
    for statement in script.split(";"):
        if statement.strip():
            await db.execute(statement)
