"""The README's promise that an export carries a session whole: imported into another data
dir, every event, checkpoint record and stored file is the same, byte for byte; and a
bundle whose log disagrees with itself or with its head is refused, leaving nothing.

What an import legitimately changes, and so is not compared:

- the session record's ``workspace``: it is the importing data dir's
  ``workspaces/<id>``, not the author's path;
- the record's ``metadata`` gains an ``imported`` entry (from which file, when, not yet
  accepted): that is how corral keeps an import from running until the user says so;
- a log that did not end settled gets one ``session.status_idle`` (paused) appended, so
  an import never arrives running. This session ended at ``end_turn``, so nothing is
  appended and the logs must be equal event for event;
- exports redact the values of credential-looking environment variables (tested in
  test_archive.py); none is set while this one is written, so nothing is redacted.

The session id, event ids, times and checkpoint ids are kept as they were.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tui.core.checkpoints.archive import (
    IMPORTED,
    ArchiveError,
    export_session,
    import_pending,
    import_session,
)
from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.redaction import secret_values
from tui.core.clock import utc_now
from tui.core.session import events as ev
from tui.core.store.datadir import blobs_dir, db_path, workspaces_dir
from tui.core.store.store import Store
from tui.server.shapes import session_shape

from .bundle_tools import Parts, read_parts, write_parts
from .conftest import running_supervisor
from .workspace_history import LONG_TEXT, MANUAL_LABEL, RecordedRun, masked_tree, run_recorded


@dataclass(frozen=True)
class Exported:
    data: Path  # the author's data dir
    bundle: Path
    run: RecordedRun


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """One session that really ran (see workspace_history.py), exported once."""
    tmp = tmp_path_factory.mktemp("exact")

    async def make() -> Exported:
        data = tmp / "data"
        store = await Store.open(db_path(data))
        try:
            async with running_supervisor(store, data) as sup:
                run = await run_recorded(sup, tmp)
                bundle = tmp / "session.corral"
                with pytest.MonkeyPatch.context() as env:
                    for name in set(secret_values().values()):
                        env.delenv(name)  # redaction is the one sanctioned payload change
                    await export_session(store, sup.checkpointer, run.session_id, bundle)
                return Exported(data, bundle, run)
        finally:
            await store.close()

    return asyncio.run(make())


def what_happened(event: ev.Event) -> tuple[int, str, dict[str, object]]:
    return event.seq, event.type, event.payload


def blobs_needed(checkpointer: Checkpointer, checkpoints: list[CheckpointRecord]) -> set[str]:
    """Every manifest (delta chains included) and file content the checkpoints name."""
    needed: set[str] = set()
    for cp in checkpoints:
        needed.update(checkpointer.manifests.chain(cp.manifest))
        needed.update(e[2] for e in checkpointer.load(cp.manifest).values() if e[0] == "f")
    return needed


async def test_an_import_into_another_data_dir_is_the_session_byte_for_byte(
    exported: Exported, tmp_path: Path
) -> None:
    sid = exported.run.session_id
    author = await Store.open(db_path(exported.data))
    other = tmp_path / "other"
    store = await Store.open(db_path(other))
    try:
        author_blobs = Checkpointer(blobs_dir(exported.data))
        checkpointer = Checkpointer(blobs_dir(other))
        summary = await import_session(store, checkpointer, exported.bundle, workspaces_dir(other))
        assert summary.session_id == sid  # an import keeps the id it was exported with

        # Every event: type, seq, payload, and its id and time too.
        want, got = await author.events(sid), await store.events(sid)
        assert len(got) == len(want) == summary.events
        for before, after in zip(want, got, strict=True):
            assert what_happened(after) == what_happened(before)
            assert (after.id, after.processed_at) == (before.id, before.processed_at)
        kinds = {e.type for e in got}
        assert {ev.AGENT_MESSAGE, ev.AGENT_THINKING, ev.USER_TOOL_CONFIRMATION} <= kinds
        assert LONG_TEXT in [e.text for e in got if e.type == ev.AGENT_MESSAGE]

        # Every checkpoint record, field for field.
        want_cps, got_cps = await author.checkpoints(sid), await store.checkpoints(sid)
        assert len(got_cps) == len(want_cps) == summary.checkpoints == 6
        assert [c.to_json() for c in got_cps] == [c.to_json() for c in want_cps]
        assert MANUAL_LABEL in [c.label for c in got_cps]

        # Every stored file (manifests and contents), byte for byte, and nothing else:
        # this data dir was empty, so its blob store holds exactly what the import needed.
        needed = blobs_needed(author_blobs, want_cps)
        assert {digest for digest, _, _ in checkpointer.blobs.all()} == needed
        for digest in sorted(needed):
            assert checkpointer.blobs.get(digest) == author_blobs.blobs.get(digest), digest

        # The record: equal but for where its workspace is and the import marker.
        before_rec, after_rec = await author.get_session(sid), await store.get_session(sid)
        for name in ("id", "title", "created_at", "spec", "model", "sandbox", "isolation"):
            assert getattr(after_rec, name) == getattr(before_rec, name), name
        assert after_rec.workspace == str(workspaces_dir(other) / sid)
        metadata = dict(after_rec.metadata)
        marker = metadata.pop(IMPORTED)
        assert marker["from"] == exported.bundle.name and marker["accepted"] is False
        assert metadata == before_rec.metadata
        assert import_pending(after_rec)
        # The folds agree: the same stop, the same tokens and cost.
        before_state, after_state = await author.state(sid), await store.state(sid)
        assert after_state.stop_reason == before_state.stop_reason
        assert after_state.usage == before_state.usage

        # The workspace it arrives with is the last checkpoint's tree as it was on disk,
        # and every checkpoint restores, from the imported blobs, to the tree recorded
        # on the author's disk right after it was taken. These are written from nothing,
        # so their modes must already be as corral keeps them: compared unmasked.
        trees = exported.run.trees
        assert masked_tree(Path(after_rec.workspace), raw=True) == trees[want_cps[-1].id]
        for index, cp in enumerate(got_cps):
            scratch = tmp_path / f"restored-{index}"
            await checkpointer.restore(scratch, cp.manifest)
            assert masked_tree(scratch, raw=True) == trees[cp.id], index
    finally:
        await store.close()
        await author.close()


async def test_the_api_view_of_it_comes_along_metadata_and_the_cap_as_edited(
    exported: Exported, tmp_path: Path
) -> None:
    """What the Managed Agents API shows of the session: the caller's metadata, and the
    budget as edited since (the engine enforces that one, from the log), not the spec's.
    Archiving is the author's data dir's business: the import arrives unarchived."""
    sid = exported.run.session_id
    author_dir = tmp_path / "author"  # a copy: the module's export stays as it was
    shutil.copytree(exported.data, author_dir, symlinks=True)
    author = await Store.open(db_path(author_dir))
    other = tmp_path / "other"
    store = await Store.open(db_path(other))
    try:
        async with running_supervisor(author, author_dir) as sup:
            await sup.set_budget(sid, Decimal("0.75"), None)
            record = await author.get_session(sid)
            metadata = {"team": "infra", "ticket": "OPS-12"}
            archived = "2026-11-30T12:00:00Z"
            await author.update_api(
                sid, {**record.api, "metadata": metadata, "archived_at": archived}
            )
            bundle = tmp_path / "edited.corral"
            await export_session(author, sup.checkpointer, sid, bundle)
        await import_session(store, Checkpointer(blobs_dir(other)), bundle, workspaces_dir(other))
        before = session_shape(await author.get_session(sid), utc_now())
        after = session_shape(await store.get_session(sid), utc_now())
        assert before["metadata"] == after["metadata"] == metadata
        cap = {"type": "limit", "max_list_cost": {"amount": "0.75", "currency": "USD"}}
        assert before["budget"] == after["budget"] == cap
        assert (before["archived_at"], after["archived_at"]) == (archived, None)
    finally:
        await store.close()
        await author.close()


async def test_an_export_without_api_metadata_imports_with_none(
    exported: Exported, tmp_path: Path
) -> None:
    """An older export has no ``api``; a hand-written one may say null. Both import, and
    the API shows an empty object, as for a session made without metadata."""
    for name, api in (("absent", None), ("null", {"metadata": None})):
        parts = read_parts(exported.bundle)
        parts.head["session"].pop("api", None)
        if api is not None:
            parts.head["session"]["api"] = api
        data = tmp_path / name
        store = await Store.open(db_path(data))
        try:
            bundle = write_parts(parts, tmp_path / f"{name}.corral")
            await import_session(store, Checkpointer(blobs_dir(data)), bundle, workspaces_dir(data))
            shape = session_shape(await store.get_session(exported.run.session_id), utc_now())
            assert shape["metadata"] == {}, name
        finally:
            await store.close()


# -- a log that disagrees with itself or its head is refused, and leaves nothing ----------


async def refused(bundle: Path, data: Path, sid: str, event_ids: list[str]) -> str:
    """Import ``bundle`` into the empty ``data``; it must fail and leave nothing of the
    session: no record, no events, no workspace, no staged or adopted blobs."""
    store = await Store.open(db_path(data))
    try:
        with pytest.raises(ArchiveError) as info:
            await import_session(store, Checkpointer(blobs_dir(data)), bundle, workspaces_dir(data))
        assert await store.list_sessions() == []
        assert await store.event_ids_taken(event_ids) == set()
    finally:
        await store.close()
    workspaces = workspaces_dir(data)
    assert not (workspaces / sid).exists()
    assert not workspaces.exists() or list(workspaces.iterdir()) == []  # no .import-* left
    assert list(Checkpointer(blobs_dir(data)).blobs.all()) == []
    assert not (blobs_dir(data) / "imports").exists()  # the staging store is gone
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{bundle}: "), message
    return message.removeprefix(f"{bundle}: ")


async def refuse_edited(
    exported: Exported, tmp_path: Path, parts: Parts, *, fix_counts: bool = True
) -> str:
    """Write ``parts`` as a bundle (by default with the head's counts made to agree with
    it) and import it where it must be refused; returns the error after the file name."""
    bad = write_parts(parts, tmp_path / "bad.corral", fix_counts=fix_counts)
    ids = [e["id"] for e in read_parts(exported.bundle).events]
    return await refused(bad, tmp_path / "data", exported.run.session_id, ids)


async def test_a_gap_in_the_event_seqs_is_refused(exported: Exported, tmp_path: Path) -> None:
    parts = read_parts(exported.bundle)
    lost = parts.events.pop(len(parts.events) // 2)
    # The head is made to agree with the file, so only the gap is wrong.
    error = await refuse_edited(exported, tmp_path, parts)
    assert error == "events.jsonl: seq must run 1, 2, 3… without gaps", (lost["seq"], error)


async def test_duplicate_event_ids_are_refused(exported: Exported, tmp_path: Path) -> None:
    parts = read_parts(exported.bundle)
    parts.events[5]["id"] = parts.events[4]["id"]  # seqs still run 1, 2, 3…
    error = await refuse_edited(exported, tmp_path, parts)
    assert error == "events.jsonl: duplicate event ids"


@pytest.mark.parametrize("off_by", [1, -1])
async def test_an_event_count_the_head_disagrees_with_is_refused(
    exported: Exported, tmp_path: Path, off_by: int
) -> None:
    parts = read_parts(exported.bundle)
    held = len(parts.events)
    parts.head["events"] = held + off_by  # the log itself is intact
    error = await refuse_edited(exported, tmp_path, parts, fix_counts=False)
    assert error == f"events.jsonl holds {held} events, the head says {held + off_by}"


@pytest.mark.parametrize("off_by", [1, -1])
async def test_a_checkpoint_count_the_head_disagrees_with_is_refused(
    exported: Exported, tmp_path: Path, off_by: int
) -> None:
    parts = read_parts(exported.bundle)
    held = len(parts.checkpoints)
    parts.head["checkpoints"] = held + off_by
    error = await refuse_edited(exported, tmp_path, parts, fix_counts=False)
    assert error == f"checkpoints.jsonl holds {held} checkpoints, the head says {held + off_by}"
