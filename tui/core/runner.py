"""The agent loop for one session, readable top to bottom.

    run → settle open tool uses (run, refuse, or park for approval) → model turn → repeat

The loop starts from whatever the event log says, so a runner can take over a
session at any point (after an approval from another process, after a pause, on
a new user message). Each step is a task of its own so an interrupt can cancel it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from tui.core import events as ev
from tui.core.budget import (
    Budget,
    DailyCap,
    budget_of,
    due_warnings,
    reached,
    recorded_warnings,
    usage_of,
)
from tui.core.budget import apply as apply_budget
from tui.core.bus import Delta
from tui.core.checkpoints import TOOL, TURN, Checkpointer, CheckpointRecord, latest_manifest
from tui.core.conversation import Conversation, build_conversation, started_tool_uses
from tui.core.errors import CorralError, ModelError, SandboxLost
from tui.core.permissions import apply as apply_policy
from tui.core.permissions import policy_from_agent, policy_of
from tui.core.providers.base import ModelProvider, ModelRequest
from tui.core.spec import SessionSpec
from tui.core.store import Store
from tui.core.tools.toolset import Toolset, tool_schemas

log = logging.getLogger("corral.runner")

MAX_RETRIES = 4
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0


class Stopped(Exception):
    """The session reached a stop that needs the user: idle for a reason, or terminated."""


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
        self.policy = policy_from_agent(spec.agent)
        self.budget = Budget(spec.max_list_cost, spec.max_active_hours)
        self._warned: set[tuple[int, str]] = set()
        self.daily = daily
        self._slot = slot
        self._holding_slot = False
        self._wake = asyncio.Event()
        self._held: str | None = None  # PAUSED or INTERRUPTED while the user holds the session
        self._terminating = False
        self._work: asyncio.Task[None] | None = None
        self._interrupted = False
        self.conversation = Conversation()
        self._seen_seq = 0
        self.checkpointer = checkpointer
        self._manifest: str | None = None  # the latest checkpoint's, base of the next one

    # -- control, called by the supervisor -------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def pause(self) -> None:
        """Stop at the next step boundary and stay idle until resumed."""
        self._held = self._held or ev.PAUSED
        self.wake()

    def resume(self) -> None:
        """Go on after a pause or an interrupt (also what a new user message does)."""
        self._held = None
        self.wake()

    def interrupt(self) -> None:
        """Cancel the step under way and stay idle until resumed or given a message."""
        self._interrupted = True
        self._held = ev.INTERRUPTED
        if self._work is not None and not self._work.done():
            self._work.cancel()
        self.wake()

    def terminate(self) -> None:
        self._terminating = True
        self.interrupt()

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                await self._catch_up()
                state = await self.store.state(self.session_id)
                if state.status == "terminated":
                    return
                if self._terminating:
                    await self._settle_interrupted("the session was cancelled")
                    await self._append(ev.status_terminated(self.session_id))
                    return
                if self._interrupted:
                    self._interrupted = False
                    await self._settle_interrupted("interrupted by the user")
                if self._held:
                    await self._idle(self._held)
                    await self._wait()
                    continue
                try:
                    await self._step()
                except Stopped:
                    await self._wait()
                except Exception as exc:
                    # A fault of corral's own (a tool, the permission check, a checkpoint)
                    # must not leave a dead runner behind a `running` status.
                    await self._fail(exc)
                    await self._wait()
        finally:
            self._release_slot()

    async def _step(self) -> None:
        """Do the next thing the log calls for, as a cancellable task."""
        conv = self.conversation
        if conv.open_tool_uses:
            action = self._settle_tool_uses()
        elif conv.awaits_model:
            action = self._model_turn()
        else:
            await self._idle(ev.END_TURN)
            raise Stopped
        self._work = asyncio.create_task(action)
        try:
            await self._work
        except asyncio.CancelledError:
            if self._interrupted:
                return
            # The supervisor is stopping this runner: stop the step with it.
            await cancel_and_wait(self._work)
            raise
        finally:
            self._work = None

    async def _settle_tool_uses(self) -> None:
        waiting: list[str] = []
        for tool_use_id, use in list(self.conversation.open_tool_uses.items()):
            permission = use.payload.get("evaluated_permission")
            if permission == "ask":
                confirmation = self.conversation.confirmations.get(tool_use_id)
                if confirmation is None:
                    waiting.append(tool_use_id)
                    continue
                if confirmation.payload.get("result") != "allow":
                    why = confirmation.payload.get("deny_message") or "no reason given"
                    await self._result(tool_use_id, f"denied by the user: {why}", True)
                    continue
            elif permission != "allow":
                reason = use.payload.get("permission_reason") or "refused"
                await self._result(tool_use_id, f"error: {reason}", True)
                continue
            await self._running()
            try:
                outcome = await self.toolset.run(use.payload["name"], use.payload["input"])
            except SandboxLost as exc:
                await self._reschedule_sandbox(tool_use_id, str(exc))
                continue
            last_of_turn = len(self.conversation.open_tool_uses) == 1
            checkpoint = await self._snapshot(TURN if last_of_turn else TOOL)
            await self._result(tool_use_id, outcome.text, outcome.is_error, checkpoint)
        if waiting:
            await self._idle(ev.REQUIRES_ACTION, event_ids=waiting)
            raise Stopped

    async def _model_turn(self) -> None:
        state = await self.store.state(self.session_id)
        # Checked before the request, so a session never starts one it cannot afford.
        today = await self.daily.spent_today() if self.daily else None
        why = reached(self.budget, usage_of(state, today), self.daily.cap if self.daily else None)
        if why:
            await self._idle(ev.BUDGET_REACHED, detail=why)
            raise Stopped
        await self._running()
        request = ModelRequest(
            system=self.spec.agent.system,
            messages=self.conversation.messages,
            tools=tool_schemas(self.policy.enabled_tools()),
        )
        for attempt in range(MAX_RETRIES + 1):
            (start,) = await self._append(
                ev.model_request_start(self.session_id, self.provider.price_model)
            )
            try:
                response = await self.provider.complete(request, self._publish_delta)
            except asyncio.CancelledError:
                # The partial response is dropped: nothing of it reaches the log.
                await asyncio.shield(self._append(ev.failed_request_end(self.session_id, start.id)))
                raise
            except ModelError as exc:
                await self._append(ev.failed_request_end(self.session_id, start.id))
                if not exc.retryable or attempt == MAX_RETRIES:
                    await self._append(ev.session_error(self.session_id, exc.kind, str(exc)))
                    await self._idle(ev.RETRIES_EXHAUSTED)
                    raise Stopped from None
                await self._append(ev.status_rescheduled(self.session_id))
                delay = retry_delay(attempt, exc.retry_after)
                await asyncio.sleep(delay)
                await self._append(ev.status_running(self.session_id))
                continue
            break
        sid = self.session_id
        # A policy edited while the model was thinking decides this turn's tool uses.
        await self._catch_up()
        out: list[ev.Event] = []
        if response.thinking:
            out.append(ev.agent_thinking(sid, response.thinking))
        if response.text:
            out.append(ev.agent_message(sid, response.text))
        for call in response.tool_calls:
            decision = self.policy.evaluate(call.name, call.input, self.toolset.workspace.root)
            out.append(
                ev.agent_tool_use(
                    sid,
                    call.name,
                    call.input,
                    decision.permission,
                    decision.evaluation,
                    decision.reason,
                    decision.rule,
                )
            )
        out.append(ev.model_request_end(sid, start.id, response.usage))
        # One append: the turn's events and its usage become durable together.
        await self._append(*out)
        await self._warn_budget()

    async def _warn_budget(self) -> None:
        usage = usage_of(await self.store.state(self.session_id))
        warnings = due_warnings(self.budget, usage, self._warned)
        if warnings:
            await self._append(*(ev.session_budget_warning(self.session_id, *w) for w in warnings))

    # -- helpers ----------------------------------------------------------------------

    async def _append(self, *events: ev.Event) -> list[ev.Event]:
        stored = await self.store.append(*events)
        await self._catch_up()
        return stored

    async def _catch_up(self) -> None:
        """Fold events appended since we last looked (ours and anyone else's)."""
        new = await self.store.events(self.session_id, after_seq=self._seen_seq)
        if self._seen_seq == 0 or any(e.type == ev.SESSION_REWOUND for e in new):
            # A fresh start or a rewind: the conversation is the current branch's.
            everything = await self.store.events(self.session_id)
            self.conversation = build_conversation(everything)
            self._seen_seq = everything[-1].seq if everything else 0
            self._manifest = await latest_manifest(self.store, self.session_id, everything)
            self.budget = budget_of(self.spec, everything)
            self.policy = policy_of(self.spec, everything)
            self._warned.clear()
            recorded_warnings(everything, self._warned)
            return
        for event in new:
            self.conversation.apply(event)
            self.budget = apply_budget(self.budget, event)
            self.policy = apply_policy(self.policy, event)
            self._seen_seq = event.seq
        recorded_warnings(new, self._warned)

    async def _reschedule_sandbox(self, tool_use_id: str, why: str) -> None:
        """The container died under a tool: get a new one, put the workspace back to the
        last checkpoint, and tell the model the call was cut off (it may run it again)."""
        await self._append(ev.status_rescheduled(self.session_id))
        try:
            await self.toolset.sandbox.restart()
            if self.checkpointer is not None and self._manifest is not None:
                await self.checkpointer.restore(self.toolset.workspace.root, self._manifest)
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
                self._manifest,
                kind=kind,
                turn=self.conversation.assistant_turns,
            )
        except (OSError, CorralError) as exc:
            # The session goes on; the log says this save point is missing and why.
            await self._append(
                ev.session_error(self.session_id, "checkpoint_failed", f"no checkpoint: {exc}")
            )
            return None
        self._manifest = checkpoint.manifest
        return checkpoint

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
        await self._catch_up()

    async def _fail(self, exc: Exception) -> None:
        why = f"internal error: {type(exc).__name__}: {exc}"
        log.error("session %s: %s", self.session_id, why, exc_info=exc)
        for tool_use_id in started_tool_uses(self.conversation):
            await self._result(tool_use_id, f"error: {why}; the tool call was not re-run", True)
        await self._append(ev.session_error(self.session_id, "internal_error", why))
        await self._idle(ev.ERROR, detail=why)

    async def _settle_interrupted(self, why: str) -> None:
        for tool_use_id in list(self.conversation.open_tool_uses):
            confirmed = self.conversation.confirmations.get(tool_use_id)
            use = self.conversation.open_tool_uses[tool_use_id]
            if (
                use.payload.get("evaluated_permission") == "ask"
                and confirmed is None
                and not self._terminating
            ):
                continue  # still the user's to answer
            await self._result(tool_use_id, interrupted_result(why), True)

    async def _running(self) -> None:
        if not self._holding_slot:
            await self._slot.acquire()
            self._holding_slot = True
        state = await self.store.state(self.session_id)
        if state.status != "running":
            await self._append(ev.status_running(self.session_id))

    async def _idle(self, reason: str, **details: object) -> None:
        state = await self.store.state(self.session_id)
        current = state.stop_reason or {}
        wanted = {"type": reason, **details}
        if state.status != "idle" or current != wanted:
            await self._append(ev.status_idle(self.session_id, reason, **details))
        self._release_slot()

    def _release_slot(self) -> None:
        if self._holding_slot:
            self._holding_slot = False
            self._slot.release()

    async def _wait(self) -> None:
        self._wake.clear()
        # Events may have arrived while we were stopping; only sleep if nothing changed.
        before = self._seen_seq
        await self._catch_up()
        if self._seen_seq != before or self._interrupted or self._terminating:
            return
        await self._wake.wait()

    def _publish_delta(self, kind: str, text: str) -> None:
        self.store.bus.publish([Delta(self.session_id, kind, text)])


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Capped exponential backoff with jitter, or what the server asked for (429/529)."""
    if retry_after is not None:
        return retry_after
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)


def interrupted_result(why: str) -> str:
    return f"{ev.INTERRUPTED_RESULT} error: {why}; the tool call did not finish and was not re-run"


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    if task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
