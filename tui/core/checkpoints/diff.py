"""The difference between two checkpoints: files, transcript and cost."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from decimal import Decimal

from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.scan import Change, diff
from tui.core.money.spend import spend
from tui.core.session import events as ev
from tui.core.session.branches import path_seqs

MAX_TEXT_DIFF = 512 * 1024  # larger files are reported as changed, without a line diff


@dataclass(frozen=True)
class CheckpointDiff:
    a: CheckpointRecord
    b: CheckpointRecord
    changes: list[Change]
    events: list[ev.Event]  # on b's branch, after the point a and b share
    cost: Decimal | None  # what the model requests among ``events`` cost
    # path -> a unified diff (text files) or a one-line note (anything else), for every
    # changed path that is not a directory: a complete value, whoever asked for it.
    texts: dict[str, str] = field(default_factory=dict)


def _unified(checkpointer: Checkpointer, change: Change) -> str:
    """A unified diff of one changed path (text files); a note for anything else."""
    path = change.path
    before, after = _text(checkpointer, change.before), _text(checkpointer, change.after)
    if before is None or after is None:
        return f"{path}: {_describe(change)}\n"
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"a/{path}",
            f"b/{path}",
        )
    )


def _text(checkpointer: Checkpointer, entry: tuple | None) -> str | None:
    if entry is None:
        return ""
    if entry[0] != "f" or entry[3] > MAX_TEXT_DIFF:
        return None
    data = checkpointer.blobs.get(entry[2])
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _describe(change: Change) -> str:
    entry = change.after or change.before
    kind = {"f": "binary or large file", "l": "link", "d": "directory", "s": "not captured"}[
        entry[0]
    ]
    if entry[0] == "l":
        kind = f"link -> {entry[1]}"
    return f"{change.kind} ({kind})"


def compare(
    checkpointer: Checkpointer,
    events: list[ev.Event],
    a: CheckpointRecord,
    b: CheckpointRecord,
) -> CheckpointDiff:
    """Blocking (reads blobs): run it off the event loop."""
    changes = diff(checkpointer.load(a.manifest), checkpointer.load(b.manifest))
    between = path_seqs(events, b.seq) - path_seqs(events, a.seq)
    chosen = [e for e in events if e.seq in between]
    texts = {
        c.path: _unified(checkpointer, c)
        for c in changes
        if (c.after or c.before)[0] not in ("d", "s")
    }
    return CheckpointDiff(a, b, changes, chosen, spend(events, between), texts)
