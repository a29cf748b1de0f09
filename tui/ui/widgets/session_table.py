"""The fleet as a table, one row per session: what the dashboard shows when there are too
many sessions for panes. Sortable by status, cost, burn rate or waiting approvals (the
shifted letter of the column, as in k9s); a row is redrawn only when its session's
snapshot changed, and only the cells whose text did."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import DataTable

from tui.core.money.pricing import format_usd
from tui.ui.fleet import SessionSnapshot
from tui.ui.widgets.session_pane import short_duration

COLUMNS = (
    ("status", "status", 20),
    ("title", "title", 30),
    ("model", "model", 22),
    ("cost", "cost", 10),
    ("burn", "burn/h", 9),
    ("approvals", "waiting", 7),
    ("tokens", "tokens", 9),
    ("active", "active", 8),
)
# How often moving figures are redrawn (status changes: at once). DataTable renders every
# visible cell again after any update, so each redraw is the whole table: at 0.25 s that
# was most of the app's work at 64 sessions (bench/ui.py). Once a second, like top.
CELLS_EVERY_S = 1.0
# The order statuses sort in: what needs you first.
STATUS_RANK = {
    "approval": 0,
    "error": 1,
    "budget": 2,
    "running": 3,
    "rescheduling": 4,
    "interrupted": 5,
    "paused": 6,
    "done": 7,
    "terminated": 8,
}
SORTS = {
    "status": lambda s: (STATUS_RANK.get(s.status[1], 9),),
    "cost": lambda s: (-(s.cost or Decimal(0)),),
    "burn": lambda s: (-(burn_rate(s) or Decimal(0)),),
    "approvals": lambda s: (-len(s.state.pending_approvals), STATUS_RANK.get(s.status[1], 9)),
    "made": lambda s: (),
}


def burn_rate(snap: SessionSnapshot) -> Decimal | None:
    """List cost per active hour so far."""
    hours = snap.state.active_at(snap.at) / 3600
    cost = snap.cost
    if cost is None or hours <= 0:
        return None
    return cost / hours


class SessionTable(DataTable[Any]):
    DEFAULT_CSS = """
    SessionTable { height: 1fr; }
    """
    BINDINGS = [
        Binding("S", "sort('status')", "Sort S·C·B·A·O", key_display="S"),
        Binding("C", "sort('cost')", "Sort: cost", show=False),
        Binding("B", "sort('burn')", "Sort: burn", show=False),
        Binding("A", "sort('approvals')", "Sort: waiting", show=False),
        Binding("O", "sort('made')", "Sort: made", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id="session-table")
        self.sort_by = "status"
        self._shown: dict[str, SessionSnapshot] = {}
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._order: list[str] = []  # the sessions in the order they were made
        self._latest: dict[str, SessionSnapshot] = {}
        self._applied_at = 0.0
        self._later: Timer | None = None
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def show(self, sessions: dict[str, SessionSnapshot]) -> None:
        """Bring the rows up to date with ``sessions`` (the ones the filter lets through).

        Costs, tokens and times move on every flush; repainting 64 rows that often was
        most of the app's work (bench/ui.py). Those are shown at most every
        ``CELLS_EVERY_S``; a session added, gone or changing status is shown at once."""
        self._latest = sessions
        shown = self._shown
        urgent = sessions.keys() != shown.keys() or any(
            shown[sid].status != snap.status for sid, snap in sessions.items()
        )
        wait = self._applied_at + CELLS_EVERY_S - time.monotonic()
        if urgent or wait <= 0:
            self._apply()
        elif self._later is None:
            self._later = self.set_timer(wait, self._apply)

    @property
    def settled(self) -> bool:
        """Every row shows its session's latest snapshot (no redraw is waiting)."""
        return self._later is None

    def _apply(self) -> None:
        if self._later is not None:
            self._later.stop()
            self._later = None
        self._applied_at = time.monotonic()
        sessions = self._latest
        for sid in [s for s in self._shown if s not in sessions]:
            self.remove_row(sid)
            del self._shown[sid], self._cells[sid]
        added = False
        for sid, snap in sessions.items():
            if sid not in self._order:
                self._order.append(sid)
            if self._shown.get(sid) is snap:
                continue  # the same snapshot: nothing of it changed
            cells = self._row(snap)
            if sid not in self._shown:
                self.add_row(*cells, key=sid)
                added = True
            else:
                old = self._cells[sid]
                for (key, _, _), before, after in zip(COLUMNS, old, cells, strict=True):
                    if before != after:
                        self.update_cell(sid, key, after)
            self._shown[sid] = snap
            self._cells[sid] = cells
        if added or self.sort_by != "made":
            self._sort()

    def _row(self, snap: SessionSnapshot) -> tuple[Any, ...]:
        label, key = snap.status
        waiting = len(snap.state.pending_approvals)
        style = {"approval": "bold reverse", "error": "bold red", "budget": "bold red"}.get(key, "")
        burn = burn_rate(snap)
        return (
            Text(label, style=style),
            Text(snap.title),  # a Text: titles are anyone's text, never markup
            Text(snap.model),
            format_usd(snap.cost, 4),
            "" if burn is None else format_usd(burn, 2),
            str(waiting) if waiting else "",
            f"{snap.state.usage.total_tokens:,}",
            short_duration(snap.state.active_at(snap.at)),
        )

    def _sort(self) -> None:
        """Put the rows in the chosen order; the cursor stays on its session. Rows are
        re-added only when the order changed (costs move every second; ranks seldom)."""
        key = SORTS[self.sort_by]
        made = {sid: n for n, sid in enumerate(self._order)}
        ranked = sorted(self._shown, key=lambda sid: (*key(self._shown[sid]), made[sid]))
        if [row.key.value for row in self.ordered_rows] == ranked:
            return
        selected = self.selected_id()
        self.clear()
        for sid in ranked:
            self.add_row(*self._cells[sid], key=sid)
        if selected in ranked:
            self.move_cursor(row=ranked.index(selected), animate=False)

    def action_sort(self, column: str) -> None:
        self.sort_by = column
        self._sort()
        self.notify(f"sorted by {column}", timeout=1.5)

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return str(row_key.value)
