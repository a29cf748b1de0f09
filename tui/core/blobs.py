"""Content-addressed blob store beside the database: each content stored once by hash.

A blob lives at ``blobs/ab/cdef…`` (sha256 hex). Writes go to a temporary file in
``blobs/tmp`` and are renamed into place, so a reader never sees half a blob and a
killed writer leaves only a temp file (cleared on the next open). Blobs are not
fsynced one by one: like the store's ``synchronous=NORMAL``, a killed process loses
nothing, a power cut may lose the newest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tui.core.errors import StoreError

CHUNK = 1 << 20
SMALL = 8 << 20  # files up to this size are read in one go
HASH_RE = re.compile(r"[0-9a-f]{64}")


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return Path(self._fspath(digest))

    def has(self, digest: str) -> bool:
        # A scan asks this of every unchanged file: a str path and os.path keep it to
        # the one stat, where two Path joins cost more than the stat itself.
        return os.path.isfile(self._fspath(digest))

    def _fspath(self, digest: str) -> str:
        if not HASH_RE.fullmatch(digest):
            raise StoreError(f"not a blob hash: {digest!r}")
        return os.path.join(self._root, digest[:2], digest[2:])

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; its hash and the bytes this added (0 if it was there)."""
        digest = hash_bytes(data)
        target = self.path(digest)
        if target.exists():
            return digest, 0
        self._place(target, lambda f: f.write(data))
        return digest, len(data)

    def put_file(self, source: Path | str, size: int) -> tuple[str, int]:
        """Store a file's content (read once); its hash and the bytes this added."""
        if size <= SMALL:
            with open(source, "rb") as f:
                return self.put_bytes(f.read())
        # Large: stream into a temp file while hashing, then keep or drop it.
        h = hashlib.sha256()
        fd, tmp_name = _mkstemp(self.tmp)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            digest = h.hexdigest()
            target = self.path(digest)
            if target.exists():
                os.unlink(tmp_name)
                return digest, 0
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp_name, target)
            return digest, size
        except BaseException:
            _unlink_quietly(tmp_name)
            raise

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest[:12]} is missing from {self.root}") from None

    def copy_to(self, digest: str, target_fd: int) -> None:
        """Write a blob's content into an open file descriptor."""
        try:
            with open(self.path(digest), "rb") as src:
                dst = os.fdopen(target_fd, "wb", closefd=False)
                with dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        except FileNotFoundError:
            raise StoreError(f"blob {digest[:12]} is missing from {self.root}") from None

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def all(self) -> Iterator[tuple[str, int]]:
        """Every stored blob with its size."""
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for blob in sub.iterdir():
                digest = sub.name + blob.name
                if HASH_RE.fullmatch(digest):
                    yield digest, blob.stat().st_size

    def remove(self, digest: str) -> None:
        _unlink_quietly(self.path(digest))

    def clear_tmp(self) -> None:
        for leftover in self.tmp.iterdir():
            _unlink_quietly(leftover)

    def _place(self, target: Path, write: object) -> None:
        fd, tmp_name = _mkstemp(self.tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)  # type: ignore[operator]
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp_name, target)
        except BaseException:
            _unlink_quietly(tmp_name)
            raise


def _mkstemp(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=directory, prefix="blob-")


def _unlink_quietly(path: Path | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
