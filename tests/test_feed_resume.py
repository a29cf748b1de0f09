"""corral's own feed (what the app and CLI follow) when the server drops it for falling
behind: it reads back what it missed, once, while it reads the new stream, so a slow
catch-up does not get it dropped again, and every event arrives once, in order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tui.client.connect import connect
from tui.core.session import events as ev
from tui.server import rpc

from .conftest import make_spec
from .server_helpers import on_server, server_in_thread

EVENTS = 800  # at 5 ms apart: about 4 s of stream
BIG = "x" * 4000  # big enough that the socket's own buffer fills while nobody reads


async def test_a_dropped_feed_catches_up_once_while_it_reads_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rpc, "BUFFER", 32)  # the server drops a client 32 items behind
    data_dir = tmp_path / "data"
    with server_in_thread(data_dir) as daemon:
        client = await connect(data_dir)
        sid = await client.create(make_spec(tmp_path, [{"text": "done"}]))
        while (await client.state(sid)).status != "idle":
            await asyncio.sleep(0.02)
        feed = await client.subscribe(sid)

        catch_ups = 0
        events_of = client.events

        async def slow_events(session_id: str, **kwargs: Any) -> list[ev.Event]:
            # A catch-up as slow as a saturated server's: the stream goes on meanwhile.
            nonlocal catch_ups
            catch_ups += 1
            await asyncio.sleep(1.0)
            return await events_of(session_id, **kwargs)

        monkeypatch.setattr(client, "events", slow_events)

        async def produce(engine: Any) -> None:
            store = engine.store
            for n in range(EVENTS):
                await store.append(ev.Event(sid, ev.AGENT_MESSAGE, {"n": n, "text": BIG}))
                await asyncio.sleep(0.005)

        producing = asyncio.ensure_future(on_server(daemon, produce))
        await asyncio.sleep(0.1)
        time.sleep(0.8)  # this client's loop stops reading: the server drops it
        await producing

        got: list[int] = []  # the produced events' numbers, as the feed hands them out
        seqs: list[int] = []
        deadline = time.monotonic() + 60
        while len(got) < EVENTS and time.monotonic() < deadline:
            item = await asyncio.wait_for(feed.get(), deadline - time.monotonic())
            if isinstance(item, ev.Event):
                seqs.append(item.seq)
                if item.payload.get("text") == BIG:
                    got.append(item.payload["n"])
        feed.close()
        await client.close()

    assert got == list(range(EVENTS))  # each once, in order
    assert seqs == sorted(set(seqs))
    # Dropped once, not again by its own catch-up (which dropped it 3-4 times here). A
    # second drop needs this loop to stall for 0.4 s, which a loaded machine can do.
    assert 1 <= catch_ups <= 2
