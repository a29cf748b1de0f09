"""Workspace manifests: what a checkpoint's workspace holds, path by path.

An entry is a small tuple:

    ("f", mode, sha256, size)    a regular file
    ("l", target)                a symbolic link, kept as a link
    ("d", mode)                  a directory (so empty ones come back too)
    ("s", why)                   something there that was not captured (a FIFO, a file
                                 over the size cap): a restore leaves it alone

A manifest is stored in the blob store as JSON. Most are deltas against the
previous checkpoint's (only what changed), with a full one every ``FULL_EVERY``
links of the chain, so a checkpoint of a 10k-file tree where one file changed
costs a few hundred bytes, and reading one back walks a bounded chain.
"""

from __future__ import annotations

import json
import posixpath
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tui.core.checkpoints.blobs import HASH_RE, BlobStore
from tui.core.errors import StoreError

Entry = tuple[Any, ...]
Manifest = dict[str, Entry]

FORMAT = 1
FULL_EVERY = 32


@dataclass(frozen=True)
class Stored:
    digest: str
    depth: int  # deltas since the last full manifest
    bytes_written: int  # 0 when an identical manifest was already stored


class ManifestStore:
    def __init__(self, blobs: BlobStore, cache_size: int = 64) -> None:
        self.blobs = blobs
        self._cache: OrderedDict[str, tuple[Manifest, int]] = OrderedDict()
        self._cache_size = cache_size

    def save(self, manifest: Manifest, base: str | None = None) -> Stored:
        """Store ``manifest``, as a delta against ``base`` when that is worth it."""
        doc: dict[str, Any]
        depth = 0
        if base is not None:
            base_manifest, base_depth = self._load(base)
            changed = {p: list(e) for p, e in manifest.items() if base_manifest.get(p) != e}
            removed = sorted(p for p in base_manifest if p not in manifest)
            if base_depth + 1 < FULL_EVERY and len(changed) + len(removed) < max(
                16, len(manifest) // 4
            ):
                depth = base_depth + 1
                doc = {"v": FORMAT, "base": base, "depth": depth, "set": changed, "del": removed}
            else:
                base = None
        if base is None:
            full = {p: list(e) for p, e in manifest.items()}
            doc = {"v": FORMAT, "base": None, "depth": 0, "set": full}
        # Compressed: a full manifest of a 10k-file tree shrinks about 3x, which keeps its
        # share of each checkpoint's storage small.
        data = zlib.compress(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), 6)
        digest, written = self.blobs.put_bytes(data)
        self._remember(digest, dict(manifest), depth)
        return Stored(digest, depth, written)

    def save_changes(self, manifest: Manifest, base: str, changed: list[str]) -> Stored:
        """``save(manifest, base)`` when the caller knows every path whose entry differs
        from ``base``'s (a tracked checkpoint): the same document, without comparing
        every entry. ``manifest`` is kept as it is (the caller never changes it)."""
        _, base_depth = self._load(base)
        if base_depth + 1 >= FULL_EVERY or len(changed) >= max(16, len(manifest) // 4):
            return self.save(manifest, None)
        depth = base_depth + 1
        doc = {
            "v": FORMAT,
            "base": base,
            "depth": depth,
            "set": {p: list(manifest[p]) for p in changed if p in manifest},
            "del": sorted(p for p in changed if p not in manifest),
        }
        data = zlib.compress(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), 6)
        digest, written = self.blobs.put_bytes(data)
        self._remember(digest, manifest, depth)
        return Stored(digest, depth, written)

    def load(self, digest: str) -> Manifest:
        return dict(self._load(digest)[0])

    def chain(self, digest: str) -> list[str]:
        """The manifest blobs ``digest`` needs, itself first (what gc and export keep)."""
        return [d for d, _ in self._chain_docs(digest)]

    def _chain_docs(self, digest: str) -> list[tuple[str, dict[str, Any]]]:
        """``digest`` and its bases, newest first, parsed; bounded, never recursive (a
        hostile bundle could hand us a chain of any length)."""
        out: list[tuple[str, dict[str, Any]]] = []
        current: str | None = digest
        while current is not None:
            if len(out) >= MAX_CHAIN:
                raise StoreError(
                    f"manifest {digest[:12]}: its chain of deltas is longer than {MAX_CHAIN}"
                )
            doc = _parse(self.blobs.get(current), current)
            out.append((current, doc))
            current = doc["base"]
        return out

    def _load(self, digest: str) -> tuple[Manifest, int]:
        hit = self._cache.get(digest)
        if hit is not None:
            self._cache.move_to_end(digest)
            return hit
        docs = self._chain_docs(digest)
        manifest: Manifest = {}
        # Oldest (the full manifest) first, each delta applied on top.
        for _, doc in reversed(docs):
            if doc["base"] is None:
                manifest = {}
            for path in doc.get("del", []):
                manifest.pop(path, None)
            for path, entry in doc["set"].items():
                manifest[path] = tuple(entry) if isinstance(entry, list) else entry
        validate(manifest, digest)
        depth = len(docs) - 1
        self._remember(digest, manifest, depth)
        return manifest, depth

    def _remember(self, digest: str, manifest: Manifest, depth: int) -> None:
        self._cache[digest] = (manifest, depth)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


MAX_MANIFEST = 128 << 20  # inflated; more is a hostile file, not a workspace
MAX_CHAIN = 2 * FULL_EVERY  # corral writes at most FULL_EVERY; more is not ours
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
MAX_LINK_BYTES = 4096
MAX_FILE_SIZE = 1 << 62
MAX_LINK_HOPS = 40  # as the kernel's limit on following links in one path
MAX_ENTRIES = 1_000_000  # paths in one manifest; more is not a workspace corral can serve


