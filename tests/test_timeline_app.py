"""The timeline screen driven with Pilot: rewind with confirmation, diff, fork; a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tui.core.session import events as ev
from tui.ui.screens.checkpoint_diff import CheckpointDiffScreen
from tui.ui.screens.confirm_rewind import ConfirmRewindScreen
from tui.ui.screens.timeline import TimelineScreen
from tui.ui.widgets.checkpoint_table import CheckpointTable

from .app_helpers import demo_app, only_pane, screen_work_done, settle, until
from .conftest import make_spec
from .test_checkpoints import TURNS, seed, tree

SIZE = (160, 48)


async def open_timeline(pilot: Pilot, app) -> TimelineScreen:  # type: ignore[no-untyped-def]
    await settle(pilot, app, count=1)
    (await only_pane(pilot, app)).focus()
    await pilot.press("h")
    await until(pilot, lambda: isinstance(app.screen, TimelineScreen), "timeline")
    screen = app.screen
    await until(pilot, lambda: screen.query_one(CheckpointTable).row_count == 5, "5 checkpoints")
    return screen  # type: ignore[return-value]


async def test_rewind_from_the_timeline_asks_then_restores(data_dir: Path, tmp_path: Path) -> None:
    app = demo_app(data_dir, [make_spec(tmp_path, TURNS, workspace=seed(tmp_path))])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_timeline(pilot, app)
        workspace = Path(screen.snapshot.record.workspace)
        assert "link" in tree(workspace)
        table = screen.query_one(CheckpointTable)
        await pilot.press("up", "up", "up")  # from the newest (#5) to #2
        rows = screen.timeline.rows  # type: ignore[union-attr]
        assert table.selected_id == rows[1].checkpoint.id
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmRewindScreen), "confirmation")
        confirm = app.screen
        assert {c.path for c in confirm.changes} >= {"b.txt", "link", "notes/plan.md"}  # type: ignore[attr-defined]
        # Cancelling changes nothing.
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "back on the timeline")
        assert "link" in tree(workspace)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmRewindScreen), "confirmation")
        await pilot.press("ctrl+y")
        await until(
            pilot,
            lambda: screen.timeline is not None and len(screen.timeline.branches) == 2,
            "branch",
        )
        assert tree(workspace)["b.txt"] == ("file", "0o644", b"bee\n")
        assert "link" not in tree(workspace)
        assert app.bridge.fleet.sessions[screen.session_id].state.stop_type == ev.PAUSED
        current = [r.current for r in screen.timeline.rows]  # type: ignore[union-attr]
        assert current == [True, True, False, False, False]


async def test_diff_and_fork_from_the_timeline(data_dir: Path, tmp_path: Path) -> None:
    app = demo_app(data_dir, [make_spec(tmp_path, TURNS, workspace=seed(tmp_path))])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_timeline(pilot, app)
        await pilot.press("up", "up", "up", "d")  # #2 against #1: the sed
        await until(pilot, lambda: isinstance(app.screen, CheckpointDiffScreen), "diff")
        diff = app.screen
        assert [c.path for c in diff.result.changes] == ["a.txt"]  # type: ignore[attr-defined]
        assert "+ONE" in diff.diffs["a.txt"]  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "back")
        await pilot.press("f")
        await until(pilot, lambda: len(app.bridge.fleet.sessions) == 2, "the fork's pane")
        fork = next(s for s in app.bridge.fleet.sessions.values() if s.id != screen.session_id)
        assert fork.title.endswith("(fork)")
        assert tree(Path(fork.record.workspace))["a.txt"] == ("file", "0o644", b"ONE\ntwo\n")


@pytest.mark.usefixtures("frozen_clock")
def test_timeline_snapshot(snap_compare, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(tmp_path, TURNS, workspace=seed(tmp_path))

    async def run_before(pilot: Pilot) -> None:
        screen = await open_timeline(pilot, pilot.app)
        await pilot.press("up", "space", "up")
        await until(pilot, lambda: screen.marked is not None, "mark")
        pilot.app.clear_notifications()
        await screen_work_done(pilot, "the timeline loaded")

    assert snap_compare(demo_app(data_dir, [spec]), terminal_size=SIZE, run_before=run_before)
