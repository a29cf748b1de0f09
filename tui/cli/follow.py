"""Following sessions on the terminal: each event as a line as it becomes durable, until
every session asked for has stopped."""

from __future__ import annotations

import asyncio

from tui.cli.output import event_line
from tui.client.protocol import CorralClient, Feed
from tui.core.printable import printable_line
from tui.core.session import events as ev
from tui.core.session.state import SessionState, finished_after


async def follow(
    client: CorralClient,
    feed: Feed,
    session_ids: list[str],
    *,
    auto_approve_after: float | None,
    since_seq: int | dict[str, int] = 0,
) -> list[SessionState]:
    """Print each event after ``since_seq`` (one for all, or per session) until every
    session is finished.

    Only a stop later than ``since_seq`` counts, so a command sent to an idle session
    waits for the stop it causes, not the one it found. ``feed`` must have been subscribed
    before the sessions were set going; what they logged before that is read back first.
    """
    titles = {sid: printable_line((await client.session(sid)).title) for sid in session_ids}
    printer = _Printer(client, titles, since_seq, auto_approve_after)

    async def all_finished() -> bool:
        states = [await client.state(sid) for sid in session_ids]
        return all(finished_after(printer.since(s.session_id))(s) for s in states)

    for sid in session_ids:
        await printer.catch_up(sid)
    while not await all_finished():
        item = await feed.get()
        if isinstance(item, ev.Event):
            printer.show(item)
    for task in printer.approvals:
        await task
    states = [await client.state(sid) for sid in session_ids]
    # What the feed had not delivered yet when the stop was seen (a feed that polls lags).
    for state in states:
        await printer.catch_up(state.session_id, upto=state.last_seq)
    return states


class _Printer:
    """Each event of the followed sessions printed once, in order; approvals asked for
    are hinted at (or, in the demo, given after a pause)."""

    def __init__(
        self,
        client: CorralClient,
        titles: dict[str, str],
        since_seq: int | dict[str, int],
        auto_approve_after: float | None,
    ) -> None:
        self.client = client
        self.titles = titles
        self.since_seq = since_seq
        self.auto_approve_after = auto_approve_after
        self.printed = {sid: self.since(sid) for sid in titles}
        self.hinted: set[str] = set()
        self.approvals: list[asyncio.Task[None]] = []

    def since(self, sid: str) -> int:
        since = self.since_seq
        return since if isinstance(since, int) else since.get(sid, 0)

    async def catch_up(self, sid: str, upto: int | None = None) -> None:
        for event in await self.client.events(sid, after_seq=self.printed[sid]):
            if upto is None or event.seq <= upto:
                self.show(event)

    def show(self, event: ev.Event) -> None:
        sid = event.session_id
        if sid not in self.printed or event.seq <= self.printed[sid]:
            return
        self.printed[sid] = event.seq
        print(event_line(event, self.titles), flush=True)
        reason = event.payload.get("stop_reason") or {}
        if event.type == ev.STATUS_IDLE and reason.get("type") == ev.REQUIRES_ACTION:
            for tool_use_id in reason.get("event_ids", []):
                self._approval_needed(sid, tool_use_id)

    def _approval_needed(self, sid: str, tool_use_id: str) -> None:
        title = self.titles[sid][:22]
        if self.auto_approve_after is not None:
            print(
                f"{'':9}{title:<22}      demo: approval needed;"
                f" approving in {self.auto_approve_after:g}s",
                flush=True,
            )
            self.approvals.append(asyncio.create_task(self._approve_later(sid, tool_use_id)))
        elif tool_use_id not in self.hinted:
            self.hinted.add(tool_use_id)
            print(
                f"waiting for approval: corral approve {sid} {tool_use_id}"
                f"   (or: corral deny {sid} {tool_use_id} --message WHY)",
                flush=True,
            )

    async def _approve_later(self, sid: str, tool_use_id: str) -> None:
        await asyncio.sleep(self.auto_approve_after or 0)
        print(f"{'':9}{self.titles[sid][:22]:<22}      demo: approving {tool_use_id}")
        await self.client.confirm(sid, tool_use_id, True)