def _inflate(data: bytes, digest: str) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_MANIFEST)
    if inflater.unconsumed_tail:
        raise StoreError(f"manifest {digest[:12]} inflates past {MAX_MANIFEST} bytes; refused")
    return out


def _parse(data: bytes, digest: str) -> dict[str, Any]:
    try:
        doc = json.loads(_inflate(data, digest) if data[:1] == b"\x78" else data)
    except (ValueError, UnicodeDecodeError, zlib.error, RecursionError):
        raise StoreError(f"manifest {digest[:12]} is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT or not isinstance(doc.get("set"), dict):
        raise StoreError(f"manifest {digest[:12]} has an unknown format")
    base = doc.get("base")
    if base is not None and (not isinstance(base, str) or not HASH_RE.fullmatch(base)):
        raise StoreError(f"manifest {digest[:12]} names a bad base")
    removed = doc.get("del", [])
    if not isinstance(removed, list) or not all(isinstance(p, str) for p in removed):
        raise StoreError(f"manifest {digest[:12]}: `del` must be a list of paths")
    if len(doc["set"]) + len(removed) > MAX_ENTRIES:
        raise StoreError(f"manifest {digest[:12]}: more than {MAX_ENTRIES} entries; refused")
    return doc


def validate(manifest: Manifest, where: str) -> None:
    """Refuse anything that could write outside a workspace when restored.

    Every path is relative and normalised, and every directory above it is a ``"d"``
    entry of the same manifest, so no path passes through a link, a file or a skipped
    entry: a restore that creates parents before children never meets a link on its way.
    """
    if len(manifest) > MAX_ENTRIES:
        raise StoreError(f"manifest {where[:12]}: more than {MAX_ENTRIES} entries; refused")
    for path, entry in manifest.items():
        problem = _path_problem(path) or _entry_problem(entry) or _parent_problem(path, manifest)
        if problem:
            raise StoreError(f"manifest {where[:12]}: {path!r}: {problem}")


def _path_problem(path: str) -> str | None:
    # Backslashes, newlines and undecodable bytes (as surrogates) are ordinary in names.
    if not isinstance(path, str) or not path or "\x00" in path:
        return "not a workspace path"
    if path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
        return "leaves the workspace or is not normalised"
    raw = path.encode("utf-8", "surrogateescape") if _encodable(path) else b""
    if not raw:
        return "not a file name this system can hold"
    if len(raw) > MAX_PATH_BYTES or any(len(p) > MAX_NAME_BYTES for p in raw.split(b"/")):
        return "too long"
    return None


def _encodable(path: str) -> bool:
    try:
        path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _parent_problem(path: str, manifest: Manifest) -> str | None:
    parent = path.rpartition("/")[0]
    if not parent:
        return None
    entry = manifest.get(parent)
    if entry is None or entry[0] != "d":
        return "its parent is not a directory of the manifest (a link or a file on the way)"
    return None


def _entry_problem(entry: Entry) -> str | None:
    if not isinstance(entry, tuple) or not entry:
        return "not an entry"
    kind = entry[0]
    if kind == "f":
        ok = (
            len(entry) == 4
            and _int_in(entry[1], 0, 0o7777)
            and isinstance(entry[2], str)
            and HASH_RE.fullmatch(entry[2]) is not None
            and _int_in(entry[3], 0, MAX_FILE_SIZE)
        )
        return None if ok else "bad file entry"
    if kind == "d":
        return None if len(entry) == 2 and _int_in(entry[1], 0, 0o7777) else "bad directory entry"
    if kind == "l":
        target = entry[1] if len(entry) == 2 else None
        if not isinstance(target, str) or not target or "\x00" in target:
            return "bad link entry"
        if not _encodable(target) or len(target.encode("utf-8", "surrogateescape")) > (
            MAX_LINK_BYTES
        ):
            return "bad link entry"
        return None
    if kind == "s":
        ok = len(entry) == 2 and isinstance(entry[1], str) and len(entry[1]) <= 1024
        return None if ok else "bad skipped entry"
    return "unknown entry kind"


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def link_escapes(manifest: Manifest, path: str) -> bool:
    """True when the link at ``path`` leads outside the workspace once resolved the way
    the kernel would, through the other links of the same manifest (each link text may
    look harmless while a chain of them climbs out), or loops."""
    entry = manifest[path]
    return _resolve(manifest, posixpath.dirname(path), entry[1]) is None


def _resolve(manifest: Manifest, start: str, target: str) -> str | None:
    """Where ``target`` (relative to the directory ``start``) leads, as a workspace path,
    or None when it leaves the workspace or takes more than MAX_LINK_HOPS links."""
    if target.startswith("/"):
        return None
    stack = [p for p in start.split("/") if p]  # the directory reached so far
    pending = [p for p in target.split("/") if p not in ("", ".")]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not stack:
                return None  # above the workspace root
            stack.pop()
            continue
        here = "/".join([*stack, part])
        entry = manifest.get(here)
        if entry is not None and entry[0] == "l":
            hops += 1
            if hops > MAX_LINK_HOPS or entry[1].startswith("/"):
                return None
            pending = [p for p in entry[1].split("/") if p not in ("", ".")] + pending
            continue
        stack.append(part)
    return "/".join(stack)
