"""The README's promise that a rewind puts the workspace back exactly: every path, its
kind, its mode (as corral keeps modes), its bytes or link target, at every checkpoint,
from whatever state the workspace is in when asked.

Modes are compared masked on both sides, as corral keeps them. A restore compares the
masked modes too, so bits the mask hides that the agent set on a path whose masked mode
is unchanged (setuid, sticky, a directory chmod 555) stay as the restore found them;
this test does not hold corral to more than that."""

from __future__ import annotations

from pathlib import Path

from tui.core.checkpoints.records import MANUAL, START, TURN
from tui.core.engine.supervisor import Supervisor

from .workspace_history import masked_tree, run_recorded


async def test_rewind_to_every_checkpoint_from_every_other_is_byte_exact(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    run = await run_recorded(supervisor, tmp_path)
    checkpoints = await supervisor.store.checkpoints(run.session_id)
    assert [c.kind for c in checkpoints] == [START, TURN, TURN, MANUAL, TURN, TURN]
    assert set(run.trees) == {c.id for c in checkpoints}
    trees = [run.trees[c.id] for c in checkpoints]
    # The recordings are of different trees (else a rewind to the wrong one could pass),
    # the start is the seed as written, modes included, and the agent's chmods happened.
    assert len({repr(t) for t in trees}) == len(trees) - 1  # the manual one repeats its turn
    assert trees[0] == masked_tree(run.seed)
    final = trees[-1]
    assert final["a.txt"] == ("file", "0o444", b"alpha again\n")
    assert final["tools"] == ("dir", "0o755")  # chmod 2755, setgid masked
    assert final["empty/deeper"] == ("dir", "0o777")  # chmod 1777, sticky masked
    assert final["docs"] == ("dir", "0o755")  # chmod 555, owner rwx added
    assert trees[1]["docs"] == ("dir", "0o700")
    assert trees[1]["private.txt"] == ("file", "0o750", b"mine\n")  # chmod 4750
    assert trees[2]["a.txt"] == ("link", "docs")

    # What a restore has to do depends on what is on disk when it starts, so the
    # rewinds visit every ordered pair of checkpoints: i then j, for every i != j.
    n = len(checkpoints)
    order = [k for i in range(n) for j in range(n) if j != i for k in (i, j)]
    seen: set[tuple[int, int]] = set()
    here = n - 1  # the session ended at its last checkpoint
    for index in order:
        await supervisor.rewind(run.session_id, checkpoints[index].id)
        assert masked_tree(run.workspace) == trees[index], (here, index)
        # And on disk exactly so: no setuid, setgid or sticky bit and no closed directory
        # the agent left is kept just because the masked modes looked the same.
        assert masked_tree(run.workspace, raw=True) == trees[index], (here, index)
        seen.add((here, index))
        here = index
    assert {(i, j) for i in range(n) for j in range(n) if i != j} <= seen
