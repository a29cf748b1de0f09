"""Sessions end to end through the supervisor and runner, with real tools and a real store."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from tui.core.clock import utc_now
from tui.core.engine.supervisor import Supervisor
from tui.core.money.pricing import default_pricing
from tui.core.session import events as ev
from tui.core.session.records import SessionRecord
from tui.core.session.state import SessionState, finished_after, is_finished
from tui.core.store.bus import Delta
from tui.core.store.store import Store

from .conftest import make_spec

USAGE = {
    "input_tokens": 1000,
    "output_tokens": 100,
    "cache_read_input_tokens": 500,
    "cache_creation_input_tokens": 200,
}


def types(events: list[ev.Event]) -> list[str]:
    return [e.type for e in events]


def waiting_for_approval(state: SessionState) -> bool:
    return state.status == "idle" and state.stop_type == ev.REQUIRES_ACTION


async def test_session_runs_to_end_turn_with_real_tools(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    spec = make_spec(
        tmp_path,
        [
            {
                "text": "making files",
                "usage": USAGE,
                "tool_uses": [
                    (
                        "bash",
                        {"command": "mkdir -p out && echo built > out/a.txt && cat out/a.txt"},
                    ),
                    ("write", {"file_path": "notes.md", "content": "# notes\n"}),
                ],
            },
            {
                "text": "checking",
                "usage": USAGE,
                "tool_uses": [("read", {"file_path": "out/a.txt"})],
            },
            {"text": "all done", "usage": USAGE},
        ],
    )
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    assert state.status == "idle" and state.stop_type == ev.END_TURN

    events = await supervisor.store.events(sid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert types(events)[:3] == [ev.USER_MESSAGE, ev.STATUS_RUNNING, ev.SPAN_MODEL_REQUEST_START]
    results = [e for e in events if e.type == ev.AGENT_TOOL_RESULT]
    assert [r.text for r in results][:1] == ["built\n"]
    assert not any(r.payload["is_error"] for r in results)
    assert "     1\tbuilt" in results[2].text
    record = await supervisor.store.get_session(sid)
    assert (Path(record.workspace) / "notes.md").read_text() == "# notes\n"
    assert [e.text for e in events if e.type == ev.AGENT_MESSAGE] == [
        "making files",
        "checking",
        "all done",
    ]

    # Usage and cost are exact folds of the request spans, priced by the table.
    spans = [e for e in events if e.type == ev.SPAN_MODEL_REQUEST_END]
    assert len(spans) == 3 == state.usage.requests
    assert state.usage.input_tokens == 3000 and state.usage.cache_read_input_tokens == 1500
    expected = sum(
        (
            default_pricing().token_cost("claude-sonnet-4-5", s.payload["model_usage"])
            for s in spans
        ),
        Decimal(0),
    )
    assert expected == Decimal("0.0162")  # 3 x (3000 + 1500 + 150 + 750) / 1e6
    assert state.list_cost() == expected
    assert record.state.list_cost() == expected  # the stored projection agrees with the fold


async def test_always_ask_parks_until_allowed(supervisor: Supervisor, tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        [
            {"text": "need to run", "tool_uses": [("bash", {"command": "echo ran > proof.txt"})]},
            {"text": "done"},
        ],
        tools={"bash": {"permission_policy": "always_ask"}},
    )
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, waiting_for_approval), 30)
    (tool_use_id,) = state.pending_approvals
    idle = (await supervisor.store.events(sid))[-1]
    assert idle.payload["stop_reason"] == {"type": "requires_action", "event_ids": [tool_use_id]}
    workspace = Path((await supervisor.store.get_session(sid)).workspace)
    assert not (workspace / "proof.txt").exists()

    await supervisor.confirm(sid, tool_use_id, allow=True)
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    assert state.stop_type == ev.END_TURN
    assert (workspace / "proof.txt").read_text() == "ran\n"
    events = await supervisor.store.events(sid)
    confirmation = next(e for e in events if e.type == ev.USER_TOOL_CONFIRMATION)
    assert confirmation.payload == {"tool_use_id": tool_use_id, "result": "allow"}
    use = next(e for e in events if e.id == tool_use_id)
    assert use.payload["evaluated_permission"] == "ask"
    assert use.payload["evaluation"] == {"type": "always_ask"}


async def test_an_answer_that_lands_while_the_runner_parks_still_wakes_it(
    supervisor: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is stored between the runner's own "waiting for approval" append and
    its next read of the log (one app in CI answered that fast): the read takes the
    answer in, and the runner must not then sleep as if nothing had come."""
    spec = make_spec(
        tmp_path,
        [
            {"text": "need to run", "tool_uses": [("bash", {"command": "echo ran > proof.txt"})]},
            {"text": "done"},
        ],
        tools={"bash": {"permission_policy": "always_ask"}},
    )
    store, append = supervisor.store, supervisor.store.append
    answered: list[ev.Event] = []

    async def answer_at_once(*events: ev.Event, **kwargs: object) -> list[ev.Event]:
        stored = await append(*events, **kwargs)  # type: ignore[arg-type]
        parked = [
            e for e in stored if e.payload.get("stop_reason", {}).get("type") == "requires_action"
        ]
        if parked and not answered:
            (tool_use_id,) = parked[0].payload["stop_reason"]["event_ids"]
            answered.append(await supervisor.confirm(parked[0].session_id, tool_use_id, True))
        return stored

    monkeypatch.setattr(store, "append", answer_at_once)
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 15)
    assert answered, "the session never asked"
    assert state.stop_type == ev.END_TURN
    workspace = Path((await store.get_session(sid)).workspace)
    assert (workspace / "proof.txt").read_text() == "ran\n"


