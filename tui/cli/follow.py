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
    """Print each event until every session is finished.

    Only a stop later than ``since_seq`` (one for all, or per session) counts, so a
    command sent to an idle session waits for the stop it causes, not the one it found.
    ``feed`` must have been subscribed before the sessions were set going.
    """

    def finished(state: SessionState) -> bool:
        since = since_seq if isinstance(since_seq, int) else since_seq.get(state.session_id, 0)
        return finished_after(since)(state)

    titles = {sid: printable_line((await client.session(sid)).title) for sid in session_ids}
    hinted: set[str] = set()
    approvals: list[asyncio.Task[None]] = []

    async def approve_later(sid: str, tool_use_id: str) -> None:
        await asyncio.sleep(auto_approve_after or 0)
        print(f"{'':9}{titles[sid][:22]:<22}      demo: approving {tool_use_id}")
        await client.confirm(sid, tool_use_id, True)

    async def all_finished() -> bool:
        return all([finished(await client.state(sid)) for sid in session_ids])

    while not await all_finished():
        item = await feed.get()
        if not isinstance(item, ev.Event) or item.session_id not in titles:
            continue
        print(event_line(item, titles), flush=True)
        reason = item.payload.get("stop_reason") or {}
        if item.type != ev.STATUS_IDLE or reason.get("type") != ev.REQUIRES_ACTION:
            continue
        for tool_use_id in reason.get("event_ids", []):
            sid = item.session_id
            if auto_approve_after is not None:
                print(
                    f"{'':9}{titles[sid][:22]:<22}      demo: approval needed;"
                    f" approving in {auto_approve_after:g}s",
                    flush=True,
                )
                approvals.append(asyncio.create_task(approve_later(sid, tool_use_id)))
            elif tool_use_id not in hinted:
                hinted.add(tool_use_id)
                print(
                    f"waiting for approval: corral approve {sid} {tool_use_id}"
                    f"   (or: corral deny {sid} {tool_use_id} --message WHY)",
                    flush=True,
                )
    for task in approvals:
        await task
    return [await client.state(sid) for sid in session_ids]
