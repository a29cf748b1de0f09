"""A session's timeline: its checkpoints in order, each with its branch, and the
spend on abandoned branches. What both ``corral checkpoints`` and the app show."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tui.core.checkpoints.records import CheckpointRecord
from tui.core.money.spend import dead_end_spend
from tui.core.session import events as ev
from tui.core.session.branches import Branch, branch_of, branches, path_seqs


@dataclass(frozen=True)
class TimelineRow:
    number: int  # from 1, as `#N` on the command line
    checkpoint: CheckpointRecord
    branch: int
    current: bool  # on the branch the session is on now


@dataclass(frozen=True)
class Timeline:
    rows: list[TimelineRow]
    branches: list[Branch]
    dead_end_spend: Decimal | None

    def row(self, checkpoint_id: str) -> TimelineRow:
        return next(r for r in self.rows if r.checkpoint.id == checkpoint_id)


def build_timeline(events: list[ev.Event], checkpoints: list[CheckpointRecord]) -> Timeline:
    branch_list = branches(events)
    on_path = path_seqs(events) | {0}
    rows = [
        TimelineRow(n, cp, branch_of(branch_list, cp.seq), cp.seq in on_path)
        for n, cp in enumerate(checkpoints, 1)
    ]
    return Timeline(rows, branch_list, dead_end_spend(events))
