"""A fork: a new session from another's checkpoint, with that checkpoint's workspace and
the conversation up to it (not its spend); the original is left as it is."""

from __future__ import annotations

from pathlib import Path

from tui.core.checkpoints.archive import IMPORTED, import_pending
from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.checkpoints.records import START, CheckpointRecord
from tui.core.clock import utc_now
from tui.core.ids import session_id as new_session_id
from tui.core.session import events as ev
from tui.core.session.branches import fork_events
from tui.core.session.conversation import build_conversation
from tui.core.session.records import SessionRecord
from tui.core.store.datadir import workspaces_dir
from tui.core.store.store import Store


async def fork_session(
    store: Store,
    checkpointer: Checkpointer,
    data_dir: Path,
    record: SessionRecord,
    target: CheckpointRecord,
) -> str:
    """The new session's id; it waits (paused) until resumed or given a message."""
    sid = new_session_id()
    workspace = workspaces_dir(data_dir) / sid
    await checkpointer.restore(workspace, target.manifest)
    copied = fork_events(await store.events(record.id), target.seq, sid)
    start = await checkpointer.snapshot(
        sid,
        workspace,
        None,
        kind=START,
        turn=build_conversation(copied).assistant_turns,
        label=f"forked from {record.id} at {target.id}",
    )
    metadata: dict[str, object] = {
        "forked_from": {"session": record.id, "checkpoint": target.id, "seq": target.seq}
    }
    if import_pending(record):
        # A fork of an import nobody accepted runs its author's spec too: it waits for
        # the same acceptance.
        metadata[IMPORTED] = dict(record.metadata[IMPORTED])
    fork_record = SessionRecord(
        id=sid,
        title=f"{record.title} (fork)",
        created_at=utc_now(),
        spec=record.spec,
        model=record.model,
        workspace=str(workspace),
        sandbox=record.sandbox,
        isolation=record.isolation,
        metadata=metadata,
    )
    await store.create_session(
        fork_record,
        *copied,
        ev.status_idle(sid, ev.PAUSED, detail=f"forked from {record.id}"),
        checkpoint=start,
    )
    return sid
