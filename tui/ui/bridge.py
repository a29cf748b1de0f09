"""The one place the core's events become Textual messages.

A worker reads the client's feed and folds each event into the bridge's own
``SessionView`` (state, tail, streaming text). At most every ``FLUSH_S`` it freezes the
sessions that changed into snapshots and posts one ``Changed`` carrying the whole
``Fleet`` to every screen on the stack; a queued ``Changed`` is superseded by the next
(``can_replace``), which is lossless because each carries everything. A burst from 16
streaming sessions is one repaint per pane, not thousands of messages.

Screens handle ``Changed`` themselves; the app hears only what it tells the user
(``ApprovalRequested``, ``Notice``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from textual.message import Message

from tui.client.protocol import CorralClient, Feed
from tui.core.errors import CorralError
from tui.core.printable import printable_line
from tui.core.session import events as ev
from tui.core.session.away import away_line, load_seen, save_seen, seen_of
from tui.core.session.views import SessionView, SpendHistory, TailLine, Totals, totals
from tui.core.store.bus import Delta, Item
from tui.ui.fleet import EMPTY_FLEET, Fleet, SessionSnapshot, ShowsFleet, copy_state

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

FLUSH_S = 0.025  # at most 40 repaints a second
TAIL_ON_LOAD = 60


class CoreBridge:
    class Changed(Message, bubble=False):
        """Sessions changed (or the clock moved on): the whole fleet as it now stands."""

        def __init__(self, fleet: Fleet) -> None:
            super().__init__()
            self.fleet = fleet

        def can_replace(self, message: Message) -> bool:
            # The newer message carries every session, so it may stand for this one.
            return isinstance(message, CoreBridge.Changed)

    class ApprovalRequested(Message):
        def __init__(self, session_id: str, title: str, tool_name: str, tool_use_id: str) -> None:
            super().__init__()
            self.session_id = session_id
            self.title = title
            self.tool_name = tool_name
            self.tool_use_id = tool_use_id

    class Notice(Message):
        """Something the user should see once: a budget warning or stop, an error."""

        def __init__(self, title: str, text: str, severity: str) -> None:
            super().__init__()
            self.title = title
            self.text = text
            self.severity = severity

    def __init__(
        self,
        app: App,
        client: CorralClient,
        clock: Callable[[], datetime],
        notes: tuple[Path, str] | None = None,
    ) -> None:
        self.app = app
        self.client = client
        self.clock = clock
        self.notes = notes  # (data dir, server): where "while you were away" is kept
        self.fleet = EMPTY_FLEET  # the last one posted
        self.spend = SpendHistory()
        self._views: dict[str, SessionView] = {}  # in the order the sessions were made
        self._seen: dict[str, int] = {}  # session -> the last seq folded in
        self._snapshots: dict[str, SessionSnapshot] = {}
        self._dirty: set[str] = set()
        self._flush_scheduled = False
        self._last_flush = 0.0  # loop time of the last flush
        self._feed: Feed | None = None

    @property
    def settled(self) -> bool:
        """Everything read from the feed has been posted."""
        return not self._dirty and not self._flush_scheduled

    # -- loading -----------------------------------------------------------------------

    async def subscribe(self) -> None:
        """Subscribe before anything can start, so no event is missed."""
        self._feed = await self.client.subscribe(deltas=True)
        # A screen pushed between two flushes is handed the newest fleet at once.
        self.app.screen_change_signal.subscribe(self.app, self._screen_changed)

    async def load(self) -> None:
        """Views for every stored session (in the order made), each with its log's tail."""
        records = await self.client.sessions()
        seen = load_seen(*self.notes) if self.notes else {}
        # Title breaks ties: a frozen test clock gives every session the same time.
        for record in sorted(records, key=lambda r: (r.created_at, printable_line(r.title))):
            view = await self._add(record.id)
            line = away_line(seen[record.id], view.state) if record.id in seen else None
            if line:
                view.tail.append(TailLine("status", line))
        self._flush()

    def remember_seen(self) -> None:
        """Note how far each session has been seen, for the next attach's away lines."""
        if self.notes:
            save_seen(*self.notes, {sid: seen_of(v.state) for sid, v in self._views.items()})

    async def _add(self, session_id: str, *, notice: bool = False) -> SessionView:
        """A view of the session, with its log's tail; ``notice``: what the loaded events
        call for (an approval's toast) is posted too, as for events that arrive live."""
        record = await self.client.session(session_id)
        # The bridge folds events into a state of its own: the client's may be a live
        # object of the engine (which the UI must not hold) or a projection that never moves.
        state = copy_state(await self.client.state(session_id))
        view = SessionView(record, state)
        start = max(0, state.last_seq - TAIL_ON_LOAD)
        self._seen[session_id] = 0
        self._views[session_id] = view
        for event in await self.client.events(session_id, after_seq=start):
            if self._apply(view, event) and notice:
                self._notice(view, event)
        self._dirty.add(session_id)
        return view

    # -- following ---------------------------------------------------------------------

    async def pump(self) -> None:
        assert self._feed is not None, "subscribe() first"
        async for item in self._feed:
            if item.session_id in self._views:
                self._take(item)
            else:
                await self._new(item)
            self._dirty.add(item.session_id)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                # Due FLUSH_S after the last flush, not after this item: under a steady
                # stream the repaints keep a steady beat instead of FLUSH_S plus the
                # time the last one took.
                loop = asyncio.get_running_loop()
                delay = self._last_flush + FLUSH_S - loop.time()
                loop.call_later(max(0.0, delay), self._flush)

    async def _new(self, item: Item) -> None:
        # Its tail includes this event, and whatever the session did between this event
        # and the load: all of it is news (an approval asked for in that gap used to go
        # without its toast).
        with contextlib.suppress(CorralError):
            await self._add(item.session_id, notice=True)

    def _take(self, item: Item) -> None:
        view = self._views[item.session_id]
        if isinstance(item, Delta):
            view.apply_delta(item)
        elif self._apply(view, item):
            self._notice(view, item)

    def _apply(self, view: SessionView, event: ev.Event) -> bool:
        """Fold one event in unless it already is (the load and the feed overlap)."""
        if event.seq <= self._seen[view.id]:
            return False
        self._seen[view.id] = event.seq
        if event.seq > view.state.last_seq:
            view.state.apply(event)
        view.apply(event)
        return True

    def _notice(self, view: SessionView, event: ev.Event) -> None:
        if event.type == ev.STATUS_IDLE:
            reason = event.payload.get("stop_reason") or {}
            if reason.get("type") == ev.REQUIRES_ACTION:
                for tool_use_id in reason.get("event_ids", []):
                    use = view.state.pending_approvals.get(tool_use_id, {})
                    name = str(use.get("name", "a tool"))
                    message = self.ApprovalRequested(view.id, view.title, name, tool_use_id)
                    self.app.post_message(message)
            elif reason.get("type") == ev.BUDGET_REACHED:
                text = f"stopped: {reason.get('detail', 'budget reached')} (b raises it)"
                self.app.post_message(self.Notice(view.title, text, "error"))
        elif event.type == ev.SESSION_BUDGET_WARNING:
            detail = event.payload.get("detail", "")
            self.app.post_message(self.Notice(view.title, detail, "warning"))

    # -- posting -----------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._last_flush = asyncio.get_running_loop().time()
        at = self.clock()
        for sid in self._dirty:
            self._snapshots[sid] = SessionSnapshot.of(self._views[sid], at)
        self._dirty.clear()
        self._post(at)

    def tick(self) -> None:
        """The clock moved on: running sessions' costs and durations, and the burn rate."""
        at = self.clock()
        for sid, snapshot in self._snapshots.items():
            if snapshot.running:
                self._snapshots[sid] = replace(snapshot, at=at)
        self.spend.add(self._totals(at).cost or 0)  # type: ignore[arg-type]
        self._post(at)

    def _totals(self, at: datetime) -> Totals:
        # totals() reads only each view's state; a snapshot has one.
        return totals(self._snapshots.values(), at)

    def _post(self, at: datetime) -> None:
        ordered = {sid: self._snapshots[sid] for sid in self._views if sid in self._snapshots}
        self.fleet = Fleet(
            MappingProxyType(ordered),
            self._totals(at),
            self.spend.burn_per_hour(),
            tuple(self.spend.buckets()),
            at,
        )
        for screen in self.app.screen_stack:
            if isinstance(screen, ShowsFleet):
                screen.post_message(self.Changed(self.fleet))

    def _screen_changed(self, screen: Screen) -> None:
        if self.fleet is not EMPTY_FLEET and isinstance(screen, ShowsFleet):
            screen.post_message(self.Changed(self.fleet))

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
        self.app.screen_change_signal.unsubscribe(self.app)
