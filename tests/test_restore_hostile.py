"""Restores and scans on hostile ground: links planted where directories were, manifests
that try to walk through links, odd names, FIFOs, huge sparse files, trees that change
while they are read. Nothing outside the workspace is ever created, changed or read."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.core.checkpoints import scan as snapshot
from tui.core.checkpoints.blobs import BlobStore
from tui.core.checkpoints.manifests import Manifest, validate
from tui.core.checkpoints.restore import RestoreError, restore
from tui.core.checkpoints.scan import ScanLimits, StatCache, scan
from tui.core.errors import StoreError

NAMES = ["a", "b", "c d", "x\\y", "new\nline", "caf\udcc3", "-"]
LINK_TARGETS = ["..", "../..", "../../canary.txt", "/", "/tmp", "a", "a/..", "b/../..", "."]


def outside_state(base: Path, skip: Path) -> dict[str, tuple]:
    """Every path under ``base`` but ``skip`` (the workspace), with what could change."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            if full == skip:
                continue
            st_ = full.lstat()
            content = full.read_bytes() if stat.S_ISREG(st_.st_mode) else b""
            out[str(full)] = (stat.S_IFMT(st_.st_mode), st_.st_mode & 0o7777, content)
    return out


def plant(root: Path, entries: list[tuple[str, str, str]]) -> None:
    """Make a hostile current tree: directories, files and links pointing out."""
    for path, kind, extra in entries:
        full = root / path
        try:
            full.parent.mkdir(parents=True, exist_ok=True)
            if kind == "d":
                full.mkdir(exist_ok=True)
            elif kind == "f":
                full.write_text(extra)
            else:
                full.symlink_to(extra)
        except OSError:
            pass  # a clash with an earlier entry: the tree is just different


paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
planted = st.lists(
    st.tuples(paths, st.sampled_from("dfl"), st.sampled_from(LINK_TARGETS)), max_size=8
)


