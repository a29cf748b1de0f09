"""What a runner knows of its session's log: the conversation of the current branch, the
budget and policy as edited so far, the warnings already given, the latest manifest.
Kept current by folding new events as they land, rebuilt after a rewind."""

from __future__ import annotations

from tui.core.checkpoints.checkpointer import latest_on_branch
from tui.core.money.budget import Budget, budget_of, recorded_warnings
from tui.core.money.budget import apply as apply_budget
from tui.core.permissions.policy import Policy
from tui.core.permissions.session_policy import apply as apply_policy
from tui.core.permissions.session_policy import policy_from_agent, policy_of
from tui.core.session import events as ev
from tui.core.session.conversation import Conversation, build_conversation
from tui.core.session.spec import SessionSpec
from tui.core.store.store import Store


class LogView:
    def __init__(self, session_id: str, spec: SessionSpec, store: Store) -> None:
        self.session_id = session_id
        self.spec = spec
        self.store = store
        self.conversation = Conversation()
        self.budget = Budget(spec.max_list_cost, spec.max_active_hours)
        self.policy: Policy = policy_from_agent(spec.agent)
        self.warned: set[tuple[int, str]] = set()
        self.manifest: str | None = None  # the latest checkpoint's, base of the next one
        self.seen_seq = 0
        # A user.interrupt folded since the runner last answered one (a fresh start or a
        # rewind rebuilds from the log and starts with none).
        self.interrupt_pending = False

    async def catch_up(self) -> bool:
        """Fold events appended since we last looked (ours and anyone else's); True if
        there were any."""
        new = await self.store.events(self.session_id, after_seq=self.seen_seq)
        if not new:
            return False
        if self.seen_seq == 0 or any(e.type == ev.SESSION_REWOUND for e in new):
            await self._rebuild()
            return True
        for event in new:
            if event.type == ev.USER_INTERRUPT:
                self.interrupt_pending = True
            self.conversation.apply(event)
            self.budget = apply_budget(self.budget, event)
            self.policy = apply_policy(self.policy, event)
            self.seen_seq = event.seq
        recorded_warnings(new, self.warned)
        return True

    async def _rebuild(self) -> None:
        """A fresh start or a rewind: the conversation is the current branch's."""
        everything = await self.store.events(self.session_id)
        self.conversation = build_conversation(everything)
        self.seen_seq = everything[-1].seq if everything else 0
        latest = latest_on_branch(await self.store.checkpoints(self.session_id), everything)
        self.manifest = latest.manifest if latest else None
        self.budget = budget_of(self.spec, everything)
        self.policy = policy_of(self.spec, everything)
        self.warned.clear()
        recorded_warnings(everything, self.warned)
