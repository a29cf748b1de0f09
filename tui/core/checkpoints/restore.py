"""Restore: make a directory tree equal a manifest, touching nothing outside it.

The tree may be hostile (an imported manifest, an agent that planted links, processes
still running in the sandbox), so nothing here resolves a path string: every operation
is relative to a directory file descriptor, and every directory on the way is opened
with ``O_NOFOLLOW | O_DIRECTORY``. A link where a directory should be stops the restore
with an error instead of being followed; files are written to a fresh temporary name
(``O_EXCL | O_NOFOLLOW``) and renamed into place; modes are set on descriptors of what
was opened, never through a name that could be swapped. Manifests are validated before
they get here (``manifests.validate``: no path passes through a link or a file, modes
are plain permission bits), so a well-formed manifest never hits those stops.

Paths recorded as skipped (``"s"``: a FIFO, a file over the size cap) are left alone:
a restore neither creates nor removes them, so a checkpoint that could not capture a
file never deletes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from tui.core.checkpoints.blobs import BlobStore
from tui.core.checkpoints.manifests import Manifest
from tui.core.checkpoints.scan import (
    DIR_FLAGS,
    Change,
    StatCache,
    diff,
    dir_mode,
    file_mode,
    scan,
)
from tui.core.errors import StoreError

PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_REMOVE_DEPTH = 200  # one fd per level is held while a tree is removed


class RestoreError(StoreError):
    """The tree changed under a restore in a way it will not follow (a link where a
    directory was); nothing was written outside the workspace."""


class DirWalker:
    """Open directories under a root by relative path, one component at a time.

    Keeps the chain of the last path's directories open, so restoring files in sorted
    order opens each directory once.
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._chain: list[tuple[str, int]] = []  # (relative dir path, fd), root excluded

    def fd_of(self, directory: str) -> int:
        """An fd for ``directory`` ("" is the root); a link or non-directory on the way
        raises RestoreError."""
        if not directory:
            return self.root_fd
        while self._chain and not (
            directory == self._chain[-1][0] or directory.startswith(self._chain[-1][0] + "/")
        ):
            os.close(self._chain.pop()[1])
        if self._chain and self._chain[-1][0] == directory:
            return self._chain[-1][1]
        done = self._chain[-1][0] if self._chain else ""
        rest = directory[len(done) + 1 :] if done else directory
        fd = self._chain[-1][1] if self._chain else self.root_fd
        for part in rest.split("/"):
            done = f"{done}/{part}" if done else part
            try:
                fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RestoreError(
                        f"{done!r} is not a directory (a link or a file); nothing written"
                        " through it"
                    ) from None
                raise
            self._chain.append((done, fd))
        return fd

    def forget(self, directory: str) -> None:
        """Close ``directory`` and anything below it (it is about to be removed)."""
        while self._chain and (
            self._chain[-1][0] == directory or self._chain[-1][0].startswith(directory + "/")
        ):
            os.close(self._chain.pop()[1])

    def close(self) -> None:
        while self._chain:
            os.close(self._chain.pop()[1])


def restore(
    root: Path,
    target: Manifest,
    blobs: BlobStore,
    cache: StatCache,
    current: Manifest | None = None,
    odd: set[str] | None = None,
) -> list[Change]:
    """Make the tree under ``root`` equal ``target``; returns what changed.

    ``current`` is the tree as it is now, when a change tracker knows it (with ``odd``,
    the paths whose mode on disk is not the one kept); without it the tree is scanned.
    Only the paths that differ (and the odd ones) are touched either way.
    """
    root.mkdir(parents=True, exist_ok=True)
    if current is None:
        current, stats = scan(root, cache)
        odd = stats.odd_modes
    odd = odd or set()  # equal in the manifests, not on disk: chmod them regardless
    changes = diff(current, target)
    todo = sorted({c.path for c in changes if c.path in target} | (odd & target.keys()))
    root_fd = os.open(root, DIR_FLAGS)
    walker = DirWalker(root_fd)
    try:
        _open_up_dirs(walker, current, odd)
        _remove_stale(walker, changes, target)
        _create(walker, current, target, todo, blobs, cache, odd)
        _set_dir_modes(walker, current, target, todo, odd)
    finally:
        walker.close()
        os.close(root_fd)
    return changes


