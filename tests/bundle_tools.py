"""Taking an export bundle apart and putting a (hostile) one together, for the import tests.

``write_bundle`` keeps the head's counts and blob list consistent with what it writes,
so a test reaches the check it is aimed at rather than tripping an earlier one.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Parts:
    head: dict[str, Any]
    events: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    blobs: dict[str, bytes] = field(default_factory=dict)

    def add_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def add_manifest(self, entries: dict[str, list[Any]], base: str | None = None) -> str:
        doc = {"v": 1, "base": base, "depth": 0, "set": entries}
        return self.add_blob(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())


def read_parts(path: Path) -> Parts:
    texts: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read()  # type: ignore[union-attr]
            if info.name.startswith("blobs/"):
                blobs[info.name.removeprefix("blobs/")] = data
            else:
                texts[info.name] = data.decode()
    return Parts(
        json.loads(texts["corral-export.json"]),
        [json.loads(line) for line in texts["events.jsonl"].splitlines() if line],
        [json.loads(line) for line in texts["checkpoints.jsonl"].splitlines() if line],
        blobs,
    )


def write_parts(parts: Parts, target: Path, *, fix_counts: bool = True) -> Path:
    head = dict(parts.head)
    if fix_counts:
        head["events"] = len(parts.events)
        head["checkpoints"] = len(parts.checkpoints)
        head["blobs"] = {d: len(b) for d, b in parts.blobs.items()}
    with tarfile.open(target, "w") as tar:
        _add(tar, "corral-export.json", json.dumps(head).encode())
        _add(tar, "events.jsonl", "".join(json.dumps(e) + "\n" for e in parts.events).encode())
        cps = "".join(json.dumps(c) + "\n" for c in parts.checkpoints)
        _add(tar, "checkpoints.jsonl", cps.encode())
        for digest, data in parts.blobs.items():
            _add(tar, f"blobs/{digest}", data)
    return target


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
