"""The event bus: durable events (and transient streaming deltas) to subscribers.

The store publishes an event only after its transaction committed, so a
subscriber never sees an event the log does not hold. Deltas (streamed text as
it arrives) are never stored; they are a preview that the next event supersedes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tui.core.session.events import Event


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a model response still streaming: ``kind`` is text, thinking or tool_input.
    ``event_id`` is the id the event it previews will have once it is stored."""

    session_id: str
    kind: str
    text: str
    event_id: str = ""


Item = Event | Delta


class Overflowed(Exception):
    """A subscriber fell so far behind that its bounded buffer filled: it was dropped, and
    resyncs by reading the log from where it got to."""


class Subscription:
    """An async iterator over bus items for one session, or for all when ``session_id`` is
    None. With a ``limit`` the buffer is bounded: a subscriber that lets it fill is
    dropped (``get`` raises Overflowed once it has read what was buffered), so a slow
    reader never holds up the sessions or grows without bound."""

    def __init__(self, bus: EventBus, session_id: str | None, deltas: bool, limit: int = 0) -> None:
        self._bus = bus
        self.session_id = session_id
        self.deltas = deltas
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=limit)
        self.overflowed = False

    def wants(self, item: Item) -> bool:
        if isinstance(item, Delta) and not self.deltas:
            return False
        return self.session_id is None or item.session_id == self.session_id

    def offer(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            self._bus._unsubscribe(self)

    def close(self) -> None:
        self._bus._unsubscribe(self)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)

    async def get(self) -> Item:
        if self.overflowed and self.queue.empty():
            raise Overflowed
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def take_ready(self) -> list[Item]:
        """What is already buffered, without waiting: a reader that writes in batches
        takes one item with ``get`` and the rest of the burst with this."""
        out: list[Item] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is None:
                self.queue.put_nowait(None)  # closed: the next get ends the iteration
                break
            out.append(item)
        return out

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __anext__(self) -> Item:
        return await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(
        self, session_id: str | None = None, *, deltas: bool = False, limit: int = 0
    ) -> Subscription:
        sub = Subscription(self, session_id, deltas, limit)
        self._subscriptions.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def publish(self, items: list[Event] | list[Delta] | list[Item]) -> None:
        for sub in list(self._subscriptions):
            for item in items:
                if sub.wants(item):
                    sub.offer(item)
                    if sub.overflowed:
                        break
