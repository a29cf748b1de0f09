"""Snapshots of a workspace into the blob store: the scan, and the diff of two manifests.

Blocking filesystem work: callers run it off the event loop (``asyncio.to_thread``).
A workspace is hostile ground: the agent's processes may still be running and may swap
a directory for a link mid-walk, names need not be UTF-8, and a FIFO, a socket, a
device or a 100 GB sparse file may sit anywhere. So the walk goes by directory file
descriptors opened with ``O_NOFOLLOW`` (a directory that turns into a link is never
entered), files are opened non-blocking and checked to be regular files before a byte
is read, and whatever cannot be captured is recorded as skipped (an ``"s"`` entry with
the reason) rather than failing the checkpoint or being silently dropped. A restore
leaves skipped paths alone, so a checkpoint that could not capture a file never
deletes it.

A ``StatCache`` remembers each file's (size, mtime, ctime, inode) with its hash, so a
file that has not changed is not read again: a checkpoint costs in proportion to what
changed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.checkpoints.blobs import BlobStore, Hasher
from tui.core.checkpoints.manifests import Manifest

_StatKey = tuple[int, int, int, int]

DEFAULT_MAX_FILE_BYTES = 256 << 20
DEFAULT_MAX_CHECKPOINT_BYTES = 4 << 30  # content read by one checkpoint
MAX_DEPTH = 200  # below this, directories are recorded as skipped (fd and stack bounds)
MAX_NOTES = 50  # notes kept per checkpoint; the count says how many more there were

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class ScanLimits:
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_checkpoint_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES


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
    notes: list[str] = field(default_factory=list)  # "path: why" for what was skipped
    skipped: int = 0
    # Paths whose mode on disk is not the one kept (setuid, setgid or sticky bits, a
    # directory without owner rwx): equal in a manifest, still to be put right by a
    # restore.
    odd_modes: set[str] = field(default_factory=set)
    # Regular files with more than one link: a write through another name (or from
    # outside the workspace) raises no event for this path, so a tracked checkpoint
    # looks at these every time.
    multi_link: set[str] = field(default_factory=set)
    link_inodes: set[int] = field(default_factory=set)  # their inodes

    def skip(self, path: str, why: str) -> None:
        self.skipped += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(f"{path}: {why}")


class _Skip(Exception):
    """This path cannot be captured; the message says why."""


def file_mode(mode: int) -> int:
    """A file's mode as corral keeps and restores it: permission bits only (never
    setuid, setgid or sticky)."""
    return stat.S_IMODE(mode) & 0o777


def dir_mode(mode: int) -> int:
    """A directory's mode: permission bits, and the owner can always list, enter and
    write it (so a restore or a removal can never lock corral out)."""
    return (stat.S_IMODE(mode) & 0o777) | 0o700


# Called with each directory's open fd and path before it is listed (a change tracker
# puts its watch there first, so nothing created after the listing goes unseen).
OnDir = Callable[[int, str], None]


def scan(
    root: Path,
    cache: StatCache,
    blobs: BlobStore | None = None,
    limits: ScanLimits | None = None,
    on_dir: OnDir | None = None,
) -> tuple[Manifest, ScanStats]:
    """The manifest of the tree under ``root``; with ``blobs``, new contents are stored."""
    limits = limits or ScanLimits()
    manifest: Manifest = {}
    stats = ScanStats()
    root_fd = os.open(root, DIR_FLAGS)
    walk(root_fd, "", 0, manifest, stats, cache, blobs, limits, on_dir)
    return manifest, stats


def walk(
    top_fd: int,
    top: str,
    depth: int,
    manifest: Manifest,
    stats: ScanStats,
    cache: StatCache,
    blobs: BlobStore | None,
    limits: ScanLimits,
    on_dir: OnDir | None = None,
) -> None:
    """Record everything below the directory ``top`` (open as ``top_fd``, which this
    closes; "" is the root) at ``depth`` levels down."""
    # Depth-first with one open fd per level (never one per sibling, which could run out
    # of descriptors in a wide tree): (fd, path prefix, depth, names still to visit).
    stack: list[tuple[int, str, int, Iterator[str]]] = []
    try:
        if on_dir is not None:
            on_dir(top_fd, top)
        prefix = top + "/" if top else ""
        stack.append((top_fd, prefix, depth, iter(_listing(top_fd, top, manifest, stats))))
    except BaseException:
        os.close(top_fd)
        raise
    try:
        while stack:
            dir_fd, prefix, level, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            rel = prefix + name
            try:
                child = _scan_entry(dir_fd, name, rel, level, manifest, stats, cache, blobs, limits)
            except _Skip as why:
                manifest[rel] = ("s", str(why))
                stats.skip(rel, str(why))
                continue
            except FileNotFoundError:
                continue  # gone since the listing: it is not part of this tree any more
            if child is not None:
                # On the stack before anything can raise, so the finally closes it.
                stack.append((child, rel + "/", level + 1, iter(())))
                if on_dir is not None:
                    on_dir(child, rel)
                below = iter(_listing(child, rel, manifest, stats))
                stack[-1] = (child, rel + "/", level + 1, below)
    finally:
        for fd, *_ in stack:
            os.close(fd)


def capture(
    dir_fd: int,
    name: str,
    rel: str,
    depth: int,
    manifest: Manifest,
    stats: ScanStats,
    cache: StatCache,
    blobs: BlobStore | None,
    limits: ScanLimits,
) -> int | None:
    """Record the one entry ``rel`` (``name`` in ``dir_fd``) as a scan would; for a
    directory, its open fd (the caller walks it or closes it). FileNotFoundError when it
    is not there."""
    try:
        return _scan_entry(dir_fd, name, rel, depth, manifest, stats, cache, blobs, limits)
    except _Skip as why:
        manifest[rel] = ("s", str(why))
        stats.skip(rel, str(why))
        return None


def _listing(dir_fd: int, rel: str, manifest: Manifest, stats: ScanStats) -> list[str]:
    try:
        with os.scandir(dir_fd) as it:
            return sorted(entry.name for entry in it)
    except OSError as exc:
        if not rel:
            raise  # the workspace itself: the caller reports it
        manifest[rel] = ("s", f"cannot list: {exc.strerror}")
        stats.skip(rel, f"cannot list: {exc.strerror}")
        return []


def _scan_entry(
    dir_fd: int,
    name: str,
    rel: str,
    depth: int,
    manifest: Manifest,
    stats: ScanStats,
    cache: StatCache,
    blobs: BlobStore | None,
    limits: ScanLimits,
) -> int | None:
    """Record one entry; for a directory, return its open fd."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise
        raise _Skip(f"cannot stat: {exc.strerror}") from None
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            manifest[rel] = ("l", os.readlink(name, dir_fd=dir_fd))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise
            # Replaced by something else between the stat and the read: say so.
            raise _Skip("changed while it was read") from None
        return None
    if stat.S_ISDIR(mode):
        if depth >= MAX_DEPTH:
            raise _Skip(f"deeper than {MAX_DEPTH} directories; not captured")
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _Skip("changed from a directory while it was read") from None
            if exc.errno == errno.ENOENT:
                raise
            raise _Skip(f"cannot open: {exc.strerror}") from None
        raw = stat.S_IMODE(os.fstat(fd).st_mode)
        manifest[rel] = ("d", dir_mode(raw))
        if raw != dir_mode(raw):
            stats.odd_modes.add(rel)
        return fd
    if stat.S_ISREG(mode):
        digest, size = _capture_file(dir_fd, name, rel, st, stats, cache, blobs, limits)
        stats.files += 1
        stats.bytes += size
        manifest[rel] = ("f", file_mode(st.st_mode), digest, size)
        if stat.S_IMODE(st.st_mode) != file_mode(st.st_mode):
            stats.odd_modes.add(rel)
        if st.st_nlink > 1:
            stats.multi_link.add(rel)
            stats.link_inodes.add(st.st_ino)
        return None
    kind = (
        "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device file"
    )
    raise _Skip(f"{kind}; not captured (never read)")


