"""The dashboard's layout for many sessions: the table of them all, and below it the panes
of the few that matter now (the selected one, then the ones waiting for approval)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable

from tui.ui.fleet import SessionSnapshot
from tui.ui.widgets.session_pane import SessionPane
from tui.ui.widgets.session_table import SessionTable

FOCUS_PANES = 3


class CompactFleet(Vertical):
    DEFAULT_CSS = """
    CompactFleet { height: 1fr; padding: 0 1; }
    CompactFleet #focus-strip { height: 13; }
    CompactFleet #focus-strip SessionPane { width: 1fr; height: 13; margin-right: 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="compact")
        self.table = SessionTable()
        self._strip = Horizontal(id="focus-strip")
        self._panes: dict[str, SessionPane] = {}
        self._sessions: dict[str, SessionSnapshot] = {}

    def compose(self) -> ComposeResult:
        yield self.table
        yield self._strip

    def show(self, sessions: dict[str, SessionSnapshot]) -> None:
        self._sessions = sessions
        self.table.show(sessions)
        self._show_focus()

    def selected(self) -> SessionSnapshot | None:
        sid = self.table.selected_id()
        return self._sessions.get(sid) if sid else None

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_focus()

    def _focus_ids(self) -> list[str]:
        chosen = [sid] if (sid := self.table.selected_id()) in self._sessions else []
        waiting = [s for s, snap in self._sessions.items() if snap.state.pending_approvals]
        for candidate in waiting:
            if len(chosen) >= FOCUS_PANES:
                break
            if candidate not in chosen:
                chosen.append(candidate)
        return chosen

    def on_mount(self) -> None:
        self._show_focus()

    def _show_focus(self) -> None:
        if not self._strip.is_mounted:
            return  # on_mount shows them
        wanted = self._focus_ids()
        panes = list(self._panes.values())
        if len(panes) != len(wanted):
            # A pane more or less: new ones, in the wanted order (the selected session
            # first); only when how many are in focus changes.
            self._strip.remove_children()
            self._panes = {sid: SessionPane(self._sessions[sid], with_id=False) for sid in wanted}
            self._strip.mount_all(list(self._panes.values()))
            return
        # The same number: the panes stay and show other sessions (a cursor move is then
        # a repaint of three panes, not three new ones to mount and lay out).
        self._panes = dict(zip(wanted, panes, strict=True))
        for sid, pane in self._panes.items():
            pane.show_session(self._sessions[sid])
