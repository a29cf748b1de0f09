"""Where a new session works: its own copy of the spec's source (copied through the blob
store: links kept as links, special files skipped, never read), the source itself for
``in_place``, or a fresh directory; never a tree that overlaps corral's data dir."""

from __future__ import annotations

import shutil
from pathlib import Path

from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.errors import CorralError, UsageError
from tui.core.session.spec import SessionSpec, refuse_system_tree
from tui.core.store.datadir import workspaces_dir


async def prepare_workspace(
    checkpointer: Checkpointer, data_dir: Path, session_id: str, spec: SessionSpec
) -> tuple[Path, list[str]]:
    """The session's workspace, and notes on what copying it skipped."""
    source = spec.workspace.source
    if source is not None:
        refuse_overlap(source, data_dir)
    if spec.workspace.mode == "in_place" and source is not None:
        return source, []
    target = workspaces_dir(data_dir) / session_id
    if source is None:
        target.mkdir(parents=True)
        return target, []
    refuse_system_tree(source)
    try:
        notes = await checkpointer.copy_tree(source, target)
    except (OSError, CorralError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise CorralError(f"cannot copy the workspace {source}: {exc}") from None
    return target, notes


def refuse_overlap(source: Path, data_dir: Path) -> None:
    """A workspace that holds corral's data dir would let the agent write the store and a
    rewind delete the blobs; one inside the data dir is corral's own."""
    data = data_dir.resolve()
    real = source.resolve()
    if real == data or real in data.parents or data in real.parents:
        raise UsageError(
            f"{source}: overlaps corral's data dir {data}; use another workspace or --data-dir"
        )