async def test_denied_tool_use_does_not_run(supervisor: Supervisor, tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        [
            {"text": "deleting", "tool_uses": [("bash", {"command": "touch deleted-everything"})]},
            {"text": "ok, I will not"},
        ],
        tools={"bash": {"permission_policy": "always_ask"}},
    )
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, waiting_for_approval), 30)
    (tool_use_id,) = state.pending_approvals
    await supervisor.confirm(sid, tool_use_id, allow=False, message="not on my machine")
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    assert state.stop_type == ev.END_TURN
    result = next(e for e in await supervisor.store.events(sid) if e.type == ev.AGENT_TOOL_RESULT)
    assert result.payload["is_error"] is True
    assert result.text == "denied by the user: not on my machine"
    workspace = Path((await supervisor.store.get_session(sid)).workspace)
    assert not (workspace / "deleted-everything").exists()


async def test_confirming_something_not_pending_is_refused(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    sid = await supervisor.create_session(make_spec(tmp_path, [{"text": "hi"}]))
    await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    with pytest.raises(Exception, match="not waiting for approval"):
        await supervisor.confirm(sid, "sevt_nothing", allow=True)


async def test_disabled_and_unknown_tools_are_refused(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    spec = make_spec(
        tmp_path,
        [
            {
                "text": "trying",
                "tool_uses": [("grep", {"pattern": "x"}), ("launch_rockets", {"n": 3})],
            },
            {"text": "fine"},
        ],
        tools={"grep": {"enabled": False}},
    )
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    assert state.stop_type == ev.END_TURN
    events = await supervisor.store.events(sid)
    uses = [e for e in events if e.type == ev.AGENT_TOOL_USE]
    assert [u.payload["evaluated_permission"] for u in uses] == ["deny", "deny"]
    assert [u.payload["evaluation"] for u in uses] == [None, None]
    results = [e for e in events if e.type == ev.AGENT_TOOL_RESULT]
    assert all(r.payload["is_error"] for r in results)
    assert "not enabled" in results[0].text and "unknown tool" in results[1].text


async def test_interrupt_mid_model_turn_discards_the_partial_message(
    live_supervisor: Supervisor, tmp_path: Path
) -> None:
    long_text = "word " * 400
    spec = make_spec(tmp_path, [{"text": long_text, "latency_ms": 20_000}])
    bus = live_supervisor.bus
    with bus.subscribe(deltas=True) as sub:
        sid = await live_supervisor.create_session(spec)
        while not isinstance(await asyncio.wait_for(sub.get(), 30), Delta):
            pass  # the turn is streaming now
    await live_supervisor.interrupt(sid)
    state = await asyncio.wait_for(
        live_supervisor.wait_for(sid, lambda s: s.stop_type == ev.INTERRUPTED), 10
    )
    assert state.status == "idle"
    events = await live_supervisor.store.events(sid)
    assert ev.AGENT_MESSAGE not in types(events)
    assert ev.USER_INTERRUPT in types(events)
    end = next(e for e in events if e.type == ev.SPAN_MODEL_REQUEST_END)
    assert end.payload["is_error"] is True and state.usage.output_tokens == 0


async def test_interrupt_mid_tool_kills_the_command(
    live_supervisor: Supervisor, tmp_path: Path
) -> None:
    spec = make_spec(
        tmp_path,
        [
            {"text": "sleeping", "tool_uses": [("bash", {"command": "sleep 60; touch finished"})]},
            {"text": "x"},
        ],
    )
    with live_supervisor.bus.subscribe() as sub:
        sid = await live_supervisor.create_session(spec)
        while True:
            item = await asyncio.wait_for(sub.get(), 30)
            if item.type == ev.AGENT_TOOL_USE:
                break
    await live_supervisor.interrupt(sid)
    await asyncio.wait_for(
        live_supervisor.wait_for(sid, lambda s: s.stop_type == ev.INTERRUPTED), 10
    )
    events = await live_supervisor.store.events(sid)
    result = next(e for e in events if e.type == ev.AGENT_TOOL_RESULT)
    assert result.payload["is_error"] and "interrupted by the user" in result.text
    # A new message resumes the conversation.
    before = (await live_supervisor.store.state(sid)).last_seq
    await live_supervisor.send_message(sid, "carry on")
    state = await asyncio.wait_for(live_supervisor.wait_for(sid, finished_after(before)), 30)
    assert state.stop_type == ev.END_TURN
    workspace = Path((await live_supervisor.store.get_session(sid)).workspace)
    assert not (workspace / "finished").exists()


async def test_pause_holds_at_a_step_boundary_until_resumed(
    live_supervisor: Supervisor, tmp_path: Path
) -> None:
    turns = [
        {"text": f"step {n}", "latency_ms": 100, "tool_uses": [("glob", {"pattern": "*"})]}
        for n in range(4)
    ]
    spec = make_spec(tmp_path, [*turns, {"text": "done"}])
    with live_supervisor.bus.subscribe() as sub:
        sid = await live_supervisor.create_session(spec)
        while (await asyncio.wait_for(sub.get(), 30)).type != ev.AGENT_TOOL_RESULT:
            pass
    await live_supervisor.pause(sid)
    state = await asyncio.wait_for(
        live_supervisor.wait_for(sid, lambda s: s.stop_type == ev.PAUSED), 10
    )
    paused_at = state.last_seq
    await live_supervisor.resume(sid)
    state = await asyncio.wait_for(live_supervisor.wait_for(sid, finished_after(paused_at)), 30)
    assert state.stop_type == ev.END_TURN
    after = await live_supervisor.store.events(sid, after_seq=paused_at)
    assert after[0].type == ev.STATUS_RUNNING  # nothing happened while paused


async def test_cancel_terminates(live_supervisor: Supervisor, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, [{"text": "long " * 100, "latency_ms": 20_000}])
    with live_supervisor.bus.subscribe(deltas=True) as sub:
        sid = await live_supervisor.create_session(spec)
        while not isinstance(await asyncio.wait_for(sub.get(), 30), Delta):
            pass
    await asyncio.wait_for(live_supervisor.cancel(sid), 10)
    state = await live_supervisor.store.state(sid)
    assert state.status == "terminated"
    with pytest.raises(Exception, match="terminated"):
        await live_supervisor.send_message(sid, "again")


async def test_budget_stops_new_requests(supervisor: Supervisor, tmp_path: Path) -> None:
    turns = [
        {"text": f"t{n}", "usage": USAGE, "tool_uses": [("glob", {"pattern": "*"})]}
        for n in range(5)
    ]
    spec = make_spec(tmp_path, turns, budget="0.0168")
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    assert state.stop_type == ev.BUDGET_REACHED
    # A request's worst case: its 1700 prompt tokens as 1-hour cache writes (at $6/M,
    # $0.0102) plus its answer at $15/M. $0.0168 left: sent, billed $0.0054. $0.0114
    # left: sent with max_tokens 80 ((0.0114 - 0.0102) / $15/M), so its 100-token answer
    # was cut at 80: billed $0.0039 + $0.0012. $0.0063 left: not sent.
    assert state.usage.requests == 2
    assert state.usage.output_tokens == 100 + 80
    assert state.list_cost() == Decimal("0.0105")


async def test_many_concurrent_sessions_respect_the_cap(
    live_supervisor: Supervisor, tmp_path: Path
) -> None:
    sup = live_supervisor  # max_concurrent=4
    running: set[str] = set()
    peak = 0
    turns = [
        {"text": f"t{n}", "latency_ms": 30, "tool_uses": [("bash", {"command": "echo $((6*7))"})]}
        for n in range(3)
    ]
    with sup.bus.subscribe() as sub:
        ids = [
            await sup.create_session(make_spec(tmp_path, [*turns, {"text": "end"}], name=f"s{i}"))
            for i in range(24)
        ]
        done: set[str] = set()
        while len(done) < len(ids):
            item = await asyncio.wait_for(sub.get(), 60)
            if item.type == ev.STATUS_RUNNING:
                running.add(item.session_id)
                peak = max(peak, len(running))
            elif item.type in (ev.STATUS_IDLE, ev.STATUS_TERMINATED):
                running.discard(item.session_id)
                if item.payload.get("stop_reason", {}).get("type") == ev.END_TURN:
                    done.add(item.session_id)
    assert 2 <= peak <= 4
    for sid in ids:
        events = await sup.store.events(sid)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.text for e in events if e.type == ev.AGENT_TOOL_RESULT] == ["42\n"] * 3


async def test_start_settles_sessions_a_dead_process_left_running(data_dir: Path) -> None:
    from tui.core.store.datadir import db_path

    store = await Store.open(db_path(data_dir))
    sid = "sesn_orphan"
    await store.create_session(
        SessionRecord(
            id=sid,
            title="orphan",
            created_at=utc_now(),
            spec={},
            model="scripted:x",
            workspace="/tmp",
        )
    )
    start = ev.model_request_start(sid, "claude-sonnet-4-5")
    use = ev.agent_tool_use(sid, "bash", {"command": "make"}, "allow", "always_allow", "policy")
    await store.append(ev.user_message(sid, "go"), ev.status_running(sid), use, start)
    await store.close()  # the "process" dies with the session running

    store = await Store.open(db_path(data_dir))
    sup = Supervisor(store, data_dir, script_speed=0)
    try:
        await sup.start()
        assert sup.recovered == [sid]
        state = await store.state(sid)
        assert state.status == "idle" and state.stop_type == ev.INTERRUPTED
        events = await store.events(sid)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        result = next(e for e in events if e.type == ev.AGENT_TOOL_RESULT)
        assert result.payload["tool_use_id"] == use.id and "not re-run" in result.text
        end = next(e for e in events if e.type == ev.SPAN_MODEL_REQUEST_END)
        assert end.payload["model_request_start_id"] == start.id
    finally:
        await sup.close()
        await store.close()


async def test_claude_model_without_a_key_is_refused_before_anything_starts(
    supervisor: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    spec = make_spec(tmp_path, [{"text": "x"}]).with_model("claude-sonnet-4-5")
    with pytest.raises(Exception, match="no Anthropic API key"):
        await supervisor.create_session(spec)
    assert await supervisor.store.list_sessions() == []


async def test_a_session_whose_runner_never_started_is_recovered_and_run(
    store: Store, data_dir: Path, tmp_path: Path
) -> None:
    # The process died between committing the session and its runner's first step.
    spec = make_spec(tmp_path, [{"text": "done"}])
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sid = "sesn_" + "0" * 30
    record = SessionRecord(
        id=sid,
        title="never started",
        created_at=utc_now(),
        spec=spec.to_json(),
        model=spec.agent.model,
        workspace=str(workspace),
    )
    await store.create_session(record, ev.user_message(sid, "go"))
    sup = Supervisor(store, data_dir, script_speed=0)
    await sup.start(resume_recovered=True)
    try:
        assert sup.recovered == [sid]
        state = await asyncio.wait_for(sup.wait_for(sid, is_finished), 30)
        assert state.stop_type == ev.END_TURN
    finally:
        await sup.close()
