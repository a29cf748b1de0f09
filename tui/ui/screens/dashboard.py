"""The dashboard: a grid of session panes that adapts to the terminal, with a filter."""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.scalar import Scalar
from textual.widgets import DataTable, Static

from tui.client.protocol import CorralClient
from tui.ui.fleet import Fleet, SessionSnapshot
from tui.ui.screens.fleet_screen import FleetScreen
from tui.ui.screens.session import SessionScreen
from tui.ui.screens.session_actions import SessionActions
from tui.ui.widgets.compact_fleet import CompactFleet
from tui.ui.widgets.cost_ticker import CostTicker
from tui.ui.widgets.key_hints import KeyHints
from tui.ui.widgets.session_pane import SessionPane

PANE_MIN_WIDTH = 50
PANE_MIN_HEIGHT = 13
COMPACT_AT = 24  # more sessions than this: the table instead of a pane each


class DashboardScreen(SessionActions):
    DEFAULT_CSS = """
    DashboardScreen { layout: vertical; }
    DashboardScreen #panes {
        layout: grid; grid-size: 3; grid-gutter: 0 1; height: 1fr; padding: 0 1;
    }
    DashboardScreen #empty { padding: 2 4; }
    """
    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("left", "move(-1, 0)", show=False),
        Binding("right", "move(1, 0)", show=False),
        Binding("up", "move(0, -1)", show=False),
        Binding("down", "move(0, 1)", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("y", "approve(True)", "Allow"),
        Binding("d", "approve(False)", "Deny…"),
        Binding("a", "approval_prompt", "Approve…"),
        Binding("p", "control('pause')", "Pause"),
        Binding("r", "control('resume')", "Resume"),
        Binding("i", "control('interrupt')", "Interrupt", show=False),
        Binding("x", "control('cancel')", "Cancel", show=False),
        Binding("n", "app.new_session", "New"),
        Binding("h", "timeline", "Timeline"),
        Binding("k", "checkpoint", "Checkpoint"),
        Binding("b", "budget", "Budget"),
        Binding("e", "policy", "Permissions"),
        Binding("t", "app.next_theme", "Theme"),
        Binding("q", "app.request_quit", "Quit"),
    ]

    def __init__(self, client: CorralClient, profiles_dir: Path) -> None:
        super().__init__(client, profiles_dir)
        self._panes: dict[str, SessionPane] = {}  # one per session, in the order made
        self.compact: CompactFleet | None = None  # the table, once there are many sessions

    def compose(self) -> ComposeResult:
        yield CostTicker().data_bind(FleetScreen.fleet)
        with VerticalScroll(id="panes"):
            yield Static("No sessions yet — press n to start one.", id="empty")
        # The filter is typed on the key line: nothing moves when it opens or closes.
        yield KeyHints(placeholder="filter by status or text (enter keeps it, esc clears)")

    @property
    def columns(self) -> int:
        return max(1, min(4, (self.size.width - 2) // PANE_MIN_WIDTH))

    def on_resize(self, event: events.Resize) -> None:
        if self.compact is None:
            self.query_one("#panes").styles.grid_size_columns = self.columns
            self.call_after_refresh(self._fit_rows)

    def _fit_rows(self) -> None:
        """Rows share the height there is (3 sessions fill the screen, not a third of it);
        past what fits, each keeps a readable minimum and the grid scrolls."""
        if self.compact is not None:
            return
        grid = self.query_one("#panes")
        rows = max(1, -(-len(self.panes()) // self.columns))
        height = max(PANE_MIN_HEIGHT, grid.content_size.height // rows)
        if grid.styles.grid_rows != (Scalar.parse(str(height)),):
            grid.styles.grid_rows = str(height)
            self._catch_up_later()

    def panes(self) -> list[SessionPane]:
        """The panes shown (the filter hides some), in order."""
        return [p for p in self._panes.values() if p.display]

    def on_mount(self) -> None:
        self.watch_fleet(self.fleet)
        self.watch(self.query_one("#panes"), "scroll_y", self._catch_up_later, init=False)

    def _catch_up_later(self) -> None:
        """After the next layout, paint the panes that came into view (they skip the
        changes they cannot show: ``SessionPane.watch_snapshot``)."""
        self.call_after_refresh(self._catch_up)

    def _catch_up(self) -> None:
        for pane in self._panes.values():
            pane.catch_up()

    def watch_fleet(self, fleet: Fleet) -> None:
        if self.compact is not None or len(fleet.sessions) > COMPACT_AT:
            self._show_compact(fleet)
            return
        new = []
        for sid, snapshot in fleet.sessions.items():
            pane = self._panes.get(sid)
            if pane is None:
                self._panes[sid] = pane = SessionPane(snapshot)
                new.append(pane)
            else:
                pane.snapshot = snapshot  # the same snapshot (unchanged) repaints nothing
        if new:
            self._add_panes(new)

    def _add_panes(self, panes: list[SessionPane]) -> None:
        self.query_one("#empty").display = False
        self.query_one("#panes").mount_all(panes)
        filter_text = self.query_one(KeyHints).filter_text
        if filter_text:
            self.apply_filter(filter_text)
        self.call_after_refresh(self._fit_rows)
        if not isinstance(self.focused, SessionPane):
            self.call_after_refresh(self._focus_first)

    def _focus_first(self, *, leaving_filter: bool = False) -> None:
        """Focus the first pane (or the table), unless one has focus or a filter is being
        typed: new sessions do not take the keys from the user."""
        if self.compact is not None:
            self.compact.table.focus()
            return
        panes = self.panes()
        busy = isinstance(self.focused, SessionPane | KeyHints) and not leaving_filter
        if panes and not busy:
            panes[0].focus()

    def selected(self) -> SessionSnapshot | None:
        focused = self.focused
        if isinstance(focused, SessionPane):
            return focused.snapshot
        return self.compact.selected() if self.compact is not None else None

    # -- many sessions: a table ------------------------------------------------------

    def _show_compact(self, fleet: Fleet) -> None:
        """Past ``COMPACT_AT`` sessions, one row each (and panes for the few in focus):
        64 panes would cost more to lay out than the terminal can show."""
        if self.compact is None:
            self.compact = CompactFleet()
            grid = self.query_one("#panes")
            grid.display = False
            self._panes.clear()
            # Removed once the panes still being mounted into it are in: all of them go.
            self.call_after_refresh(grid.remove)
            self.mount(self.compact, before=self.query_one(KeyHints))
            self.call_after_refresh(self.compact.table.focus)
        text = self.query_one(KeyHints).filter_text
        shown = {sid: s for sid, s in fleet.sessions.items() if s.matches(text)}
        self.compact.show(shown)

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        self.open_session(str(message.row_key.value))

    def action_move(self, dx: int, dy: int) -> None:
        panes = self.panes()
        if not panes:
            return
        focused = self.focused
        index = panes.index(focused) if focused in panes else 0
        target = index + dx + dy * self.columns
        if 0 <= target < len(panes):
            panes[target].focus()
            panes[target].scroll_visible()

    def action_open(self) -> None:
        if snap := self.selected():
            self.open_session(snap.id)

    def on_session_pane_opened(self, message: SessionPane.Opened) -> None:
        self.open_session(message.session_id)

    def open_session(self, session_id: str) -> None:
        if snap := self.session(session_id):
            self.app.push_screen(SessionScreen(self.client, snap, self.profiles_dir, self.fleet))

    def action_filter(self) -> None:
        self.query_one(KeyHints).start_filter()

    def action_clear_filter(self) -> None:
        self.query_one(KeyHints).stop_filter()
        self.apply_filter("")
        self._focus_first(leaving_filter=True)

    def on_key_hints_filter_changed(self, message: KeyHints.FilterChanged) -> None:
        self.apply_filter(message.text)

    def on_key_hints_filter_kept(self, message: KeyHints.FilterKept) -> None:
        self._focus_first(leaving_filter=True)

    def apply_filter(self, text: str) -> None:
        if self.compact is not None:
            self._show_compact(self.fleet)
            return
        for pane in self._panes.values():
            shown = pane.snapshot.matches(text)
            if pane.display != shown:  # setting it, even unchanged, asks for a layout
                pane.display = shown
        self.call_after_refresh(self._fit_rows)
        self._catch_up_later()
