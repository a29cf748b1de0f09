"""The agent loop for one session, readable top to bottom:

    run → step → (execute the open tool uses | query the model) → step → …

``run`` loops over ``step`` until a ``Stop`` (end of turn, an approval to wait for, the
budget, a model that keeps failing), writes the one idle event that stop calls for, and
waits for the user. ``step`` does the next thing the log calls for, as a task an
interrupt can cut. The loop starts from whatever the log says, so a runner can take over
a session at any point (after an approval from another process, a pause, a new message).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Coroutine
from decimal import Decimal
from typing import Any

from tui.core.checkpoints.checkpointer import Checkpointer
from tui.core.checkpoints.records import TOOL, TURN, CheckpointRecord
from tui.core.clock import utc_now
from tui.core.engine.log_view import LogView
from tui.core.engine.stops import (
    MAX_RETRIES,
    BudgetReached,
    EndTurn,
    Hold,
    NeedsApproval,
    RetriesExhausted,
    Stop,
    cancel_and_wait,
    interrupted_result,
    retry_delay,
)
from tui.core.errors import CorralError, ModelError, SandboxLost
from tui.core.ids import event_id
from tui.core.money.budget import DailyCap, due_warnings, reached, usage_of
from tui.core.money.ceiling import MIN_ANSWER_TOKENS, Plan, fit, prompt_bound
from tui.core.money.pricing import ModelRates, format_usd
from tui.core.providers.base import ModelProvider, ModelRequest, ModelResponse
from tui.core.session import events as ev
from tui.core.session.conversation import started_tool_uses
from tui.core.session.spec import SessionSpec
from tui.core.session.state import IDLE, RUNNING, TERMINATED
from tui.core.store.bus import Delta
from tui.core.store.store import Store
from tui.core.tools.toolset import Toolset, tool_schemas

log = logging.getLogger("corral.runner")

# Work is cut this long before the active-hours cap, so that what follows the cut (the
# cut tool's answer, the idle event) still lands inside the cap.
HOURS_CAP_MARGIN_S = 0.2


class SessionRunner:
    def __init__(
        self,
        session_id: str,
        spec: SessionSpec,
        store: Store,
        provider: ModelProvider,
        toolset: Toolset,
        slot: asyncio.Semaphore,
        *,
        checkpointer: Checkpointer | None = None,
        daily: DailyCap | None = None,
    ) -> None:
        self.session_id = session_id
        self.spec = spec
        self.store = store
        self.provider = provider
        self.toolset = toolset
        self.checkpointer = checkpointer
        self.daily = daily
        self.log = LogView(session_id, spec, store)
        self.hold = Hold.NONE
        self._slot = slot  # sessions doing work at once, across the supervisor
        self._wake = asyncio.Event()
        self._work: asyncio.Task[None] | None = None
        self._preview_ids: dict[str, str] = {}  # delta kind -> the id its event will have

    # -- control, called by the supervisor -------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def pause(self) -> None:
        """Stop at the next step boundary and stay idle until resumed."""
        if self.hold is Hold.NONE:
            self.hold = Hold.PAUSED
        self.wake()

    def resume(self) -> None:
        """Go on after a pause or an interrupt (also what a new user message does)."""
        if self.hold is not Hold.TERMINATING:
            self.hold = Hold.NONE
        self.wake()

    def interrupt(self) -> None:
        """Cut the step under way and stay idle until resumed or given a message."""
        if self.hold is not Hold.TERMINATING:
            self.hold = Hold.INTERRUPTED
        self._cut()

    def terminate(self) -> None:
        self.hold = Hold.TERMINATING
        self._cut()

    def _cut(self) -> None:
        if self._work is not None and not self._work.done():
            self._work.cancel()
        self.wake()

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            # Cleared before the log is read, never after: whatever wakes the runner from
            # here on (an answer, a message) is in a later read or still set when it
            # waits. Cleared in ``_wait`` instead, an answer stored between the runner's
            # own append and that append's read of the log was read and its wake-up
            # lost: the session waited for an approval it already had.
            self._wake.clear()
            await self.log.catch_up()
            if (await self.store.state(self.session_id)).status == TERMINATED:
                return
            if self.hold is Hold.TERMINATING:
                await self._answer_cut(interrupted_result("the session was cancelled"), asks=True)
                await self._append(ev.status_terminated(self.session_id))
                return
            if self.log.interrupt_pending:
                # Whatever the interrupt cut, or had allowed but not yet started, is
                # answered now: a resumed session never runs it behind the user's back.
                self.log.interrupt_pending = False
                await self._answer_cut(interrupted_result("interrupted by the user"))
            if self.hold is not Hold.NONE:
                await self._idle(self.hold.value)
                await self._wait()
                continue
            try:
                await self._work_stretch()
            except Stop as stop:
                await self._idle(stop.reason, **stop.details)
                await self._wait()
            except Exception as exc:
                # A fault of corral's own (a tool, the permission check, a checkpoint)
                # must not leave a dead runner behind a `running` status.
                await self._fail(exc)
                await self._wait()

    async def _work_stretch(self) -> None:
        """Steps one after another while nothing holds the session, inside one of the
        supervisor's concurrency slots (a session shows `running` only while it has one)."""
        async with self._slot:
            while True:
                await self.step()
                await self.log.catch_up()
                if self.hold is not Hold.NONE or self.log.interrupt_pending:
                    return

    async def step(self) -> None:
        """Do the next thing the log calls for: run the open tool uses, or ask the model."""
        conversation = self.log.conversation
        if conversation.open_tool_uses:
            await self._cuttable(self.execute())
        elif conversation.awaits_model:
            await self._cuttable(self.query())
        else:
            raise EndTurn

    async def execute(self) -> None:
        """Run what is allowed, answer what is refused, park what waits for the user."""
        waiting: list[str] = []
        conversation = self.log.conversation
        for tool_use_id, use in list(conversation.open_tool_uses.items()):
            permission = use.payload.get("evaluated_permission")
            answer = conversation.confirmations.get(tool_use_id)
            if permission == "ask" and answer is None:
                waiting.append(tool_use_id)
            elif permission == "ask" and answer.payload.get("result") != "allow":
                why = answer.payload.get("deny_message") or "no reason given"
                await self._result(tool_use_id, f"denied by the user: {why}", True)
            elif permission not in ("allow", "ask"):
                reason = use.payload.get("permission_reason") or "refused"
                await self._result(tool_use_id, f"error: {reason}", True)
            else:
                await self._run_tool(tool_use_id, use)
        if waiting:
            raise NeedsApproval(waiting)

    async def query(self) -> None:
        """One model turn: checked against the budget first, retried on failures that
        may pass, recorded in one append with its usage."""
        await self._check_budget()
        request = ModelRequest(
            system=self.spec.agent.system,
            messages=self.log.conversation.messages,
            tools=tool_schemas(self.log.policy.enabled_tools()),
        )
        async with self._within_caps(request) as capped:
            await self._running()
            start, response = await self._request(capped)
            # A policy edited while the model was thinking decides this turn's tool uses.
            await self.log.catch_up()
            await self._append(*self._turn_events(start, response))
        await self._warn_budget()
        if response.stop_reason == "max_tokens" and capped.max_tokens < request.max_tokens:
            # Not the end of the task: the answer was cut short to stay under a cap.
            raise BudgetReached(
                detail=f"the answer was cut at {capped.max_tokens} tokens to stay within"
                " the budget; raise it to go on"
            )

    # -- the parts of a step ------------------------------------------------------------

    async def _run_tool(self, tool_use_id: str, use: ev.Event) -> None:
        await self._running()
        try:
            outcome = await self.toolset.run(use.payload["name"], use.payload["input"])
        except SandboxLost as exc:
            await self._reschedule_sandbox(tool_use_id, str(exc))
            return
        last_of_turn = len(self.log.conversation.open_tool_uses) == 1
        checkpoint = await self._snapshot(TURN if last_of_turn else TOOL)
        await self._result(tool_use_id, outcome.text, outcome.is_error, checkpoint)

    async def _check_budget(self) -> None:
        # Before the request, so a session never starts one it cannot afford.
        state = await self.store.state(self.session_id)
        today = await self.daily.spent_today() if self.daily else None
        daily_cap = self.daily.cap if self.daily else None
        why = reached(self.log.budget, usage_of(state, today), daily_cap)
        if why:
            raise BudgetReached(detail=why)

    @contextlib.asynccontextmanager
    async def _within_caps(self, request: ModelRequest) -> AsyncIterator[ModelRequest]:
        """The request with a ``max_tokens`` whose worst case fits every cap, held against
        the daily allowance until its cost is stored; BudgetReached when even a minimal
        answer would not fit (the request is then never sent)."""
        cap, daily = self.log.budget.max_list_cost, self.daily
        if cap is None and daily is None:
            yield request
            return
        pricing = self.store.pricing()
        rates = pricing.rates(self.provider.price_model)
        if rates is None:
            raise BudgetReached(
                detail=f"{self.provider.price_model} has no price, so no cap can be kept"
            )
        counted = await self.provider.count_tokens(request)
        prompt = counted if counted is not None else prompt_bound(request)
        state = await self.store.state(self.session_id)
        session_left = None
        if cap is not None:
            spent = state.list_cost(pricing, utc_now())
            session_left = cap - (spent if spent is not None else Decimal(0))
        if daily is None:
            plan = self._plan(rates, prompt, request, session_left, None)
            yield dataclasses.replace(request, max_tokens=plan.max_tokens)
            return
        ledger = daily.ledger
        async with ledger.changed:
            while True:
                daily_left = daily.cap - await daily.spent_today() - ledger.reserved
                others = ledger.reserved
                if others == 0 or self._fits(rates, prompt, request, session_left, daily_left):
                    break
                if not self._fits(rates, prompt, request, session_left, daily_left + others):
                    break  # it would not fit even with every other request done
                await ledger.changed.wait()  # fits once others' requests are settled
            plan = self._plan(rates, prompt, request, session_left, daily_left)
            ledger.reserved += plan.worst_case
        try:
            yield dataclasses.replace(request, max_tokens=plan.max_tokens)
        finally:
            await asyncio.shield(ledger.release(plan.worst_case))

    @staticmethod
    def _fits(
        rates: ModelRates,
        prompt: int,
        request: ModelRequest,
        session_left: Decimal | None,
        daily_left: Decimal,
    ) -> bool:
        left = daily_left if session_left is None else min(session_left, daily_left)
        return fit(rates, prompt, request.max_tokens, left) is not None

    def _plan(
        self,
        rates: ModelRates,
        prompt: int,
        request: ModelRequest,
        session_left: Decimal | None,
        daily_left: Decimal | None,
    ) -> Plan:
        lefts = [x for x in (session_left, daily_left) if x is not None]
        left = min(lefts) if lefts else None
        plan = fit(rates, prompt, request.max_tokens, left)
        if plan is not None:
            return plan
        if daily_left is not None and (session_left is None or daily_left < session_left):
            which = f"the daily cap {format_usd(self.daily.cap if self.daily else None)}"
        else:
            which = f"max_list_cost {format_usd(self.log.budget.max_list_cost)}"
        smallest = fit(rates, prompt, min(MIN_ANSWER_TOKENS, request.max_tokens), None)
        raise BudgetReached(
            detail=f"{which} reached: {format_usd(max(left or Decimal(0), Decimal(0)))} left,"
            f" less than the next request may cost"
            f" ({format_usd(smallest.worst_case if smallest else None)} with a minimal answer);"
            " not sent"
        )

    async def _request(self, request: ModelRequest) -> tuple[ev.Event, ModelResponse]:
        """The request's start event and the response; retries with backoff while the
        session shows `rescheduling`. A partial response never reaches the log."""
        for attempt in range(MAX_RETRIES + 1):
            # The ids this attempt's message and thinking will have, so that streamed
            # previews (deltas) name the event they become; new for each attempt, so a
            # failed attempt's text never previews the answer that is stored.
            self._preview_ids = {"text": event_id(), "thinking": event_id()}
            (start,) = await self._append(
                ev.model_request_start(self.session_id, self.provider.price_model)
            )
            try:
                return start, await self.provider.complete(request, self._publish_delta)
            except asyncio.CancelledError:
                await asyncio.shield(self._append(ev.failed_request_end(self.session_id, start.id)))
                raise
            except ModelError as exc:
                await self._append(ev.failed_request_end(self.session_id, start.id))
                if not exc.retryable or attempt == MAX_RETRIES:
                    await self._append(ev.session_error(self.session_id, exc.kind, str(exc)))
                    raise RetriesExhausted from None
                await self._append(ev.status_rescheduled(self.session_id))
                await asyncio.sleep(retry_delay(attempt, exc.retry_after))
                await self._append(ev.status_running(self.session_id))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _turn_events(self, start: ev.Event, response: ModelResponse) -> list[ev.Event]:
        sid = self.session_id
        out: list[ev.Event] = []
        if response.thinking:
            out.append(ev.agent_thinking(sid, response.thinking, self._preview_ids["thinking"]))
        if response.text:
            out.append(ev.agent_message(sid, response.text, self._preview_ids["text"]))
        for call in response.tool_calls:
            d = self.log.policy.evaluate(call.name, call.input, self.toolset.workspace.root)
            out.append(
                ev.agent_tool_use(
                    sid, call.name, call.input, d.permission, d.evaluation, d.reason, d.rule
                )
            )
        out.append(ev.model_request_end(sid, start.id, response.usage))
        return out

    async def _warn_budget(self) -> None:
        usage = usage_of(await self.store.state(self.session_id))
        warnings = due_warnings(self.log.budget, usage, self.log.warned)
        if warnings:
            await self._append(*(ev.session_budget_warning(self.session_id, *w) for w in warnings))

    async def _cuttable(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task an interrupt can cut, and the active-hours cap too; a
        cut tool call is answered right here, never left open to run again."""
        left = await self._active_seconds_left()
        if left is not None and left <= 0:
            work.close()
            hours = self.log.budget.max_active_hours
            raise BudgetReached(detail=f"max_active_hours {hours} reached")
        self._work = asyncio.create_task(work)
        try:
            done, _ = await asyncio.wait({self._work}, timeout=left)
            if not done:
                await cancel_and_wait(self._work)
                await self._answer_cut(
                    interrupted_result("stopped at the session's max_active_hours")
                )
                raise BudgetReached(
                    detail=f"max_active_hours {self.log.budget.max_active_hours} reached"
                    " (the work in progress was stopped at the cap)"
                )
            self._work.result()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                await cancel_and_wait(self._work)  # the supervisor stops this runner
                raise
            why = "cancelled" if self.hold is Hold.TERMINATING else "interrupted by the user"
            await self._answer_cut(interrupted_result(why))
        finally:
            self._work = None

    async def _active_seconds_left(self) -> float | None:
        """Seconds of work the active-hours cap still allows (less a margin for the stop
        itself); None without that cap."""
        hours = self.log.budget.max_active_hours
        if hours is None:
            return None
        state = await self.store.state(self.session_id)
        left = hours * 3600 - state.active_at(utc_now())
        return float(left) - HOURS_CAP_MARGIN_S

    # -- the log ------------------------------------------------------------------------

    async def _append(self, *events: ev.Event) -> list[ev.Event]:
        stored = await self.store.append(*events)
        await self.log.catch_up()
        return stored

    async def _result(
        self,
        tool_use_id: str,
        text: str,
        is_error: bool,
        checkpoint: CheckpointRecord | None = None,
    ) -> None:
        await self.store.append(
            ev.agent_tool_result(self.session_id, tool_use_id, text, is_error),
            checkpoint=checkpoint,
        )
        await self.log.catch_up()

    async def _answer_cut(self, text: str, *, asks: bool = False) -> None:
        """Give each tool use that may have started (and with ``asks``, each still waiting
        for the user) an error result: it is never re-run silently."""
        conversation = self.log.conversation
        ids = list(conversation.open_tool_uses) if asks else started_tool_uses(conversation)
        for tool_use_id in ids:
            await self._result(tool_use_id, text, True)

    async def _fail(self, exc: Exception) -> None:
        why = f"internal error: {type(exc).__name__}: {exc}"
        # The traceback goes to the debug log only: stderr may be someone's terminal.
        log.debug("session %s: %s", self.session_id, why, exc_info=exc)
        await self._answer_cut(f"error: {why}; the tool call was not re-run")
        await self._append(ev.session_error(self.session_id, "internal_error", why))
        await self._idle(ev.ERROR, detail=why)

    async def _reschedule_sandbox(self, tool_use_id: str, why: str) -> None:
        """The container died under a tool: get a new one, put the workspace back to the
        last checkpoint, and tell the model the call was cut off (it may run it again)."""
        await self._append(ev.status_rescheduled(self.session_id))
        try:
            await self.toolset.sandbox.restart()
            if self.checkpointer is not None and self.log.manifest is not None:
                await self.checkpointer.restore(self.toolset.workspace.root, self.log.manifest)
        except (CorralError, OSError) as exc:
            why += f"; no new sandbox: {exc}"
        await self._append(ev.status_running(self.session_id))
        await self._result(tool_use_id, interrupted_result(why), True)

    async def _snapshot(self, kind: str) -> CheckpointRecord | None:
        """The workspace as it is now, to be committed with the event that follows."""
        if self.checkpointer is None:
            return None
        try:
            checkpoint = await self.checkpointer.snapshot(
                self.session_id,
                self.toolset.workspace.root,
                self.log.manifest,
                kind=kind,
                turn=self.log.conversation.assistant_turns,
            )
        except (OSError, CorralError) as exc:
            # The session goes on; the log says this save point is missing and why.
            await self._append(
                ev.session_error(self.session_id, "checkpoint_failed", f"no checkpoint: {exc}")
            )
            return None
        self.log.manifest = checkpoint.manifest
        return checkpoint

    async def _running(self) -> None:
        if (await self.store.state(self.session_id)).status != RUNNING:
            await self._append(ev.status_running(self.session_id))

    async def _idle(self, reason: str, **details: object) -> None:
        state = await self.store.state(self.session_id)
        wanted = {"type": reason, **details}
        if state.status != IDLE or (state.stop_reason or {}) != wanted:
            await self._append(ev.status_idle(self.session_id, reason, **details))

    async def _wait(self) -> None:
        # Events may have arrived while we were stopping (an interrupt to answer, say):
        # only sleep if there is nothing to do. A wake-up since the loop began is still
        # set, and then this returns at once: the loop looks again.
        changed = await self.log.catch_up()
        if changed or self.log.interrupt_pending or self.hold is Hold.TERMINATING:
            return
        await self._wake.wait()

    def _publish_delta(self, kind: str, text: str) -> None:
        preview = self._preview_ids.get(kind, "")
        self.store.bus.publish([Delta(self.session_id, kind, text, preview)])
