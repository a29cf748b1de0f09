"""Export and import: a round trip that resumes, and hostile files that are refused."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import pytest

from tui.core.checkpoints.archive import ArchiveError, export_session, import_session
from tui.core.engine.supervisor import Supervisor
from tui.core.errors import CorralError
from tui.core.session import events as ev
from tui.core.session.state import finished_after
from tui.core.store.datadir import db_path, workspaces_dir
from tui.core.store.store import Store

from .bundle_tools import read_parts, write_parts
from .conftest import running_supervisor
from .test_checkpoints import run_session, tree

SECRET = "sk-ant-api03-test-secret-never-exported"


@pytest.fixture
async def exported(
    supervisor: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str, dict[str, object]]:
    sid, workspace = await run_session(supervisor, tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    # Say the agent once echoed the key: the export must not carry it.
    await supervisor.store.append(ev.agent_message(sid, f"the key is {SECRET}"))
    target = tmp_path / "out" / "session.corral"
    await export_session(supervisor.store, supervisor.checkpointer, sid, target)
    return target, sid, tree(workspace)


async def test_export_import_resume_round_trip(
    exported: tuple[Path, str, dict[str, object]], tmp_path: Path
) -> None:
    target, sid, final_tree = exported
    assert SECRET.encode() not in target.read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    store = await Store.open(db_path(other))
    try:
        async with running_supervisor(store, other) as sup:
            imported = await import_session(store, sup.checkpointer, target, workspaces_dir(other))
            assert imported.session_id == sid
            # It arrives waiting for the user: accepting is an explicit resume.
            with pytest.raises(CorralError, match="not accepted"):
                await sup.send_message(sid, "go on")
            record = await store.get_session(sid)
            assert tree(Path(record.workspace)) == final_tree
            events = await store.events(sid)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            cps = await store.checkpoints(sid)
            # It can be rewound and resumed there.
            await sup.rewind(sid, cps[1].id)
            seq = (await store.state(sid)).last_seq
            await sup.resume(sid, accept=True)
            state = await asyncio.wait_for(sup.wait_for(sid, finished_after(seq)), 30)
            assert state.stop_type == ev.END_TURN
            assert tree(Path(record.workspace)) == final_tree
            with pytest.raises(ArchiveError, match="already in this data dir"):
                await import_session(store, sup.checkpointer, target, workspaces_dir(other))
    finally:
        await store.close()


def rewrite(source: Path, target: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """Copy an export member by member through ``change(info, data) -> [(info, data)]``."""
    with tarfile.open(source) as src, tarfile.open(target, "w") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            for new_info, new_data in change(info, data):
                if new_info.isreg():
                    new_info.size = len(new_data)
                dst.addfile(new_info, io.BytesIO(new_data) if new_info.isreg() else None)
    return target


def add_member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""):  # type: ignore[no-untyped-def]
    def change(info: tarfile.TarInfo, payload: bytes):  # type: ignore[no-untyped-def]
        yield info, payload
        if info.name == "corral-export.json":
            extra = tarfile.TarInfo(name)
            extra.type = kind
            extra.linkname = link
            yield extra, data

    return change


def corrupt_blob(info: tarfile.TarInfo, data: bytes):  # type: ignore[no-untyped-def]
    yield info, (data + b"tampered" if info.name.startswith("blobs/") else data)


def escaping_link(source: Path, target: Path) -> Path:
    # A manifest that restores a link to /etc, listed and stored under its true hash, so
    # only the manifest check can catch it.
    parts = read_parts(source)
    parts.checkpoints[-1]["manifest"] = parts.add_manifest({"evil": ["l", "/etc"]})
    return write_parts(parts, target)


HOSTILE = {
    "dot-dot member": (add_member("../escape.txt"), "unexpected member"),
    "absolute member": (add_member("/tmp/corral-abs-escape"), "unexpected member"),
    "symlink member": (
        add_member("blobs/" + "a" * 64, b"", tarfile.SYMTYPE, "/etc/passwd"),
        "not a regular file",
    ),
    "hard link member": (
        add_member("events.jsonl", b"", tarfile.LNKTYPE, "/etc/passwd"),
        "not a regular file",
    ),
    "wrong hash": (corrupt_blob, "does not match its hash"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_exports_are_refused_and_write_nothing_outside(
    exported: tuple[Path, str, dict[str, object]], tmp_path: Path, case: str
) -> None:
    target, sid, _ = exported
    change, message = HOSTILE[case]
    bad = rewrite(target, tmp_path / "bad.corral", change)
    await refused(bad, tmp_path, message, sid)
    assert not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/corral-abs-escape").exists()


async def test_a_manifest_link_out_of_the_workspace_is_refused(
    exported: tuple[Path, str, dict[str, object]], tmp_path: Path
) -> None:
    target, sid, _ = exported
    bad = escaping_link(target, tmp_path / "bad.corral")
    await refused(bad, tmp_path, "leads out of the workspace", sid)


async def test_truncated_and_oversized_exports_are_refused(
    exported: tuple[Path, str, dict[str, object]], tmp_path: Path
) -> None:
    target, sid, _ = exported
    data = target.read_bytes()
    cut = tmp_path / "cut.corral"
    cut.write_bytes(data[: len(data) // 2])
    await refused(cut, tmp_path, r"not a complete corral export|truncated", sid)
    await refused(target, tmp_path, "byte limit", sid, max_bytes=1000)
    junk = tmp_path / "junk.corral"
    junk.write_bytes(b"this is not a tar file at all" * 100)
    await refused(junk, tmp_path, "not a complete corral export", sid)


async def refused(path: Path, tmp_path: Path, message: str, sid: str, **kwargs: int) -> None:
    other = tmp_path / f"import-{path.stem}-{len(message)}"
    other.mkdir()
    store = await Store.open(db_path(other))
    try:
        async with running_supervisor(store, other) as sup:
            with pytest.raises(ArchiveError, match=message) as info:
                await import_session(store, sup.checkpointer, path, workspaces_dir(other), **kwargs)
            assert "\n" not in str(info.value)
            assert await store.list_sessions() == []
            assert not (workspaces_dir(other) / sid).exists()
    finally:
        await store.close()
    # Nothing but the data dir itself was written to.
    assert {p.name for p in other.iterdir()} <= {
        "corral.db",
        "corral.db-wal",
        "corral.db-shm",
        "blobs",
        "workspaces",
    }
