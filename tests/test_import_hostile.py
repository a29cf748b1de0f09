"""Importing bundles a hostile or careless author made: validated before anything is
written, nothing left behind when refused, nothing outside the data dir touched, and an
imported session that never runs until the user accepts it."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.cli import dispatch as cli
from tui.core.checkpoints.archive import ArchiveError, export_session, import_session
from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.session import events as ev
from tui.core.store.datadir import blobs_dir, db_path, workspaces_dir
from tui.core.store.store import Store

from .bundle_tools import Parts, read_parts, write_parts
from .conftest import make_spec, running_supervisor
from .server_helpers import app_server

Edit = Callable[[Parts], None]

BASH = [
    {"text": "look", "tool_uses": [("bash", {"command": "echo hello > out.txt"})]},
    {"text": "done"},
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export of a finished session whose bash runs without asking."""
    tmp = tmp_path_factory.mktemp("bundle")

    async def make() -> Path:
        data = tmp / "data"
        store = await Store.open(db_path(data))
        try:
            async with running_supervisor(store, data) as sup:
                seed = tmp / "seed"
                seed.mkdir()
                (seed / "a.txt").write_text("a\n")
                spec = make_spec(tmp, BASH, workspace=seed)
                sid = await sup.create_session(spec)
                await sup.wait_for(sid, lambda s: s.stop_type == ev.END_TURN)
                target = tmp / "good.corral"
                await export_session(store, sup.checkpointer, sid, target)
                return target
        finally:
            await store.close()

    return asyncio.run(make())


def import_into(data: Path, source: Path) -> str:
    """Import through the CLI as a user would; returns stdout (raises SystemExit code)."""
    return str(cli.main(["--data-dir", str(data), "import", str(source)]))


SERVER_FILES = {"server.lock", "server.json", "server.key", "corral.sock"}


def leftovers(data: Path) -> set[str]:
    """What an import left in the data dir beyond the empty store layout."""
    found = set()
    for path in data.rglob("*"):
        rel = path.relative_to(data).as_posix()
        if rel.startswith("corral.db") or rel in ("blobs", "blobs/tmp", "workspaces"):
            continue
        if rel == "blobs/.lease":
            continue
        if rel in SERVER_FILES or rel.startswith("logs"):
            continue  # the data dir's server, which the import command talked to
        found.add(rel)
    return found


def edited(bundle: Path, target: Path, edit: Edit) -> Path:
    parts = read_parts(bundle)
    edit(parts)
    return write_parts(parts, target)


def set_event(index: int, key: str, value: Any) -> Edit:
    def edit(parts: Parts) -> None:
        parts.events[index]["payload"][key] = value

    return edit


def first_of(kind: str) -> Callable[[Parts], dict[str, Any]]:
    return lambda parts: next(e for e in parts.events if e["type"] == kind)


