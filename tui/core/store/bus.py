"""The event bus: durable events (and transient streaming deltas) to subscribers.

The store publishes an event only after its transaction committed, so a
subscriber never sees an event the log does not hold. Deltas (streamed text as
it arrives) are never stored; they are a preview that the next event supersedes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tui.core.session.events import Event


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a model response still streaming: ``kind`` is text, thinking or tool_input."""

    session_id: str
    kind: str
    text: str


Item = Event | Delta


class Subscription:
    """An async iterator over bus items for one session, or for all when ``session_id`` is None."""

    def __init__(self, bus: EventBus, session_id: str | None, deltas: bool) -> None:
        self._bus = bus
        self.session_id = session_id
        self.deltas = deltas
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue()

    def wants(self, item: Item) -> bool:
        if isinstance(item, Delta) and not self.deltas:
            return False
        return self.session_id is None or item.session_id == self.session_id

    def close(self) -> None:
        self._bus._unsubscribe(self)
        self.queue.put_nowait(None)

    async def get(self) -> Item:
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

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

    def subscribe(self, session_id: str | None = None, *, deltas: bool = False) -> Subscription:
        sub = Subscription(self, session_id, deltas)
        self._subscriptions.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def publish(self, items: list[Event] | list[Delta] | list[Item]) -> None:
        for sub in self._subscriptions:
            for item in items:
                if sub.wants(item):
                    sub.queue.put_nowait(item)
