"""The Claude provider: the real anthropic SDK over HTTP to a fake Messages API."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tui.core.checkpoints.archive import export_session
from tui.core.engine import stops as runner
from tui.core.engine.supervisor import Supervisor
from tui.core.money.pricing import default_pricing
from tui.core.session import events as ev
from tui.core.session.state import finished_after, is_finished
from tui.core.store.bus import Delta

from .conftest import make_spec
from .fake_anthropic import FakeMessagesAPI, cut, error, message

KEY = "sk-ant-api03-fake-key-for-tests-0123456789"
MODEL = "claude-sonnet-4-6"


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeMessagesAPI]:
    async with FakeMessagesAPI() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setattr(runner, "BACKOFF_BASE_S", 0.01)  # keep retries quick
        yield server


def claude_spec(tmp_path: Path):  # type: ignore[no-untyped-def]
    spec = make_spec(
        tmp_path, [{"text": "unused"}], tools={"default": {"permission_policy": "always_allow"}}
    )
    agent = dataclasses.replace(spec.agent, system="You are careful.")
    return dataclasses.replace(spec, agent=agent).with_model(MODEL)


async def run(supervisor: Supervisor, tmp_path: Path) -> tuple[str, list[ev.Event]]:
    sid = await supervisor.create_session(claude_spec(tmp_path))
    await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    return sid, await supervisor.store.events(sid)


async def test_a_session_runs_on_claude_with_streaming_and_caching(
    supervisor: Supervisor, api: FakeMessagesAPI, tmp_path: Path
) -> None:
    api.replies = [
        message(
            "Listing files.",
            ("bash", {"command": "echo hi > made.txt"}),
            input_tokens=1200,
            cache_creation_input_tokens=800,
            output_tokens=30,
        ),
        message(
            "Done: made.txt exists.",
            input_tokens=50,
            cache_read_input_tokens=2000,
            output_tokens=12,
        ),
    ]
    deltas: list[Delta] = []
    sub = supervisor.bus.subscribe(deltas=True)
    sid, events = await run(supervisor, tmp_path)
    while not sub.queue.empty():
        item = sub.queue.get_nowait()
        if isinstance(item, Delta):
            deltas.append(item)
    sub.close()
    state = await supervisor.store.state(sid)
    assert state.stop_type == ev.END_TURN
    assert [e.text for e in events if e.type == ev.AGENT_MESSAGE] == [
        "Listing files.",
        "Done: made.txt exists.",
    ]
    # Text arrived in pieces as it streamed, before the finished message.
    assert "".join(d.text for d in deltas if d.kind == "text").startswith("Listing files.")
    assert len([d for d in deltas if d.kind == "text"]) > 2
    workspace = Path((await supervisor.store.get_session(sid)).workspace)
    assert (workspace / "made.txt").read_text() == "hi\n"
    # Usage per request, priced exactly.
    ends = [e for e in events if e.type == ev.SPAN_MODEL_REQUEST_END]
    assert ends[1].payload["model_usage"]["cache_read_input_tokens"] == 2000
    expected = sum(default_pricing().token_cost(MODEL, e.payload["model_usage"]) for e in ends)  # type: ignore[misc]
    assert state.usage.model_cost == expected > Decimal(0)
    # What the SDK sent: the key in its header, cache breakpoints on the prefix and the tail.
    first, second = api.requests
    sent = first.headers.get("x-api-key") or first.headers["authorization"].removeprefix("Bearer ")
    assert sent == KEY
    assert first.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first.body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert second.body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert second.body["messages"][-1]["content"][0]["type"] == "tool_result"
    # The key reaches neither the data dir nor an export (the one `corral export` writes).
    data_dir = supervisor.data_dir
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    bundle = tmp_path / "run.corral"
    summary = await export_session(supervisor.store, supervisor.checkpointer, sid, bundle)
    assert summary.events == len(events) and summary.checkpoints > 0
    exported = bundle.read_bytes()
    # Its log is there in clear (an uncompressed tar), so a search of its bytes means something.
    assert b"Done: made.txt exists." in exported and b"echo hi > made.txt" in exported
    assert KEY.encode() not in exported


async def test_overload_and_a_cut_stream_are_retried_without_double_billing(
    supervisor: Supervisor, api: FakeMessagesAPI, tmp_path: Path
) -> None:
    api.replies = [
        error(529, "overloaded_error", "Overloaded"),
        cut("This answer will be cut off"),
        error(500, "api_error", "Internal"),
        message("Finally.", input_tokens=10, output_tokens=5),
    ]
    sid, events = await run(supervisor, tmp_path)
    types = [e.type for e in events]
    assert types.count(ev.STATUS_RESCHEDULED) == 3
    texts = [e.text for e in events if e.type == ev.AGENT_MESSAGE]
    assert texts == ["Finally."]  # the partial answer never reached the transcript
    state = await supervisor.store.state(sid)
    assert state.usage.requests == 4 and state.usage.input_tokens == 10  # failures bill 0
    assert state.stop_type == ev.END_TURN


async def test_retry_after_is_honoured(
    supervisor: Supervisor, api: FakeMessagesAPI, tmp_path: Path
) -> None:
    api.replies = [
        error(429, "rate_limit_error", "Too many requests", retry_after="1"),
        message("ok"),
    ]
    began = time.monotonic()
    sid, _ = await run(supervisor, tmp_path)
    assert time.monotonic() - began >= 1.0
    assert (await supervisor.store.state(sid)).stop_type == ev.END_TURN


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (error(401, "authentication_error", f"invalid x-api-key {KEY}"), "API key was refused"),
        (error(404, "not_found_error", "model: claude-sonnet-4-6"), "was not found (404)"),
        (error(400, "invalid_request_error", "max_tokens too large"), "max_tokens too large"),
        (
            error(429, "rate_limit_error", "limit", code="enforced_spend_limit_reached"),
            "spend limit was reached",
        ),
    ],
)
async def test_errors_that_retrying_cannot_fix_stop_at_once_and_say_why(
    supervisor: Supervisor,
    api: FakeMessagesAPI,
    tmp_path: Path,
    reply,
    says: str,  # type: ignore[no-untyped-def]
) -> None:
    api.replies = [reply]
    sid, events = await run(supervisor, tmp_path)
    assert len(api.requests) == 1  # not retried
    error_event = next(e for e in events if e.type == ev.SESSION_ERROR)
    text = error_event.payload["error"]["message"]
    assert says in text and KEY not in text
    assert (await supervisor.store.state(sid)).stop_type == ev.RETRIES_EXHAUSTED


async def test_after_the_retry_budget_the_user_can_resume(
    supervisor: Supervisor, api: FakeMessagesAPI, tmp_path: Path
) -> None:
    api.replies = [error(503, "api_error", "down")] * (runner.MAX_RETRIES + 1) + [message("back")]
    sid, _ = await run(supervisor, tmp_path)
    state = await supervisor.store.state(sid)
    assert state.stop_type == ev.RETRIES_EXHAUSTED
    await supervisor.resume(sid)
    state = await asyncio.wait_for(supervisor.wait_for(sid, finished_after(state.last_seq)), 30)
    assert state.stop_type == ev.END_TURN
