"""Rows of the API's nouns: agents (one row per version) and environments."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from tui.core.errors import NotFoundError
from tui.core.session.definitions import AgentRecord, EnvironmentRecord

AGENT_COLUMNS = "id, version, created_at, updated_at, archived_at, body"
ENVIRONMENT_COLUMNS = "id, created_at, updated_at, archived_at, body"


def insert_agent(conn: sqlite3.Connection, agent: AgentRecord) -> None:
    conn.execute(
        f"INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?,?,?,?,?,?)",
        (
            agent.id,
            agent.version,
            agent.created_at,
            agent.updated_at,
            agent.archived_at,
            json.dumps(agent.body),
        ),
    )


def agent_from_row(row: tuple[Any, ...]) -> AgentRecord:
    aid, version, created, updated, archived, body = row
    return AgentRecord(aid, version, created, updated, archived, json.loads(body))


def upsert_environment(conn: sqlite3.Connection, env: EnvironmentRecord) -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO environments ({ENVIRONMENT_COLUMNS}) VALUES (?,?,?,?,?)",
        (env.id, env.created_at, env.updated_at, env.archived_at, json.dumps(env.body)),
    )


def environment_from_row(row: tuple[Any, ...]) -> EnvironmentRecord:
    eid, created, updated, archived, body = row
    return EnvironmentRecord(eid, created, updated, archived, json.loads(body))


class Definitions:
    """The store's agents and environments; writes go through the store's one writer."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        write: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]],
    ) -> None:
        self._db = db
        self._write = write

    async def put_agent(self, agent: AgentRecord) -> None:
        """A new agent, or a new version of one (versions are never rewritten)."""
        await self._write(lambda c: insert_agent(c, agent))

    async def agent(self, agent_id: str, version: int | None = None) -> AgentRecord:
        """An agent's given version, or its latest."""
        sql = f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?"
        params: tuple[Any, ...] = (agent_id,)
        if version is not None:
            sql += " AND version = ?"
            params += (version,)
        async with self._db.execute(sql + " ORDER BY version DESC LIMIT 1", params) as cur:
            row = await cur.fetchone()
        if row is None:
            which = f" version {version}" if version is not None else ""
            raise NotFoundError(f"no agent {agent_id!r}{which}")
        return agent_from_row(row)

    async def agents(self, agent_id: str | None = None) -> list[AgentRecord]:
        """The latest version of every agent (with ``agent_id``: every version of it)."""
        if agent_id is not None:
            sql = f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ? ORDER BY version"
            params: tuple[Any, ...] = (agent_id,)
        else:
            sql = (
                f"SELECT {AGENT_COLUMNS} FROM agents a WHERE version ="
                " (SELECT MAX(version) FROM agents b WHERE b.id = a.id) ORDER BY created_at, id"
            )
            params = ()
        async with self._db.execute(sql, params) as cur:
            return [agent_from_row(row) for row in await cur.fetchall()]

    async def archive_agent(self, agent_id: str, at: str) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE agents SET archived_at = ? WHERE id = ? AND archived_at IS NULL",
                (at, agent_id),
            )
        )

    async def put_environment(self, env: EnvironmentRecord) -> None:
        await self._write(lambda c: upsert_environment(c, env))

    async def environment(self, env_id: str) -> EnvironmentRecord:
        sql = f"SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = ?"
        async with self._db.execute(sql, (env_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"no environment {env_id!r}")
        return environment_from_row(row)

    async def environments(self) -> list[EnvironmentRecord]:
        sql = f"SELECT {ENVIRONMENT_COLUMNS} FROM environments ORDER BY created_at, id"
        async with self._db.execute(sql) as cur:
            return [environment_from_row(row) for row in await cur.fetchall()]

    async def delete_environment(self, env_id: str) -> None:
        await self._write(lambda c: c.execute("DELETE FROM environments WHERE id = ?", (env_id,)))
