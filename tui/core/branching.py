"""Forks: a new session that starts from another's checkpoint.

A fork copies the conversation of the checkpoint's branch up to that point (messages,
tool uses and their results) under new ids, and none of the spans: what the original
spent stays the original's, so totals never count it twice.
"""

from __future__ import annotations

from typing import Any

from tui.core import events as ev
from tui.core.history import path_seqs
from tui.core.ids import event_id

CONVERSATION_TYPES = frozenset(
    {
        ev.USER_MESSAGE,
        ev.AGENT_MESSAGE,
        ev.AGENT_THINKING,
        ev.AGENT_TOOL_USE,
        ev.USER_TOOL_CONFIRMATION,
        ev.AGENT_TOOL_RESULT,
    }
)


def fork_events(events: list[ev.Event], upto_seq: int, new_session: str) -> list[ev.Event]:
    """The conversation up to ``upto_seq`` on its branch, as events of ``new_session``."""
    on_path = path_seqs(events, head=upto_seq)
    ids: dict[str, str] = {}
    out = []
    for event in events:
        if event.seq not in on_path or event.type not in CONVERSATION_TYPES:
            continue
        ids[event.id] = new_id = event_id()
        out.append(
            ev.Event(
                session_id=new_session,
                type=event.type,
                payload=_remap(event.payload, ids),
                id=new_id,
                processed_at=event.processed_at,
            )
        )
    return out


def _remap(payload: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    out = dict(payload)
    if "tool_use_id" in out:
        out["tool_use_id"] = ids.get(out["tool_use_id"], out["tool_use_id"])
    return out
