"""Export a session to one file, and import it into another data dir.

The format and every check on it live in ``bundle.py``. An import is staged: the bundle
is read and checked in full (blobs verified into a staging store inside the data dir)
before anything of the session is written; its workspace is restored into a temporary
directory; only then are the blobs adopted, the workspace renamed into place and the
log stored. A failure at any step removes what the import added: no ``workspaces/<id>``,
no new blobs, no rows. The import holds the blob store's lease shared, so ``gc`` cannot
run while it writes.

An imported session never runs by itself: it arrives idle (paused) whatever its log
says, marked imported and not accepted; nothing starts it until the user resumes it
(``corral resume SESSION``, after ``corral show`` has listed what its spec and policy
allow). What it would need that deserves a second look is said at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.checkpoints.blobs import BlobStore
from tui.core.checkpoints.bundle import (
    DEFAULT_MAX_BYTES,
    FORMAT,
    VERSION,
    ArchiveError,
    Bundle,
    read_bundle,
)
from tui.core.checkpoints.checkpointer import Checkpointer, latest_on_branch
from tui.core.checkpoints.manifests import ManifestStore
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.redaction import Redactor, secret_values
from tui.core.checkpoints.restore import restore
from tui.core.checkpoints.scan import StatCache
from tui.core.clock import parse_time, utc_now
from tui.core.errors import CorralError, NotFoundError
from tui.core.money.budget import budget_of
from tui.core.permissions.policy import Policy
from tui.core.permissions.session_policy import policy_of
from tui.core.session import events as ev
from tui.core.session.definitions import metadata_of
from tui.core.session.records import SessionRecord
from tui.core.session.spec import SessionSpec
from tui.core.session.state import IDLE, TERMINATED, SessionState
from tui.core.store.store import Store

__all__ = ["ArchiveError", "ExportSummary", "ImportSummary", "export_session", "import_session"]

IMPORTED = "imported"  # the metadata key that marks an imported session


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    events: int
    checkpoints: int
    blobs: int
    bytes: int
    redacted: dict[str, int] = field(default_factory=dict)  # env var name -> places


@dataclass(frozen=True)
class ImportSummary:
    session_id: str
    events: int
    checkpoints: int
    warnings: list[str]


# -- export -------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    """JSON text that is valid UTF-8: lone surrogates (undecodable file-name bytes) are
    kept as JSON escapes, which round-trip, instead of failing the encode."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


async def export_session(
    store: Store, checkpointer: Checkpointer, session_id: str, target: Path
) -> ExportSummary:
    if target.is_symlink() or (target.exists() and not target.is_file()):
        # os.replace would put the export in place of a device, a FIFO or a directory.
        raise CorralError(f"{target}: exists and is not a regular file; not overwritten")
    record = await store.get_session(session_id)
    events = await store.events(record.id)
    checkpoints = await store.checkpoints(record.id)
    blobs = _blobs_needed(checkpointer, checkpoints)
    redact = Redactor(secret_values())
    texts = {
        "corral-export.json": json.dumps(
            _head(record, redact, events, checkpoints, blobs), indent=1
        ),
        "events.jsonl": "".join(_dumps(_event_json(e, redact)) + "\n" for e in events),
        "checkpoints.jsonl": "".join(_dumps(redact(c.to_json())) + "\n" for c in checkpoints),
    }
    size = await asyncio.to_thread(_write_archive, target, texts, checkpointer, blobs)
    return ExportSummary(
        target, len(events), len(checkpoints), len(blobs), size, dict(redact.counts)
    )


def _blobs_needed(
    checkpointer: Checkpointer, checkpoints: list[CheckpointRecord]
) -> dict[str, int]:
    """Every manifest and file content the checkpoints need, with its size."""
    blobs: dict[str, int] = {}
    for cp in checkpoints:
        for digest in checkpointer.manifests.chain(cp.manifest):
            blobs[digest] = checkpointer.blobs.size(digest)
        for entry in checkpointer.load(cp.manifest).values():
            if entry[0] == "f":
                blobs[entry[2]] = entry[3]
    return blobs


