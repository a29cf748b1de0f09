"""Resolves tool paths inside a session's workspace, and refuses any that leave it.

A path may be relative to the workspace, or absolute under it (``/workspace/...``
is read as the workspace root, as inside a container). Symlinks are resolved
before the check, so a link that points out is refused like ``../``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from tui.core.errors import PathEscapeError

CONTAINER_ROOT = PurePosixPath("/workspace")


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def resolve(self, path: str) -> Path:
        """The real path for ``path``; raises PathEscapeError if it leaves the workspace."""
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
        real = Path(os.path.realpath(candidate))
        if real != self.root and self.root not in real.parents:
            raise PathEscapeError(f"{path}: outside the workspace (resolves to {real})")
        return real

    def relative(self, real: Path) -> str:
        return str(real.relative_to(self.root)) if real != self.root else "."
