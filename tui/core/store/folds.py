"""The live fold of each session the store has touched: its state as of the last
committed event, and the seq the next event gets. Loaded from the log on first use;
forgotten (to be rebuilt from the log) when a transaction that ran ahead of them fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tui.core.session.state import SessionState


class LiveFolds:
    def __init__(self, load: Callable[[str], Awaitable[SessionState]]) -> None:
        self._load = load  # rebuilds a session's fold from its events
        self.states: dict[str, SessionState] = {}
        self.next_seq: dict[str, int] = {}
        self._loading: dict[str, asyncio.Task[SessionState]] = {}

    async def state(self, session_id: str) -> SessionState:
        """The fold for a session, rebuilt from its events the first time it is touched
        (one load however many ask at once)."""
        state = self.states.get(session_id)
        if state is not None:
            return state
        task = self._loading.get(session_id)
        if task is None:
            task = asyncio.ensure_future(self._loaded(session_id))
            self._loading[session_id] = task
            task.add_done_callback(lambda _t: self._loading.pop(session_id, None))
        return await asyncio.shield(task)

    async def _loaded(self, session_id: str) -> SessionState:
        state = await self._load(session_id)
        if session_id not in self.states:  # a new session's registration may have won
            self.register(session_id, state, state.last_seq + 1)
        return self.states[session_id]

    def register(self, session_id: str, state: SessionState, next_seq: int) -> None:
        self.states[session_id] = state
        self.next_seq[session_id] = next_seq

    def take_seq(self, session_id: str) -> int:
        seq = self.next_seq[session_id]
        self.next_seq[session_id] = seq + 1
        return seq

    def forget(self, session_ids: set[str], next_seq_before: dict[str, int]) -> None:
        """Undo what a failed transaction folded in ahead of the log."""
        self.next_seq = next_seq_before
        for session_id in session_ids:
            self.states.pop(session_id, None)
            self.next_seq.pop(session_id, None)
