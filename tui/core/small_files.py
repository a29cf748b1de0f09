"""Reading the small files a user points corral at (specs, scripts, profiles, settings):
regular files only, of a sane size, opened without blocking, so ``/dev/zero``, a FIFO
or a 10 GB file given by mistake is a one-line error, not a hang."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

DEFAULT_LIMIT = 4 << 20


def read_small_file(path: Path | str, limit: int = DEFAULT_LIMIT, *, follow: bool = True) -> bytes:
    """The bytes of ``path``; OSError (with the path) when it is not a regular file or is
    larger than ``limit``. Without ``follow``, a link at ``path`` is refused (ELOOP)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
    return data