def _head(
    record: SessionRecord,
    redact: Redactor,
    events: list[ev.Event],
    checkpoints: list[CheckpointRecord],
    blobs: dict[str, int],
) -> dict[str, Any]:
    session = {
        "id": record.id,
        "title": record.title,
        "created_at": record.created_at.isoformat(),
        "spec": record.spec,
        "model": record.model,
        "sandbox": record.sandbox,
        "isolation": record.isolation,
        "metadata": record.metadata,
        # All of it, for the reader of the file; an import takes back only the caller's
        # metadata (the agent and environment it names are this data dir's).
        "api": record.api,
    }
    return {
        "format": FORMAT,
        "version": VERSION,
        "session": redact(session),
        "events": len(events),
        "checkpoints": len(checkpoints),
        "blobs": blobs,
    }


def _event_json(e: ev.Event, redact: Redactor) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "id": e.id,
        "type": e.type,
        "processed_at": e.processed_at.isoformat(),
        "payload": redact(e.payload),
    }


def _write_archive(
    target: Path, texts: dict[str, str], checkpointer: Checkpointer, blobs: dict[str, int]
) -> int:
    """Write to a temporary file beside ``target`` and rename it into place: a reader
    never sees half an export."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".corral-export-")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w") as tar:
            for name, text in texts.items():
                _add(tar, name, text)
            for digest in sorted(blobs):
                tar.add(checkpointer.blobs.path(digest), f"blobs/{digest}", recursive=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target.stat().st_size


def _add(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


# -- import -------------------------------------------------------------------------------


async def import_session(
    store: Store,
    checkpointer: Checkpointer,
    source: Path,
    workspaces: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ImportSummary:
    """Import ``source``; its workspace is its last checkpoint's. Nothing is left behind
    when it fails."""
    token = secrets.token_hex(6)
    staging_root = checkpointer.blobs.root / "imports" / token
    tmp_workspace = workspaces / f".import-{token}"
    with checkpointer.blobs.lease(exclusive=False):
        try:
            staging = BlobStore(staging_root)
            bundle = await asyncio.to_thread(read_bundle, source, staging, max_bytes)
            return await _store_bundle(
                store, checkpointer, bundle, source, staging, workspaces, tmp_workspace
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp_workspace, True)
            await asyncio.to_thread(shutil.rmtree, staging_root, True)
            with contextlib.suppress(OSError):
                staging_root.parent.rmdir()  # only when no other import is staging


async def _store_bundle(
    store: Store,
    checkpointer: Checkpointer,
    bundle: Bundle,
    source: Path,
    staging: BlobStore,
    workspaces: Path,
    tmp_workspace: Path,
) -> ImportSummary:
    workspace = workspaces / bundle.session_id
    await _refuse_clashes(store, bundle, workspace, str(source))
    workspaces.mkdir(parents=True, exist_ok=True)
    try:
        await asyncio.to_thread(_materialise, bundle, staging, tmp_workspace)
    except (OSError, CorralError) as exc:
        raise ArchiveError(f"{source}: its workspace could not be restored: {exc}") from None
    adopted = await asyncio.to_thread(_adopt_blobs, staging, checkpointer.blobs, bundle.blobs)
    try:
        os.rename(tmp_workspace, workspace)
        events = _arrival(bundle)
        warnings = review(bundle.spec, policy_of(bundle.spec, events))
        record = _imported_record(bundle, workspace, source, warnings)
        await store.import_session(record, events, bundle.checkpoints)
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        for digest in adopted:
            checkpointer.blobs.remove(digest)
            with contextlib.suppress(OSError):
                checkpointer.blobs.path(digest).parent.rmdir()  # if this made it
        raise
    return ImportSummary(bundle.session_id, len(bundle.events), len(bundle.checkpoints), warnings)


async def _refuse_clashes(store: Store, bundle: Bundle, workspace: Path, where: str) -> None:
    sid = bundle.session_id
    try:
        existing = await store.get_session(sid)
    except NotFoundError:
        existing = None
    if existing is not None and existing.id == sid:
        raise ArchiveError(f"{where}: session {sid} is already in this data dir")
    if await store.event_ids_taken([e.id for e in bundle.events]):
        raise ArchiveError(f"{where}: its event ids are already in this data dir; refused")
    if workspace.exists():
        raise ArchiveError(f"{where}: {workspace} already exists; nothing imported")


def _materialise(bundle: Bundle, staging: BlobStore, target: Path) -> None:
    """The workspace of the bundle's latest checkpoint on its current branch."""
    latest = latest_on_branch(bundle.checkpoints, bundle.events)
    if latest is None:
        target.mkdir()
    else:
        restore(target, ManifestStore(staging).load(latest.manifest), staging, StatCache())