def _under_skipped(path: str, target: Manifest) -> bool:
    """True when ``path`` or a directory above it is skipped in ``target``."""
    while True:
        entry = target.get(path)
        if entry is not None and entry[0] == "s":
            return True
        if "/" not in path:
            return False
        path = path.rsplit("/", 1)[0]


def _open_up_dirs(walker: DirWalker, current: Manifest, odd: set[str]) -> None:
    """Give the owner rwx on directories the agent closed (``chmod 555``), parents first,
    so nothing inside them is refused; their modes are set at the end."""
    for path in sorted(p for p in odd if current.get(p, ("",))[0] == "d"):
        parent, name = _split(path)
        chmod_nofollow(walker.fd_of(parent), name, current[path][1])


def _remove_stale(walker: DirWalker, changes: list[Change], target: Manifest) -> None:
    """Remove what the target does not have (or has as another kind), deepest first."""
    for change in sorted(changes, key=lambda c: c.path.count("/"), reverse=True):
        before, after = change.before, change.after
        if before is None or _under_skipped(change.path, target):
            continue
        if after is not None and before[0] == after[0] and before[0] in ("d", "f"):
            continue  # changed in place
        parent, name = _split(change.path)
        parent_fd = walker.fd_of(parent)
        if before[0] == "d":
            walker.forget(change.path)
            remove_tree(parent_fd, name)
        else:
            try:
                os.unlink(name, dir_fd=parent_fd)
            except IsADirectoryError:
                remove_tree(parent_fd, name)  # was skipped as unreadable, is a directory
            except FileNotFoundError:
                pass


def _create(
    walker: DirWalker,
    current: Manifest,
    target: Manifest,
    todo: list[str],
    blobs: BlobStore,
    cache: StatCache,
    odd: set[str],
) -> None:
    for path in todo:  # sorted: parents before children
        entry = target[path]
        now = current.get(path)
        if (now == entry and path not in odd) or entry[0] == "s":
            continue  # most of a tree: skip it before doing anything else
        parent, name = _split(path)
        parent_fd = walker.fd_of(parent)
        kind = entry[0]
        if kind == "d":
            if now is None or now[0] != "d":
                os.mkdir(name, 0o700, dir_fd=parent_fd)
        elif kind == "l":
            os.symlink(entry[1], name, dir_fd=parent_fd)
        elif now is None or now[0] != "f" or now[2] != entry[2]:
            _write_file(parent_fd, name, entry, blobs, rewrite=now is not None and now[0] == "f")
            cache.put(path, os.lstat(name, dir_fd=parent_fd), entry[2])
        elif now[1] != file_mode(entry[1]) or path in odd:
            chmod_nofollow(parent_fd, name, file_mode(entry[1]))


