"""A checkpoint's record: where in the log it stands, what it cost so far, which manifest
holds its workspace, and what made it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from tui.core.clock import parse_time, utc_now

# What made a checkpoint.
START = "start"  # the workspace as the session began
TOOL = "tool"  # after a tool ran, more of the turn's tools still to go
TURN = "turn"  # after the last tool result of a model turn: a turn boundary
MANUAL = "manual"  # asked for by the user
REWIND = "rewind"  # where a rewind or fork started a new branch
KINDS = (START, TOOL, TURN, MANUAL, REWIND)

# How its manifest was made.
FULL = "full"  # a walk of the whole tree (the first in a process, or a fallback)
TRACKED = "tracked"  # the previous manifest plus the paths the change tracker named
SCANS = (FULL, TRACKED)


@dataclass(frozen=True)
class CheckpointRecord:
    id: str
    session_id: str
    kind: str
    manifest: str
    files: int
    bytes: int
    changed: int  # paths that differ from the previous checkpoint's manifest
    stored_bytes: int  # what this checkpoint added to the blob store
    turn: int  # assistant turns so far
    created_at: datetime = field(default_factory=utc_now)
    label: str = ""
    seq: int = 0  # filled in by the store: the last event this checkpoint includes
    model_cost: Decimal = Decimal(0)  # filled in by the store, as of ``seq``
    tokens: int = 0
    skipped: int = 0  # paths there that this checkpoint could not capture
    notes: tuple[str, ...] = ()  # "path: why" for (the first of) them
    scan: str = FULL  # FULL or TRACKED (checkpoints from before tracking: FULL)
    scan_note: str = ""  # why a full scan, when it was one

    def with_position(self, seq: int, model_cost: Decimal, tokens: int) -> CheckpointRecord:
        return replace(self, seq=seq, model_cost=model_cost, tokens=tokens)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "seq": self.seq,
            "kind": self.kind,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "manifest": self.manifest,
            "files": self.files,
            "bytes": self.bytes,
            "changed": self.changed,
            "stored_bytes": self.stored_bytes,
            "turn": self.turn,
            "model_cost": str(self.model_cost),
            "tokens": self.tokens,
            "skipped": self.skipped,
            "notes": list(self.notes),
            "scan": self.scan,
            "scan_note": self.scan_note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckpointRecord:
        """The inverse of ``to_json`` for data corral wrote itself (bundles are checked
        field by field in ``bundle.py`` instead)."""
        return cls(
            id=data["id"],
            session_id=data["session_id"],
            kind=data["kind"],
            manifest=data["manifest"],
            files=data["files"],
            bytes=data["bytes"],
            changed=data["changed"],
            stored_bytes=data["stored_bytes"],
            turn=data["turn"],
            created_at=parse_time(data["created_at"]),
            label=data.get("label", ""),
            seq=data["seq"],
            model_cost=Decimal(data["model_cost"]),
            tokens=data["tokens"],
            skipped=data.get("skipped", 0),
            notes=tuple(data.get("notes", ())),
            scan=data.get("scan", FULL),
            scan_note=data.get("scan_note", ""),
        )
