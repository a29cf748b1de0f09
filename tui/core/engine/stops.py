"""How a runner stops and holds: the stops a step raises (each carries its reason, and the
runner writes the one idle event for it), the holds a user puts on a session, and the
small rules around them (backoff, what a cut-off tool call is answered with)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from enum import Enum
from typing import Any

from tui.core.session import events as ev

MAX_RETRIES = 4
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0


class Stop(Exception):
    """The session goes idle until the user acts; ``reason`` is the idle stop reason."""

    reason = ev.END_TURN

    def __init__(self, **details: Any) -> None:
        super().__init__(self.reason)
        self.details = details


class EndTurn(Stop):
    """The model has had its say and nothing is left to run."""


class NeedsApproval(Stop):
    """Tool uses wait for the user's answer (``event_ids``)."""

    reason = ev.REQUIRES_ACTION

    def __init__(self, tool_use_ids: list[str]) -> None:
        super().__init__(event_ids=tool_use_ids)


class BudgetReached(Stop):
    """A cap would be crossed by the next request; ``detail`` says which."""

    reason = ev.BUDGET_REACHED


class RetriesExhausted(Stop):
    """The model request failed for good (its session.error says why)."""

    reason = ev.RETRIES_EXHAUSTED


class Hold(Enum):
    """What the user has asked of a session's runner, if anything."""

    NONE = None  # work whenever the log calls for it
    PAUSED = ev.PAUSED  # stop at the next step boundary, idle until resumed
    INTERRUPTED = ev.INTERRUPTED  # the step under way was cut; idle until resumed
    TERMINATING = "terminating"  # cut the step, end the session for good


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Capped exponential backoff with jitter, or what the server asked for (429/529)."""
    if retry_after is not None:
        return retry_after
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)


def interrupted_result(why: str) -> str:
    return f"{ev.INTERRUPTED_RESULT} error: {why}; the tool call did not finish and was not re-run"


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    if task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
