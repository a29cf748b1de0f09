"""Resolves tool paths inside a session's workspace, and refuses any that leave it.

A path may be relative to the workspace, or absolute under it (``/workspace/...``
is read as the workspace root, as inside a container). Symlinks are resolved
before the check, so a link that points out is refused like ``../``.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path, PurePosixPath

from tui.core.errors import PathEscapeError

CONTAINER_ROOT = PurePosixPath("/workspace")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def resolve(self, path: str) -> Path:
        """The real path for ``path``; raises PathEscapeError if it leaves the workspace.

        A check, not a guarantee: the tree can change after it. Anything that opens a
        file goes through ``open`` instead, which walks beneath the root by fds."""
        if not isinstance(path, str) or not path.strip():
            raise PathEscapeError("a file path is required")
        if "\x00" in path:
            raise PathEscapeError(f"{path!r}: a path cannot contain NUL")
        pure = PurePosixPath(path)
        if pure.is_absolute():
            if pure == CONTAINER_ROOT or CONTAINER_ROOT in pure.parents:
                candidate = self.root / pure.relative_to(CONTAINER_ROOT)
            else:
                candidate = Path(path)
        else:
            candidate = self.root / pure
        try:
            real = Path(os.path.realpath(candidate))
        except (OSError, ValueError) as exc:
            # A link swapped mid-resolve can make realpath fail: never a crash.
            raise PathEscapeError(f"{path}: cannot be resolved ({exc})") from None
        if real != self.root and self.root not in real.parents:
            raise PathEscapeError(f"{path}: outside the workspace (resolves to {real})")
        return real

    def open(self, path: str, flags: int, mode: int = 0o644, *, make_parents: bool = False) -> int:
        """An fd for ``path`` (links inside the workspace resolved first), opened by walking
        from the root one directory at a time with ``O_NOFOLLOW``: a directory swapped for
        a link after the check is refused (ELOOP/ENOTDIR), never followed out. With
        ``make_parents``, missing directories are made on the way, inside the root."""
        real = self.resolve(path)
        if real == self.root:
            raise PathEscapeError(f"{path}: is the workspace itself")
        parts = real.relative_to(self.root).parts
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts[:-1]:
                if make_parents:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise PathEscapeError(f"{path}: changed while it was opened") from None
                    raise
                os.close(fd)
                fd = child
            try:
                return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise PathEscapeError(f"{path}: is a symlink; not followed") from None
                raise
        finally:
            os.close(fd)

    def relative(self, real: Path) -> str:
        return str(real.relative_to(self.root)) if real != self.root else "."
