"""What the screens are given: frozen snapshots of the sessions, never live objects.

The bridge folds the core's events into its own ``SessionView``s and, at most every
flush, hands the screens a ``Fleet``: one ``SessionSnapshot`` per session plus the totals
the ticker shows. A snapshot is a value. Its state is a copy nothing mutates, so a widget
may keep it, compare it by identity (a session that did not change keeps the same
snapshot object from one fleet to the next) and read it at leisure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from tui.core.session.records import SessionRecord
from tui.core.session.state import WORKING, SessionState
from tui.core.session.views import SessionView, Shown, TailLine, Totals

EMPTY_TOTALS = Totals(None, Decimal(0), Decimal(0), 0, 0, 0, 0)


class ShowsFleet:
    """Marks a screen that shows sessions: the bridge posts each new ``Fleet`` to these
    only. Any other screen has no use for it, and a message to the app's default screen
    beneath the dashboard made Textual repaint the whole dashboard on every flush
    (bench/ui.py: most frames were full repaints)."""


def copy_state(state: SessionState) -> SessionState:
    """A copy of ``state`` that events applied to either one later do not reach.

    ``SessionState.apply`` mutates only ``usage``, ``pending_approvals`` and the request
    bookkeeping in place; everything else it reassigns, so a shallow copy plus copies of
    those is enough (and far cheaper than a deepcopy 20 times a second).
    """
    snap = copy.copy(state)
    snap.usage = copy.copy(state.usage)
    snap.pending_approvals = dict(state.pending_approvals)
    snap._request_models = dict(state._request_models)
    return snap


# eq=False: equality is identity, so a reactive holding a snapshot fires its watcher when
# (and only when) it is given a different snapshot, without comparing 200 tail lines.
@dataclass(frozen=True, eq=False)
class SessionSnapshot(Shown):
    record: SessionRecord
    state: SessionState  # a copy of its own (copy_state) that nothing mutates
    tail: tuple[TailLine, ...]
    streaming: str
    version: int  # grows with every event or streamed piece the bridge applied
    at: datetime  # the moment the time-dependent figures (cost, durations) are for

    @classmethod
    def of(cls, view: SessionView, at: datetime) -> SessionSnapshot:
        return cls(
            view.record,
            copy_state(view.state),
            tuple(view.tail),
            view.streaming,
            view.version,
            at,
        )

    @property
    def running(self) -> bool:
        return self.state.status in WORKING

    @property
    def cost(self) -> Decimal | None:
        return self.state.list_cost(now=self.at)

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.state.pending_approvals.items())

    def matches(self, text: str) -> bool:
        """Does the filter text name this session's status, title, model or tail?"""
        needle = text.strip().lower()
        if not needle:
            return True
        label, key = self.status
        haystack = " ".join([label, key, self.title, self.model, self.record.sandbox])
        if needle in haystack.lower():
            return True
        return any(needle in line.text.lower() for line in self.tail[-20:])


@dataclass(frozen=True, eq=False)
class Fleet:
    """Every session (in the order they were made) and what the ticker shows, at ``at``."""

    sessions: Mapping[str, SessionSnapshot] = field(default_factory=lambda: MappingProxyType({}))
    totals: Totals = EMPTY_TOTALS
    burn_per_hour: Decimal | None = None
    history: tuple[float, ...] = ()
    at: datetime | None = None


EMPTY_FLEET = Fleet()
