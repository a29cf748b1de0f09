"""Snapshots of a workspace into the blob store, and restores from them.

Blocking filesystem work: callers run it off the event loop (``asyncio.to_thread``).
A ``StatCache`` remembers each file's (size, mtime, ctime, inode) with its hash, so a
file that has not changed is not read again: a checkpoint costs in proportion to
what changed. Links are never followed; other special files (sockets, fifos,
devices) are skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tui.core.blobs import BlobStore, hash_bytes
from tui.core.errors import StoreError
from tui.core.manifests import Manifest

_StatKey = tuple[int, int, int, int]


@dataclass
class StatCache:
    entries: dict[str, tuple[_StatKey, str]] = field(default_factory=dict)

    def get(self, path: str, st: os.stat_result) -> str | None:
        hit = self.entries.get(path)
        return hit[1] if hit is not None and hit[0] == _key(st) else None

    def put(self, path: str, st: os.stat_result, digest: str) -> None:
        self.entries[path] = (_key(st), digest)


def _key(st: os.stat_result) -> _StatKey:
    # ctime cannot be set back by a program, so a rewrite that restores the mtime
    # still shows; the inode catches a file replaced by rename.
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass
class ScanStats:
    files: int = 0
    bytes: int = 0
    hashed: int = 0  # files read because the cache could not vouch for them
    hashed_bytes: int = 0
    stored_bytes: int = 0  # new content this scan added to the blob store


def scan(
    root: Path, cache: StatCache, blobs: BlobStore | None = None
) -> tuple[Manifest, ScanStats]:
    """The manifest of the tree under ``root``; with ``blobs``, new contents are stored."""
    manifest: Manifest = {}
    stats = ScanStats()

    def digest_of(rel: str, full: str, st: os.stat_result) -> str:
        cached = cache.get(rel, st)
        if cached is not None and (blobs is None or blobs.has(cached)):
            return cached
        stats.hashed += 1
        stats.hashed_bytes += st.st_size
        if blobs is not None:
            digest, written = blobs.put_file(full, st.st_size)
            stats.stored_bytes += written
        else:
            with open(full, "rb") as f:
                digest = hash_bytes(f.read())
        cache.put(rel, st, digest)
        return digest

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            items = sorted(it, key=lambda e: e.name)
        for item in items:
            rel = prefix + item.name
            st = item.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                manifest[rel] = ("l", os.readlink(item.path))
            elif stat.S_ISDIR(mode):
                manifest[rel] = ("d", stat.S_IMODE(mode))
                walk(item.path, rel + "/")
            elif stat.S_ISREG(mode):
                stats.files += 1
                stats.bytes += st.st_size
                digest = digest_of(rel, item.path, st)
                manifest[rel] = ("f", stat.S_IMODE(mode), digest, st.st_size)

    walk(str(root), "")
    return manifest, stats


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # "added", "removed", "changed"
    before: tuple | None
    after: tuple | None


def diff(before: Manifest, after: Manifest) -> list[Change]:
    """What turns ``before`` into ``after``, by path; directories only when added/removed."""
    out = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        if a is None:
            out.append(Change(path, "added", None, b))
        elif b is None:
            out.append(Change(path, "removed", a, None))
        elif a[0] == "d" and b[0] == "d":
            out.append(Change(path, "changed", a, b))  # mode only
        else:
            out.append(Change(path, "changed", a, b))
    return out


def restore(
    root: Path,
    target: Manifest,
    blobs: BlobStore,
    cache: StatCache,
    *,
    on_progress: Callable[[str], None] | None = None,
) -> list[Change]:
    """Make the tree under ``root`` equal ``target``; returns what changed.

    Files added since are removed, changed ones rewritten, modes and links restored.
    Nothing outside ``root`` is touched: parents are made real directories before a
    child is written, and files are replaced by rename, never written through a link.
    """
    root.mkdir(parents=True, exist_ok=True)
    current, _ = scan(root, cache)
    changes = diff(current, target)
    # Removals first, deepest first, so a directory is empty when it goes.
    for change in sorted(changes, key=lambda c: c.path.count("/"), reverse=True):
        before, after = change.before, change.after
        if before is None:
            continue
        if after is not None and before[0] == after[0] and before[0] in ("d", "f"):
            continue  # changed in place below
        _remove(root / change.path, before[0])
    for path in sorted(target):
        entry = target[path]
        now = current.get(path)
        if now == entry:
            continue  # most of a tree: skip it before building a Path for it
        full = root / path
        if entry[0] == "d":
            if now is None or now[0] != "d":
                full.mkdir(mode=0o700)
        elif entry[0] == "l":
            os.symlink(entry[1], full)
        elif now is None or now[0] != "f" or now[2] != entry[2]:
            _write_file(full, entry, blobs, cache, path)
            if on_progress is not None:
                on_progress(path)
        elif now[1] != entry[1]:
            os.chmod(full, entry[1])
    # Directories' modes last: a read-only directory would refuse its own children.
    for path in sorted(target, reverse=True):
        entry = target[path]
        if entry[0] == "d" and stat.S_IMODE(os.lstat(root / path).st_mode) != entry[1]:
            os.chmod(root / path, entry[1])
    return changes


def _remove(full: Path, kind: str) -> None:
    if kind == "d":
        import shutil

        os.chmod(full, 0o700)  # a read-only directory cannot lose its children
        shutil.rmtree(full)
    else:
        os.unlink(full)


def _write_file(full: Path, entry: tuple, blobs: BlobStore, cache: StatCache, rel: str) -> None:
    parent = full.parent
    if parent.is_symlink() or not parent.is_dir():
        raise StoreError(f"{rel}: its directory is not a directory; nothing written")
    if not os.access(parent, os.W_OK):
        os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IWUSR | stat.S_IXUSR)
    tmp = parent / f".corral-restore-{os.getpid()}-{full.name}"[:255]
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        blobs.copy_to(entry[2], fd)
        os.fchmod(fd, entry[1])
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, full)
    cache.put(rel, os.lstat(full), entry[2])