def edit_first(kind: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda parts: change(first_of(kind)(parts))


def append_event(kind: str, payload: dict[str, Any], id_char: str) -> Edit:
    """An extra event at the end of the log, well formed but for its payload."""

    def edit(parts: Parts) -> None:
        parts.events.append(
            {
                **copy.deepcopy(parts.events[-1]),
                "seq": len(parts.events) + 1,
                "id": "sevt_" + id_char * 30,
                "type": kind,
                "payload": payload,
            }
        )

    return edit


BAD = {
    "tool use with a list as its name": (
        edit_first(ev.AGENT_TOOL_USE, lambda e: e["payload"].update(name=["bash"])),
        "agent.tool_use: name must be a string",
    ),
    "permission outside the three": (
        edit_first(ev.AGENT_TOOL_USE, lambda e: e["payload"].update(evaluated_permission="yes")),
        "evaluated_permission must be one of",
    ),
    "usage that is not a count": (
        edit_first(
            ev.SPAN_MODEL_REQUEST_END,
            lambda e: e["payload"]["model_usage"].update(input_tokens="lots"),
        ),
        "input_tokens must be a whole number",
    ),
    "negative usage": (
        edit_first(
            ev.SPAN_MODEL_REQUEST_END,
            lambda e: e["payload"]["model_usage"].update(output_tokens=-5),
        ),
        "output_tokens must be a whole number",
    ),
    "unknown stop reason": (
        edit_first(ev.STATUS_IDLE, lambda e: e["payload"].update(stop_reason={"type": "whee"})),
        "stop_reason.type must be one of",
    ),
    "naive time": (
        edit_first(ev.USER_MESSAGE, lambda e: e.update(processed_at="2026-01-01T00:00:00")),
        "must carry a timezone",
    ),
    "content that is not blocks": (
        edit_first(ev.USER_MESSAGE, lambda e: e["payload"].update(content="hi")),
        "content must be a list",
    ),
    "budget of 1e999999999": (
        append_event(
            ev.SESSION_BUDGET, {"max_list_cost": "1e999999999", "max_active_hours": None}, "e"
        ),
        "max_list_cost",
    ),
    "policy that is not a policy": (
        append_event(
            ev.SESSION_POLICY, {"policy": {"tools": {"bash": {"rules": [{"allow": 5}]}}}}, "f"
        ),
        "policy",
    ),
    "rewind forward": (
        append_event(ev.SESSION_REWOUND, {"to_seq": 10_000, "checkpoint_id": "x"}, "d"),
        "rewinds forward",
    ),
    "gap in the log": (lambda p: p.events.pop(2), "without gaps"),
    "duplicate event ids": (
        lambda p: p.events[3].update(id=p.events[2]["id"]),
        "duplicate event ids",
    ),
    "spec with an unknown backend": (
        lambda p: p.head["session"]["spec"]["environment"].update(backend="vm"),
        "backend or networking",
    ),
    "spec with nan cpus": (
        lambda p: p.head["session"]["spec"]["environment"].update(limits={"cpus": float("nan")}),
        "cpus",
    ),
    "spec that is a list": (lambda p: p.head["session"].update(spec=[]), "spec"),
    "api that is a list": (lambda p: p.head["session"].update(api=[]), "api must be an object"),
    "api metadata past the API's limits": (
        lambda p: p.head["session"].update(api={"metadata": {f"k{i}": "v" for i in range(17)}}),
        "api.metadata: must be an object of at most 16 pairs",
    ),
    "api metadata with a number": (
        lambda p: p.head["session"].update(api={"metadata": {"team": 7}}),
        "api.metadata: keys must be strings",
    ),
    "duplicate checkpoint ids": (
        lambda p: p.checkpoints[1].update(id=p.checkpoints[0]["id"]),
        "duplicate checkpoint ids",
    ),
    "checkpoint count": (None, "the head says"),
    "event count": (None, "the head says"),
    "checkpoint with a text count": (
        lambda p: p.checkpoints[0].update(files="many"),
        "malformed checkpoint",
    ),
    "a long chain of deltas": (None, "chain of deltas is longer"),
}


def long_chain(parts: Parts) -> None:
    base = parts.add_manifest({"a.txt": ["f", 420, "0" * 64, 0]})
    for i in range(100):
        doc = {"v": 1, "base": base, "depth": i + 1, "set": {}, "del": []}
        base = parts.add_blob(json.dumps(doc, sort_keys=True).encode() + b" " * (i % 2))
    parts.checkpoints[-1]["manifest"] = base


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_bundles_are_refused_before_anything_is_written(
    bundle: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, message = BAD[case]
    parts = read_parts(bundle)
    fix_counts = True
    if case == "checkpoint count":
        parts.head["checkpoints"] = len(parts.checkpoints) + 1
        fix_counts = False
    elif case == "event count":
        parts.head["events"] = len(parts.events) - 1
        fix_counts = False
    elif case == "a long chain of deltas":
        long_chain(parts)
    else:
        assert edit is not None
        edit(parts)
    if not fix_counts:
        parts.head["blobs"] = {d: len(b) for d, b in parts.blobs.items()}
    bad = write_parts(parts, tmp_path / "bad.corral", fix_counts=fix_counts)
    data = tmp_path / "data"
    assert cli.main(["--data-dir", str(data), "import", str(bad)]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert leftovers(data) == set()


def test_a_failure_after_the_blobs_are_adopted_takes_them_back(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"

    async def failing(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Store, "import_session", failing)
    app_server(data)  # in this process, where the store is patched; the CLI talks to it
    assert cli.main(["--data-dir", str(data), "import", str(bundle)]) != 0
    assert leftovers(data) == set()


def test_gc_cannot_run_while_an_import_writes(bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    checkpointer = Checkpointer(blobs_dir(data))
    with checkpointer.blobs.lease(exclusive=False):
        assert cli.main(["--data-dir", str(data), "gc"]) != 0
    assert cli.main(["--data-dir", str(data), "gc", "--dry-run"]) == 0


# -- links and paths: nothing outside the data dir, whatever the manifest -----------------

SEGMENTS = ["a", "b", "..", ".", "", "x\\y", "/etc", "c d"]
TARGETS = ["..", "../..", "../../canary.txt", "/", "/etc/passwd", "a", "a/../..", "."]


@st.composite
def hostile_manifest(draw: st.DrawFn) -> dict[str, list[Any]]:
    entries: dict[str, list[Any]] = {}
    for _ in range(draw(st.integers(1, 8))):
        path = "/".join(draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4)))
        kind = draw(st.sampled_from(["d", "f", "l"]))
        if kind == "d":
            entries[path] = ["d", 0o755]
        elif kind == "f":
            entries[path] = ["f", 0o644, "__blob__", 4]
        else:
            entries[path] = ["l", draw(st.sampled_from(TARGETS))]
    return entries


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(manifest=hostile_manifest())
def test_no_manifest_makes_an_import_write_outside_the_data_dir(
    bundle: Path, manifest: dict[str, list[Any]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "canary.txt").write_text("canary\n")
        parts = read_parts(bundle)
        digest = parts.add_blob(b"evil")
        for entry in manifest.values():
            if entry[0] == "f":
                entry[2] = digest
        parts.checkpoints[-1]["manifest"] = parts.add_manifest(manifest)
        bad = write_parts(parts, base / "bad.corral")
        data = base / "data"
        before = sorted(p.relative_to(base).as_posix() for p in base.rglob("*"))
        code = cli.main(["--data-dir", str(data), "import", str(bad)])
        assert (base / "canary.txt").read_text() == "canary\n"
        after = sorted(
            p.relative_to(base).as_posix() for p in base.rglob("*") if "data" not in p.parts
        )
        assert after == [p for p in before if "data" not in Path(p).parts]
        if code == 0:
            # Imported: whatever it holds, every command can still show it.
            assert cli.main(["--data-dir", str(data), "ls"]) == 0
            for path in (workspaces_dir(data)).rglob("*"):
                if path.is_symlink():
                    target = os.readlink(path)
                    assert not target.startswith("/") and ".." not in target.split("/")[:1]
        else:
            assert leftovers(data) == set()


# -- an imported session never runs by itself ----------------------------------------------


def cut_mid_run(parts: Parts) -> None:
    """The author exported while the session was running: the log ends mid-turn."""
    last = max(i for i, e in enumerate(parts.events) if e["type"] == ev.STATUS_RUNNING)
    parts.events = parts.events[: last + 1]
    parts.checkpoints = [c for c in parts.checkpoints if c["seq"] <= last + 1]


def test_an_import_arrives_paused_unaccepted_and_says_what_it_may_do(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def widen(parts: Parts) -> None:
        cut_mid_run(parts)
        parts.head["session"]["spec"]["environment"]["networking"] = "unrestricted"

    source = edited(bundle, tmp_path / "running.corral", widen)
    data = tmp_path / "data"
    assert cli.main(["--data-dir", str(data), "import", str(source)]) == 0
    out = capsys.readouterr().out
    assert "networking: unrestricted" in out and "bash: always_allow" in out
    sid = out.split("imported ")[1].split(":")[0]

    assert cli.main(["--data-dir", str(data), "ls", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "idle" and listed["stop_reason"] == "paused"

    # Crash recovery does not pick it up, nor does a message or an approval start it.
    assert cli.main(["--data-dir", str(data), "resume", "--headless"]) == 0
    assert "nothing to recover" in capsys.readouterr().out
    assert cli.main(["--data-dir", str(data), "send", sid, "go"]) != 0
    assert "not accepted" in capsys.readouterr().err

    assert cli.main(["--data-dir", str(data), "show", sid]) == 0
    shown = capsys.readouterr().out
    assert "NOT ACCEPTED" in shown and "corral resume" in shown and "[tools.bash]" in shown

    # The user accepts it by resuming it by name: it runs to its end.
    assert cli.main(["--data-dir", str(data), "resume", sid, "--speed", "0"]) == 0
    capsys.readouterr()
    assert cli.main(["--data-dir", str(data), "ls", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["stop_reason"] == "end_turn"
    assert listed["metadata"]["imported"]["accepted"] is True


def test_a_mutated_payload_is_refused_or_harmless(bundle: Path, tmp_path: Path) -> None:
    """Every value of every payload replaced in turn by a value of another type: the
    import either refuses the bundle or every read command still works on it."""
    parts = read_parts(bundle)
    replacements: list[Any] = [None, 7, "x", [], {}, True, -1, 1e308]
    case = 0
    for index, event in enumerate(parts.events):
        for key in list(event["payload"]):
            replacement = replacements[case % len(replacements)]
            case += 1
            mutated = copy.deepcopy(parts)
            mutated.events[index]["payload"][key] = replacement
            source = write_parts(mutated, tmp_path / f"m{case}.corral")
            data = tmp_path / f"d{case}"
            if cli.main(["--data-dir", str(data), "import", str(source)]) != 0:
                assert leftovers(data) == set()
                continue
            sid = parts.head["session"]["id"]
            for command in (
                ["ls"],
                ["ls", "--json"],
                ["show", sid, "--events"],
                ["policy", "show", sid],
                ["checkpoints", sid],
            ):
                assert cli.main(["--data-dir", str(data), *command]) == 0, (command, key)
    assert case > 20


async def test_import_refuses_a_session_already_here_without_touching_it(
    bundle: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    store = await Store.open(db_path(data))
    try:
        checkpointer = Checkpointer(blobs_dir(data))
        await import_session(store, checkpointer, bundle, workspaces_dir(data))
        with pytest.raises(ArchiveError, match="already in this data dir"):
            await import_session(store, checkpointer, bundle, workspaces_dir(data))
    finally:
        await store.close()


def test_a_fork_of_an_unaccepted_import_waits_for_acceptance_too(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert cli.main(["--data-dir", str(data), "import", str(bundle)]) == 0
    sid = capsys.readouterr().out.split("imported ")[1].split(":")[0]
    assert cli.main(["--data-dir", str(data), "fork", sid, "#1"]) == 0
    fork = capsys.readouterr().out.split("forked ")[1].split(";")[0]
    assert cli.main(["--data-dir", str(data), "send", fork, "run it"]) != 0
    assert "not accepted" in capsys.readouterr().err
    # Ending an import needs no acceptance: nothing of it runs.
    assert cli.main(["--data-dir", str(data), "cancel", sid]) == 0
    assert capsys.readouterr().out.strip() == f"cancel: {sid}"
    assert cli.main(["--data-dir", str(data), "ls", "--json"]) == 0
    states = {s["id"]: s["status"] for s in json.loads(capsys.readouterr().out)}
    assert states[sid] == "terminated" and states[fork] == "idle"


def test_links_that_climb_out_through_other_links_are_refused(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def chain(parts: Parts) -> None:
        # Each text resolves inside on its own; followed through each other they climb out.
        entries: dict[str, list[Any]] = {
            "d": ["d", 0o755],
            "d/e": ["l", ".."],
            "d/f": ["l", "e/.."],
            "d/passwd": ["l", "f/etc/passwd"],
        }
        parts.checkpoints[-1]["manifest"] = parts.add_manifest(entries)

    source = edited(bundle, tmp_path / "chain.corral", chain)
    data = tmp_path / "data"
    assert cli.main(["--data-dir", str(data), "import", str(source)]) != 0
    assert "leads out of the workspace" in capsys.readouterr().err
    assert leftovers(data) == set()


def test_events_from_the_future_are_refused(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = edited(
        bundle,
        tmp_path / "future.corral",
        edit_first(
            ev.SPAN_MODEL_REQUEST_END, lambda e: e.update(processed_at="9999-12-31T00:00:00+00:00")
        ),
    )
    data = tmp_path / "data"
    assert cli.main(["--data-dir", str(data), "import", str(source)]) != 0
    assert "in the future" in capsys.readouterr().err


def test_export_never_replaces_something_that_is_not_a_file(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert cli.main(["--data-dir", str(data), "import", str(bundle)]) == 0
    sid = capsys.readouterr().out.split("imported ")[1].split(":")[0]
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    directory = tmp_path / "adir"
    directory.mkdir()
    for target in (fifo, directory):
        assert cli.main(["--data-dir", str(data), "export", sid, "-o", str(target)]) != 0
        assert "not a regular file" in capsys.readouterr().err
    assert os.path.exists(fifo) and directory.is_dir()
