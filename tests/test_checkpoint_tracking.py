"""Tracked checkpoints on real inotify: random changes made by a shell in the sandbox
(local and docker), each followed by a checkpoint that must equal a full scan; the
fallbacks (a new tracker, a kernel overflow, the watch limit, a barrier that does not
come back) and the periodic verification; restores that touch only what differs."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import mmap
import os
import random
import time
from pathlib import Path

import pytest

from tui.core.checkpoints import bundle, inotify
from tui.core.checkpoints import checkpointer as checkpointer_module
from tui.core.checkpoints.archive import ArchiveError
from tui.core.checkpoints.blobs import BlobStore
from tui.core.checkpoints.checkpointer import FIRST, Checkpointer, Tracking
from tui.core.checkpoints.gc import GcPlan, apply_gc
from tui.core.checkpoints.inotify import IN_Q_OVERFLOW, Event
from tui.core.checkpoints.records import FULL, TOOL, TRACKED
from tui.core.checkpoints.scan import ScanLimits, StatCache, scan
from tui.core.checkpoints.tracker import OVERFLOW, WATCH_LIMIT, ChangeFeed
from tui.core.engine.supervisor import Supervisor
from tui.core.sandboxes.local import LocalSandbox

from .test_checkpoints import run_session
from .test_docker import engine, env  # noqa: F401  (the module's engine fixture)
from .tracked_ops import assert_equals_full_scan, random_command


def checkpointer(
    tmp_path: Path, limits: ScanLimits | None = None, **tracking: object
) -> Checkpointer:
    return Checkpointer(tmp_path / "blobs", limits, Tracking(**tracking))  # type: ignore[arg-type]


async def run_sequence(box: object, cp: Checkpointer, ws: Path, seed: int, steps: int) -> None:
    """``steps`` random changes by the sandbox's shell, each followed by a checkpoint
    that must equal a full scan; every one after the first is a tracked one."""
    rng = random.Random(seed)
    base = None
    for step in range(steps):
        command = random_command(rng, ws)
        result = await box.bash(command, 30)  # type: ignore[attr-defined]
        assert result.exit_code == 0, (command, result.output)
        record = await cp.snapshot("sesn_t", ws, base, kind=TOOL, turn=step)
        assert record.scan == (FULL if step == 0 else TRACKED), (step, record.scan_note)
        try:
            assert_equals_full_scan(cp, ws, record)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, step {step}, after {command!r}: {exc}") from None
        base = record.manifest


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_changes_by_a_local_shell_each_checkpoint_equals_a_full_scan(
    tmp_path: Path, seed: int
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    cp = checkpointer(tmp_path, verify_every=0)
    box = LocalSandbox(ws)  # bubblewrap where it works, as sessions get it
    try:
        await run_sequence(box, cp, ws, seed, 40)
    finally:
        await box.close()
        cp.close()


@pytest.mark.usefixtures("engine")
async def test_random_changes_inside_a_container_reach_the_tracker(tmp_path: Path) -> None:
    from tui.core.sandboxes.docker import DockerSandbox

    ws = tmp_path / "ws"
    ws.mkdir()
    cp = checkpointer(tmp_path, verify_every=0)
    box = DockerSandbox(ws, env(), "sesn_tracked", tmp_path)
    try:
        await run_sequence(box, cp, ws, 7, 30)
        # A re-attached shell (a new one in the container) changes nothing for the
        # tracker: it watches the host directory.
        await box.restart()
        await run_sequence_from(box, cp, ws)
    finally:
        await box.close(remove=True)
        cp.close()


async def run_sequence_from(box: object, cp: Checkpointer, ws: Path) -> None:
    records = []
    base = None
    for command in ("echo one > after-restart", "mkdir -p r/s && echo two > r/s/t", "rm -r r"):
        assert (await box.bash(command, 30)).exit_code == 0  # type: ignore[attr-defined]
        record = await cp.snapshot("sesn_t", ws, base, kind=TOOL, turn=0)
        assert_equals_full_scan(cp, ws, record)
        records.append(record)
        base = record.manifest
    assert [r.scan for r in records] == [TRACKED] * 3


async def snap(cp: Checkpointer, ws: Path, base: str | None = None):  # type: ignore[no-untyped-def]
    record = await cp.snapshot("sesn_t", ws, base, kind=TOOL, turn=0)
    assert_equals_full_scan(cp, ws, record)
    return record


async def test_a_new_tracker_walks_once_and_sees_what_changed_while_none_ran(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    (ws / "d").mkdir(parents=True)
    (ws / "d" / "f").write_text("one")
    first = checkpointer(tmp_path)
    a = await snap(first, ws)
    b = await snap(first, ws, a.manifest)
    assert (a.scan, a.scan_note, b.scan) == (FULL, FIRST, TRACKED)
    first.close()  # the server stops
    (ws / "d" / "f").write_text("two")  # changed with no tracker running
    (ws / "d" / "g").write_text("new")
    second = checkpointer(tmp_path)  # a new server: a new tracker
    c = await snap(second, ws, b.manifest)
    assert (c.scan, c.scan_note, c.changed) == (FULL, FIRST, 2)
    (ws / "d" / "f").write_text("three")
    d = await snap(second, ws, c.manifest)
    assert (d.scan, d.changed) == (TRACKED, 1)
    # Released (its session ended): the next checkpoint walks again.
    second.release(ws)
    e = await snap(second, ws, d.manifest)
    assert (e.scan, e.scan_note) == (FULL, FIRST)
    # The feed itself gone (its reader died, say): a new one, armed by a walk.
    assert second._feed is not None
    second._feed.close()
    (ws / "d" / "f").write_text("four")
    f = await snap(second, ws, e.manifest)
    g = await snap(second, ws, f.manifest)
    assert (f.scan, f.changed, g.scan) == (FULL, 1, TRACKED)
    second.close()


async def test_past_the_cap_on_tracked_workspaces_the_least_recent_is_let_go(
    tmp_path: Path,
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    cp = checkpointer(tmp_path, max_workspaces=1)
    a = await snap(cp, one)
    b = await snap(cp, two)  # lets "one" go
    c = await snap(cp, one, a.manifest)
    d = await snap(cp, one, c.manifest)
    assert [r.scan for r in (a, b, c, d)] == [FULL, FULL, FULL, TRACKED]
    assert c.scan_note == FIRST
    cp.close()


async def test_a_kernel_overflow_makes_the_next_checkpoint_a_full_scan(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    cp = checkpointer(tmp_path)
    a = await snap(cp, ws)
    (ws / "seen").write_text("x")
    # The kernel's overflow event, fed through the reader's own dispatch; then a change
    # whose event is "lost" (made while the tracker is told nothing of it).
    assert cp._feed is not None
    cp._feed._dispatch([Event(-1, IN_Q_OVERFLOW, b"")])
    b = await snap(cp, ws, a.manifest)
    assert (b.scan, b.scan_note) == (FULL, OVERFLOW)
    (ws / "later").write_text("y")
    c = await snap(cp, ws, b.manifest)
    assert c.scan == TRACKED  # re-armed by the full scan
    cp.close()


async def test_a_real_kernel_queue_overflow_is_seen_and_walked_past(tmp_path: Path) -> None:
    """The reader is held (its lock taken) while more events are raised than the
    kernel queues (fs.inotify.max_queued_events): the kernel drops events and says so,
    and the next checkpoint walks the tree instead of trusting what it heard."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to write to overflow it")
    ws = tmp_path / "ws"
    (ws / "flood").mkdir(parents=True)
    # Draining the flood can take the reader longer than the default barrier wait on a
    # loaded machine; then the barrier's timeout, not the overflow, would name the walk.
    cp = checkpointer(tmp_path, barrier_timeout_s=120.0)
    a = await snap(cp, ws)
    assert cp._feed is not None
    with cp._feed.lock:  # the reader stops at its next batch; the kernel's queue fills
        for i in range(limit // 2 + 2_000):  # create, modify, close: 3 events each
            (ws / "flood" / f"f{i}").write_bytes(b"x")
    b = await snap(cp, ws, a.manifest)
    assert (b.scan, b.scan_note) == (FULL, OVERFLOW)
    assert b.files == limit // 2 + 2_000
    (ws / "flood" / "f0").write_bytes(b"after")
    c = await snap(cp, ws, b.manifest)
    assert (c.scan, c.changed) == (TRACKED, 1)
    cp.close()


def test_a_barrier_whose_event_the_kernel_dropped_is_answered_by_the_overflow() -> None:
    """A barrier written while the kernel's queue is full loses its own event; the
    overflow must answer it (the checkpoint walks anyway), or it waits out its timeout.
    Under load this is what the real overflow test above met now and then."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to write to overflow it")
    feed = ChangeFeed()
    try:
        with feed.lock:  # the reader stops at its next batch; the kernel's queue fills
            for i in range(limit + 100):
                Path(feed._private, f"f{i}").touch()
            feed._issued += 1  # a barrier, issued as barrier() does, now: its event is lost
            number = feed._issued
            Path(feed._private, f"b{number}").touch()
        with feed._arrived:
            answered = feed._arrived.wait_for(lambda: feed._seen >= number, 60)
        assert answered, "the barrier waited past the overflow"
    finally:
        feed.close()


async def test_the_watch_limit_makes_the_next_checkpoint_a_full_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    (ws / "a").mkdir(parents=True)
    cp = checkpointer(tmp_path)
    first = await snap(cp, ws)
    real = inotify.Inotify.watch_fd

    def full(self: inotify.Inotify, dir_fd: int, mask: int = inotify.CHANGES) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(inotify.Inotify, "watch_fd", full)  # the kernel's answer at the limit
    os.makedirs(ws / "new" / "deeper")
    (ws / "new" / "deeper" / "f").write_text("x")
    second = await snap(cp, ws, first.manifest)  # tracked: it saw "new" arrive
    assert second.scan == TRACKED
    (ws / "new" / "deeper" / "f").write_text("unwatched")  # no watch there: no event
    third = await snap(cp, ws, second.manifest)
    assert (third.scan, third.scan_note) == (FULL, WATCH_LIMIT)
    monkeypatch.setattr(inotify.Inotify, "watch_fd", real)
    (ws / "new" / "deeper" / "f").write_text("watched again")
    fourth = await snap(cp, ws, third.manifest)
    assert (fourth.scan, fourth.scan_note) == (FULL, WATCH_LIMIT)  # the limit hit again
    fifth = await snap(cp, ws, fourth.manifest)
    assert fifth.scan == TRACKED  # the limit lifted: armed again
    cp.close()


async def test_a_barrier_that_does_not_come_back_makes_a_full_scan(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    cp = checkpointer(tmp_path, barrier_timeout_s=0.2)
    a = await snap(cp, ws)
    assert cp._feed is not None
    sentinel = cp._feed._sentinel_wd
    cp._feed._sentinel_wd = -2  # its events are never recognised: the barrier times out
    (ws / "f").write_text("x")
    b = await snap(cp, ws, a.manifest)
    assert b.scan == FULL and "did not confirm its events within 0.2 s" in b.scan_note
    cp._feed._sentinel_wd = sentinel
    (ws / "f").write_text("y")
    c = await snap(cp, ws, b.manifest)
    assert c.scan == TRACKED
    cp.close()


async def test_verification_catches_a_change_inotify_cannot_see(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write through a shared mapping raises no event until the mapping goes (its
    IN_CLOSE_WRITE comes at munmap): a checkpoint taken while it is mapped misses it, and
    the periodic verification says so, loudly, and keeps the full scan's result."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mapped").write_bytes(b"before!")
    cp = checkpointer(tmp_path, verify_every=2)
    a = await snap(cp, ws)
    with open(ws / "mapped", "r+b") as f:
        mapping = mmap.mmap(f.fileno(), 0)
    try:
        b = await snap(cp, ws, a.manifest)
        assert (b.scan, b.changed) == (TRACKED, 0)
        mapping[:7] = b"AFTER!!"  # no event while it stays mapped
        mapping.flush()
        with caplog.at_level(logging.ERROR, logger=checkpointer_module.__name__):
            c = await cp.snapshot("sesn_t", ws, b.manifest, kind=TOOL, turn=0)
    finally:
        mapping.close()
    assert c.scan == FULL and "differed at 1 path(s)" in c.scan_note
    assert "'mapped' changed" in caplog.text
    assert_equals_full_scan(cp, ws, c)  # the full scan's result was kept
    (ws / "x").write_text("x")
    d = await snap(cp, ws, c.manifest)
    e = await snap(cp, ws, d.manifest)
    assert (d.scan, e.scan) == (TRACKED, FULL)
    assert e.scan_note.endswith("equal to the tracked result")
    cp.close()


async def test_restore_touches_only_what_differs_and_walks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    (ws / "keep").mkdir(parents=True)
    for i in range(50):
        (ws / "keep" / f"f{i}").write_text(f"file {i}")
    (ws / "a").write_text("first")
    cp = checkpointer(tmp_path)
    one = await snap(cp, ws)
    (ws / "a").write_text("second")
    (ws / "b").write_text("new")
    os.chmod(ws / "keep" / "f3", 0o600)
    os.symlink("a", ws / "link")
    two = await snap(cp, ws, one.manifest)
    assert (two.scan, two.changed) == (TRACKED, 4)
    inodes = {p: p.stat().st_ino for p in (ws / "keep").iterdir()}
    walks: list[Path] = []
    real_scan = checkpointer_module.scan

    def counting_scan(root: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        walks.append(root)
        return real_scan(root, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(checkpointer_module, "scan", counting_scan)
    monkeypatch.setattr("tui.core.checkpoints.restore.scan", counting_scan)
    changes = await cp.restore(ws, one.manifest)
    assert sorted(c.path for c in changes) == ["a", "b", "keep/f3", "link"]
    assert walks == []  # the tracker knew the tree: no walk
    assert scan(ws, StatCache())[0] == cp.load(one.manifest)
    # Untouched files are the same inodes (only f3's mode was set, in place).
    assert {p: p.stat().st_ino for p in (ws / "keep").iterdir()} == inodes
    # What the restore wrote comes back as events; the next checkpoint is still tracked
    # and equal to the tree, and forward again works the same way.
    three = await snap(cp, ws, one.manifest)
    assert (three.scan, three.changed) == (TRACKED, 0)
    assert cp.load(three.manifest) == cp.load(one.manifest)
    (ws / "c").write_text("c")
    pending = await cp.pending_changes(ws, two.manifest)
    assert sorted(c.path for c in pending) == ["a", "b", "c", "keep/f3", "link"]
    await cp.restore(ws, two.manifest)
    assert walks == []
    assert scan(ws, StatCache())[0] == cp.load(two.manifest)
    cp.close()


async def test_skipped_paths_are_looked_at_again_without_an_event(tmp_path: Path) -> None:
    """Files left out for the per-checkpoint read cap raise no event when the next
    checkpoint could take them: a tracked checkpoint looks at skipped paths every time,
    and takes what a full scan would (a checkpointer that walks, beside it, says what)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    limits = ScanLimits(max_checkpoint_bytes=100)
    cp = checkpointer(tmp_path, limits)
    walking = checkpointer(tmp_path / "walking", limits, enabled=False)
    records = []
    base = walked = None
    for step in range(4):
        if step == 1:
            for name in ("f1", "f2", "f3"):
                (ws / name).write_bytes(b"x" * 40)
        record = await cp.snapshot("sesn_t", ws, base, kind=TOOL, turn=0)
        other = await walking.snapshot("sesn_w", ws, walked, kind=TOOL, turn=0)
        assert cp.load(record.manifest) == walking.load(other.manifest)
        assert (record.skipped, record.notes) == (other.skipped, other.notes)
        records.append(record)
        base, walked = record.manifest, other.manifest
    assert [r.scan for r in records] == [FULL, TRACKED, TRACKED, TRACKED]
    assert [r.skipped for r in records] == [0, 1, 0, 0]
    cp.close()


async def test_tracking_off_in_settings_walks_every_time(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    cp = checkpointer(tmp_path, enabled=False)
    a = await snap(cp, ws)
    (ws / "f").write_text("x")
    b = await snap(cp, ws, a.manifest)
    assert (b.scan, b.changed) == (FULL, 1)
    assert "off" in b.scan_note
    assert cp._feed is None


async def test_a_session_checkpoints_by_tracking_after_its_first_and_says_so(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    """Through the engine and the store: the start walks the tree, every checkpoint after
    a tool is tracked, the records keep how (in SQLite and in an export's lines), and an
    old export without the fields reads as full scans."""
    sid, workspace = await run_session(supervisor, tmp_path)
    checkpoints = await supervisor.store.checkpoints(sid)
    assert [(c.scan, c.scan_note) for c in checkpoints[:1]] == [(FULL, FIRST)]
    assert [c.scan for c in checkpoints[1:]] == [TRACKED] * (len(checkpoints) - 1)
    last_seq = (await supervisor.store.state(sid)).last_seq
    for record in checkpoints:
        line = json.dumps(record.to_json())
        assert bundle._checkpoint(line, sid, last_seq, "test") == record
    old = checkpoints[1].to_json()
    del old["scan"], old["scan_note"]
    assert bundle._checkpoint(json.dumps(old), sid, last_seq, "test").scan == FULL
    with pytest.raises(ArchiveError, match="scan must be one of"):
        bundle._checkpoint(json.dumps({**old, "scan": "guessed"}), sid, last_seq, "test")
    # A rewind restores by difference and the session's next checkpoint is tracked.
    await supervisor.rewind(sid, checkpoints[1].id)
    record = await supervisor.checkpoint(sid, "after the rewind")
    assert record.scan == TRACKED
    assert_equals_full_scan(supervisor.checkpointer, workspace, record)


async def test_a_gc_since_the_last_checkpoint_is_noticed_and_blobs_checked_again(
    tmp_path: Path,
) -> None:
    """Scans trust the blobs this process stored (no stat each); a gc rewrites the blob
    store's stamp, and then nothing is taken on trust: the next checkpoint walks and a
    blob that went is stored again, never named while missing."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "x").write_text("content")
    cp = checkpointer(tmp_path)
    a = await snap(cp, ws)
    digest = cp.load(a.manifest)["x"][2]
    await apply_gc(cp, GcPlan(0, [(digest, 7)]))  # as if no checkpoint named it
    assert not cp.blobs.has(digest)
    b = await snap(cp, ws, a.manifest)
    assert (b.scan, b.scan_note) == (FULL, "blobs were collected (gc) since the last checkpoint")
    assert cp.blobs.has(digest)
    c = await snap(cp, ws, b.manifest)
    assert c.scan == TRACKED
    cp.close()


def test_a_scan_that_overlapped_a_gc_is_done_again(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest, _ = blobs.put_bytes(b"x")
    stamp = blobs.trusting()
    assert stamp is not None and blobs.has_known(digest)
    blobs.stamp_gc(busy=True)  # a gc starts while the scan runs
    blobs.remove(digest)
    assert blobs.has_known(digest)  # memory still answers inside the window...
    assert not blobs.still_trusted(stamp)  # ...which is why its end is checked
    assert blobs.trusting() is None  # while a gc is busy nothing is trusted
    blobs.stamp_gc(busy=False)
    assert blobs.trusting() is not None and not blobs.has_known(digest)
    # A gc from another process (its own BlobStore on the same directory) between scans.
    again, _ = blobs.put_bytes(b"y")
    assert blobs.has_known(again)
    other = BlobStore(tmp_path / "blobs")
    other.stamp_gc(busy=True)
    other.remove(again)
    other.stamp_gc(busy=False)
    assert blobs.trusting() is not None and not blobs.has_known(again)
    cp = checkpointer(tmp_path)
    runs: list[int] = []

    def work() -> int:
        runs.append(1)
        if len(runs) == 1:  # a gc ran during the first run
            cp.blobs.stamp_gc(busy=True)
            cp.blobs.stamp_gc(busy=False)
        return len(runs)

    assert cp._trusted(work) == 2
    assert cp._trusted(work) == 3  # no gc this time: once


async def test_a_rewind_never_writes_through_a_hard_link_to_a_file_outside(
    tmp_path: Path,
) -> None:
    """Files are rewritten in place only when they have no other name: a file swapped
    for a hard link to one outside the workspace is replaced, the outside one untouched."""
    ws = tmp_path / "ws"
    ws.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    (ws / "x").write_text("one")
    cp = checkpointer(tmp_path)
    a = await snap(cp, ws)
    (ws / "x").unlink()
    os.link(outside, ws / "x")
    (ws / "y").write_text("rewritten in place")
    b = await snap(cp, ws, a.manifest)
    assert b.scan == TRACKED
    y_inode = (ws / "y").stat().st_ino
    await cp.restore(ws, a.manifest)
    assert outside.read_text() == "not yours"
    assert (ws / "x").read_text() == "one" and (ws / "x").stat().st_nlink == 1
    assert not (ws / "y").exists()
    (ws / "y").write_text("again")
    y_inode = (ws / "y").stat().st_ino
    c = await snap(cp, ws, a.manifest)
    (ws / "y").write_text("changed")
    await snap(cp, ws, c.manifest)
    await cp.restore(ws, c.manifest)
    assert (ws / "y").read_text() == "again" and (ws / "y").stat().st_ino == y_inode
    cp.close()


def test_a_stale_view_of_the_tree_never_opens_what_is_really_there(tmp_path: Path) -> None:
    """``restore`` told the tree holds regular files where there are now a FIFO and a
    link out of the workspace (a tracker's view a moment old): neither is opened or
    followed; both are replaced."""
    from tui.core.checkpoints.restore import restore

    ws = tmp_path / "ws"
    ws.mkdir()
    cp = checkpointer(tmp_path)
    (ws / "fifo").write_text("old")
    (ws / "link").write_text("old")
    stale, _ = scan(ws, StatCache(), cp.blobs)
    (ws / "fifo").unlink()
    os.mkfifo(ws / "fifo")
    (ws / "link").unlink()
    outside = tmp_path / "target.txt"
    outside.write_text("outside")
    os.symlink(outside, ws / "link")
    (ws / "fifo2").write_text("new")
    target, _ = scan(ws, StatCache(), cp.blobs)
    target = {
        "fifo": target["fifo2"],
        "link": target["fifo2"],
    }
    restore(ws, target, cp.blobs, StatCache(), stale, set())
    assert (ws / "fifo").read_text() == "new" and (ws / "link").read_text() == "new"
    assert not (ws / "link").is_symlink() and outside.read_text() == "outside"


async def test_checkpoints_taken_while_a_background_job_writes_catch_up_with_it(
    tmp_path: Path,
) -> None:
    """A job the agent left running keeps making, filling and moving directories while
    checkpoints are taken: each checkpoint is a valid manifest, and once the job ends the
    next one equals a full scan (what changed during a checkpoint is in the next)."""
    from tui.core.checkpoints.manifests import validate

    ws = tmp_path / "ws"
    ws.mkdir()
    cp = checkpointer(tmp_path, verify_every=0)
    box = LocalSandbox(ws)
    try:
        base = (await snap(cp, ws)).manifest
        job = (
            "(for i in $(seq 1 300); do mkdir -p bg/d$i/e && echo $i > bg/d$i/e/f"
            " && mv bg/d$i bg/m$i && rm -rf bg/m$((i - 3)); done; touch job-done) &"
        )
        assert (await box.bash(job, 30)).exit_code == 0
        taken = 0
        deadline = time.monotonic() + 60
        while not (ws / "job-done").exists() or taken < 3:
            assert time.monotonic() < deadline, "the background job did not end"
            record = await cp.snapshot("sesn_t", ws, base, kind=TOOL, turn=0)
            validate(cp.load(record.manifest), record.manifest)
            assert record.scan == TRACKED
            base, taken = record.manifest, taken + 1
        await snap(cp, ws, base)  # the job is over: equal to a full scan
    finally:
        await box.close()
        cp.close()


WRITER = """
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
dirs = sorted(d for d in os.listdir(root) if d.startswith("d"))
for i in range(count):
    os.close(os.open(os.path.join(root, dirs[i % len(dirs)], f"w{i}"), os.O_CREAT | os.O_WRONLY))
    if i == 2000:
        os.close(os.open(os.path.join(root, "writing"), os.O_CREAT | os.O_WRONLY))
"""


async def test_files_made_while_the_tracker_arms_are_never_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process keeps creating files across many directories while a full scan
    arms the tracker: each directory is watched before it is listed, so a file is in
    the listing or raises an event, never neither; after the writer ends, a tracked
    checkpoint equals a full scan. Putting a watch is made a millisecond slower (before
    it is put): harmless in that order, a window the writer falls into if the listing
    ever came first."""
    import subprocess
    import sys

    from tui.core.checkpoints.tracker import WorkspaceTracker

    real = WorkspaceTracker.watch_dir

    def slow_watch(self: WorkspaceTracker, dir_fd: int, rel: str) -> None:
        time.sleep(0.001)  # widens a race window; waits for nothing
        real(self, dir_fd, rel)

    monkeypatch.setattr(WorkspaceTracker, "watch_dir", slow_watch)
    ws = tmp_path / "ws"
    for i in range(200):
        (ws / f"d{i:03d}").mkdir(parents=True)
    cp = checkpointer(tmp_path, verify_every=0)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ws), "20000"])
    try:
        deadline = time.monotonic() + 30
        while not (ws / "writing").exists():  # the writer is under way
            assert writer.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.005)
        first = await cp.snapshot("sesn_t", ws, None, kind=TOOL, turn=0)
        assert first.scan == FULL
    finally:
        assert writer.wait(timeout=120) == 0
    await snap(cp, ws, first.manifest)
    cp.close()
