"""Reading the small files a user points corral at (specs, scripts, profiles, settings)
and the files a tool reads: regular files only, of a sane size, opened without blocking,
so ``/dev/zero``, a FIFO or a 10 GB file given by mistake is a one-line error, not a hang."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

DEFAULT_LIMIT = 4 << 20


def read_small_file(path: Path | str, limit: int = DEFAULT_LIMIT) -> bytes:
    """The bytes of ``path``; OSError (with the path) when it is not a regular file or is
    larger than ``limit``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return read_regular(fd, limit, str(path))
    finally:
        os.close(fd)


def read_regular(fd: int, limit: int, where: str) -> bytes:
    """The bytes of the regular file open at ``fd`` (opened with O_NONBLOCK, so opening a
    FIFO did not block); OSError when it is something else or larger than ``limit``."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", where)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", where)
    if info.st_size > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", where)
    os.set_blocking(fd, True)
    with os.fdopen(os.dup(fd), "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", where)
    return data
