"""Reading an export bundle: every member, record and manifest checked before any of
it is used.

The file is a tar archive with exactly these members:

    corral-export.json      format, the session record, counts, the blob list
    events.jsonl            every event of every branch, in seq order
    checkpoints.jsonl       every checkpoint
    blobs/<sha256>          the manifests and file contents the checkpoints need

``read_bundle`` trusts nothing in it. Any other member name (``..``, absolute paths),
any member that is not a regular file (links, devices), a blob whose content does not
match its name, an event payload or checkpoint record that does not have its schema
(types, ranges, required keys, timezone-aware times), a spec that would not load, a
manifest chain that is too long or whose paths pass through a link or lead out, a gap
in the log or a wrong count, a truncated or oversized archive: each is refused with one
line. Blobs are verified into a staging store that the caller discards; nothing else
is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from tui.core.checkpoints.blobs import BlobStore
from tui.core.checkpoints.manifests import ManifestStore, link_escapes
from tui.core.checkpoints.records import FULL, KINDS, SCANS, CheckpointRecord
from tui.core.clock import utc_now
from tui.core.errors import CorralError
from tui.core.session import events as ev
from tui.core.session.definitions import metadata_of
from tui.core.session.payloads import PayloadError, check_payload, check_time
from tui.core.session.spec import SessionSpec
from tui.core.session.spec_reader import check_spec_json

FORMAT = "corral-export"
VERSION = 1
MAX_METADATA = 256 << 20
DEFAULT_MAX_BYTES = 8 << 30
MAX_LINE = 64 << 20
MAX_NOTE = 4096
MAX_COUNT = 1 << 53  # counts past this are not counts (and SQLite could not hold them)
FUTURE_SLACK = timedelta(days=1)  # clocks disagree; a day ahead is as far as we believe
_BLOB_NAME = re.compile(r"blobs/([0-9a-f]{64})")
_SESSION_ID = re.compile(r"sesn_[0-9a-f]{30}")
_EVENT_ID = re.compile(r"sevt_[0-9a-f]{30}")
_CHECKPOINT_ID = re.compile(r"chkp_[0-9a-f]{30}")
_EVENT_KEYS = frozenset({"seq", "id", "type", "processed_at", "payload"})
_TEXT_MEMBERS = ("corral-export.json", "events.jsonl", "checkpoints.jsonl")


class ArchiveError(CorralError):
    """An export file that cannot be imported; nothing of its session was stored."""


@dataclass
class Bundle:
    head: dict[str, Any]
    spec: SessionSpec
    events: list[ev.Event]
    checkpoints: list[CheckpointRecord]
    blobs: set[str]

    @property
    def session_id(self) -> str:
        return str(self.head["session"]["id"])


def read_bundle(source: Path, staging: BlobStore, max_bytes: int = DEFAULT_MAX_BYTES) -> Bundle:
    """Read and check ``source``; its blobs land (verified) in ``staging`` only."""
    where = str(source)
    texts, blobs = _read_members(source, staging, max_bytes, where)
    head = _json(texts["corral-export.json"], "corral-export.json", where)
    spec = _check_head(head, blobs, where)
    sid = head["session"]["id"]
    events = [_event(line, sid, where) for line in _lines(texts["events.jsonl"], where)]
    _check_log(events, head, where)
    checkpoints = [
        _checkpoint(line, sid, len(events), where)
        for line in _lines(texts["checkpoints.jsonl"], where)
    ]
    if len({c.id for c in checkpoints}) != len(checkpoints):
        raise ArchiveError(f"{where}: checkpoints.jsonl: duplicate checkpoint ids")
    if len(checkpoints) != head["checkpoints"]:
        raise ArchiveError(
            f"{where}: checkpoints.jsonl holds {len(checkpoints)} checkpoints, the head says"
            f" {head['checkpoints']}"
        )
    manifests = ManifestStore(staging)
    for cp in checkpoints:
        _check_manifest(manifests, cp, blobs, where)
    return Bundle(head, spec, events, checkpoints, blobs)


def _read_members(
    source: Path, staging: BlobStore, max_bytes: int, where: str
) -> tuple[dict[str, str], set[str]]:
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
                    if match.group(1) in blobs:
                        raise ArchiveError(f"{where}: {name} appears twice; refused")
                    _take_blob(staging, match.group(1), stream, member.size, where)
                    blobs.add(match.group(1))
                elif name in _TEXT_MEMBERS:
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
    for name in _TEXT_MEMBERS:
        if name not in texts:
            raise ArchiveError(f"{where}: {name} is missing; not a complete corral export")
    return texts, blobs


def _take_blob(staging: BlobStore, digest: str, stream: IO[bytes], size: int, where: str) -> None:
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=staging.tmp, prefix="import-")
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
        target = staging.path(digest)
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
    except (ValueError, RecursionError) as exc:
        raise ArchiveError(f"{where}: {name}: invalid JSON ({str(exc)[:80]})") from None


def _lines(text: str, where: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip()]
    if any(len(line) > MAX_LINE for line in lines):
        raise ArchiveError(f"{where}: a line over {MAX_LINE} bytes; refused")
    return lines


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def _check_head(head: Any, blobs: set[str], where: str) -> SessionSpec:
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise ArchiveError(f"{where}: not a corral export")
    if head.get("version") != VERSION:
        raise ArchiveError(f"{where}: export version {head.get('version')!r} is not {VERSION}")
    session = head.get("session")
    fields = ("id", "title", "created_at", "model")
    if not isinstance(session, dict) or any(not isinstance(session.get(f), str) for f in fields):
        raise ArchiveError(f"{where}: corral-export.json: the session record is incomplete")
    if not _SESSION_ID.fullmatch(session["id"]):
        raise ArchiveError(f"{where}: corral-export.json: bad session id {session['id']!r}")
    for key in ("title", "model", "sandbox", "isolation"):
        value = session.get(key, "")
        if not isinstance(value, str) or len(value) > 4096:
            raise ArchiveError(f"{where}: corral-export.json: session {key} must be a short string")
    if not isinstance(session.get("metadata", {}), dict):
        raise ArchiveError(f"{where}: corral-export.json: metadata must be an object")
    api = session.get("api", {})
    try:
        if not isinstance(api, dict):
            raise ArchiveError("api must be an object")
        metadata_of(api.get("metadata"), "api.metadata")
    except CorralError as exc:
        raise ArchiveError(f"{where}: corral-export.json: session {exc}") from None
    try:
        check_time(session["created_at"], "created_at")
        spec = check_spec_json(session.get("spec"), f"{where}: corral-export.json")
    except CorralError as exc:
        raise ArchiveError(f"{where}: corral-export.json: {exc}") from None
    if spec.agent.model != session["model"]:
        raise ArchiveError(f"{where}: corral-export.json: the model differs from the spec's")
    listed = head.get("blobs", {})
    if not isinstance(listed, dict) or not all(_count(v) for v in listed.values()):
        raise ArchiveError(f"{where}: corral-export.json: the blob list is malformed")
    missing = set(listed) - blobs
    if missing:
        raise ArchiveError(f"{where}: {len(missing)} blobs listed but missing; truncated?")
    if blobs - set(listed):
        raise ArchiveError(f"{where}: blobs in the file that the head does not list; refused")
    if not _count(head.get("events")) or not _count(head.get("checkpoints")):
        raise ArchiveError(f"{where}: corral-export.json: counts missing")
    return spec


def _event(line: str, sid: str, where: str) -> ev.Event:
    data = _json(line, "events.jsonl", where)
    try:
        if not isinstance(data, dict) or set(data) != _EVENT_KEYS:
            raise PayloadError("an event has exactly seq, id, type, processed_at and payload")
        if not isinstance(data["id"], str) or not _EVENT_ID.fullmatch(data["id"]):
            raise PayloadError(f"bad event id {str(data['id'])[:40]!r}")
        if not _count(data["seq"]) or not data["seq"]:
            raise PayloadError("seq must be a whole number from 1")
        if not isinstance(data["type"], str):
            raise PayloadError("type must be a string")
        check_payload(data["type"], data["payload"])
        processed_at = check_time(data["processed_at"], "processed_at")
    except PayloadError as exc:
        seq = data.get("seq") if isinstance(data, dict) else "?"
        raise ArchiveError(f"{where}: events.jsonl: event {seq}: {exc}") from None
    return ev.Event(
        session_id=sid,
        type=data["type"],
        payload=data["payload"],
        id=data["id"],
        processed_at=processed_at.astimezone(UTC),  # stored times all compare as UTC
        seq=data["seq"],
    )


def _check_log(events: list[ev.Event], head: dict[str, Any], where: str) -> None:
    latest = utc_now() + FUTURE_SLACK
    if any(e.processed_at > latest for e in events):
        # A log from the future would count against today's daily cap forever.
        raise ArchiveError(f"{where}: events.jsonl: an event is dated in the future; refused")
    if [e.seq for e in events] != list(range(1, len(events) + 1)):
        raise ArchiveError(f"{where}: events.jsonl: seq must run 1, 2, 3… without gaps")
    if len({e.id for e in events}) != len(events):
        raise ArchiveError(f"{where}: events.jsonl: duplicate event ids")
    if len(events) != head["events"]:
        raise ArchiveError(
            f"{where}: events.jsonl holds {len(events)} events, the head says {head['events']}"
        )
    for e in events:
        # A rewind points back at an earlier position, never at itself or ahead.
        if e.type == ev.SESSION_REWOUND and not e.payload["to_seq"] < e.seq:
            raise ArchiveError(f"{where}: events.jsonl: event {e.seq} rewinds forward")


def _checkpoint(line: str, sid: str, last_seq: int, where: str) -> CheckpointRecord:
    data = _json(line, "checkpoints.jsonl", where)
    try:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        counts = ("files", "bytes", "changed", "stored_bytes", "turn", "tokens", "seq")
        if not all(_count(data.get(k)) for k in counts) or not _count(data.get("skipped", 0)):
            raise ValueError("counts must be whole numbers ≥ 0")
        for key in ("id", "kind", "manifest", "label", "scan_note"):
            if not isinstance(data.get(key, ""), str) or len(data.get(key, "")) > MAX_NOTE:
                raise ValueError(f"{key} must be a short string")
        notes = data.get("notes", [])
        if not isinstance(notes, list) or not all(
            isinstance(n, str) and len(n) <= MAX_NOTE for n in notes[:1000]
        ):
            raise ValueError("notes must be a list of short strings")
        if data.get("scan", FULL) not in SCANS:
            raise ValueError(f"scan must be one of {', '.join(SCANS)}")
        if not isinstance(data.get("model_cost"), str):
            raise ValueError("model_cost must be a decimal string")
        cost = Decimal(data["model_cost"])
        if not cost.is_finite() or cost < 0 or cost > Decimal(10**9):
            raise ValueError("model_cost is out of range")
        check_time(data.get("created_at"), "created_at")
        # Every field checked: from here the trusting constructor is safe.
        cp = CheckpointRecord.from_json({**data, "session_id": sid, "notes": notes[:1000]})
    except (KeyError, TypeError, ValueError, InvalidOperation, CorralError) as exc:
        raise ArchiveError(f"{where}: checkpoints.jsonl: a malformed checkpoint ({exc})") from None
    if cp.kind not in KINDS or cp.seq > last_seq or not _CHECKPOINT_ID.fullmatch(cp.id):
        raise ArchiveError(f"{where}: checkpoints.jsonl: checkpoint {cp.id!r} is out of range")
    return cp


def _check_manifest(
    manifests: ManifestStore, cp: CheckpointRecord, blobs: set[str], where: str
) -> None:
    if cp.manifest not in blobs:
        raise ArchiveError(f"{where}: checkpoint {cp.id} names a manifest the file lacks")
    try:
        chain = manifests.chain(cp.manifest)
        manifest = manifests.load(cp.manifest)
    except CorralError as exc:
        raise ArchiveError(f"{where}: checkpoint {cp.id}: {exc}") from None
    if not set(chain) <= blobs:
        raise ArchiveError(f"{where}: checkpoint {cp.id}: its manifest chain is incomplete")
    for path, entry in manifest.items():
        if entry[0] == "f" and entry[2] not in blobs:
            raise ArchiveError(f"{where}: checkpoint {cp.id}: {path!r} has no content in the file")
        if entry[0] == "l" and link_escapes(manifest, path):
            raise ArchiveError(
                f"{where}: checkpoint {cp.id}: link {path!r} -> {entry[1]!r} leads out of the"
                " workspace; refused"
            )