def _set_dir_modes(
    walker: DirWalker, current: Manifest, target: Manifest, todo: list[str], odd: set[str]
) -> None:
    """Directories' modes last, deepest first: a read-only directory would refuse its
    own children (and corral keeps owner rwx on every directory regardless)."""
    for path in reversed(todo):
        entry = target[path]
        if entry[0] != "d":
            continue
        parent, name = _split(path)
        wanted = dir_mode(entry[1])
        now = current.get(path)
        if now is not None and now[0] == "d" and now[1] == wanted and path not in odd:
            continue
        chmod_nofollow(walker.fd_of(parent), name, wanted)


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def _write_file(
    parent_fd: int, name: str, entry: tuple, blobs: BlobStore, *, rewrite: bool
) -> None:
    """Put the blob's content at ``name``: rewritten in place when a file of its own is
    there (``rewrite``), written straight to a free name, else to a temporary name
    renamed over whatever is there (a link, a FIFO, a file with other links)."""
    if rewrite and _rewrite_in_place(parent_fd, name, entry, blobs):
        return
    if not rewrite and _write_new(parent_fd, name, entry, blobs):
        return
    tmp = f".corral-restore-{secrets.token_hex(6)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=parent_fd)
    try:
        blobs.copy_to(entry[2], fd)
        os.fchmod(fd, file_mode(entry[1]))
    except BaseException:
        os.close(fd)
        os.unlink(tmp, dir_fd=parent_fd)
        raise
    os.close(fd)
    try:
        os.replace(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except IsADirectoryError:
        # A directory appeared at that name since the scan: the file wins, as the
        # target says, and the directory (inside the workspace) goes.
        remove_tree(parent_fd, name)
        os.replace(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)


def _rewrite_in_place(parent_fd: int, name: str, entry: tuple, blobs: BlobStore) -> bool:
    """Overwrite the regular file at ``name`` if it is one with no other link (a
    rename over it costs the kernel a new inode and the old one's release, about twice
    the time); False, having written nothing, for anything else.

    The inode is pinned first (``O_PATH | O_NOFOLLOW``: never a link's target) and
    checked: only a regular file, and only one whose sole name is this one, so a hard
    link to a file outside the workspace is never written through; then it is opened
    for writing through ``/proc/self/fd``, which reaches exactly that inode.
    """
    try:
        pinned = os.open(name, PATH_FLAGS, dir_fd=parent_fd)
    except OSError:
        return False
    try:
        st = os.fstat(pinned)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return False
        fd = os.open(f"/proc/self/fd/{pinned}", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no write permission (mode 000 and not root), no /proc: rename
    finally:
        os.close(pinned)
    try:
        blobs.copy_to(entry[2], fd, overwrite=True)
        os.fchmod(fd, file_mode(entry[1]))
    finally:
        os.close(fd)
    return True


def _write_new(parent_fd: int, name: str, entry: tuple, blobs: BlobStore) -> bool:
    """Create ``name`` (nothing is there) with the blob's content; False, having written
    nothing, when something appeared there meanwhile."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600, dir_fd=parent_fd)
    except FileExistsError:
        return False
    try:
        blobs.copy_to(entry[2], fd)
        os.fchmod(fd, file_mode(entry[1]))
    except BaseException:
        os.close(fd)
        os.unlink(name, dir_fd=parent_fd)
        raise
    os.close(fd)
    return True


def chmod_nofollow(parent_fd: int, name: str, mode: int) -> None:
    """chmod what ``name`` is now, never what a link there points at.

    Linux has no lchmod; an ``O_PATH | O_NOFOLLOW`` descriptor pins the inode (it opens
    even a mode-000 file) and ``/proc/self/fd`` lets chmod act on exactly that inode.
    """
    fd = os.open(name, PATH_FLAGS, dir_fd=parent_fd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            return  # links have no mode of their own
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove ``name`` under ``parent_fd`` and everything below it, following no link.

    Depth-first with one open fd per level (a wide or deep tree cannot exhaust the
    stack or the process's descriptors); each directory is made owner-rwx first so a
    read-only one can lose its children.
    """
    try:
        top = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            os.unlink(name, dir_fd=parent_fd)
            return
        if exc.errno == errno.ENOENT:
            return
        raise
    os.fchmod(top, 0o700)
    # (fd, its parent's fd, its name, subdirectories still to clear); only names are
    # held for the subdirectories, an fd only for the chain being descended.
    stack: list[tuple[int, int, str, list[str]]] = [(top, parent_fd, name, _clear_files(top))]
    try:
        while stack:
            fd, up, dname, subdirs = stack[-1]
            if not subdirs:
                stack.pop()
                os.close(fd)
                os.rmdir(dname, dir_fd=up)
                continue
            subdir = subdirs.pop()
            if len(stack) >= MAX_REMOVE_DEPTH:
                raise RestoreError(
                    f"{name!r} is more than {MAX_REMOVE_DEPTH} directories deep; remove it"
                    " by hand (nothing outside the workspace was touched)"
                )
            try:
                child_fd = os.open(subdir, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped meanwhile
                    os.unlink(subdir, dir_fd=fd)
                    continue
                if exc.errno == errno.ENOENT:
                    continue
                raise
            os.fchmod(child_fd, 0o700)
            stack.append((child_fd, fd, subdir, _clear_files(child_fd)))
    finally:
        for fd, *_ in stack:
            with contextlib.suppress(OSError):
                os.close(fd)


def _clear_files(dir_fd: int) -> list[str]:
    """Unlink everything in the directory that is not a directory (links included, never
    followed); the names of the subdirectories left to clear."""
    subdirs = []
    with os.scandir(dir_fd) as it:
        names = [entry.name for entry in it]
    for entry in names:
        try:
            os.unlink(entry, dir_fd=dir_fd)
        except IsADirectoryError:
            subdirs.append(entry)
        except FileNotFoundError:
            pass
    return subdirs
