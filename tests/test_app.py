"""The Textual app driven with Pilot: navigation, filter, approvals, controls, themes, quit."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Input

from tui.cli.sessions import demo_spec_list
from tui.client.engine import EngineClient
from tui.core.session import events as ev
from tui.core.session.state import is_finished
from tui.core.session.views import TailLine
from tui.core.store.settings import load_settings
from tui.data import themes_dir
from tui.ui.app import CorralApp
from tui.ui.screens.approval import ApprovalScreen
from tui.ui.screens.new_session import NewSessionScreen
from tui.ui.screens.quit import QuitScreen
from tui.ui.screens.session import SessionScreen
from tui.ui.widgets.key_hints import KeyHints
from tui.ui.widgets.session_pane import SessionPane
from tui.ui.widgets.transcript import Transcript

from .app_helpers import demo_app, only_pane, pane, settle, until
from .conftest import make_spec
from .server_helpers import app_server, on_server, start_server, stop_server

APPROVAL = "Rebuild a report (asks first)"


async def test_arrows_move_focus_and_enter_opens_a_session(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        panes = app.dashboard.panes()
        assert [p.snapshot.title for p in panes] == [
            "Dead end, then recover",
            "Fix the failing test",
            APPROVAL,
        ]
        assert app.focused is panes[0]
        await pilot.press("right")
        assert app.focused is panes[1]
        await pilot.press("right", "right")  # stops at the last
        assert app.focused is panes[2]
        await pilot.press("left")
        assert app.focused is panes[1]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionScreen), "session screen")
        screen = app.screen
        assert isinstance(screen, SessionScreen) and screen.snapshot.title == "Fix the failing test"
        await until(pilot, lambda: screen.query_one(Transcript).last_seq > 20, "transcript loaded")
        assert screen.query_one(Transcript).last_seq == screen.snapshot.state.last_seq
        await pilot.press("escape")
        assert not isinstance(app.screen, SessionScreen)


async def test_leaving_the_app_lets_go_of_the_server_and_the_sessions_go_on(
    data_dir: Path, tmp_path: Path
) -> None:
    app = demo_app(data_dir, [slow_spec(tmp_path, latency=20_000, turns=1)], script_speed=1.0)
    async with app.run_test(size=(160, 48)) as pilot:
        target = await only_pane(pilot, app)
        await until(pilot, lambda: target.snapshot.running, "running")
        client = app.client
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the question")
        app.simulate_key("d")  # detach
        await wait_for_exit(app)
    assert app.closed.is_set()
    assert client.http.is_closed  # type: ignore[attr-defined]
    assert all(f._task is not None and f._task.done() for f in client._feeds)  # type: ignore[attr-defined]
    state = await on_server(app_server(data_dir), lambda e: e.state(target.session_id))
    assert state.status == "running"  # still working, in the server


async def wait_for_exit(app: CorralApp) -> None:
    # The key makes the app exit: wait on the flag, not on an app that is going.
    for _ in range(200):
        if app._exit:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the key did not quit the app")


async def test_mouse_click_focuses_and_double_click_opens(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        target = pane(app, "Fix the failing test")
        await pilot.click(f"#{target.id}")
        assert app.focused is target
        assert not isinstance(app.screen, SessionScreen)
        await pilot.click(f"#{target.id}", times=2)
        await until(pilot, lambda: isinstance(app.screen, SessionScreen), "session screen")


async def test_filter_narrows_panes_by_status_and_text(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        await pilot.press("slash")
        line = app.dashboard.query_one(KeyHints)
        assert app.focused is line and line.filtering
        # Typed letters are the filter's: "a", "p" and "r" neither open the approval
        # prompt nor pause or resume anything.
        await pilot.press(*"approval")
        assert line.filter_text == "approval" and app.screen is app.dashboard
        assert [p.snapshot.title for p in app.dashboard.panes()] == [APPROVAL]
        assert "/ approval" in line.render().plain
        await pilot.press(*["backspace"] * 8, *"slug")
        assert [p.snapshot.title for p in app.dashboard.panes()] == ["Dead end, then recover"]
        await pilot.press("enter")  # kept: the keys go back to the panes
        assert isinstance(app.focused, SessionPane) and line.filter_text == "slug"
        await pilot.press("escape")
        assert len(app.dashboard.panes()) == 3
        assert isinstance(app.focused, SessionPane) and not line.filtering
        assert APPROVAL in [p.snapshot.title for p in app.dashboard.panes()]
        assert pane(app, APPROVAL).snapshot.state.pending_approvals  # "y" allowed nothing


async def test_allow_from_the_pane_with_one_key(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        target = pane(app, APPROVAL)
        assert target.has_class("-approval")
        (tool_use_id,) = target.snapshot.state.pending_approvals
        target.focus()
        await pilot.press("y")
        await until(
            pilot, lambda: target.snapshot.state.stop_type == ev.END_TURN, "end_turn after allow"
        )
        events = await app.client.events(target.snapshot.id)
        confirmation = next(e for e in events if e.type == ev.USER_TOOL_CONFIRMATION)
        assert confirmation.payload == {"tool_use_id": tool_use_id, "result": "allow"}
        await until(pilot, lambda: not target.has_class("-approval"), "highlight cleared")


async def test_deny_with_a_message_from_the_prompt(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        target = pane(app, APPROVAL)
        target.focus()
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "approval prompt")
        await until(pilot, lambda: isinstance(app.focused, Input), "message box focused")
        await pilot.press(*"not today")
        await pilot.press("enter")  # a message given: enter denies with it
        await until(
            pilot, lambda: is_finished(target.snapshot.state), "session finished after deny"
        )
        events = await app.client.events(target.snapshot.id)
        confirmation = next(e for e in events if e.type == ev.USER_TOOL_CONFIRMATION)
        assert confirmation.payload["result"] == "deny"
        assert confirmation.payload["deny_message"] == "not today"
        result = next(e for e in events if e.type == ev.AGENT_TOOL_RESULT and e.payload["is_error"])
        assert result.text == "denied by the user: not today"


async def test_approve_from_the_session_screen(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        pane(app, APPROVAL).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionScreen), "session screen")
        assert app.screen.query_one(".session--header").has_class("-approval")
        await pilot.press("y")
        screen = app.screen
        await until(pilot, lambda: screen.snapshot.state.stop_type == ev.END_TURN, "end_turn")


async def test_the_command_palette_offers_the_focused_sessions_actions(data_dir: Path) -> None:
    app = demo_app(data_dir)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        target = pane(app, APPROVAL)
        target.focus()
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        results = app.screen.query_one(CommandList)

        def shown() -> list[str]:
            return [str(results.get_option_at_index(i).prompt) for i in range(results.option_count)]

        # Nothing typed: the session's commands are offered, approvals first.
        await until(pilot, lambda: any(APPROVAL in p for p in shown()), "the session's commands")
        offered = [p.split("\n")[0] for p in shown() if APPROVAL in p]
        assert offered[:3] == [
            f"{verb}: {APPROVAL}" for verb in ("Allow bash", "Deny bash", "Approve bash…")
        ]
        assert f"Cancel: {APPROVAL}" in offered and f"Timeline: {APPROVAL}" in offered
        await pilot.press(*"allow bash")
        await until(pilot, lambda: shown()[:1] and "Allow bash" in shown()[0], "the match")
        await pilot.press("enter")
        await until(
            pilot, lambda: target.snapshot.state.stop_type == ev.END_TURN, "end_turn after allow"
        )


async def test_two_apps_attached_at_once_both_stay_live_and_agree(data_dir: Path) -> None:
    first, second = demo_app(data_dir, []), demo_app(data_dir, [])
    async with first.run_test(size=(160, 48)) as one, second.run_test(size=(160, 48)) as two:
        await until(one, first.ready.is_set, "the first app")
        await until(two, second.ready.is_set, "the second app")
        spec = next(s for s in demo_spec_list() if s.title == APPROVAL)
        await first.client.create(spec)
        in_first, in_second = await only_pane(one, first), await only_pane(two, second)
        await until(two, lambda: bool(in_second.snapshot.pending()), "the approval, in the second")
        await until(one, lambda: bool(in_first.snapshot.pending()), "the approval, in the first")
        in_second.focus()
        await two.press("y")  # answered from the second app
        for pilot, target in ((one, in_first), (two, in_second)):
            await until(pilot, lambda t=target: t.snapshot.state.stop_type == ev.END_TURN, "end")
        assert in_first.snapshot.state.last_seq == in_second.snapshot.state.last_seq
        assert in_first.snapshot.cost == in_second.snapshot.cost


def slow_spec(tmp_path: Path, name: str = "slow", latency: int = 300, turns: int = 30):
    steps = [
        {
            "text": f"step {n} " * 8,
            "latency_ms": latency,
            "tool_uses": [("bash", {"command": f"echo {n}"})],
        }
        for n in range(turns)
    ]
    return make_spec(tmp_path, [*steps, {"text": "done"}], name=name, title=f"{name} session")


async def test_pause_and_resume_from_the_keyboard(data_dir: Path, tmp_path: Path) -> None:
    app = demo_app(data_dir, [slow_spec(tmp_path, latency=200, turns=6)], script_speed=1.0)
    async with app.run_test(size=(160, 48)) as pilot:
        target = await only_pane(pilot, app)
        await until(pilot, lambda: target.snapshot.state.status == "running", "running")
        await pilot.press("p")
        await until(
            pilot, lambda: target.snapshot.state.stop_type == ev.PAUSED, "paused", tries=400
        )
        # The pane repaints on its next coalesced refresh, not with the state itself.
        await until(pilot, lambda: target.has_class("-paused"), "the pane shows paused")
        await pilot.press("r")
        await until(
            pilot, lambda: target.snapshot.state.stop_type == ev.END_TURN, "end_turn", tries=600
        )


async def test_interrupt_from_the_keyboard(data_dir: Path, tmp_path: Path) -> None:
    app = demo_app(data_dir, [slow_spec(tmp_path, latency=20_000, turns=1)], script_speed=1.0)
    async with app.run_test(size=(160, 48)) as pilot:
        target = await only_pane(pilot, app)
        await until(pilot, lambda: bool(target.snapshot.streaming), "streaming text")
        await pilot.press("i")
        await until(pilot, lambda: target.snapshot.state.stop_type == ev.INTERRUPTED, "interrupted")
        await until(pilot, lambda: target.has_class("-interrupted"), "the pane shows interrupted")


async def test_new_session_from_the_picker(data_dir: Path) -> None:
    app = demo_app(data_dir, [])
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, app.ready.is_set, "the core to start")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewSessionScreen), "picker")
        await pilot.press("down", "enter")  # the second spec in sessions/
        await until(pilot, lambda: len(app.bridge.fleet.sessions) == 1, "one session")
        (sid,) = app.bridge.fleet.sessions
        assert app.bridge.fleet.sessions[sid].title == "Fix the failing test"
        await until(pilot, lambda: is_finished(app.bridge.fleet.sessions[sid].state), "finished")


async def test_theme_switch_is_remembered(data_dir: Path) -> None:
    app = demo_app(data_dir, [])
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, app.ready.is_set, "the core to start")
        assert app.theme == "corral-dark"
        await pilot.press("t")
        assert app.theme == "corral-light"
        assert app.current_theme.dark is False
    assert load_settings(data_dir)["theme"] == "corral-light"
    again = demo_app(data_dir, [])
    async with again.run_test(size=(100, 30)) as pilot:
        await again.ready.wait()
        assert again.theme == "corral-light"


async def test_edited_theme_restyles_live_and_broken_one_is_refused(
    data_dir: Path, tmp_path: Path
) -> None:
    themes = tmp_path / "themes"
    shutil.copytree(themes_dir(), themes)
    app = demo_app(data_dir, [], themes_dir=themes, watch_themes=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, app.ready.is_set, "the core to start")
        await pilot.pause(0.3)  # let the watcher start before the first edit
        dark = themes / "corral-dark.toml"
        dark.write_text(dark.read_text().replace('primary = "#5fafd7"', 'primary = "#ff00ff"'))
        await until(
            pilot, lambda: str(app.current_theme.primary).lower() == "#ff00ff", "live reload"
        )
        assert app.get_css_variables()["primary"].lower().startswith("#ff00ff")

        dark.write_text('name = "corral-dark"\nprimary = "not a colour"\n')
        await until(
            pilot,
            lambda: any("Theme not reloaded" in (n.title or "") for n in app._notifications),
            "error notification",
        )
        assert str(app.current_theme.primary).lower() == "#ff00ff"
        assert app.theme == "corral-dark"


@pytest.mark.parametrize(
    ("key", "status", "stop"),
    [("d", "running", None), ("s", "idle", ev.INTERRUPTED)],
    ids=["detach", "stop-them-all"],
)
async def test_quit_asks_then_detaches_or_stops_working_sessions(
    data_dir: Path, tmp_path: Path, key: str, status: str, stop: str | None
) -> None:
    app = demo_app(data_dir, [slow_spec(tmp_path, latency=20_000, turns=1)], script_speed=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, app.ready.is_set, "the core to start")
        await until(
            pilot,
            lambda: any(s.running for s in app.bridge.fleet.sessions.values()),
            "running",
        )
        sid = next(iter(app.bridge.fleet.sessions))
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "quit question")
        app.simulate_key(key)
        await wait_for_exit(app)
    assert app.closed.is_set()
    # The server has the session as the answer left it (an interrupt lands a moment later).
    for _ in range(100):
        state = await on_server(app_server(data_dir), lambda e: e.state(sid))
        if (state.status, state.stop_type if stop else None) == (status, stop):
            break
        await asyncio.sleep(0.05)
    assert (state.status, state.stop_type if stop else None) == (status, stop)


async def test_reattaching_shows_what_happened_while_away(data_dir: Path, tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        [{"text": "a", "tool_uses": [("bash", {"command": "true"})]}, {"text": "b"}],
        name="away",
        title="away session",
    )
    app = demo_app(data_dir, [spec])
    async with app.run_test(size=(160, 48)) as pilot:
        target = await only_pane(pilot, app)
        await until(pilot, lambda: is_finished(target.snapshot.state), "finished")
        sid = target.session_id
    # Meanwhile, with no app attached: another message, and the session works on.
    daemon = app_server(data_dir)
    before = (await on_server(daemon, lambda e: e.state(sid))).last_seq
    await on_server(daemon, lambda e: e.send(sid, "again"))
    for _ in range(200):
        state = await on_server(daemon, lambda e: e.state(sid))
        if state.last_seq > before and is_finished(state):
            break
        await asyncio.sleep(0.05)
    again = demo_app(data_dir, [])
    async with again.run_test(size=(160, 48)) as pilot:
        shown = await only_pane(pilot, again)
        assert shown.snapshot.state.last_seq == state.last_seq  # as the server has it
        away = [line.text for line in shown.snapshot.tail if line.text.startswith("while you")]
        assert len(away) == 1, shown.snapshot.tail
        assert away[0].startswith("while you were away: 1 model request, +$0.")
        assert away[0].endswith(", stopped: end_turn")


async def test_panes_coalesce_bursts(data_dir: Path, tmp_path: Path) -> None:
    """A burst of events costs one repaint per flush, not one per event."""
    app = demo_app(data_dir, [])
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, app.ready.is_set, "the core to start")
        spec = make_spec(tmp_path, [{"text": "x"}], name="burst")
        await app.client.create(spec)
        await until(pilot, lambda: len(app.dashboard.panes()) == 1, "pane")
        target = app.dashboard.panes()[0]
        await until(pilot, lambda: is_finished(target.snapshot.state), "finished")
        repaints = 0
        original = target.paint

        def counting_paint(force=False):  # type: ignore[no-untyped-def]
            nonlocal repaints
            repaints += 1
            original(force=force)

        target.paint = counting_paint  # type: ignore[method-assign]
        sid = target.snapshot.id

        async def burst(engine: EngineClient) -> None:
            messages = (ev.agent_message(sid, f"burst {n}") for n in range(500))
            await asyncio.gather(*(engine.store.append(m) for m in messages))

        await on_server(app_server(data_dir), burst)
        await until(pilot, lambda: target.snapshot.tail[-1].text == "burst 499", "burst shown")
        await pilot.pause(0.2)
        assert repaints <= 10
        assert len(target.snapshot.tail) <= 200  # the tail stays capped


async def test_no_secret_reaches_any_file_in_the_data_dir(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.core.store.settings import save_setting

    # The key both ways corral reads it: from the environment, and from a key file the
    # settings name. Then settings saved by the app (a theme switch) and a session run
    # whose shell prints its environment.
    secret = "sk-ant-api03-corral-test-" + "k3y" * 12
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    key_file = tmp_path / "anthropic.key"
    key_file.write_text(secret + "\n")
    save_setting(data_dir, "api_key_file", str(key_file))
    turns = [{"text": "env", "tool_uses": [("bash", {"command": "env"})]}, {"text": "done"}]
    app = demo_app(data_dir, [make_spec(tmp_path, turns, name="env", title="env")])
    async with app.run_test(size=(120, 40)) as pilot:
        target = await only_pane(pilot, app)
        await until(pilot, lambda: is_finished(target.snapshot.state), "finished")
        await pilot.press("t")
        await until(pilot, lambda: app.theme == "corral-light", "the theme switched")
    assert load_settings(data_dir) == {"api_key_file": str(key_file), "theme": "corral-light"}
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    assert any(path.name == "settings.json" for path in files)
    assert any(path.name.startswith("corral.db") for path in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


async def test_a_streaming_line_is_never_cut_off_the_bottom_of_a_pane(
    data_dir: Path, tmp_path: Path
) -> None:
    app = demo_app(data_dir, [slow_spec(tmp_path, latency=20_000, turns=1)], script_speed=1.0)
    async with app.run_test(size=(160, 48)) as pilot:
        target = await only_pane(pilot, app)
        await until(pilot, lambda: bool(target.snapshot.streaming), "streaming text")
        await until(pilot, lambda: target._tail.size.height > 1, "the pane laid out")
        snap = target.snapshot
        lines = tuple(TailLine("agent", f"line {i}") for i in range(200))  # more than fit
        target.snapshot = replace(snap, tail=snap.tail + lines, version=snap.version + 1)
        # Read at once: the tail is laid out from the snapshot as it is set, and the live
        # session would hand the pane a new snapshot at its next streamed piece.
        shown = target._tail.shown
        assert len(shown) == target._tail.size.height  # full, newest at the bottom
        assert shown[-1].startswith("◆") and shown[-2].endswith("line 199")


async def test_the_app_on_a_remote_server_over_tcp_with_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = start_server(tmp_path / "server-data", "--speed", "0")
    try:
        monkeypatch.setenv("CORRAL_SERVER_KEY", served.key)
        local = tmp_path / "here"  # this machine's settings; the sessions are the server's
        spec = next(s for s in demo_spec_list() if s.title == APPROVAL)
        app = CorralApp(
            local,
            start_specs=[spec],
            server=served.url,
            watch_themes=False,
            live_ticker=False,
            freeze_gc=False,
        )
        async with app.run_test(size=(160, 48)) as pilot:
            target = await only_pane(pilot, app)
            await until(pilot, lambda: bool(target.snapshot.pending()), "the approval")
            target.focus()
            await pilot.press("y")
            await until(pilot, lambda: target.snapshot.state.stop_type == ev.END_TURN, "end_turn")
        assert not (local / "corral.db").exists()  # nothing ran here
        assert (tmp_path / "server-data" / "corral.db").exists()
        monkeypatch.setenv("CORRAL_SERVER_KEY", "crl-wrong")
        refused = CorralApp(
            local, server=served.url, watch_themes=False, live_ticker=False, freeze_gc=False
        )
        async with refused.run_test(size=(100, 30)) as pilot:
            for _ in range(100):
                if refused._exit:
                    break
                await pilot.pause(0.05)
        assert refused._exit  # a wrong key: the app says so and leaves
    finally:
        stop_server(served)
