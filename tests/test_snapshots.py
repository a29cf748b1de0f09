"""Snapshot tests: fixed size, frozen clock, demo sessions settled, local sessions without
bubblewrap whatever the host has; baselines in snapshots/. Each waits for what it shows,
never for a while."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tui.core.session import events as ev
from tui.ui.widgets.transcript import Transcript

from .app_helpers import demo_app, pane, screen_work_done, settle, until

SIZE = (160, 48)
APPROVAL = "Rebuild a report (asks first)"

# The panes and the session screen show each session's isolation: the same on every host.
pytestmark = pytest.mark.usefixtures("plain_local_sandbox")


def settled(**kwargs: object):  # type: ignore[no-untyped-def]
    """A run_before that waits for the demo to settle and clears transient toasts."""

    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await settle(pilot, app)  # type: ignore[arg-type]
        if kwargs.get("theme"):
            app.theme = kwargs["theme"]  # type: ignore[assignment]
        if kwargs.get("open"):
            pane(app, kwargs["open"]).focus()  # type: ignore[arg-type]
            dashboard = app.screen
            await pilot.press(*kwargs.get("keys", ("enter",)))  # type: ignore[arg-type]
            await until(pilot, lambda: app.screen is not dashboard, "the next screen")
            await screen_work_done(pilot)
            # A blinking cursor makes the picture depend on timing; hold it on.
            for field in app.screen.query(Input):
                field.cursor_blink = False
        else:
            pane(app, "Dead end, then recover").focus()  # type: ignore[arg-type]
        app.clear_notifications()
        await pilot.pause()

    return run_before


@pytest.mark.usefixtures("frozen_clock")
def test_dashboard_dark(snap_compare, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(demo_app(data_dir), terminal_size=SIZE, run_before=settled())


@pytest.mark.usefixtures("frozen_clock")
def test_dashboard_light(snap_compare, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        demo_app(data_dir), terminal_size=SIZE, run_before=settled(theme="corral-light")
    )


@pytest.mark.usefixtures("frozen_clock")
def test_approval_prompt(snap_compare, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        demo_app(data_dir), terminal_size=SIZE, run_before=settled(open=APPROVAL, keys=("a",))
    )


@pytest.mark.usefixtures("frozen_clock")
def test_session_screen(snap_compare, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await settled(open="Fix the failing test")(pilot)
        screen = pilot.app.screen
        transcript = screen.query_one(Transcript)
        await until(
            pilot,
            lambda: transcript.last_seq == screen.snapshot.state.last_seq,
            "transcript",
        )
        assert screen.snapshot.state.stop_type == ev.END_TURN
        await pilot.pause()
        await until(
            pilot, lambda: transcript.scroll_y == transcript.max_scroll_y, "the transcript's end"
        )

    assert snap_compare(demo_app(data_dir), terminal_size=SIZE, run_before=run_before)


@pytest.mark.usefixtures("frozen_clock")
def test_dashboard_compact_64(snap_compare, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tui.core.session.state import is_settled

    from .test_dashboard_layout import many_specs

    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await until(pilot, app.ready.is_set, "the app", tries=600)  # type: ignore[attr-defined]

        def done() -> bool:
            board = app.dashboard  # type: ignore[attr-defined]
            sessions = app.bridge.fleet.sessions  # type: ignore[attr-defined]
            return (
                board.compact is not None
                and board.compact.table.row_count == 64
                and board.compact.table.settled
                and len(sessions) == 64
                and all(is_settled(s.state) for s in sessions.values())
                and app.bridge.settled  # type: ignore[attr-defined]
            )

        await until(pilot, done, "64 settled sessions", tries=1200)
        table = app.dashboard.compact.table  # type: ignore[attr-defined]
        table.move_cursor(row=0)
        table.focus()
        app.clear_notifications()
        await until(pilot, lambda: table.cursor_row == 0 and app.focused is table, "the cursor")
        await pilot.pause()

    app = demo_app(data_dir, many_specs(tmp_path, 64))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
