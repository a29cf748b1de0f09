"""The faults a Messages API stream has in the wild, through the real ``anthropic`` SDK.

A 529 before the stream, an ``event: error`` after some content, a connection reset
mid-body and a 200 stream with no events at all: each is retried, the session ends
normally, and the answer is stored and billed once; the failed attempt's partial answer
is neither stored nor billed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from tui.core.clock import utc_now
from tui.core.engine import stops as runner
from tui.core.engine.supervisor import Supervisor
from tui.core.session import events as ev
from tui.core.session.state import is_finished
from tui.core.store.bus import Delta, Subscription

from .fake_anthropic import (
    DELTA_CHARS,
    FakeMessagesAPI,
    Reply,
    empty,
    error,
    message,
    reset,
    stream_error,
)
from .test_claude import KEY, claude_spec, run

FINAL = "The final answer, whole and once."
PARTIAL = "Half an answer that the fault cuts off before it ends."
PARTIAL_SENT = PARTIAL[: 2 * DELTA_CHARS]  # the two content deltas before a mid-stream fault
USAGE = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "cache_read_input_tokens": 2000,
    "cache_creation_input_tokens": 400,
}
# claude-sonnet-4-6 list prices per million tokens: input $3, output $15, cache read
# $0.30, 5-minute cache write $3.75. 1000*3 + 200*15 + 2000*0.30 + 400*3.75 = 8100.
COST = Decimal("0.0081")

# Each fault, given the event the test sets once the partial answer has streamed.
FAULTS: dict[str, Callable[[asyncio.Event], Reply]] = {
    "overloaded_529_before_the_stream": lambda _: error(529, "overloaded_error", "Overloaded"),
    "error_event_mid_stream": lambda _: stream_error(PARTIAL, after=2),
    # Waits for the partial to arrive: a reset drops what the client has not yet read.
    "connection_reset_mid_body": lambda partial_seen: reset(PARTIAL, after=2, gate=partial_seen),
    "empty_200_stream": lambda _: empty(),
}
MID_STREAM = ["error_event_mid_stream", "connection_reset_mid_body"]


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeMessagesAPI]:
    async with FakeMessagesAPI() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setattr(runner, "BACKOFF_BASE_S", 0.01)  # keep retries quick
        yield server


@asynccontextmanager
async def text_deltas(
    supervisor: Supervisor, partial_seen: asyncio.Event
) -> AsyncIterator[list[Delta]]:
    """The text deltas the bus carries while the block runs; ``partial_seen`` is set once
    they spell out what a mid-stream fault sends before it strikes."""
    seen: list[Delta] = []

    async def collect(sub: Subscription) -> None:
        async for item in sub:
            if isinstance(item, Delta) and item.kind == "text":
                seen.append(item)
                if "".join(d.text for d in seen).startswith(PARTIAL_SENT):
                    partial_seen.set()

    sub = supervisor.bus.subscribe(deltas=True)
    task = asyncio.create_task(collect(sub))
    try:
        yield seen
    finally:
        sub.close()
        await task


async def run_with_fault(
    supervisor: Supervisor, api: FakeMessagesAPI, tmp_path: Path, fault: str
) -> tuple[str, list[ev.Event], list[Delta]]:
    partial_seen = asyncio.Event()
    api.replies = [FAULTS[fault](partial_seen), message(FINAL, **USAGE)]
    async with text_deltas(supervisor, partial_seen) as deltas:
        sid, events = await run(supervisor, tmp_path)
    return sid, events, deltas


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_fault_is_retried_and_the_answer_stored_and_billed_once(
    supervisor: Supervisor, api: FakeMessagesAPI, tmp_path: Path, fault: str
) -> None:
    began = utc_now()
    sid, events, deltas = await run_with_fault(supervisor, api, tmp_path, fault)

    # Retried once, with the very same request: nothing of the partial answer joined
    # the conversation.
    assert len(api.requests) == 2
    assert api.requests[1].body == api.requests[0].body
    # The fault really struck where it says: after content for the mid-stream ones.
    streamed = "".join(d.text for d in deltas)
    assert streamed == (PARTIAL_SENT + FINAL if fault in MID_STREAM else FINAL)

    state = await supervisor.store.state(sid)
    assert state.stop_type == ev.END_TURN
    types = [e.type for e in events]
    assert types.count(ev.STATUS_RESCHEDULED) == 1
    assert ev.SESSION_ERROR not in types
    assert [e.text for e in events if e.type == ev.AGENT_MESSAGE] == [FINAL]
    stored = [json.dumps(e.payload) for e in events]
    assert sum(text.count(FINAL) for text in stored) == 1
    assert not any(PARTIAL[:8] in text for text in stored)

    # Billed once: the failed request ends with zero usage, the retry with its own.
    ends = [e.payload for e in events if e.type == ev.SPAN_MODEL_REQUEST_END]
    assert [end["is_error"] for end in ends] == [True, False]
    assert set(ends[0]["model_usage"].values()) == {0}
    assert ends[1]["model_usage"] == USAGE
    usage = state.usage
    assert (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
    ) == (1000, 200, 2000, 400)
    assert usage.model_cost == COST
    # The daily cap's view, priced again from the stored request events.
    assert await supervisor.store.spend_since(began) == COST


@pytest.mark.parametrize("fault", MID_STREAM)
async def test_the_previews_of_the_stored_message_are_its_text_alone(
    supervisor: Supervisor, api: FakeMessagesAPI, tmp_path: Path, fault: str
) -> None:
    _, events, deltas = await run_with_fault(supervisor, api, tmp_path, fault)
    (stored,) = [e for e in events if e.type == ev.AGENT_MESSAGE]
    # What an SDK client streaming with event_deltas pieces together for this event.
    assert "".join(d.text for d in deltas if d.event_id == stored.id) == FINAL


async def test_under_a_cap_the_prompt_is_counted_by_the_api_and_max_tokens_lowered(
    supervisor: Supervisor, api: FakeMessagesAPI, tmp_path: Path
) -> None:
    api.prompt_tokens = 1000
    api.replies = [message(FINAL, input_tokens=1000, output_tokens=200)]
    spec = dataclasses.replace(claude_spec(tmp_path), max_list_cost=Decimal("0.05"))
    sid = await supervisor.create_session(spec)
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 30)
    assert state.stop_type == ev.END_TURN
    assert len(api.counted) == 1 and api.counted[0].body["messages"]  # the API counted
    assert "max_tokens" not in api.counted[0].body
    # claude-sonnet-4-6: the prompt's worst case is 1000 tokens as 1-hour cache writes
    # ($6/M: $0.006); $0.044 left is 2933 tokens of output at $15/M.
    assert api.requests[0].body["max_tokens"] == 2933
    assert state.list_cost() == Decimal("0.006")  # 1000 x $3/M + 200 x $15/M
