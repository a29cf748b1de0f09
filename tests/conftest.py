"""Shared fixtures: a real SQLite store in a temp dir, a supervisor, and scripted models."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tui.core.engine.supervisor import Supervisor
from tui.core.sandboxes.docker import LABEL_DATA_DIR as LABEL_DATA
from tui.core.session.spec import SessionSpec
from tui.core.session.spec_reader import parse_spec
from tui.core.store.datadir import db_path
from tui.core.store.store import Store

REPO = Path(__file__).resolve().parent.parent

# A server a command starts on demand would outlive the test: let it stop by itself soon
# after its sessions do, and stop what is left when the test ends (below).
os.environ.setdefault("CORRAL_SERVER_IDLE_EXIT", "15")


@pytest.fixture(autouse=True)
def _stop_servers(tmp_path: Path) -> Iterator[None]:
    from tests.server_helpers import stop_test_servers

    yield
    stop_test_servers()
    for info in [*tmp_path.glob("server.json"), *tmp_path.glob("*/server.json")]:
        with suppress(OSError, ValueError, KeyError):
            pid = int(json.loads(info.read_text())["pid"])
            if pid != os.getpid():  # a server in a thread of ours stops with its test
                os.kill(pid, signal.SIGTERM)
    remove_test_containers(tmp_path)


_engine: list[bool] = []  # asked once: does a Docker engine answer here?


def remove_test_containers(tmp_path: Path) -> None:
    """Idle sessions keep their containers for the next turn; a test's go with the test.
    (Once `corral env build` has run, `backend = "auto"` sessions run in docker.)"""
    from tui.core.sandboxes.engine import docker_client, engine_answers

    if not _engine:
        _engine.append(engine_answers())
    if not _engine[0]:
        return
    with suppress(Exception):
        client = docker_client()
        try:
            for container in client.containers.list(
                all=True, filters={"label": LABEL_DATA}, ignore_removed=True
            ):
                if container.labels.get(LABEL_DATA, "").startswith(f"{tmp_path}/"):
                    container.remove(force=True)
        finally:
            client.close()


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a TOML basic string is a JSON string


def write_script(
    path: Path, turns: list[dict[str, Any]], price_as: str = "claude-sonnet-4-5"
) -> Path:
    """A scripted-model file; each turn: text, tool_uses [(name, input)], usage, latency_ms."""
    lines = [f"price_as = {toml_value(price_as)}"]
    for turn in turns:
        lines.append("[[turns]]")
        for key in ("text", "thinking", "latency_ms", "usage"):
            if key in turn:
                lines.append(f"{key} = {toml_value(turn[key])}")
        for name, tool_input in turn.get("tool_uses", []):
            lines.append("[[turns.tool_uses]]")
            lines.append(f"name = {toml_value(name)}")
            lines.append(f"input = {toml_value(tool_input)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def make_spec(
    tmp_path: Path,
    turns: list[dict[str, Any]],
    *,
    tools: dict[str, dict[str, Any]] | None = None,
    workspace: Path | None = None,
    budget: str | None = None,
    name: str = "script",
    title: str = "test session",
) -> SessionSpec:
    script = write_script(tmp_path / f"{name}.toml", turns)
    data: dict[str, Any] = {
        "title": title,
        "prompt": "do the task",
        "agent": {"model": f"scripted:{script}", "tools": tools or {}},
        "environment": {"backend": "local"},
    }
    if workspace is not None:
        data["workspace"] = {"source": str(workspace)}
    if budget is not None:
        data["budget"] = {"max_list_cost": budget}
    return parse_spec(data, source="test.toml", base=tmp_path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
async def store(data_dir: Path) -> AsyncIterator[Store]:
    store = await Store.open(db_path(data_dir))
    yield store
    await store.close()


@asynccontextmanager
async def running_supervisor(
    store: Store, data_dir: Path, *, speed: float = 0, max_concurrent: int = 4
) -> AsyncIterator[Supervisor]:
    sup = Supervisor(store, data_dir, max_concurrent=max_concurrent, script_speed=speed)
    await sup.start()
    try:
        yield sup
    finally:
        await sup.close()


@pytest.fixture
async def supervisor(store: Store, data_dir: Path) -> AsyncIterator[Supervisor]:
    """Scripted latency skipped (speed 0): sessions run as fast as their tools."""
    async with running_supervisor(store, data_dir) as sup:
        yield sup


@pytest.fixture
async def live_supervisor(store: Store, data_dir: Path) -> AsyncIterator[Supervisor]:
    """Scripted latency honoured (speed 1), for tests that act while a turn streams."""
    async with running_supervisor(store, data_dir, speed=1.0) as sup:
        yield sup


# Snapshot baselines live in snapshots/ at the top of the repo (the README shows them),
# not in tests/__snapshots__.
try:
    from pytest_textual_snapshot import SVGImageExtension

    def _snapshot_dirname(cls: type, *, test_location: object) -> str:
        return str(REPO / "snapshots" / test_location.basename)  # type: ignore[attr-defined]

    SVGImageExtension.dirname = classmethod(_snapshot_dirname)  # type: ignore[method-assign]
except ImportError:  # pragma: no cover - the test extra always installs it
    pass


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    """Every timestamp is the same instant: durations on screen never vary."""
    from tests.app_helpers import FROZEN
    from tui.core import clock

    clock.set_clock(lambda: FROZEN)
    yield
    clock.set_clock(None)


@pytest.fixture
def plain_local_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local sessions run without bubblewrap whether or not this host has it, so what a
    snapshot shows of their isolation is the same on every machine."""
    from tui.core.sandboxes import local

    monkeypatch.setattr(local, "bubblewrap_works", lambda: False)
