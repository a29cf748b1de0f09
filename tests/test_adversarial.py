"""A scripted agent that does hostile things to its own workspace and tools: odd names,
FIFOs, sockets, huge sparse files, links out, a catastrophic regex, a read that would
block, a command that never ends. Every session ends with a clear stop reason, its
checkpoints and rewind keep working, and the host outside the workspace is untouched."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tui.core.engine.supervisor import Supervisor
from tui.core.sandboxes.local import bubblewrap_works
from tui.core.session import events as ev
from tui.core.session.state import is_finished
from tui.core.tools import files
from tui.core.tools.toolset import Toolset

from .conftest import make_spec


async def run(supervisor: Supervisor, tmp_path: Path, turns: list[dict]) -> tuple[str, list]:
    spec = make_spec(tmp_path, turns)
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 60)
    return sid, [state, await supervisor.store.events(sid)]


def results(events: list[ev.Event]) -> list[tuple[bool, str]]:
    return [(e.payload["is_error"], e.text) for e in events if e.type == ev.AGENT_TOOL_RESULT]


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "canary.txt").write_text("untouched\n")
    return outside


def host_untouched(canary: Path) -> bool:
    return sorted(p.name for p in canary.iterdir()) == ["canary.txt"] and (
        (canary / "canary.txt").read_text() == "untouched\n"
    )


async def test_odd_files_in_the_workspace_are_ordinary(
    supervisor: Supervisor, tmp_path: Path, canary: Path
) -> None:
    make_odd = (
        "printf x > \"$(printf 'caf\\351')\" && printf y > 'back\\slash' && "
        "printf z > \"$(printf 'new\\nline')\" && mkfifo pipe && "
        "python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\" && "
        "truncate -s 300M sparse.img && mkdir d && echo in > d/f && "
        f"ln -s {canary} out-link"
    )
    turns = [
        {"text": "odd", "tool_uses": [("bash", {"command": make_odd})]},
        {
            "text": "poke",
            "tool_uses": [
                ("read", {"file_path": "pipe"}),  # would block forever if opened blocking
                ("write", {"file_path": "pipe", "content": "x"}),
                ("write", {"file_path": "out-link/pwned", "content": "x"}),
                ("glob", {"pattern": "**"}),
                ("grep", {"pattern": "x"}),
            ],
        },
        {"text": "swap", "tool_uses": [("bash", {"command": "rm -r d && ln -s / d"})]},
        {"text": "done"},
    ]
    sid, (state, events) = await run(supervisor, tmp_path, turns)
    assert state.stop_type == ev.END_TURN
    out = results(events)
    assert out[0] == (False, "(no output)")
    read_pipe, write_pipe, escape, glob_out, grep_out = out[1:6]
    assert read_pipe[0] and "not a regular file" in read_pipe[1]
    assert write_pipe[0] and "not a regular file" in write_pipe[1]
    assert escape[0] and "outside the workspace" in escape[1]
    assert "back\\slash" in glob_out[1] and "caf" in glob_out[1]
    assert not grep_out[0]
    assert host_untouched(canary)

    checkpoints = await supervisor.store.checkpoints(sid)
    after_odd = checkpoints[1]
    assert after_odd.skipped == 3  # the FIFO, the socket and the 300 MB sparse file
    assert any("file cap" in n for n in after_odd.notes)
    # Back to before the swap: d is a directory again, the skipped paths are left alone.
    workspace = Path((await supervisor.store.get_session(sid)).workspace)
    await supervisor.rewind(sid, after_odd.id)
    assert (workspace / "d").is_dir() and not (workspace / "d").is_symlink()
    assert (workspace / "d" / "f").read_text() == "in\n"
    assert stat.S_ISFIFO((workspace / "pipe").lstat().st_mode)
    assert (workspace / "sparse.img").stat().st_size == 300 << 20
    assert os.path.exists(os.path.join(bytes(workspace), b"caf\xe9"))
    assert host_untouched(canary)


async def test_a_catastrophic_regex_and_a_command_that_never_ends_do_not_hang(
    supervisor: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "SEARCH_BUDGET_S", 0.5)
    turns = [
        {
            "text": "slow",
            "tool_uses": [
                ("write", {"file_path": "long.txt", "content": "a" * 5000 + "\n"}),
                ("grep", {"pattern": r"(\w*)*\d"}),
                ("glob", {"pattern": "*" * 5000}),
                ("bash", {"command": "sleep 600", "timeout_ms": 300}),
                ("bash", {"command": "echo still here"}),
            ],
        },
        {"text": "done"},
    ]
    _, (state, events) = await run(supervisor, tmp_path, turns)
    assert state.stop_type == ev.END_TURN
    _, grep_out, glob_out, sleep_out, after = results(events)
    assert grep_out[0] and "simpler" in grep_out[1]
    assert glob_out[0] and "over 4096 characters" in glob_out[1]
    assert sleep_out[0] and "timed out" in sleep_out[1]
    assert after == (False, "still here\n")


@pytest.mark.skipif(not bubblewrap_works(), reason="bash is confined only under bubblewrap")
async def test_bash_cannot_write_outside_its_workspace(
    supervisor: Supervisor, tmp_path: Path, canary: Path
) -> None:
    turns = [
        {
            "text": "escape",
            "tool_uses": [
                ("bash", {"command": f"echo pwned > {canary}/pwned; ln -s {canary} l"}),
                ("bash", {"command": "echo pwned > l/pwned2; echo pwned >> l/canary.txt"}),
            ],
        },
        {"text": "done"},
    ]
    _, (state, events) = await run(supervisor, tmp_path, turns)
    assert state.stop_type == ev.END_TURN
    first, second = results(events)
    # Inside, the host is read-only and /tmp is private: the write fails either way.
    assert "pwned" in first[1] and second[0]
    assert host_untouched(canary)


async def test_a_fault_inside_corral_ends_the_session_with_a_clear_reason(
    supervisor: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Toolset, name: str, tool_input: dict) -> object:
        raise RuntimeError("a bug in a tool")

    monkeypatch.setattr(Toolset, "run", broken)
    turns = [
        {"text": "go", "tool_uses": [("bash", {"command": "echo hi"})]},
        {"text": "done"},
    ]
    sid, (state, events) = await run(supervisor, tmp_path, turns)
    assert state.status == "idle" and state.stop_type == ev.ERROR
    assert "a bug in a tool" in state.stop_reason["detail"]
    errors = [e for e in events if e.type == ev.SESSION_ERROR]
    assert errors and errors[-1].payload["error"]["type"] == "internal_error"
    # The tool use that was cut off is answered, never re-run on resume.
    (result,) = results(events)
    assert result[0] and "not re-run" in result[1]
    assert supervisor.is_live(sid)  # the runner waits for the user, it did not die


def test_file_tools_never_follow_a_directory_swapped_for_a_link(tmp_path: Path) -> None:
    """The red team's race: something in the sandbox keeps swapping a directory and a link
    to the host while the file tools work. Nothing outside may be read or written."""
    from tui.core.errors import ToolError
    from tui.core.tools.workspace import Workspace

    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "x").write_text("host secret\n")
    ws_root = tmp_path / "ws"
    ws_root.mkdir()
    (ws_root / "a").mkdir()
    (ws_root / "a" / "x").write_text("inside\n")
    os.symlink(outside, ws_root / "evil")
    # Another process (as an agent's background job would be) keeps swapping `a`
    # between the real directory and the link out; rename(2) makes each swap atomic.
    # renameat2(RENAME_EXCHANGE) swaps the two names atomically, so `a` always exists.
    swap = (
        "import ctypes, os, sys\n"
        "os.chdir(sys.argv[1])\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "while True:\n"
        "    libc.renameat2(-100, b'a', -100, b'evil', 2)\n"
    )
    swapper = subprocess.Popen([sys.executable, "-c", swap, str(ws_root)])
    ws = Workspace(ws_root)
    leaked = []
    try:
        for n in range(400):
            for call in (
                lambda: files.read(ws, "a/x"),
                lambda n=n: files.write(ws, f"a/w{n}", "pwned"),
                lambda: files.edit(ws, "a/x", "secret", "owned"),
                lambda: files.grep(ws, "secret", "a"),
            ):
                try:
                    out = call()
                except (ToolError, OSError):
                    continue
                if "host secret" in out:
                    leaked.append(out)
    finally:
        swapper.kill()
        swapper.wait()
    assert leaked == []
    assert sorted(p.name for p in outside.iterdir()) == ["x"]
    assert (outside / "x").read_text() == "host secret\n"


async def test_a_workspace_that_holds_the_data_dir_is_refused(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    from tui.core.errors import CorralError
    from tui.core.session.spec import WorkspaceSpec

    spec = make_spec(tmp_path, [{"text": "done"}])
    for source in (supervisor.data_dir.parent, supervisor.data_dir / "workspaces"):
        source.mkdir(exist_ok=True)
        for mode in ("in_place", "copy"):
            overlapping = replace(spec, workspace=WorkspaceSpec(source, mode))
            with pytest.raises(CorralError, match="overlaps corral's data dir"):
                await supervisor.create_session(overlapping)
    assert await supervisor.store.list_sessions() == []


async def test_a_diff_across_a_fifo_lists_it_as_not_captured(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    turns = [
        {"text": "pipe", "tool_uses": [("bash", {"command": "mkfifo fifo && echo hi > f"})]},
        {"text": "done"},
    ]
    sid, _ = await run(supervisor, tmp_path, turns)
    cps = await supervisor.store.checkpoints(sid)
    from tui.core.checkpoints.diff import compare

    events = await supervisor.store.events(sid)
    result = compare(supervisor.checkpointer, events, cps[0], cps[1])
    assert {c.path for c in result.changes} == {"fifo", "f"}
    assert "fifo" not in result.texts and "hi" in result.texts["f"]
