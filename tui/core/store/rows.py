"""How records, checkpoints, usage projections and events become rows and back: the
store's SQL text and tuple layouts in one place."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

from tui.core.checkpoints.records import CheckpointRecord
from tui.core.clock import parse_time
from tui.core.session.events import Event
from tui.core.session.records import SessionRecord
from tui.core.session.state import SessionState, Usage

INSERT_EVENT = (
    "INSERT INTO events (session_id, seq, id, type, processed_at, payload) VALUES (?,?,?,?,?,?)"
)


CHECKPOINT_COLUMNS = (
    "id, session_id, seq, created_at, kind, label, manifest, files, bytes, changed,"
    " stored_bytes, turn, model_cost, tokens, skipped, notes, scan, scan_note"
)


INSERT_CHECKPOINT = (
    f"INSERT INTO checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def insert_session(conn: sqlite3.Connection, record: SessionRecord) -> None:
    conn.execute(
        "INSERT INTO sessions (id, title, created_at, spec, model, sandbox, isolation,"
        " workspace, metadata, api) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            record.id,
            record.title,
            record.created_at.isoformat(),
            json.dumps(record.spec),
            record.model,
            record.sandbox,
            record.isolation,
            record.workspace,
            json.dumps(record.metadata),
            json.dumps(record.api),
        ),
    )


def checkpoint_row(cp: CheckpointRecord) -> tuple[Any, ...]:
    return (
        cp.id,
        cp.session_id,
        cp.seq,
        cp.created_at.isoformat(),
        cp.kind,
        cp.label,
        cp.manifest,
        cp.files,
        cp.bytes,
        cp.changed,
        cp.stored_bytes,
        cp.turn,
        str(cp.model_cost),
        cp.tokens,
        cp.skipped,
        json.dumps(list(cp.notes)),
        cp.scan,
        cp.scan_note,
    )


def checkpoint_from_row(row: tuple[Any, ...]) -> CheckpointRecord:
    (cid, sid, seq, created, kind, label, manifest, files, size, changed, stored) = row[:11]
    turn, cost, tokens, skipped, notes, scan, scan_note = row[11:]
    return CheckpointRecord(
        id=cid,
        session_id=sid,
        kind=kind,
        manifest=manifest,
        files=files,
        bytes=size,
        changed=changed,
        stored_bytes=stored,
        turn=turn,
        created_at=parse_time(created),
        label=label,
        seq=seq,
        model_cost=Decimal(cost),
        tokens=tokens,
        skipped=skipped,
        notes=tuple(json.loads(notes)),
        scan=scan,
        scan_note=scan_note,
    )


UPSERT_USAGE = (
    "INSERT OR REPLACE INTO usage (session_id, status, stop_reason, input_tokens, output_tokens,"
    " cache_read_input_tokens, cache_creation_input_tokens, requests, model_cost, cost_known,"
    " active_seconds, running_since, status_seq, pending)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def usage_row(state: SessionState) -> tuple[Any, ...]:
    u = state.usage
    return (
        state.session_id,
        state.status,
        json.dumps(state.stop_reason) if state.stop_reason else None,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
        u.requests,
        str(u.model_cost),
        int(u.cost_known),
        str(state.active_seconds),
        state.running_since.isoformat() if state.running_since else None,
        state.status_seq,
        json.dumps(state.pending_approvals),
    )


def record_from_row(row: tuple[Any, ...]) -> SessionRecord:
    (sid, title, created, spec, model, sandbox, isolation, workspace, metadata, api) = row[:10]
    (status, stop, inp, out, cread, ccreate, requests, cost, known, active) = row[10:20]
    since, status_seq, pending, seq, upd = row[20:]
    created_at = parse_time(created)
    state = SessionState(
        session_id=sid,
        created_at=created_at,
        status=status,
        stop_reason=json.loads(stop) if stop else None,
        usage=Usage(inp, out, cread, ccreate, Decimal(cost), bool(known), requests),
        active_seconds=Decimal(active),
        running_since=parse_time(since) if since else None,
        updated_at=parse_time(upd) if upd else created_at,
        last_seq=seq or 0,
        status_seq=status_seq,
        pending_approvals=json.loads(pending),
    )
    return SessionRecord(
        id=sid,
        title=title,
        created_at=created_at,
        spec=json.loads(spec),
        model=model,
        workspace=workspace,
        sandbox=sandbox,
        isolation=isolation,
        metadata=json.loads(metadata),
        state=state,
        api=json.loads(api),
    )


def event_row(e: Event) -> tuple[Any, ...]:
    return (e.session_id, e.seq, e.id, e.type, e.processed_at.isoformat(), e.payload_json())
