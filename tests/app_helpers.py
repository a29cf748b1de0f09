"""Driving the app in tests: a demo app on a temp store, settled into a known state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from textual.pilot import Pilot

from tui.cli.sessions import demo_spec_list
from tui.core.session.spec import SessionSpec
from tui.core.session.state import SessionState, is_settled
from tui.ui.app import CorralApp
from tui.ui.widgets.session_pane import SessionPane

from .server_helpers import app_server

FROZEN = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def demo_app(
    data_dir: Path,
    specs: list[SessionSpec] | None = None,
    *,
    script_speed: float = 0,
    **kwargs: object,
) -> CorralApp:
    """The app on ``data_dir``, whose server runs in this process (started here)."""
    app_server(data_dir, script_speed)
    options: dict[str, object] = {"watch_themes": False, "live_ticker": False, "freeze_gc": False}
    options.update(kwargs)
    return CorralApp(data_dir, start_specs=demo_spec_list() if specs is None else specs, **options)  # type: ignore[arg-type]


async def until(pilot: Pilot, condition: Callable[[], bool], what: str, tries: int = 200) -> None:
    """Let the app work (message queue drained, 50 ms at a time) until ``condition`` holds."""
    for _ in range(tries):
        if condition():
            return
        if not pilot.app.is_running:
            raise AssertionError(f"the app stopped while waiting for: {what}")
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for: {what}")


async def screen_work_done(pilot: Pilot, what: str = "the screen's workers") -> None:
    """Wait until every worker the current screen started has finished (a cancelled one
    counts) and what they posted is laid out."""
    app = pilot.app
    screen = app.screen

    def done() -> bool:
        return all(w.is_finished for w in app.workers if screen in w.node.ancestors_with_self)

    await until(pilot, done, what)
    await pilot.pause()


async def settle(
    pilot: Pilot, app: CorralApp, count: int = 3, when: Callable[[SessionState], bool] = is_settled
) -> None:
    """Wait until ``count`` sessions exist, each settled, and their panes show it."""
    await until(pilot, app.ready.is_set, "the core to start")

    def done() -> bool:
        sessions = app.bridge.fleet.sessions
        panes = list(app.dashboard.query(SessionPane))
        return (
            app.bridge.settled
            and len(sessions) == count
            and all(when(s.state) for s in sessions.values())
            and len(panes) == count
            and all(p.snapshot is sessions[p.session_id] for p in panes)
        )

    await until(pilot, done, f"{count} settled sessions on screen")
    await pilot.pause()


def pane(app: CorralApp, title: str) -> SessionPane:
    return next(p for p in app.dashboard.query(SessionPane) if p.snapshot.title == title)


async def only_pane(pilot: Pilot, app: CorralApp) -> SessionPane:
    """The pane of the app's one session, once the core is up and it is mounted."""
    await until(pilot, app.ready.is_set, "the core to start")
    await until(pilot, lambda: len(app.dashboard.panes()) == 1, "pane")
    return app.dashboard.panes()[0]
