"""Crash recovery: SIGKILL the corral server (which runs the sessions a `corral run`
started) at random points, then `corral resume`: a new server takes over.

Each session must end with end_turn, its workspace equal to an uninterrupted run's,
and its log gapless with every tool use answered exactly once on its branch.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tui.core.session import events as ev
from tui.core.session.branches import visible
from tui.core.store.datadir import db_path
from tui.core.store.store import Store

from .conftest import write_script
from .test_checkpoints import tree

CORRAL = str(Path(sys.executable).with_name("corral"))
TRIALS = 20

# Commands that are not idempotent (appends), so a tool run twice, or a workspace
# not put back before a retry, shows in the final tree.
SCRIPT = [
    {"latency_ms": 60, "text": "a", "tool_uses": [("bash", {"command": "echo one >> log.txt"})]},
    {
        "latency_ms": 60,
        "text": "b",
        "tool_uses": [
            ("bash", {"command": "sed -i 's/x/X/' data.txt && echo two >> log.txt"}),
            ("write", {"file_path": "notes/a.md", "content": "note\n"}),
        ],
    },
    {
        "latency_ms": 60,
        "text": "c",
        "tool_uses": [("bash", {"command": "sleep 0.2; mkdir -p out && cp data.txt out/"})],
    },
    {
        "latency_ms": 60,
        "text": "d",
        "tool_uses": [("edit", {"file_path": "log.txt", "old_string": "two", "new_string": "2"})],
    },
    {"latency_ms": 60, "text": "e", "tool_uses": [("bash", {"command": "echo three >> log.txt"})]},
    {"latency_ms": 60, "text": "done"},
]


def write_specs(tmp_path: Path, count: int = 3) -> list[Path]:
    specs = []
    for n in range(count):
        ws = tmp_path / f"seed{n}"
        ws.mkdir()
        (ws / "data.txt").write_text(f"x{n} x\n")
        script = write_script(tmp_path / f"script{n}.toml", SCRIPT)
        spec = tmp_path / f"spec{n}.toml"
        spec.write_text(
            f'title = "crash {n}"\nprompt = "go"\n'
            f'[agent]\nmodel = "scripted:{script}"\n'
            '[agent.tools]\ndefault = { enabled = true, permission_policy = "always_allow" }\n'
            '[environment]\nbackend = "local"\n'
            f'[workspace]\nsource = "{ws}"\n'
        )
        specs.append(spec)
    return specs


def corral(data_dir: Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CORRAL, "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def server_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "server.json").read_text())["pid"])


def wait_for_sessions(proc: subprocess.Popen[str], what: str) -> None:
    """Read the process's output until its three sessions have started."""
    started = 0
    assert proc.stdout is not None
    while started < 3:
        line = proc.stdout.readline()
        assert line, f"{what}: corral exited before starting its sessions"
        started += line.startswith("session ")


async def outcome(data_dir: Path) -> dict[str, tuple[str | None, dict[str, object]]]:
    """Per session title: its stop reason and workspace; asserts the log is sound."""
    store = await Store.open(db_path(data_dir))
    try:
        out = {}
        for record in await store.list_sessions():
            events = await store.events(record.id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1)), record.title
            current = visible(events)
            uses = [e.id for e in current if e.type == ev.AGENT_TOOL_USE]
            results = [e.payload["tool_use_id"] for e in current if e.type == ev.AGENT_TOOL_RESULT]
            assert sorted(uses) == sorted(results), f"{record.title}: a tool use answered ≠ once"
            out[record.title] = (record.state.stop_type, tree(Path(record.workspace)))  # type: ignore[union-attr]
        return out
    finally:
        await store.close()


def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    specs = [str(p) for p in write_specs(tmp_path)]
    reference_dir = tmp_path / "reference"
    ran = corral(reference_dir, "run", *specs, "--headless")
    wait_for_sessions(ran, "reference")
    began = time.monotonic()
    assert ran.wait(60) == 0, ran.stdout.read() if ran.stdout else ""
    # From the sessions' start to the end of the work: where a kill can land mid-run.
    duration = time.monotonic() - began
    reference = asyncio.run(outcome(reference_dir))
    assert len(reference) == 3 and all(stop == ev.END_TURN for stop, _ in reference.values())

    rng = random.Random(20261126)
    kills_mid_run = 0
    for trial in range(TRIALS):
        data_dir = tmp_path / f"trial{trial}"
        proc = corral(data_dir, "run", *specs, "--headless")
        wait_for_sessions(proc, f"trial {trial}")
        time.sleep(rng.uniform(0, duration * 0.9))
        finished = proc.poll() is not None
        if not finished:
            os.kill(server_pid(data_dir), signal.SIGKILL)
            proc.kill()  # the command that was following the sessions
        proc.wait(10)
        kills_mid_run += not finished
        resumed = corral(data_dir, "resume", "--headless", "--speed", "0")
        log = resumed.communicate(timeout=60)[0]
        assert resumed.returncode == 0, f"trial {trial}: resume failed:\n{log}"
        assert asyncio.run(outcome(data_dir)) == reference, f"trial {trial}:\n{log}"
    assert kills_mid_run >= TRIALS // 2  # most kills must land while work was going on