def _imported_record(
    bundle: Bundle, workspace: Path, source: Path, warnings: list[str]
) -> SessionRecord:
    session = bundle.head["session"]
    imported = {
        "from": source.name,
        "at": utc_now().isoformat(),
        "accepted": False,
        "warnings": warnings,
    }
    return SessionRecord(
        id=bundle.session_id,
        title=session["title"],
        created_at=parse_time(session["created_at"]),
        spec=session["spec"],
        model=session["model"],
        workspace=str(workspace),
        sandbox=session.get("sandbox", ""),
        isolation=session.get("isolation", ""),
        metadata={**session.get("metadata", {}), IMPORTED: imported},
        api=_imported_api(bundle),
    )


def _imported_api(bundle: Bundle) -> dict[str, Any]:
    """What the API shows of the imported session: the caller's metadata, and the cap its
    log sets (the engine enforces that one; a budget edit changed both in the author's
    data dir). The agent and environment ids it was made from, and whether it was
    archived, belong to the author's data dir: the import shows the spec's agent."""
    cap = budget_of(bundle.spec, bundle.events).max_list_cost
    return {
        # Checked by read_bundle already; this turns an explicit null into {}.
        "metadata": metadata_of(bundle.head["session"].get("api", {}).get("metadata")),
        "max_list_cost": None if cap is None else str(cap),
    }


def _adopt_blobs(staging: BlobStore, blobs: BlobStore, digests: set[str]) -> list[str]:
    """Move the verified blobs the store lacks into it; returns the ones it added."""
    added = []
    for digest in sorted(digests):
        if blobs.has(digest):
            continue
        target = blobs.path(digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(staging.path(digest), target)
        added.append(digest)
    return added


def _arrival(bundle: Bundle) -> list[ev.Event]:
    """The bundle's log, plus an idle (paused) event if it did not end settled: an
    import never arrives running, whatever its author's log says."""
    sid = bundle.session_id
    state = SessionState(sid, bundle.events[0].processed_at if bundle.events else utc_now())
    for event in bundle.events:
        state.apply(event)
    settled = state.status == TERMINATED or (state.status == IDLE and state.stop_reason is not None)
    if settled:
        return bundle.events
    paused = ev.status_idle(
        sid, ev.PAUSED, detail="imported: review it with `corral show`, accept with `corral resume`"
    ).with_seq(len(bundle.events) + 1)
    return [*bundle.events, paused]


def review(spec: SessionSpec, policy: Policy) -> list[str]:
    """What an imported session's spec and policy would let it do that deserves a look
    before accepting it."""
    out = []
    env = spec.environment
    if env.networking == "unrestricted":
        out.append("networking: unrestricted (its commands can reach any host)")
    elif env.networking == "limited":
        out.append(f"networking: limited to {', '.join(env.allowed_hosts) or 'no hosts'}")
    if env.backend in ("docker", "auto"):
        out.append(f"backend: {env.backend} (image {env.image})")
    else:
        out.append("backend: local (bubblewrap where installed, else a plain subprocess)")
    bash = policy.tools.get("bash")
    if bash is not None and bash.enabled:
        allows = [r.pattern for r in bash.rules if r.decision == "allow"]
        if bash.default == "always_allow":
            out.append("bash: always_allow (its commands run without asking)")
        elif allows:
            out.append(f"bash: runs without asking: {', '.join(allows)}")
    writers = [
        name
        for name in ("write", "edit")
        if (t := policy.tools.get(name)) is not None and t.enabled and t.default == "always_allow"
    ]
    if writers:
        out.append(f"{' and '.join(writers)}: always_allow (changes files without asking)")
    if spec.agent.model.startswith("claude"):
        cap = f"cap {spec.max_list_cost} USD" if spec.max_list_cost is not None else "no cost cap"
        out.append(f"model: {spec.agent.model} (spends money on your API key; {cap})")
    elif spec.agent.model.startswith("scripted:"):
        out.append(f"model: plays the script {spec.agent.model.removeprefix('scripted:')}")
    return out


def import_pending(record: SessionRecord) -> bool:
    """An imported session that the user has not accepted yet."""
    info = record.metadata.get(IMPORTED)
    return isinstance(info, dict) and info.get("accepted") is False
