"""Export a session to one file, and import it into another data dir.

The file is a tar archive with exactly these members:

    corral-export.json      format, the session record, counts, the blob list
    events.jsonl            every event of every branch, in seq order
    checkpoints.jsonl       every checkpoint
    blobs/<sha256>          the manifests and file contents the checkpoints need

An import trusts nothing in it: any other member name (``..``, absolute paths), any
member that is not a regular file (links, devices), a blob whose content does not
match its name, a manifest path or link that leads out of the workspace, a gap in
the log, a truncated or oversized archive — each is refused with one line, and only
blobs that checked out (harmless, content-addressed, collectable by ``corral gc``)
may have been written, all inside the data dir.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from tui.core import events as ev
from tui.core.checkpoints import KINDS, Checkpointer, CheckpointRecord, latest_on_branch
from tui.core.errors import CorralError
from tui.core.ids import parse_time
from tui.core.manifests import link_escapes
from tui.core.store import SessionRecord, Store

FORMAT = "corral-export"
VERSION = 1
MAX_METADATA = 256 << 20
DEFAULT_MAX_BYTES = 8 << 30
_BLOB_NAME = re.compile(r"blobs/([0-9a-f]{64})")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)


class ArchiveError(CorralError):
    """An export file that cannot be imported; nothing of its session was stored."""


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    events: int
    checkpoints: int
    blobs: int
    bytes: int


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables that look like credentials, longest first."""
    env = os.environ if environ is None else environ
    found = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, "[redacted]")
    return text


