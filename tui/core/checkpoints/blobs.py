"""Content-addressed blob store beside the database: each content stored once by hash.

A blob lives at ``blobs/ab/cdef…`` (sha256 hex). Writes go to a temporary file in
``blobs/tmp`` and are renamed into place, so a reader never sees half a blob and a
killed writer leaves only a temp file (cleared on the next open). Blobs are not
fsynced one by one: like the store's ``synchronous=NORMAL``, a killed process loses
nothing, a power cut may lose the newest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from tui.core.errors import StoreError

CHUNK = 1 << 20
SMALL = 8 << 20  # files up to this size are read in one go
HASH_RE = re.compile(r"[0-9a-f]{64}")
GC_STAMP = ".gc-stamp"  # rewritten by gc before and after it removes blobs
BUSY = b"busy "  # the stamp's prefix while a gc is removing
MAX_KNOWN = 2_000_000  # digests remembered; past it the memory starts again


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Digests this process stored or found stored, trusted (no stat) while the gc
        # stamp is what it was when they were learnt: only gc removes blobs, and it
        # rewrites the stamp before and after it does.
        self._known: set[str] = set()
        self._known_stamp: bytes | None = None
        self._subdirs: set[str] = set()

    def path(self, digest: str) -> Path:
        return Path(self._fspath(digest))

    def has(self, digest: str) -> bool:
        # A scan asks this of every unchanged file: a str path and os.path keep it to
        # the one stat, where two Path joins cost more than the stat itself.
        return os.path.isfile(self._fspath(digest))

    def gc_stamp(self) -> bytes:
        try:
            with open(os.path.join(self._root, GC_STAMP), "rb") as f:
                return f.read(64)
        except FileNotFoundError:
            return b""

    def stamp_gc(self, *, busy: bool) -> None:
        """Say a gc is removing blobs (``busy``) or has finished: scans that trusted
        what they knew check the stamp after they end and do their work again."""
        token = (BUSY if busy else b"done ") + secrets.token_hex(8).encode()
        fd, tmp_name = _mkstemp(self.tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(token)
        os.replace(tmp_name, os.path.join(self._root, GC_STAMP))

    def trusting(self) -> bytes | None:
        """Start trusting known digests for a scan: the stamp to check after it (with
        ``still_trusted``), or None when a gc is busy (ask ``has`` every time)."""
        stamp = self.gc_stamp()
        if stamp.startswith(BUSY):
            self._known.clear()
            return None
        if stamp != self._known_stamp:
            self._known.clear()
            self._known_stamp = stamp
        return stamp

    def still_trusted(self, stamp: bytes) -> bool:
        """False when a gc started or ran since ``trusting``: what the scan took on trust
        may be gone, so it must be done again (and nothing known is kept)."""
        if self.gc_stamp() == stamp:
            return True
        self._known.clear()
        self._known_stamp = None
        return False

    def has_known(self, digest: str) -> bool:
        """``has``, answered from memory for a digest this process stored or saw; only
        between ``trusting`` and ``still_trusted``."""
        if digest in self._known:
            return True
        if self.has(digest):
            self.learn(digest)
            return True
        return False

    def learn(self, digest: str) -> None:
        if len(self._known) >= MAX_KNOWN:
            self._known.clear()
        self._known.add(digest)

    def forget(self, digests: list[str]) -> None:
        self._known.difference_update(digests)

    def _fspath(self, digest: str) -> str:
        if not HASH_RE.fullmatch(digest):
            raise StoreError(f"not a blob hash: {digest!r}")
        return os.path.join(self._root, digest[:2], digest[2:])

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; its hash and the bytes this added (0 if it was there)."""
        # Strings and bare descriptors all the way: an initial checkpoint of 100k small
        # files calls this 100k times, and Path objects and file wrappers cost more
        # than the system calls they wrap.
        digest = hash_bytes(data)
        target = self._fspath(digest)
        if _touch(target):
            self.learn(digest)
            return digest, 0
        fd, tmp_name = _mkstemp(self.tmp)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.close(fd)
            fd = -1
            self._rename_in(tmp_name, digest, target)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            _unlink_quietly(tmp_name)
            raise
        self.learn(digest)
        return digest, len(data)

    def _rename_in(self, tmp_name: str, digest: str, target: str) -> None:
        """Rename a finished temporary file to its blob path, making the blob's
        two-letter directory first (once per process, unless it went since)."""
        if digest[:2] not in self._subdirs:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self._subdirs.add(digest[:2])
        try:
            os.replace(tmp_name, target)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(tmp_name, target)

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest[:12]} is missing from {self.root}") from None

    def copy_to(self, digest: str, target_fd: int, *, overwrite: bool = False) -> None:
        """Write a blob's content into an open file descriptor from its position on;
        with ``overwrite``, whatever was beyond the content is cut off afterwards (over
        a file of the same size no block is freed: a truncate to zero first would free
        them all and allocate them again)."""
        try:
            src = open(self.path(digest), "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            raise StoreError(f"blob {digest[:12]} is missing from {self.root}") from None
        with src:
            dst = os.fdopen(target_fd, "wb", closefd=False)
            with dst:
                shutil.copyfileobj(src, dst, CHUNK)
        if overwrite:
            os.ftruncate(target_fd, os.lseek(target_fd, 0, os.SEEK_CUR))

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def all(self) -> Iterator[tuple[str, int, float]]:
        """Every stored blob with its size and modification time."""
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for blob in sub.iterdir():
                digest = sub.name + blob.name
                if HASH_RE.fullmatch(digest):
                    st = blob.stat()
                    yield digest, st.st_size, st.st_mtime

    @contextlib.contextmanager
    def lease(self, *, exclusive: bool) -> Iterator[None]:
        """Writers that add blobs outside a supervisor (an import) hold this shared; gc
        holds it exclusive, so it never collects blobs whose records are not stored yet.
        Never waits: a conflict is a StoreError saying who holds it."""
        fd = os.open(self.root / ".lease", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    "gc is running on this data dir; try again when it ends"
                    if not exclusive
                    else "an import is writing to this data dir; run gc when it ends"
                ) from None
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def remove(self, digest: str) -> None:
        _unlink_quietly(self.path(digest))

    def clear_tmp(self) -> None:
        for leftover in self.tmp.iterdir():
            _unlink_quietly(leftover)


class Hasher:
    """Reads an open file once: its hash, its size and, with a store, its content stored.

    Small files are read into memory; larger ones stream into a temporary file of the
    store while they are hashed, and are kept only if the store lacks that content.
    Reading stops past ``limit`` bytes (``OverflowError``): a file that keeps growing, or
    a device passed off as a file, cannot make a reader read forever.
    """

    def __init__(self, blobs: BlobStore | None, *, limit: int) -> None:
        self.blobs = blobs
        self.limit = limit

    def consume(self, fd: int) -> tuple[str, int, int]:
        """(digest, size, bytes newly stored) of what ``fd`` holds from its position on."""
        head = _read_upto(fd, SMALL + 1)
        if len(head) <= SMALL:
            self._check(len(head))
            if self.blobs is None:
                return hash_bytes(head), len(head), 0
            digest, written = self.blobs.put_bytes(head)
            return digest, len(head), written
        h = hashlib.sha256(head)
        size = len(head)
        if self.blobs is None:
            while chunk := os.read(fd, CHUNK):
                size += len(chunk)
                self._check(size)
                h.update(chunk)
            return h.hexdigest(), size, 0
        blobs = self.blobs
        tmp_fd, tmp_name = _mkstemp(blobs.tmp)
        try:
            with os.fdopen(tmp_fd, "wb") as out:
                out.write(head)
                while chunk := os.read(fd, CHUNK):
                    size += len(chunk)
                    self._check(size)
                    h.update(chunk)
                    out.write(chunk)
            digest = h.hexdigest()
            target = blobs._fspath(digest)
            if _touch(target):
                os.unlink(tmp_name)
                blobs.learn(digest)
                return digest, size, 0
            blobs._rename_in(tmp_name, digest, target)
            blobs.learn(digest)
            return digest, size, size
        except BaseException:
            _unlink_quietly(tmp_name)
            raise

    def _check(self, size: int) -> None:
        if size > self.limit:
            raise OverflowError(f"over {self.limit} bytes")


def _read_upto(fd: int, count: int) -> bytes:
    parts = []
    while count > 0:
        chunk = os.read(fd, min(count, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        count -= len(chunk)
    return b"".join(parts)


def _mkstemp(directory: Path) -> tuple[int, str]:
    """A new file of our own under ``directory`` (``O_EXCL``: never one that was there)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        name = os.path.join(directory, "blob-" + secrets.token_hex(8))
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue


def _unlink_quietly(path: Path | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _touch(blob: Path | str) -> bool:
    """Mark an existing blob as just used (gc spares recent blobs: one a checkpoint in
    flight reuses must not be collected before the checkpoint commits); False if none."""
    try:
        os.utime(blob)
    except FileNotFoundError:
        return False
    return True
