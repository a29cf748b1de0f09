"""Linux inotify, the few calls a change tracker needs (through ctypes).

Why not watchfiles' ``RustNotify`` (the ``notify`` crate), which corral ships for theme
reloading: probed on watchfiles 1.3.0, its recursive watch follows symbolic links (a
workspace holding ``ln -s / x`` has it walk and watch the whole host), one file name
that is not UTF-8 leaves it raising an error on every later call, and the kernel's
queue-overflow event reaches it without a path and is dropped without a word. A tracker
that must know when it has lost events, and must never leave the workspace, needs the
kernel's own interface: watches are put on directories this process opened itself
(``O_NOFOLLOW``) through ``/proc/self/fd``, names stay bytes, and ``IN_Q_OVERFLOW`` is
seen.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from collections.abc import Iterator
from typing import NamedTuple

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000

# Everything that changes what a scan would record. IN_CLOSE_WRITE as well as IN_MODIFY:
# a file written through a shared mmap raises no IN_MODIFY, but closing it does.
CHANGES = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)

_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
READ_SIZE = 1 << 16


class Event(NamedTuple):
    wd: int
    mask: int
    name: bytes


class _Libc:
    def __init__(self) -> None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.init1 = lib.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.init1.restype = ctypes.c_int
        self.add_watch = lib.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int
        self.rm_watch = lib.inotify_rm_watch
        self.rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        self.rm_watch.restype = ctypes.c_int


_libc: _Libc | None = None


def _lib() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def _raise() -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))


class Inotify:
    """One inotify instance (non-blocking, close-on-exec)."""

    def __init__(self) -> None:
        try:
            lib = _lib()
        except (OSError, AttributeError) as exc:
            raise OSError(f"inotify is not available here: {exc}") from None
        self._lib = lib
        fd = lib.init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            _raise()
        self.fd = fd

    def watch_fd(self, dir_fd: int, mask: int = CHANGES) -> int:
        """Watch the directory open as ``dir_fd``: exactly that inode, whatever its name
        is now (``/proc/self/fd`` resolves to what the descriptor holds)."""
        wd = self._lib.add_watch(self.fd, f"/proc/self/fd/{dir_fd}".encode(), mask | IN_ONLYDIR)
        if wd < 0:
            _raise()
        return wd

    def watch_path(self, path: str, mask: int) -> int:
        wd = self._lib.add_watch(self.fd, os.fsencode(path), mask | IN_ONLYDIR)
        if wd < 0:
            _raise()
        return wd

    def unwatch(self, wd: int) -> None:
        self._lib.rm_watch(self.fd, wd)  # a watch already gone (EINVAL) is fine

    def read(self) -> list[Event]:
        """The events queued now; [] when there are none."""
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return []
        return list(parse(data))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def parse(data: bytes) -> Iterator[Event]:
    offset = 0
    size = _HEADER.size
    while offset + size <= len(data):
        wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
        offset += size
        name = data[offset : offset + length].rstrip(b"\0")
        offset += length
        yield Event(wd, mask, name)