async def export_session(
    store: Store, checkpointer: Checkpointer, session_id: str, target: Path
) -> ExportSummary:
    record = await store.get_session(session_id)
    events = await store.events(record.id)
    checkpoints = await store.checkpoints(record.id)
    blobs: dict[str, int] = {}
    for cp in checkpoints:
        for digest in checkpointer.manifests.chain(cp.manifest):
            blobs[digest] = checkpointer.blobs.size(digest)
        for entry in checkpointer.load(cp.manifest).values():
            if entry[0] == "f":
                blobs[entry[2]] = entry[3]
    secrets = secret_values()
    head = {
        "format": FORMAT,
        "version": VERSION,
        "session": {
            "id": record.id,
            "title": record.title,
            "created_at": record.created_at.isoformat(),
            "spec": record.spec,
            "model": record.model,
            "sandbox": record.sandbox,
            "isolation": record.isolation,
            "metadata": record.metadata,
        },
        "events": len(events),
        "checkpoints": len(checkpoints),
        "blobs": blobs,
    }
    event_lines = "".join(
        json.dumps(
            {
                "seq": e.seq,
                "id": e.id,
                "type": e.type,
                "processed_at": e.processed_at.isoformat(),
                "payload": e.payload,
            },
            ensure_ascii=False,
        )
        + "\n"
        for e in events
    )
    checkpoint_lines = "".join(json.dumps(c.to_json()) + "\n" for c in checkpoints)

    def write() -> int:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".corral-export-")
        os.close(fd)
        try:
            with tarfile.open(tmp, "w") as tar:
                _add(tar, "corral-export.json", redact(json.dumps(head, indent=1), secrets))
                _add(tar, "events.jsonl", redact(event_lines, secrets))
                _add(tar, "checkpoints.jsonl", checkpoint_lines)
                for digest in sorted(blobs):
                    tar.add(checkpointer.blobs.path(digest), f"blobs/{digest}", recursive=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target.stat().st_size

    size = await asyncio.to_thread(write)
    return ExportSummary(target, len(events), len(checkpoints), len(blobs), size)


def _add(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


# -- import -------------------------------------------------------------------------


@dataclass
class _Loaded:
    head: dict[str, Any]
    events: list[ev.Event]
    checkpoints: list[CheckpointRecord]
    blobs: set[str]


async def import_session(
    store: Store,
    checkpointer: Checkpointer,
    source: Path,
    workspaces: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """Import ``source``; returns the session id. Its workspace is its last checkpoint's."""
    loaded = await asyncio.to_thread(_read_archive, source, checkpointer, max_bytes)
    session = loaded.head["session"]
    sid = session["id"]
    try:
        await store.get_session(sid)
    except CorralError:
        pass
    else:
        raise ArchiveError(f"{source}: session {sid} is already in this data dir")
    workspace = workspaces / sid
    if workspace.exists():
        raise ArchiveError(f"{source}: {workspace} already exists; nothing imported")
    latest = latest_on_branch(loaded.checkpoints, loaded.events)
    if latest is not None:
        await checkpointer.restore(workspace, latest.manifest)
    else:
        workspace.mkdir(parents=True)
    record = SessionRecord(
        id=sid,
        title=session["title"],
        created_at=parse_time(session["created_at"]),
        spec=session["spec"],
        model=session["model"],
        workspace=str(workspace),
        sandbox=session.get("sandbox", ""),
        isolation=session.get("isolation", ""),
        metadata={**session.get("metadata", {}), "imported_from": source.name},
    )
    await store.import_session(record, loaded.events, loaded.checkpoints)
    return sid


def _read_archive(source: Path, checkpointer: Checkpointer, max_bytes: int) -> _Loaded:
    where = str(source)
    texts: dict[str, str] = {}
    blobs: set[str] = set()
    total = 0
    try:
        with tarfile.open(source, "r:") as tar:
            while (member := tar.next()) is not None:
                name = member.name
                if not member.isreg():
                    raise ArchiveError(f"{where}: {name!r} is not a regular file; refused")
                total += member.size
                if total > max_bytes:
                    raise ArchiveError(f"{where}: larger than the {max_bytes} byte limit; refused")
                stream = tar.extractfile(member)
                assert stream is not None  # a regular member always has one
                match = _BLOB_NAME.fullmatch(name)
                if match:
                    _take_blob(checkpointer, match.group(1), stream, member.size, where)
                    blobs.add(match.group(1))
                elif name in ("corral-export.json", "events.jsonl", "checkpoints.jsonl"):
                    if name in texts:
                        raise ArchiveError(f"{where}: {name} appears twice; refused")
                    if member.size > MAX_METADATA:
                        raise ArchiveError(f"{where}: {name} is too large; refused")
                    texts[name] = _utf8(stream.read(), name, where)
                else:
                    raise ArchiveError(f"{where}: unexpected member {name!r}; refused")
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.filename == str(source):
            raise ArchiveError(f"{where}: cannot read: {exc.strerror}") from None
        raise ArchiveError(f"{where}: not a complete corral export ({exc})") from None
    for name in ("corral-export.json", "events.jsonl", "checkpoints.jsonl"):
        if name not in texts:
            raise ArchiveError(f"{where}: {name} is missing; not a complete corral export")
    head = _json(texts["corral-export.json"], "corral-export.json", where)
    _check_head(head, blobs, where)
    sid = head["session"]["id"]
    events = [_event(line, sid, where) for line in _lines(texts["events.jsonl"])]
    if [e.seq for e in events] != list(range(1, len(events) + 1)):
        raise ArchiveError(f"{where}: events.jsonl: seq must run 1, 2, 3… without gaps")
    if len({e.id for e in events}) != len(events) or len(events) != head["events"]:
        raise ArchiveError(f"{where}: events.jsonl: duplicate ids or a wrong count")
    checkpoints = [
        _checkpoint(line, sid, len(events), where) for line in _lines(texts["checkpoints.jsonl"])
    ]
    for cp in checkpoints:
        _check_manifest(checkpointer, cp, blobs, where)
    return _Loaded(head, events, checkpoints, blobs)


def _take_blob(
    checkpointer: Checkpointer, digest: str, stream: IO[bytes], size: int, where: str
) -> None:
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=checkpointer.blobs.tmp, prefix="import-")
    try:
        with os.fdopen(fd, "wb") as out:
            remaining = size
            while remaining > 0:
                chunk = stream.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ArchiveError(f"{where}: blobs/{digest} is truncated")
                h.update(chunk)
                out.write(chunk)
                remaining -= len(chunk)
        if h.hexdigest() != digest:
            raise ArchiveError(f"{where}: blobs/{digest[:12]}… does not match its hash; refused")
        target = checkpointer.blobs.path(digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _utf8(data: bytes, name: str, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{where}: {name} is not UTF-8") from None


def _json(text: str, name: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ArchiveError(f"{where}: {name}: invalid JSON ({exc})") from None


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _check_head(head: Any, blobs: set[str], where: str) -> None:
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise ArchiveError(f"{where}: not a corral export")
    if head.get("version") != VERSION:
        raise ArchiveError(f"{where}: export version {head.get('version')!r} is not {VERSION}")
    session = head.get("session")
    fields = ("id", "title", "created_at", "model")
    if not isinstance(session, dict) or any(not isinstance(session.get(f), str) for f in fields):
        raise ArchiveError(f"{where}: corral-export.json: the session record is incomplete")
    if not re.fullmatch(r"sesn_[0-9a-f]{30}", session["id"]):
        raise ArchiveError(f"{where}: corral-export.json: bad session id {session['id']!r}")
    if not isinstance(session.get("spec"), dict) or not isinstance(
        session.get("metadata", {}), dict
    ):
        raise ArchiveError(f"{where}: corral-export.json: spec and metadata must be tables")
    try:
        parse_time(session["created_at"])
    except ValueError:
        raise ArchiveError(f"{where}: corral-export.json: bad created_at") from None
    missing = set(head.get("blobs", {})) - blobs
    if missing:
        raise ArchiveError(f"{where}: {len(missing)} blobs listed but missing; truncated?")
    if not isinstance(head.get("events"), int) or not isinstance(head.get("checkpoints"), int):
        raise ArchiveError(f"{where}: corral-export.json: counts missing")


def _event(line: str, sid: str, where: str) -> ev.Event:
    data = _json(line, "events.jsonl", where)
    try:
        if data["type"] not in ev.EVENT_TYPES or not isinstance(data["payload"], dict):
            raise ValueError(data.get("type"))
        if not re.fullmatch(r"sevt_[0-9a-f]{30}", data["id"]):
            raise ValueError("id")
        return ev.Event(
            session_id=sid,
            type=data["type"],
            payload=data["payload"],
            id=data["id"],
            processed_at=parse_time(data["processed_at"]),
            seq=int(data["seq"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArchiveError(f"{where}: events.jsonl: a malformed event ({exc})") from None


def _checkpoint(line: str, sid: str, last_seq: int, where: str) -> CheckpointRecord:
    data = _json(line, "checkpoints.jsonl", where)
    try:
        cp = CheckpointRecord(
            id=str(data["id"]),
            session_id=sid,
            kind=str(data["kind"]),
            manifest=str(data["manifest"]),
            files=int(data["files"]),
            bytes=int(data["bytes"]),
            changed=int(data["changed"]),
            stored_bytes=int(data["stored_bytes"]),
            turn=int(data["turn"]),
            created_at=parse_time(data["created_at"]),
            label=str(data.get("label", "")),
            seq=int(data["seq"]),
            model_cost=Decimal(str(data["model_cost"])),
            tokens=int(data["tokens"]),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise ArchiveError(f"{where}: checkpoints.jsonl: a malformed checkpoint ({exc})") from None
    if (
        cp.kind not in KINDS
        or not 0 <= cp.seq <= last_seq
        or not re.fullmatch(r"chkp_[0-9a-f]{30}", cp.id)
    ):
        raise ArchiveError(f"{where}: checkpoints.jsonl: checkpoint {cp.id!r} is out of range")
    return cp


def _check_manifest(
    checkpointer: Checkpointer, cp: CheckpointRecord, blobs: set[str], where: str
) -> None:
    if cp.manifest not in blobs:
        raise ArchiveError(f"{where}: checkpoint {cp.id} names a manifest the file lacks")
    try:
        chain = checkpointer.manifests.chain(cp.manifest)
        manifest = checkpointer.load(cp.manifest)
    except CorralError as exc:
        raise ArchiveError(f"{where}: checkpoint {cp.id}: {exc}") from None
    if not set(chain) <= blobs:
        raise ArchiveError(f"{where}: checkpoint {cp.id}: its manifest chain is incomplete")
    for path, entry in manifest.items():
        if entry[0] == "f" and entry[2] not in blobs:
            raise ArchiveError(f"{where}: checkpoint {cp.id}: {path!r} has no content in the file")
        if entry[0] == "l" and link_escapes(path, entry[1]):
            raise ArchiveError(
                f"{where}: checkpoint {cp.id}: link {path!r} -> {entry[1]!r} leads out of the"
                " workspace; refused"
            )
