"""Checkpoints, rewind, fork, diff and gc on a real store, blob dir and workspace."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.checkpoints.diff import compare
from tui.core.checkpoints.gc import apply_gc, plan_gc
from tui.core.checkpoints.manifests import ManifestStore
from tui.core.checkpoints.records import START, TOOL, TURN
from tui.core.checkpoints.scan import StatCache, scan
from tui.core.engine.supervisor import Supervisor
from tui.core.money.spend import dead_end_spend
from tui.core.session import events as ev
from tui.core.session.branches import path_seqs, visible
from tui.core.session.state import finished_after, is_finished

from .conftest import make_spec

# Each turn changes the workspace a different way, bash included.
TURNS = [
    {"text": "sed", "tool_uses": [("bash", {"command": "sed -i 's/one/ONE/' a.txt"})]},
    {
        "text": "two at once",
        "tool_uses": [
            ("write", {"file_path": "notes/plan.md", "content": "the plan\n"}),
            ("bash", {"command": "mkdir -p out/empty && chmod 700 b.txt && ln -s a.txt link"}),
        ],
    },
    {"text": "remove", "tool_uses": [("bash", {"command": "rm b.txt && echo built > out/x"})]},
    {"text": "done"},
]


def seed(tmp_path: Path) -> Path:
    source = tmp_path / "seed"
    source.mkdir()
    (source / "a.txt").write_text("one\ntwo\n")
    (source / "b.txt").write_text("bee\n")
    os.chmod(source / "b.txt", 0o644)
    return source


def tree(root: Path) -> dict[str, object]:
    """Everything observable about a tree: kinds, modes, contents, link targets."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            st = full.lstat()
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                out[rel] = ("dir", oct(st.st_mode & 0o7777))
            else:
                out[rel] = ("file", oct(st.st_mode & 0o7777), full.read_bytes())
    return out


async def finish(supervisor: Supervisor, sid: str) -> None:
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    assert state.stop_type == ev.END_TURN


async def run_session(supervisor: Supervisor, tmp_path: Path) -> tuple[str, Path]:
    spec = make_spec(tmp_path, TURNS, workspace=seed(tmp_path))
    sid = await supervisor.create_session(spec)
    await finish(supervisor, sid)
    return sid, Path((await supervisor.store.get_session(sid)).workspace)