@st.composite
def manifests(draw: st.DrawFn, blobs: list[str]) -> Manifest:
    """A manifest that passes validation: parents are directories of the manifest."""
    manifest: Manifest = {}
    for path in draw(st.lists(paths, max_size=10)):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if manifest.get(parent, ("d",))[0] != "d":
                break
            manifest[parent] = ("d", draw(st.sampled_from([0o755, 0o700, 0o500])))
        else:
            if path in manifest:
                continue
            kind = draw(st.sampled_from("dfl"))
            if kind == "d":
                manifest[path] = ("d", 0o755)
            elif kind == "f":
                digest = draw(st.sampled_from(blobs))
                manifest[path] = ("f", draw(st.sampled_from([0o644, 0o600, 0o4755])), digest, 1)
            else:
                manifest[path] = ("l", draw(st.sampled_from(LINK_TARGETS)))
    validate(manifest, "test")
    return manifest


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), current=planted)
def test_restore_over_a_planted_tree_never_touches_the_outside(
    data: st.DataObject, current: list[tuple[str, str, str]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "canary.txt").write_text("canary\n")
        (base / "outside").mkdir()
        (base / "outside" / "keep.txt").write_text("keep\n")
        blobs = BlobStore(base / "blobs")
        digests = [blobs.put_bytes(b"x")[0], blobs.put_bytes(b"y")[0]]
        workspace = base / "ws" / "w"
        workspace.mkdir(parents=True)
        plant(workspace, current)
        target = data.draw(manifests(digests))
        before = outside_state(base, workspace)
        restore(workspace, target, blobs, StatCache())
        assert outside_state(base, workspace) == before
        # And the workspace is exactly the target, modes masked as corral keeps them.
        after, _ = scan(workspace, StatCache())
        expected = {
            p: (e[0], snapshot.file_mode(e[1]), e[2], e[3])
            if e[0] == "f"
            else ((e[0], snapshot.dir_mode(e[1])) if e[0] == "d" else e)
            for p, e in target.items()
        }
        assert after == expected


def test_a_manifest_that_walks_through_a_chain_of_links_is_refused(tmp_path: Path) -> None:
    """The shape of the exploit: each link text looks harmless, together they climb out."""
    chain: Manifest = {
        "d": ("d", 0o755),
        "d/e": ("d", 0o755),
        "d/e/l1": ("l", "../.."),
        "l2": ("l", "d/e/l1/.."),
        "l2/pwned": ("f", 0o644, "0" * 64, 1),
    }
    with pytest.raises(StoreError, match="parent is not a directory"):
        validate(chain, "test")
    # And restore itself refuses, even if handed an unvalidated manifest.
    blobs = BlobStore(tmp_path / "blobs")
    digest, _ = blobs.put_bytes(b"pwned")
    chain["l2/pwned"] = ("f", 0o644, digest, 5)
    workspace = tmp_path / "a" / "b" / "ws"
    workspace.mkdir(parents=True)
    with pytest.raises(RestoreError, match="not a directory"):
        restore(workspace, chain, blobs, StatCache())
    assert not list(tmp_path.rglob("pwned"))


def test_a_planted_link_where_the_checkpoint_has_a_directory_is_replaced(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    blobs = BlobStore(tmp_path / "blobs")
    digest, _ = blobs.put_bytes(b"inside\n")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "src").symlink_to(outside)  # what an agent's `ln -s` could leave
    target: Manifest = {"src": ("d", 0o755), "src/main.py": ("f", 0o644, digest, 7)}
    restore(workspace, target, blobs, StatCache())
    assert list(outside.iterdir()) == []
    assert not (workspace / "src").is_symlink()
    assert (workspace / "src" / "main.py").read_text() == "inside\n"


def test_modes_are_masked_no_setuid_and_directories_stay_owner_rwx(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest, _ = blobs.put_bytes(b"#!/bin/sh\n")
    workspace = tmp_path / "ws"
    target: Manifest = {
        "locked": ("d", 0o000),
        "locked/run": ("f", 0o6755, digest, 10),
        "sticky": ("d", 0o1777),
    }
    restore(workspace, target, blobs, StatCache())
    assert stat.S_IMODE((workspace / "locked/run").stat().st_mode) == 0o755
    assert stat.S_IMODE((workspace / "locked").stat().st_mode) == 0o700
    assert stat.S_IMODE((workspace / "sticky").stat().st_mode) == 0o777


def test_modes_an_agent_set_since_are_put_back_even_where_the_manifest_cannot_see_them(
    tmp_path: Path,
) -> None:
    # A scan keeps modes masked, so setuid/sticky bits and a closed directory look the
    # same as the checkpoint's; the restore must still undo them (and reopen the
    # directory before it writes inside it).
    blobs = BlobStore(tmp_path / "blobs")
    old, _ = blobs.put_bytes(b"old\n")
    workspace = tmp_path / "ws"
    target: Manifest = {
        "docs": ("d", 0o755),
        "docs/a.txt": ("f", 0o644, old, 4),
        "run": ("f", 0o755, old, 4),
        "shared": ("d", 0o777),
    }
    restore(workspace, target, blobs, StatCache())
    (workspace / "docs/a.txt").write_text("new\n")
    (workspace / "docs/b.txt").write_text("extra\n")
    os.chmod(workspace / "docs", 0o555)  # closed: nothing inside can change as it is
    os.chmod(workspace / "run", 0o4755)
    os.chmod(workspace / "shared", 0o1777)
    restore(workspace, target, blobs, StatCache())
    modes = {p: stat.S_IMODE((workspace / p).lstat().st_mode) for p in target}
    assert modes == {"docs": 0o755, "docs/a.txt": 0o644, "run": 0o755, "shared": 0o777}
    assert (workspace / "docs/a.txt").read_text() == "old\n"
    assert not (workspace / "docs/b.txt").exists()


def test_odd_names_round_trip_byte_for_byte(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    source = tmp_path / "src"
    source.mkdir()
    names = [b"back\\slash", b"new\nline", b"caf\xe9-latin1", b"\x1b[31mred", b" lead space"]
    for raw in names:
        with open(os.path.join(bytes(source), raw), "wb") as f:
            f.write(raw)
    manifest, stats = scan(source, StatCache(), blobs)
    assert stats.files == len(names)
    validate(manifest, "test")
    target = tmp_path / "dst"
    restore(target, manifest, blobs, StatCache())
    assert sorted(os.listdir(bytes(target))) == sorted(names)
    for raw in names:
        with open(os.path.join(bytes(target), raw), "rb") as f:
            assert f.read() == raw


def test_fifos_sockets_and_huge_sparse_files_are_skipped_with_notes_and_left_alone(
    tmp_path: Path,
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "ok.txt").write_text("fine\n")
    os.mkfifo(ws / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ws / "sock"))
    with open(ws / "sparse.img", "wb") as f:
        f.truncate(300 << 20)  # 300 MiB of nothing: over a 256 MiB cap, never read
    try:
        manifest, stats = scan(ws, StatCache(), blobs, ScanLimits(max_file_bytes=256 << 20))
    finally:
        sock.close()
    assert manifest["ok.txt"][0] == "f"
    assert {p for p, e in manifest.items() if e[0] == "s"} == {"pipe", "sock", "sparse.img"}
    assert stats.skipped == 3 and any("file cap" in n for n in stats.notes)
    # A restore of that checkpoint leaves the skipped paths where they are.
    (ws / "ok.txt").write_text("changed\n")
    restore(ws, manifest, blobs, StatCache())
    assert (ws / "ok.txt").read_text() == "fine\n"
    assert stat.S_ISFIFO((ws / "pipe").lstat().st_mode)
    assert (ws / "sparse.img").stat().st_size == 300 << 20


def test_a_directory_swapped_for_a_link_mid_scan_is_not_entered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret\n")
    ws = tmp_path / "ws"
    (ws / "victim").mkdir(parents=True)
    (ws / "victim" / "file.txt").write_text("in\n")
    real_lstat = os.lstat

    def swapping_lstat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = real_lstat(path, *args, **kwargs)
        if path == "victim" and (ws / "victim").is_dir() and not (ws / "victim").is_symlink():
            # Between the check and the open, the agent swaps in a link to the host.
            (ws / "victim" / "file.txt").unlink()
            (ws / "victim").rmdir()
            (ws / "victim").symlink_to(outside)
        return result

    monkeypatch.setattr(snapshot.os, "lstat", swapping_lstat)
    blobs = BlobStore(tmp_path / "blobs")
    manifest, _ = scan(ws, StatCache(), blobs)
    assert manifest["victim"][0] == "s" and "changed" in manifest["victim"][1]
    assert not any(p.startswith("victim/") for p in manifest)
    assert b"host secret" not in b"".join(
        p.read_bytes() for p in blobs.root.rglob("*") if p.is_file()
    )


def test_a_file_that_vanishes_mid_scan_is_just_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("a", "b", "c"):
        (ws / name).write_text(name)
    real_lstat = os.lstat

    def vanishing_lstat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if path == "b":
            (ws / "b").unlink(missing_ok=True)
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(snapshot.os, "lstat", vanishing_lstat)
    manifest, _ = scan(ws, StatCache(), BlobStore(tmp_path / "blobs"))
    assert set(manifest) == {"a", "c"}


def test_removing_a_wide_tree_holds_few_descriptors(tmp_path: Path) -> None:
    """A rewind that removes thousands of directories must not run out of fds (it held
    one per directory before), and a tree too deep to remove says so in one line."""
    import resource

    from tui.core.checkpoints.restore import remove_tree

    wide = tmp_path / "wide"
    for i in range(1500):
        (wide / f"d{i}" / "x").mkdir(parents=True)
    (wide / "out").symlink_to(tmp_path)  # a link is unlinked, never followed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    parent = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove_tree(parent, "wide")
        assert not wide.exists() and tmp_path.exists()
        (tmp_path / "deep" / "/".join(["w"] * 250)).mkdir(parents=True)
        with pytest.raises(RestoreError, match="deep"):
            remove_tree(parent, "deep")
    finally:
        os.close(parent)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a restore as another user, which needs root")
def test_a_closed_directory_does_not_stop_a_restore_by_its_owner() -> None:
    # As root a 555 directory is writable anyway; as its owner it is not, and a rewind
    # that must change something inside it has to reopen it first. The restore runs in a
    # forked child that has become "nobody" (no exec: nothing to find on disk as them).
    base = Path(tempfile.mkdtemp(prefix="corral-owner-"))
    os.chmod(base, 0o755)
    os.chown(base, 65534, 65534)
    blobs = BlobStore(base / "blobs")
    digest, _ = blobs.put_bytes(b"old\n")
    subprocess.run(["chown", "-R", "65534:65534", str(base)], check=True)
    target: Manifest = {"docs": ("d", 0o755), "docs/a.txt": ("f", 0o644, digest, 4)}
    ws = base / "ws"
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if every step held
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            restore(ws, target, blobs, StatCache())
            (ws / "docs/a.txt").write_text("new\n")
            os.chmod(ws / "docs", 0o555)
            restore(ws, target, blobs, StatCache())
            ok = (ws / "docs/a.txt").read_text() == "old\n"
            code = 0 if ok and stat.S_IMODE(os.stat(ws / "docs").st_mode) == 0o755 else 2
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
