"""Which client a command gets: the corral server of this data dir (through the store's
inbox; started on demand by the first command that needs it), or, for the app until it
becomes a client of the server too, the engine in this process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tui.client.discovery import running_server
from tui.client.engine import EngineClient
from tui.client.inbox import InboxClient
from tui.client.protocol import CorralClient
from tui.core.store.datadir import db_path
from tui.core.store.store import Store


async def connect(
    data_dir: Path,
    *,
    max_concurrent: int = 8,
    script_speed: float = 1.0,
    start_server: bool = True,
) -> CorralClient:
    """``start_server``: commands go to the server, started if none runs; False: with
    none running, the engine runs in this process (the app, for now)."""
    server = await asyncio.to_thread(running_server, data_dir)
    store = await Store.open(db_path(data_dir))
    try:
        # Not a server, but a corral running sessions in its own process (the app).
        pid = server.pid if server is not None else await store.live_lease_pid()
    except BaseException:
        await store.close()
        raise
    if pid is not None or start_server:
        serve_args = ("--max-concurrent", str(max_concurrent), "--speed", repr(script_speed))
        return InboxClient(store, data_dir, pid, serve_args=serve_args)
    return EngineClient(store, data_dir, max_concurrent=max_concurrent, script_speed=script_speed)