async def test_every_turn_is_checkpointed_with_its_tool_result(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    sid, _ = await run_session(supervisor, tmp_path)
    checkpoints = await supervisor.store.checkpoints(sid)
    events = await supervisor.store.events(sid)
    assert [c.kind for c in checkpoints] == [START, TURN, TOOL, TURN, TURN]
    by_seq = {e.seq: e for e in events}
    for cp in checkpoints[1:]:
        # Committed with the tool result it follows: the same position in the log.
        assert by_seq[cp.seq].type == ev.AGENT_TOOL_RESULT
    assert checkpoints[0].seq == 1 and by_seq[1].type == ev.USER_MESSAGE
    assert [c.turn for c in checkpoints] == [0, 1, 2, 2, 3]
    assert checkpoints[-1].model_cost > checkpoints[1].model_cost > 0


async def test_rewind_undoes_what_bash_did_and_twice_is_byte_identical(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    sid, workspace = await run_session(supervisor, tmp_path)
    checkpoints = await supervisor.store.checkpoints(sid)
    first = checkpoints[1]  # after `sed -i`, before the rest
    preview = await supervisor.checkpointer.pending_changes(workspace, first.manifest)
    assert {c.path for c in preview} >= {"b.txt", "link", "out", "notes/plan.md"}
    await supervisor.rewind(sid, first.id)
    once = tree(workspace)
    assert once["a.txt"] == ("file", "0o644", b"ONE\ntwo\n")  # the sed stayed
    assert once["b.txt"] == ("file", "0o644", b"bee\n")  # rm and chmod undone
    assert "link" not in once and "out" not in once and "notes" not in once
    # Damage the workspace, rewind again: the same bytes come back.
    (workspace / "a.txt").write_text("garbage")
    (workspace / "stray").mkdir()
    await supervisor.rewind(sid, first.id)
    assert tree(workspace) == once

    # And forward to the last checkpoint restores links, modes and empty directories.
    await supervisor.rewind(sid, checkpoints[-1].id)
    final = tree(workspace)
    assert final["link"] == ("link", "a.txt")
    assert final["out/empty"][0] == "dir"
    assert "b.txt" not in final and final["out/x"][2] == b"built\n"


async def test_rewind_branches_the_log_and_counts_dead_end_spend(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    sid, workspace = await run_session(supervisor, tmp_path)
    first = (await supervisor.store.checkpoints(sid))[1]
    before = await supervisor.store.events(sid)
    await supervisor.rewind(sid, first.id)
    state = await supervisor.store.state(sid)
    assert state.status == "idle" and state.stop_type == ev.PAUSED
    events = await supervisor.store.events(sid)
    assert events[: len(before)] == before  # nothing rewritten
    assert dead_end_spend(events) > 0
    # On resume the model carries on from the checkpoint: the script's turn 2 again.
    seq = state.last_seq
    await supervisor.resume(sid)
    state = await asyncio.wait_for(supervisor.wait_for(sid, finished_after(seq)), 30)
    assert state.stop_type == ev.END_TURN
    events = await supervisor.store.events(sid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    current = visible(events)
    texts = [e.text for e in current if e.type == ev.AGENT_MESSAGE]
    assert texts == ["sed", "two at once", "remove", "done"]
    abandoned = [e for e in events if e.seq not in path_seqs(events)]
    assert [e.text for e in abandoned if e.type == ev.AGENT_MESSAGE] == [
        "two at once",
        "remove",
        "done",
    ]
    assert not (workspace / "b.txt").exists()  # the new branch removed it again


async def test_fork_copies_the_conversation_and_workspace_not_the_spend(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    sid, workspace = await run_session(supervisor, tmp_path)
    original_events = await supervisor.store.events(sid)
    original_tree = tree(workspace)
    point = (await supervisor.store.checkpoints(sid))[1]
    fork = await supervisor.fork(sid, point.id)
    fork_ws = Path((await supervisor.store.get_session(fork)).workspace)
    assert tree(fork_ws)["a.txt"] == ("file", "0o644", b"ONE\ntwo\n")
    assert await supervisor.store.events(sid) == original_events
    assert tree(workspace) == original_tree
    state = await supervisor.store.state(fork)
    assert state.usage.requests == 0 and state.stop_type == ev.PAUSED
    seq = state.last_seq
    await supervisor.resume(fork)
    state = await asyncio.wait_for(supervisor.wait_for(fork, finished_after(seq)), 30)
    assert state.stop_type == ev.END_TURN
    assert tree(fork_ws) == original_tree  # the same script, the same end


async def test_diff_between_checkpoints(supervisor: Supervisor, tmp_path: Path) -> None:
    sid, _ = await run_session(supervisor, tmp_path)
    cps = await supervisor.store.checkpoints(sid)
    events = await supervisor.store.events(sid)
    result = compare(supervisor.checkpointer, events, cps[0], cps[1])
    assert [(c.path, c.kind) for c in result.changes] == [("a.txt", "changed")]
    text = result.texts["a.txt"]
    assert "-one\n" in text and "+ONE\n" in text
    assert result.cost == cps[1].model_cost - cps[0].model_cost
    assert any(e.type == ev.AGENT_TOOL_USE for e in result.events)
    wide = compare(supervisor.checkpointer, events, cps[0], cps[-1])
    kinds = {c.path: c.kind for c in wide.changes}
    assert kinds["b.txt"] == "removed" and kinds["notes/plan.md"] == "added"


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    for i in range(200):
        (root / f"f{i}.txt").write_text(f"file {i}\n" * 50)
    checkpointer = Checkpointer(tmp_path / "blobs")
    cache = StatCache()
    _, first = scan(root, cache, checkpointer.blobs)
    assert first.hashed == 200
    (root / "f7.txt").write_text("changed\n")
    manifest, second = scan(root, cache, checkpointer.blobs)
    assert second.hashed == 1 and second.stored_bytes == len("changed\n")
    assert manifest["f7.txt"][3] == len("changed\n")


def test_a_one_file_change_costs_its_bytes_not_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    for d in range(20):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(100):
            (root / f"d{d}" / f"f{i}").write_bytes(os.urandom(64))
    checkpointer = Checkpointer(tmp_path / "blobs")
    base = checkpointer._snapshot("sesn_x", root, None, "manual", 0, "")
    (root / "d3" / "f5").write_bytes(os.urandom(4096))
    nxt = checkpointer._snapshot("sesn_x", root, base.manifest, "manual", 0, "")
    assert nxt.changed == 1
    assert nxt.stored_bytes <= 4096 + 16 * 1024
    # A fresh reader (no cache) rebuilds the same manifest from the delta chain.
    assert ManifestStore(checkpointer.blobs).load(nxt.manifest) == checkpointer.load(nxt.manifest)


async def test_gc_removes_only_what_no_checkpoint_needs(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    sid, _ = await run_session(supervisor, tmp_path)
    blobs = supervisor.checkpointer.blobs
    stray, _ = blobs.put_bytes(b"nobody refers to this")
    plan = await plan_gc(supervisor.store, supervisor.checkpointer)
    assert [d for d, _ in plan.unreferenced] == [stray]
    assert blobs.has(stray)  # planning removes nothing
    await apply_gc(supervisor.checkpointer, plan)
    assert not blobs.has(stray)
    # Every checkpoint still restores.
    cps = await supervisor.store.checkpoints(sid)
    await supervisor.rewind(sid, cps[0].id)


async def test_gc_beside_running_sessions_spares_blobs_written_or_reused_lately(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    blobs = supervisor.checkpointer.blobs
    stray, _ = blobs.put_bytes(b"left by an aborted checkpoint")
    an_hour_ago = time.time() - 3600
    os.utime(blobs.path(stray), (an_hour_ago, an_hour_ago))
    plan = await plan_gc(supervisor.store, supervisor.checkpointer, grace_s=600)
    assert [d for d, _ in plan.unreferenced] == [stray]
    # A checkpoint being taken now stores the same content: its record is not committed
    # yet, so only the blob's fresh use keeps gc from taking it.
    assert blobs.put_bytes(b"left by an aborted checkpoint") == (stray, 0)
    plan = await plan_gc(supervisor.store, supervisor.checkpointer, grace_s=600)
    assert plan.unreferenced == []
    fresh, _ = blobs.put_bytes(b"written a moment ago")
    plan = await plan_gc(supervisor.store, supervisor.checkpointer, grace_s=600)
    assert fresh not in [d for d, _ in plan.unreferenced]


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "a//b", "./a"])
def test_a_manifest_path_that_leaves_the_workspace_is_refused(tmp_path: Path, bad: str) -> None:
    from tui.core.checkpoints.manifests import validate
    from tui.core.errors import StoreError

    with pytest.raises(StoreError, match=r"leaves the workspace|not a workspace path"):
        validate({bad: ("d", 0o755)}, "0" * 64)


def test_a_manifest_that_inflates_too_far_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zlib

    from tui.core.checkpoints import manifests
    from tui.core.checkpoints.blobs import BlobStore
    from tui.core.errors import StoreError

    monkeypatch.setattr(manifests, "MAX_MANIFEST", 10_000)
    blobs = BlobStore(tmp_path / "blobs")
    bomb, _ = blobs.put_bytes(zlib.compress(b'{"v":1,"set":{},"pad":"' + b" " * 50_000 + b'"}'))
    with pytest.raises(StoreError, match="inflates past"):
        ManifestStore(blobs).load(bomb)
