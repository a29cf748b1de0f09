"""corral's own feed (what the app and CLI follow) when the server drops it for falling
behind: it reads back what it missed while it reads the new stream, so a slow catch-up
does not get it dropped again; a catch-up that fails is tried again on a new stream; and
every event arrives once, in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tui.client.connect import connect
from tui.core.errors import CorralError
from tui.core.session import events as ev
from tui.server import rpc

from .conftest import make_spec
from .server_helpers import on_server, server_in_thread

EVENTS = 800  # at 5 ms apart: about 4 s of stream
BIG = "x" * 4000  # big enough that the socket's own buffer fills while nobody reads

Events = Callable[..., Awaitable[list[ev.Event]]]


async def through_a_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catch_up: Callable[[Events], Events]
) -> tuple[list[int], list[int], int]:
    """Stream EVENTS events to a feed that is stalled into being dropped, its catch-ups'
    reads of the log going through ``catch_up``. (event numbers, seqs, catch-ups)"""
    monkeypatch.setattr(rpc, "BUFFER", 32)  # the server drops a client 32 items behind
    data_dir = tmp_path / "data"
    with server_in_thread(data_dir) as daemon:
        client = await connect(data_dir)
        sid = await client.create(make_spec(tmp_path, [{"text": "done"}]))
        while (await client.state(sid)).status != "idle":
            await asyncio.sleep(0.02)
        feed = await client.subscribe(sid)
        assert daemon.engine is not None
        bus = daemon.engine.store.bus
        ours = [s for s in list(bus._subscriptions) if s.session_id == sid]

        catch_ups = 0
        slowed = catch_up(client.events)

        async def counted(session_id: str, **kwargs: Any) -> list[ev.Event]:
            nonlocal catch_ups
            catch_ups += 1
            return await slowed(session_id, **kwargs)

        monkeypatch.setattr(client, "events", counted)

        async def produce(engine: Any) -> None:
            for n in range(EVENTS):
                await engine.store.append(ev.Event(sid, ev.AGENT_MESSAGE, {"n": n, "text": BIG}))
                await asyncio.sleep(0.005)

        producing = asyncio.ensure_future(on_server(daemon, produce))
        await asyncio.sleep(0.1)
        # This client's loop stops reading until the server has dropped it.
        deadline = time.monotonic() + 30
        while not all(s.overflowed for s in ours) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ours and all(s.overflowed for s in ours), "the server never dropped the feed"
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
    return got, seqs, catch_ups


async def test_a_dropped_feed_catches_up_once_while_it_reads_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(events: Events) -> Events:
        async def read(session_id: str, **kwargs: Any) -> list[ev.Event]:
            await asyncio.sleep(1.0)  # as slow as a saturated server: the stream goes on
            return await events(session_id, **kwargs)

        return read

    got, seqs, catch_ups = await through_a_drop(tmp_path, monkeypatch, slow)
    assert got == list(range(EVENTS))  # each once, in order
    assert seqs == sorted(set(seqs))
    # Dropped once, not again by its own catch-up (which dropped it 3-5 times before). A
    # second drop needs this loop to stall for about 0.4 s, which a loaded machine can do.
    assert 1 <= catch_ups <= 2


async def test_a_catch_up_that_fails_is_done_again_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = []

    def fails_once(events: Events) -> Events:
        async def read(session_id: str, **kwargs: Any) -> list[ev.Event]:
            if not failed:
                failed.append(session_id)
                await asyncio.sleep(0.3)  # the new stream moves on meanwhile
                raise CorralError("the server could not read the log just now")
            return await events(session_id, **kwargs)

        return read

    got, seqs, catch_ups = await through_a_drop(tmp_path, monkeypatch, fails_once)
    assert failed
    assert got == list(range(EVENTS))  # what the failed catch-up missed was read back
    assert seqs == sorted(set(seqs))
    assert catch_ups >= 2
