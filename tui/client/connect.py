"""Which client a command gets: the corral already running sessions on this data dir if
there is one (through its inbox), else the engine in this process."""

from __future__ import annotations

from pathlib import Path

from tui.client.engine import EngineClient
from tui.client.inbox import InboxClient
from tui.client.protocol import CorralClient
from tui.core.store.datadir import db_path
from tui.core.store.store import Store


async def connect(
    data_dir: Path, *, max_concurrent: int = 8, script_speed: float = 1.0
) -> CorralClient:
    store = await Store.open(db_path(data_dir))
    try:
        pid = await store.live_lease_pid()
    except BaseException:
        await store.close()
        raise
    if pid is not None:
        return InboxClient(store, data_dir, pid)
    return EngineClient(store, data_dir, max_concurrent=max_concurrent, script_speed=script_speed)
