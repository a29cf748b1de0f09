"""What can be done to the selected session, from the dashboard or the session screen:
the keys' actions and the command palette's session commands.

Commands to the engine run as app workers: leaving the screen must not cancel a pause or
an approval half way. Every notification names the session, whose title is anyone's
text: each is printable and sent with markup=False.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from textual.worker import Worker

from tui.client.protocol import CorralClient
from tui.core.errors import CorralError
from tui.core.money.pricing import format_usd
from tui.core.permissions.policy import Rule
from tui.core.printable import printable, printable_line
from tui.core.session.state import TERMINATED
from tui.ui.commands import SessionCommand, SessionCommands
from tui.ui.fleet import EMPTY_FLEET, Fleet, SessionSnapshot
from tui.ui.screens.approval import ApprovalScreen, Decision
from tui.ui.screens.budget import NO_CAP, BudgetScreen
from tui.ui.screens.fleet_screen import FleetScreen
from tui.ui.screens.policy_editor import PolicyEditorScreen
from tui.ui.screens.timeline import TimelineScreen

DONE = {"pause": "pausing", "resume": "resumed", "interrupt": "interrupted", "cancel": "cancelled"}
CONTROL_COMMANDS = {
    "pause": ("Pause", "Stop after the current step (p)"),
    "resume": ("Resume", "Go on from where it stopped (r)"),
    "interrupt": ("Interrupt", "Stop the current step now (i)"),
    "cancel": ("Cancel", "Terminate the session (x)"),
}


class SessionActions(FleetScreen):
    """A screen with a selected session (``selected``): its keys' actions, and the same
    actions in the command palette (``session_commands``)."""

    COMMANDS = {SessionCommands}

    def __init__(
        self, client: CorralClient, profiles_dir: Path, fleet: Fleet = EMPTY_FLEET
    ) -> None:
        super().__init__(client, fleet)
        self.profiles_dir = profiles_dir  # where the policy editor saves profiles

    def selected(self) -> SessionSnapshot | None:
        """The session the keys act on (the focused pane, the open session)."""
        raise NotImplementedError

    def _selected(self) -> SessionSnapshot | None:
        snap = self.selected()
        if snap is None:
            self.notify("Select a session first.", severity="warning")
        return snap

    def _in_app(self, work: Awaitable[None], name: str) -> Worker[None]:
        return self.app.run_worker(work, name=name, group="control")

    def _error(self, exc: Exception) -> None:
        self.notify(printable(str(exc)), severity="error", markup=False)

    # -- controls ------------------------------------------------------------------------

    def action_control(self, kind: str) -> None:
        if snap := self._selected():
            self._in_app(self._control(snap, kind), kind)

    async def _control(self, snap: SessionSnapshot, kind: str) -> None:
        try:
            await self.client.control(snap.id, kind)
        except CorralError as exc:
            self._error(exc)
            return
        self.notify(f"{snap.title}: {DONE[kind]}", markup=False)

    def send_message(self, snap: SessionSnapshot, text: str) -> None:
        self._in_app(self._send(snap, text), "message")

    async def _send(self, snap: SessionSnapshot, text: str) -> None:
        try:
            await self.client.send(snap.id, text)
        except CorralError as exc:
            self._error(exc)

    # -- approvals -----------------------------------------------------------------------

    def _first_pending(self) -> tuple[SessionSnapshot, str, dict[str, Any]] | None:
        snap = self.selected()
        pending = snap.pending() if snap else []
        if snap is None or not pending:
            self.notify("Nothing here waits for approval.", severity="warning")
            return None
        return (snap, *pending[0])

    def action_approve(self, allow: bool) -> None:
        if found := self._first_pending():
            if allow:
                self._allow(*found[:2])
            else:
                self._prompt(*found, deny=True)

    def action_approval_prompt(self) -> None:
        if found := self._first_pending():
            self._prompt(*found)

    def _allow(self, snap: SessionSnapshot, tool_use_id: str) -> None:
        self._in_app(self._confirm(snap, tool_use_id, Decision(True)), "confirm")

    def _prompt(
        self, snap: SessionSnapshot, tool_use_id: str, use: dict[str, Any], deny: bool = False
    ) -> None:
        def answered(decision: Decision | None) -> None:
            if decision is not None:
                self._in_app(self._confirm(snap, tool_use_id, decision, use), "confirm")

        screen = ApprovalScreen(snap.title, use)
        self.app.push_screen(screen, answered)
        if deny:
            self.app.call_after_refresh(lambda: screen.query_one("#deny-message").focus())

    async def _confirm(
        self,
        snap: SessionSnapshot,
        tool_use_id: str,
        decision: Decision,
        use: dict[str, Any] | None = None,
    ) -> None:
        tool = str((use or {}).get("name", ""))
        try:
            if decision.always is not None:
                # The rule lands first, so the tool uses that follow already see it.
                await self._learn(snap, tool, decision.always)
            await self.client.confirm(snap.id, tool_use_id, decision.allow, decision.message)
        except CorralError as exc:
            self._error(exc)
            return
        if decision.always is not None:
            self.notify(
                printable(f"{snap.title}: from now on {decision.always.label(tool)}"), markup=False
            )

    async def _learn(self, snap: SessionSnapshot, tool: str, rule: Rule) -> None:
        """Add an approved rule to the session's policy."""
        policy = await self.client.policy(snap.id)
        if tool in policy.tools:
            policy.tools[tool].rules.append(rule)
            await self.client.set_policy(snap.id, policy)

    # -- other screens -------------------------------------------------------------------

    def action_timeline(self) -> None:
        if snap := self._selected():
            self._open_timeline(snap)

    def _open_timeline(self, snap: SessionSnapshot) -> None:
        self.app.push_screen(TimelineScreen(self.client, snap, self.fleet))

    def action_checkpoint(self) -> None:
        if snap := self._selected():
            self._in_app(self._checkpoint(snap), "checkpoint")

    async def _checkpoint(self, snap: SessionSnapshot) -> None:
        try:
            cp = await self.client.checkpoint(snap.id, "from the app")
        except (CorralError, OSError) as exc:
            self.notify(printable(f"No checkpoint: {exc}"), severity="error", markup=False)
            return
        self.notify(
            f"{snap.title}: checkpoint {cp.id[-8:]}, {cp.changed} paths changed since the last",
            markup=False,
        )

    def action_policy(self) -> None:
        if snap := self._selected():
            self._in_app(self._open_policy_editor(snap), "policy")

    async def _open_policy_editor(self, snap: SessionSnapshot) -> None:
        try:
            policy = await self.client.policy(snap.id)
            events = await self.client.events(snap.id)
        except CorralError as exc:
            self._error(exc)
            return
        editor = PolicyEditorScreen(self.client, snap, policy, events, self.profiles_dir)
        self.app.push_screen(editor)

    def action_budget(self) -> None:
        if snap := self._selected():
            self._in_app(self._edit_budget(snap), "budget")

    async def _edit_budget(self, snap: SessionSnapshot) -> None:
        try:
            current = await self.client.budget(snap.id)
        except CorralError as exc:
            self._error(exc)
            return
        spent = snap.state.list_cost()
        answer = await self.app.push_screen_wait(
            BudgetScreen(snap.title, current.max_list_cost, spent)
        )
        if answer is None:
            return
        cap = None if answer == NO_CAP else answer
        try:
            await self.client.set_budget(snap.id, cap, current.max_active_hours)  # type: ignore[arg-type]
        except CorralError as exc:
            self._error(exc)
            return
        shown = format_usd(cap) if cap is not None else "lifted"  # type: ignore[arg-type]
        self.notify(f"{snap.title}: cost cap {shown}", markup=False)

    # -- the command palette ---------------------------------------------------------------

    def session_commands(self) -> list[SessionCommand]:
        """Every action on the selected session that its state allows, bound to it."""
        snap = self.selected()
        if snap is None:
            return []
        run = self._in_app
        commands = []
        if pending := snap.pending():
            tool_use_id, use = pending[0]
            tool = printable_line(str(use.get("name", "a tool")))
            commands += [
                (
                    f"Allow {tool}",
                    "Approve the waiting tool use (y)",
                    lambda: self._allow(snap, tool_use_id),
                ),
                (
                    f"Deny {tool}",
                    "Deny it, optionally saying why (d)",
                    lambda: self._prompt(snap, tool_use_id, use, deny=True),
                ),
                (
                    f"Approve {tool}…",
                    "Allow, deny, or always allow its kind (a)",
                    lambda: self._prompt(snap, tool_use_id, use),
                ),
            ]
        for kind in self._controls(snap):
            verb, help_text = CONTROL_COMMANDS[kind]
            commands.append((verb, help_text, lambda k=kind: run(self._control(snap, k), k)))
        commands += [
            (
                "Checkpoint",
                "Checkpoint the workspace now (k)",
                lambda: run(self._checkpoint(snap), "checkpoint"),
            ),
            (
                "Timeline",
                "Checkpoints and branches: diff, rewind, fork (h)",
                lambda: self._open_timeline(snap),
            ),
            (
                "Budget",
                "Set or raise the cost cap (b)",
                lambda: run(self._edit_budget(snap), "budget"),
            ),
            (
                "Permissions",
                "Edit the permission policy (e)",
                lambda: run(self._open_policy_editor(snap), "policy"),
            ),
        ]
        return [SessionCommand(f"{verb}: {snap.title}", h, act) for verb, h, act in commands]

    @staticmethod
    def _controls(snap: SessionSnapshot) -> tuple[str, ...]:
        if snap.running:
            return ("pause", "interrupt", "cancel")
        return () if snap.state.status == TERMINATED else ("resume", "cancel")
