"""``CorralClient``: everything the app and the CLI may ask of corral, in one protocol.

Screens and commands hold a client, never a ``Store`` or a ``Supervisor``: the engine may
run in this process, in another process on this data dir, or (later) behind a server.
Every method returns plain values (records, events, frozen results), never an object
that would pull more from the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from tui.core.checkpoints.archive import ExportSummary, ImportSummary
from tui.core.checkpoints.diff import CheckpointDiff
from tui.core.checkpoints.gc import GcResult
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.scan import Change
from tui.core.checkpoints.timeline import Timeline
from tui.core.money.budget import Budget
from tui.core.money.estimate import Estimate
from tui.core.permissions.policy import Policy
from tui.core.session.events import Event
from tui.core.session.records import SessionRecord
from tui.core.session.spec import SessionSpec
from tui.core.session.state import SessionState
from tui.core.store.bus import Item

# The commands a session takes by name (`corral pause SESSION`, a key in the app).
CONTROLS = ("pause", "resume", "interrupt", "cancel")


@dataclass(frozen=True)
class RewindPreview:
    session: SessionRecord
    target: CheckpointRecord
    changes: list[Change]  # what the workspace would lose or get back


@dataclass(frozen=True)
class Rewound:
    target: CheckpointRecord
    changes: list[Change]


class Feed(Protocol):
    """Events (and, if asked, streaming deltas) as they become durable, in order."""

    def __aiter__(self) -> AsyncIterator[Item]: ...

    async def get(self) -> Item: ...

    def close(self) -> None: ...

    def __enter__(self) -> Feed: ...

    def __exit__(self, *_: object) -> None: ...


class CorralClient(Protocol):
    """What there is to know and to do; see ``tui.client`` for the implementations."""

    # True when the sessions this client sets going run in this process (and stop, left
    # resumable, when it closes); False when another process runs them.
    runs_here: bool
    # After attach: each recovered session's last seq before it resumed.
    recovered_after: dict[str, int]

    # -- reads ------------------------------------------------------------------------

    async def sessions(self) -> list[SessionRecord]: ...

    async def session(self, session_id: str) -> SessionRecord:
        """By id or unique id prefix; NotFoundError otherwise."""
        ...

    async def state(self, session_id: str) -> SessionState: ...

    async def events(
        self, session_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]: ...

    async def checkpoints(self, session_id: str) -> list[CheckpointRecord]: ...

    async def checkpoint_record(self, session_id: str, checkpoint: str) -> CheckpointRecord:
        """By id, id prefix or ``#N``."""
        ...

    async def timeline(self, session_id: str) -> Timeline: ...

    async def diff(self, session_id: str, a: str, b: str) -> CheckpointDiff: ...

    async def policy(self, session_id: str) -> Policy: ...

    async def budget(self, session_id: str) -> Budget: ...

    async def estimate(self, spec: SessionSpec) -> Estimate: ...

    async def spent_today(self) -> Decimal: ...

    async def subscribe(self, session_id: str | None = None, *, deltas: bool = False) -> Feed:
        """Call before acting, so nothing the action causes is missed."""
        ...

    # -- commands -----------------------------------------------------------------------

    async def attach(self, *, resume_recovered: bool = False) -> list[str]:
        """Make sure something runs this data dir's sessions (the engine starts here if
        nothing else runs them); the sessions a crash had left running that were
        recovered on the way (resumed too, with ``resume_recovered``)."""
        ...

    async def create(self, spec: SessionSpec) -> str:
        """Store and start a session; its id."""
        ...

    async def send(self, session_id: str, text: str) -> None: ...

    async def confirm(
        self, session_id: str, tool_use_id: str, allow: bool, message: str | None = None
    ) -> None:
        """Answer a tool use waiting for approval; NotFoundError if it is not waiting
        (already answered: of two racing answers, the second fails)."""
        ...

    async def control(self, session_id: str, kind: str, *, accept: bool = False) -> None:
        """One of CONTROLS; ``accept`` with resume also accepts an imported session."""
        ...

    async def set_budget(
        self, session_id: str, max_list_cost: Decimal | None, max_active_hours: Decimal | None
    ) -> bool:
        """Set or lift caps; True when a session stopped at its budget goes on."""
        ...

    async def set_policy(self, session_id: str, policy: Policy) -> str:
        """Replace the policy from the next tool use on; a line saying what changed."""
        ...

    async def checkpoint(self, session_id: str, label: str = "") -> CheckpointRecord: ...

    async def rewind_preview(self, session_id: str, checkpoint: str) -> RewindPreview: ...

    async def rewind(self, session_id: str, checkpoint: str) -> Rewound: ...

    async def fork(self, session_id: str, checkpoint: str) -> str: ...

    async def export(self, session_id: str, target: Path) -> ExportSummary: ...

    async def import_file(self, source: Path) -> ImportSummary: ...

    async def gc(self, *, dry_run: bool) -> GcResult: ...

    async def close(self) -> None:
        """Let go of the engine; sessions this process ran are left idle and resumable."""
        ...
