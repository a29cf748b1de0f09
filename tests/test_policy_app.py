"""Permissions in the app and the simulator: an edit reaches a running session's next
decision and its log; an approval can become a rule; policies tried on recorded work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Label, Select

from tui.cli.sessions import demo_spec_list
from tui.core.engine.supervisor import Supervisor
from tui.core.permissions.profiles import load_profile
from tui.core.permissions.simulator import simulate, suggest
from tui.core.session import events as ev
from tui.core.session.state import is_finished
from tui.data import policies_dir
from tui.ui.screens.approval import ApprovalScreen
from tui.ui.screens.policy_editor import PolicyEditorScreen
from tui.ui.widgets.policy_preview import PolicyPreview
from tui.ui.widgets.rule_table import RuleTable

from .app_helpers import demo_app, only_pane, screen_work_done, settle, until
from .conftest import make_spec

SIZE = (160, 48)


async def open_editor(pilot: Pilot, app) -> PolicyEditorScreen:  # type: ignore[no-untyped-def]
    (await only_pane(pilot, app)).focus()
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, PolicyEditorScreen), "editor")
    return app.screen  # type: ignore[return-value]


async def test_a_rule_edited_in_the_app_decides_the_running_sessions_next_tool_use(
    data_dir: Path, tmp_path: Path
) -> None:
    # The session parks on an approval half-way: the edit lands while it waits, so which
    # uses come before and after it does not depend on how fast anything runs.
    turns = [
        {"text": "one", "tool_uses": [("bash", {"command": "echo 1"})]},
        {"text": "two", "tool_uses": [("bash", {"command": "echo 2"})]},
        {"text": "ask", "tool_uses": [("bash", {"command": "make"})]},
        {"text": "three", "tool_uses": [("bash", {"command": "echo 3"})]},
        {"text": "four", "tool_uses": [("bash", {"command": "echo 4"})]},
        {"text": "done"},
    ]
    tools = {"bash": {"permission_policy": "always_ask", "rules": [{"allow": "echo"}]}}
    app = demo_app(data_dir, [make_spec(tmp_path, turns, tools=tools)])
    async with app.run_test(size=SIZE) as pilot:
        pane = await only_pane(pilot, app)
        await until(pilot, lambda: bool(pane.snapshot.pending()), "the approval for make")
        editor = await open_editor(pilot, app)
        assert editor.tool == "bash"
        editor.query_one("#decision", Select).value = "deny"
        field = editor.query_one("#pattern", Input)
        field.focus()
        field.value = "src/[x"  # checked as you type
        await pilot.pause()
        assert "unclosed" in str(editor.query_one("#rule-error", Label).render())
        field.value = "echo *"
        await pilot.press("enter")
        assert editor.query_one(RuleTable).row_count == 2  # the spec's allow, and this
        await pilot.press("ctrl+s")
        sid = editor.session_id
        await until(
            pilot, lambda: editor.saved.to_data() == editor.policy.to_data(), "saved to the session"
        )
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is not editor, "the dashboard")
        pane.focus()
        await pilot.press("y")  # allow `make`; the session goes on under the new policy
        await until(pilot, lambda: pane.snapshot.state.stop_type == ev.END_TURN, "end", tries=600)
    events = await _events(data_dir, sid)
    edit = next(e for e in events if e.type == ev.SESSION_POLICY)
    assert "bash: + deny 'echo *'" in edit.payload["change"]
    uses = [e for e in events if e.type == ev.AGENT_TOOL_USE]
    decided = [(u.payload["input"]["command"], u.payload["evaluated_permission"]) for u in uses]
    assert decided == [
        ("echo 1", "allow"),
        ("echo 2", "allow"),
        ("make", "ask"),
        ("echo 3", "deny"),
        ("echo 4", "deny"),
    ]
    assert [u.seq < edit.seq for u in uses] == [True, True, True, False, False]
    assert uses[3].payload["permission_rule"] == "bash: deny 'echo *'"


def first_pending(pane) -> object:  # type: ignore[no-untyped-def]
    return next(iter(pane.snapshot.state.pending_approvals.values()))["input"]


async def _events(data_dir: Path, sid: str) -> list[ev.Event]:
    from tui.core.store.datadir import db_path
    from tui.core.store.store import Store

    store = await Store.open(db_path(data_dir))
    try:
        return await store.events(sid)
    finally:
        await store.close()


async def test_always_allow_from_an_approval_becomes_a_precise_rule(
    data_dir: Path, tmp_path: Path
) -> None:
    turns = [
        {"text": "a", "tool_uses": [("bash", {"command": "pytest -q a"})]},
        {"text": "b", "tool_uses": [("bash", {"command": "pytest -q b"})]},
        {"text": "c", "tool_uses": [("bash", {"command": "make clean"})]},
        {"text": "done"},
    ]
    spec = make_spec(tmp_path, turns, tools={"bash": {"permission_policy": "always_ask"}})
    app = demo_app(data_dir, [spec])
    async with app.run_test(size=SIZE) as pilot:
        pane = await only_pane(pilot, app)
        await until(pilot, lambda: bool(pane.snapshot.pending()), "an approval")
        pane.focus()
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "prompt")
        prompt = app.screen
        assert "bash: allow 'pytest'" in str(prompt.query_one("#proposal").render())  # type: ignore[attr-defined]
        await pilot.press("ctrl+l")
        # The second pytest runs without asking; `make clean` still asks.
        await until(
            pilot,
            lambda: len(pane.snapshot.pending()) == 1 and "make" in str(first_pending(pane)),
            "the next approval is for make",
            tries=400,
        )
        sid = pane.snapshot.id
    events = await _events(data_dir, sid)
    uses = [e for e in events if e.type == ev.AGENT_TOOL_USE]
    assert [u.payload["evaluated_permission"] for u in uses] == ["ask", "allow", "ask"]
    assert uses[1].payload["permission_rule"] == "bash: allow 'pytest'"


@pytest.mark.usefixtures("frozen_clock", "plain_local_sandbox")
def test_policy_editor_snapshot(snap_compare, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    turns = [
        {"text": "t", "tool_uses": [("bash", {"command": "pytest -q && rm -rf build"})]},
        {"text": "w", "tool_uses": [("write", {"file_path": "src/a.py", "content": "x"})]},
        {"text": "done"},
    ]

    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await settle(pilot, app, count=1)  # type: ignore[arg-type]
        editor = await open_editor(pilot, app)
        editor.query_one("#decision", Select).value = "deny"
        field = editor.query_one("#pattern", Input)
        field.focus()
        field.value = "rm -rf *"
        await pilot.press("enter")
        field.value = "pytest"
        editor.query_one("#decision", Select).value = "allow"
        await pilot.press("enter")
        field.cursor_blink = False
        # The preview is worked out off the message loop: wait for the last one to show.
        await screen_work_done(pilot, "the preview under the edited policy")
        assert editor.query_one(PolicyPreview).row_count == 2

    app = demo_app(data_dir, [make_spec(tmp_path, turns)])
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_simulator_and_suggest_on_a_recorded_demo_session(
    supervisor: Supervisor,
) -> None:
    spec = next(s for s in demo_spec_list() if "asks first" in s.title)
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid), 30)
    tool_use = next(iter(state.pending_approvals))
    await supervisor.confirm(sid, tool_use, True)
    await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    events = await supervisor.store.events(sid)
    workspace = Path((await supervisor.store.get_session(sid)).workspace)

    careful = load_profile(policies_dir() / "careful.toml")
    rows = simulate(careful, {sid: (events, workspace)})
    by_subject = {r.subject: r for r in rows}
    assert by_subject["rm -rf out && python3 build_report.py"].simulated == "deny"
    assert by_subject["rm -rf out && python3 build_report.py"].recorded == "ask"
    # The tightest policy allows everything the session did, and nothing new.
    tight = suggest(events)
    assert {r.simulated for r in simulate(tight, {sid: (events, workspace)})} == {"allow"}
    assert tight.evaluate("bash", {"command": "rm -rf /"}, workspace).permission == "ask"
    assert (
        tight.evaluate("bash", {"command": "rm -rf out --no-preserve-root"}, workspace).permission
        == "ask"
    )
    assert (
        tight.evaluate("write", {"file_path": "other.txt", "content": ""}, workspace).permission
        == "deny"
    )
