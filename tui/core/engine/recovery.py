"""What the log must say about a session nothing runs any more (its process died, or its
runner failed or was stopped): a tool call that may have started gets an error result
(it is never re-run silently), an open model request a failed end, and the session goes
idle, resumable. A crashed session's workspace goes back to its last checkpoint first."""

from __future__ import annotations

from pathlib import Path

from tui.core.checkpoints.checkpointer import Checkpointer, latest_on_branch
from tui.core.engine.stops import interrupted_result
from tui.core.errors import CorralError
from tui.core.session import events as ev
from tui.core.session.conversation import build_conversation, started_tool_uses
from tui.core.session.records import SessionRecord
from tui.core.session.state import WORKING
from tui.core.store.store import Store


async def recover(
    store: Store, checkpointer: Checkpointer, record: SessionRecord, *, rescheduled: bool
) -> None:
    """Put a session a dead process left working back at its last checkpoint and settle
    its log. ``rescheduled``: it resumes at once, so it shows as rescheduled (as a hosted
    session does after a transient failure), never as idle: a client waiting for it to
    stop must not take the takeover for its end."""
    why = "corral stopped while this session was running"
    events = await store.events(record.id)
    latest = latest_on_branch(await store.checkpoints(record.id), events)
    if latest is not None:
        try:
            await checkpointer.restore(Path(record.workspace), latest.manifest)
        except (OSError, CorralError) as exc:
            why += f"; its workspace could not be restored: {exc}"
    await settle_orphan(store, record.id, why, rescheduled=rescheduled)


async def settle_if_working(store: Store, session_id: str, why: str) -> None:
    """``settle_orphan`` for a session the log still shows working."""
    if (await store.state(session_id)).status in WORKING:
        await settle_orphan(store, session_id, why)


async def settle_orphan(
    store: Store, session_id: str, why: str, *, rescheduled: bool = False
) -> None:
    events = await store.events(session_id)
    out: list[ev.Event] = [
        ev.agent_tool_result(session_id, tool_use_id, interrupted_result(why), True)
        for tool_use_id in started_tool_uses(build_conversation(events))
    ]
    ended = {
        e.payload.get("model_request_start_id")
        for e in events
        if e.type == ev.SPAN_MODEL_REQUEST_END
    }
    out += [
        ev.failed_request_end(session_id, e.id)
        for e in events
        if e.type == ev.SPAN_MODEL_REQUEST_START and e.id not in ended
    ]
    if rescheduled:
        out.append(ev.session_error(session_id, "unknown_error", why, retry="retrying"))
        out.append(ev.status_rescheduled(session_id))
    else:
        out.append(ev.session_error(session_id, "unknown_error", why))
        out.append(ev.status_idle(session_id, ev.INTERRUPTED, detail=why))
    await store.append(*out)