def _capture_file(
    dir_fd: int,
    name: str,
    rel: str,
    st: os.stat_result,
    stats: ScanStats,
    cache: StatCache,
    blobs: BlobStore | None,
    limits: ScanLimits,
) -> tuple[str, int]:
    """(digest, size) of a regular file, read once unless the cache vouches for it."""
    cached = cache.get(rel, st)
    if cached is not None and (blobs is None or blobs.has_known(cached)):
        return cached, st.st_size
    if st.st_size > limits.max_file_bytes:
        raise _Skip(f"{st.st_size} bytes is over the {limits.max_file_bytes}-byte file cap")
    if stats.hashed_bytes + st.st_size > limits.max_checkpoint_bytes:
        raise _Skip(f"over the {limits.max_checkpoint_bytes}-byte cap on what one checkpoint reads")
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise
        if exc.errno == errno.ELOOP:
            raise _Skip("changed into a link while it was read") from None
        raise _Skip(f"cannot open: {exc.strerror}") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or opened.st_ino != st.st_ino:
            raise _Skip("changed while it was read")
        # Read no more than the cap: a file still growing cannot make us read forever.
        hasher = Hasher(blobs, limit=limits.max_file_bytes)
        try:
            digest, size, written = hasher.consume(fd)
        except OverflowError:
            raise _Skip(f"grew past the {limits.max_file_bytes}-byte file cap") from None
    finally:
        os.close(fd)
    stats.hashed += 1
    stats.hashed_bytes += size
    stats.stored_bytes += written
    if size == st.st_size:
        cache.put(rel, st, digest)  # only what was read whole and unchanged is vouched for
    return digest, size


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # "added", "removed", "changed"
    before: tuple | None
    after: tuple | None

    def to_json(self) -> list[Any]:
        return [self.path, self.kind, self.before, self.after]

    @classmethod
    def from_json(cls, data: list[Any]) -> Change:
        path, kind, before, after = data
        return cls(path, kind, tuple(before) if before else None, tuple(after) if after else None)


def diff(before: Manifest, after: Manifest) -> list[Change]:
    """What turns ``before`` into ``after``, by path; directories only when added/removed
    or their mode changed."""
    out = []
    # Entries are tuples: the set difference of the items runs in C, so only the paths
    # that differ are visited (a tree of 100k paths with one change: one).
    for path in sorted({p for p, _ in before.items() ^ after.items()}):
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        if a is None:
            out.append(Change(path, "added", None, b))
        elif b is None:
            out.append(Change(path, "removed", a, None))
        else:
            out.append(Change(path, "changed", a, b))
    return out
