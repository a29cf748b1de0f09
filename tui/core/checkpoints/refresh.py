"""A tracked checkpoint: the previous manifest brought up to date for the paths a change
tracker named, instead of a walk of the whole tree.

Each dirty path is looked at again the way a scan would (same capture code, same
hostile-tree rules: directories opened one component at a time with ``O_NOFOLLOW``,
FIFOs never opened). A path that is gone takes its subtree with it; a directory that
arrived (created, moved in, or replacing something else) has its whole subtree walked.
Skipped entries (``"s"``) and files with more than one link are looked at every time:
what would let a full scan capture them now (a cap, a permission, a write through
another name) raises no event at their path.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from tui.core.checkpoints.blobs import BlobStore
from tui.core.checkpoints.manifests import Entry, Manifest
from tui.core.checkpoints.restore import DirWalker, RestoreError
from tui.core.checkpoints.scan import (
    DIR_FLAGS,
    MAX_NOTES,
    OnDir,
    ScanLimits,
    ScanStats,
    StatCache,
    capture,
    walk,
)


@dataclass
class TreeState:
    """A workspace as of its last checkpoint (or restore), with what a tracked
    checkpoint needs to know of it without reading the whole manifest again."""

    manifest: Manifest
    digest: str | None  # the stored manifest it equals
    files: int = 0
    bytes: int = 0
    skipped: set[str] = field(default_factory=set)  # "s" entries: looked at every time
    multi_link: set[str] = field(default_factory=set)  # looked at every time too
    link_inodes: set[int] = field(default_factory=set)  # their inodes
    odd_modes: set[str] = field(default_factory=set)  # what a restore must chmod anyway

    @classmethod
    def of(cls, manifest: Manifest, digest: str | None, stats: ScanStats | None) -> TreeState:
        files = size = 0
        skipped = set()
        for path, entry in manifest.items():
            if entry[0] == "f":
                files += 1
                size += entry[3]
            elif entry[0] == "s":
                skipped.add(path)
        return cls(
            manifest,
            digest,
            files,
            size,
            skipped,
            set(stats.multi_link) if stats else set(),
            set(stats.link_inodes) if stats else set(),
            set(stats.odd_modes) if stats else set(),
        )

    def notes(self) -> list[str]:
        """What a full scan would note, in its (depth-first) order."""
        order = sorted(self.skipped, key=lambda p: p.split("/"))
        return [f"{p}: {self.manifest[p][1]}" for p in order[:MAX_NOTES]]


@dataclass
class Refreshed:
    state: TreeState
    changed: list[str]  # paths whose entry differs from the previous manifest, sorted
    stats: ScanStats  # of what this pass read and stored
    replaced: bool  # a directory went (or was replaced): some watches may be stale


def refresh(
    root: Path,
    before: TreeState,
    dirty: dict[str, bool],
    cache: StatCache,
    blobs: BlobStore | None,
    limits: ScanLimits,
    on_dir: OnDir | None = None,
) -> Refreshed:
    """``before`` with every path in ``dirty`` (path -> a directory arrived there) looked
    at again; ``before`` itself is left as it was."""
    previous = before.manifest
    manifest = dict(previous)
    stats = ScanStats()
    todo = dict(dirty)
    for path in before.skipped | before.multi_link:
        todo.setdefault(path, False)
    touched: set[str] = set()
    settled: set[str] = set()  # whole subtrees decided in this pass
    replaced: list[str] = []  # directories whose old subtree goes
    rescans: list[str] = []
    root_fd = os.open(root, DIR_FLAGS)
    walker = DirWalker(root_fd)
    try:
        for path in sorted(todo, key=lambda p: (p.count("/"), p)):
            if _below(path, settled):
                continue
            parent, _, name = path.rpartition("/")
            if parent and manifest.get(parent, ("",))[0] != "d":
                continue  # under a link, a file or a skipped directory: not in the tree
            old = previous.get(path)
            st = _lstat(walker, parent, name)
            touched.add(path)
            if st is None:
                manifest.pop(path, None)
                if old is not None and old[0] == "d":
                    replaced.append(path)
                    settled.add(path)
                continue
            if stat.S_ISDIR(st.st_mode) and (todo[path] or old is None or old[0] != "d"):
                if old is not None and old[0] == "d":
                    replaced.append(path)
                settled.add(path)
                rescans.append(path)
                continue
            fd = _capture_one(walker, parent, name, path, manifest, stats, cache, blobs, limits)
            if fd is not None:
                os.close(fd)  # a directory that was one before: only its own entry changes
            now = manifest.get(path)
            if old is not None and old[0] == "d" and (now is None or now[0] != "d"):
                replaced.append(path)
                settled.add(path)
        if replaced:
            prefixes = tuple(p + "/" for p in replaced)
            dropped = [p for p in manifest if p.startswith(prefixes)]
            for path in dropped:
                del manifest[path]
            touched.update(dropped)
        walker.close()
        for path in rescans:
            sub: Manifest = {}
            _rescan(walker, path, sub, stats, cache, blobs, limits, on_dir)
            manifest.update(sub)
            touched.update(sub)
    finally:
        walker.close()
        os.close(root_fd)
    changed = sorted(p for p in touched if previous.get(p) != manifest.get(p))
    state = _after(before, manifest, changed, touched, stats, cache)
    return Refreshed(state, changed, stats, bool(replaced))


def _below(path: str, settled: set[str]) -> bool:
    while "/" in path:
        path = path.rpartition("/")[0]
        if path in settled:
            return True
    return False


def _lstat(walker: DirWalker, parent: str, name: str) -> os.stat_result | None:
    """``name`` in ``parent`` as it is now; None when it (or a directory on the way) is
    not there. Something there that cannot be stat'ed is returned as a non-directory:
    the capture records why."""
    try:
        return os.lstat(name, dir_fd=walker.fd_of(parent))
    except (FileNotFoundError, NotADirectoryError, RestoreError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        return os.stat_result((0,) * 10)


def _capture_one(
    walker: DirWalker,
    parent: str,
    name: str,
    path: str,
    manifest: Manifest,
    stats: ScanStats,
    cache: StatCache,
    blobs: BlobStore | None,
    limits: ScanLimits,
) -> int | None:
    """Record ``path`` as a scan would; its fd if it is a directory (else None); absent
    from ``manifest`` when it is not there."""
    try:
        parent_fd = walker.fd_of(parent)
        fd = capture(parent_fd, name, path, path.count("/"), manifest, stats, cache, blobs, limits)
    except (FileNotFoundError, NotADirectoryError, RestoreError):
        manifest.pop(path, None)
        return None
    return fd


def _rescan(
    walker: DirWalker,
    path: str,
    sub: Manifest,
    stats: ScanStats,
    cache: StatCache,
    blobs: BlobStore | None,
    limits: ScanLimits,
    on_dir: OnDir | None,
) -> None:
    parent, _, name = path.rpartition("/")
    fd = _capture_one(walker, parent, name, path, sub, stats, cache, blobs, limits)
    if fd is not None:
        walk(fd, path, path.count("/") + 1, sub, stats, cache, blobs, limits, on_dir)


def _after(
    before: TreeState,
    manifest: Manifest,
    changed: list[str],
    touched: set[str],
    stats: ScanStats,
    cache: StatCache,
) -> TreeState:
    files, size = before.files, before.bytes
    skipped = set(before.skipped)
    for path in changed:
        old, new = before.manifest.get(path), manifest.get(path)
        files, size = _count(files, size, old, -1)
        files, size = _count(files, size, new, 1)
        skipped.discard(path)
        if new is not None and new[0] == "s":
            skipped.add(path)
    multi = (before.multi_link - touched) | stats.multi_link
    inodes = before.link_inodes | stats.link_inodes
    new_inodes = stats.link_inodes - before.link_inodes
    if new_inodes:
        # A new link raises an event at its own name only (a link count change notifies
        # the inode, not its directory): the file's other names are found by inode, in
        # the stat cache, so a write through any of them is looked for at all of them.
        for path, (key, _) in cache.entries.items():
            if key[3] in new_inodes and manifest.get(path, ("",))[0] == "f":
                multi.add(path)
    odd = (before.odd_modes - touched) | stats.odd_modes
    return TreeState(manifest, None, files, size, skipped, multi, inodes, odd)


def _count(files: int, size: int, entry: Entry | None, sign: int) -> tuple[int, int]:
    if entry is not None and entry[0] == "f":
        return files + sign, size + sign * entry[3]
    return files, size
