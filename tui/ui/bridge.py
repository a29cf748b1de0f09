"""The one place core events become Textual messages.

A worker reads the bus, updates the session views, and posts ``Changed`` at most
every ``FLUSH_S``; queued ``Changed`` messages replace each other (``can_replace``),
so a burst from 16 sessions is one repaint per pane, not thousands.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual.message import Message

from tui.core import events as ev
from tui.core.bus import Delta, Subscription
from tui.core.errors import CorralError
from tui.core.store import Store
from tui.core.views import SessionView

if TYPE_CHECKING:
    from textual.app import App

FLUSH_S = 0.05  # at most 20 repaints a second
TAIL_ON_LOAD = 60


class CoreBridge:
    class Changed(Message):
        """Some sessions changed; the app takes them with ``CoreBridge.take_changes``."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, CoreBridge.Changed)

    class ApprovalRequested(Message):
        def __init__(self, view: SessionView, tool_use_id: str) -> None:
            super().__init__()
            self.view = view
            self.tool_use_id = tool_use_id

    class Notice(Message):
        """Something the user should see once: a budget warning or stop, an error."""

        def __init__(self, view: SessionView, text: str, severity: str) -> None:
            super().__init__()
            self.view = view
            self.text = text
            self.severity = severity

    def __init__(self, app: App, store: Store) -> None:
        self.app = app
        self.store = store
        self.views: dict[str, SessionView] = {}
        self._dirty: set[str] = set()
        self._new: list[str] = []
        self._flush_scheduled = False
        self._sub: Subscription | None = None

    async def load(self) -> None:
        """Views for every stored session, each with the tail of its log."""
        for record in await self.store.list_sessions():
            await self._add(record.id)
        self._new.clear()

    async def _add(self, session_id: str) -> SessionView:
        record = await self.store.get_session(session_id)
        state = await self.store.state(session_id)
        view = SessionView(record, state)
        start = max(0, state.last_seq - TAIL_ON_LOAD)
        for event in await self.store.events(session_id, after_seq=start):
            view.apply(event)
        self.views[session_id] = view
        self._new.append(session_id)
        return view

    def subscribe(self) -> Subscription:
        """Subscribe before anything can start, so no event is missed."""
        self._sub = self.store.bus.subscribe(deltas=True)
        return self._sub

    async def pump(self) -> None:
        sub = self._sub or self.subscribe()
        async for item in sub:
            view = self.views.get(item.session_id)
            if view is None:
                try:
                    view = await self._add(item.session_id)
                except CorralError:
                    continue
                # _add loaded the tail, this event included.
            elif isinstance(item, Delta):
                view.apply_delta(item)
            else:
                view.apply(item)
            if isinstance(item, ev.Event):
                self._notice(view, item)
            self._dirty.add(item.session_id)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_later(FLUSH_S, self._flush)

    def _notice(self, view: SessionView, event: ev.Event) -> None:
        if event.type == ev.STATUS_IDLE:
            reason = event.payload.get("stop_reason") or {}
            if reason.get("type") == ev.REQUIRES_ACTION:
                for tool_use_id in reason.get("event_ids", []):
                    self.app.post_message(self.ApprovalRequested(view, tool_use_id))
            elif reason.get("type") == ev.BUDGET_REACHED:
                text = f"stopped: {reason.get('detail', 'budget reached')} (b raises it)"
                self.app.post_message(self.Notice(view, text, "error"))
        elif event.type == ev.SESSION_BUDGET_WARNING:
            self.app.post_message(self.Notice(view, event.payload.get("detail", ""), "warning"))

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.app.post_message(self.Changed())

    def take_changes(self) -> tuple[list[str], list[str]]:
        """(changed ids, new ids) since the last call."""
        dirty, self._dirty = list(self._dirty), set()
        new, self._new = self._new, []
        return dirty, new

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()
