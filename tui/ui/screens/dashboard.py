"""The dashboard: a grid of session panes that adapts to the terminal, with a filter."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from tui.core.views import SessionView
from tui.ui.widgets.cost_ticker import CostTicker
from tui.ui.widgets.session_pane import SessionPane

if TYPE_CHECKING:
    from tui.ui.app import CorralApp

PANE_MIN_WIDTH = 50


class DashboardScreen(Screen[None]):
    DEFAULT_CSS = """
    DashboardScreen { layout: vertical; }
    DashboardScreen #filter { display: none; margin: 0 1; height: 3; }
    DashboardScreen #filter.-active { display: block; }
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
        Binding("y", "app.approve(True)", "Allow"),
        Binding("d", "app.approve(False)", "Deny…"),
        Binding("a", "app.approval_prompt", "Approve…"),
        Binding("p", "app.control('pause')", "Pause"),
        Binding("r", "app.control('resume')", "Resume"),
        Binding("i", "app.control('interrupt')", "Interrupt", show=False),
        Binding("x", "app.control('cancel')", "Cancel", show=False),
        Binding("n", "app.new_session", "New"),
        Binding("h", "app.timeline", "Timeline"),
        Binding("k", "app.checkpoint", "Checkpoint"),
        Binding("b", "app.budget", "Budget"),
        Binding("e", "app.policy", "Permissions"),
        Binding("t", "app.next_theme", "Theme"),
        Binding("q", "app.request_quit", "Quit"),
    ]

    app: CorralApp  # type: ignore[assignment]

    def compose(self) -> ComposeResult:
        yield CostTicker()
        # Disabled while hidden, so it never takes focus (or the keys) from the panes.
        yield Input(placeholder="filter by status or text (esc clears)", id="filter", disabled=True)
        with VerticalScroll(id="panes"):
            yield Static("No sessions yet — press n to start one.", id="empty")
        yield Footer()

    @property
    def columns(self) -> int:
        return max(1, min(4, (self.size.width - 2) // PANE_MIN_WIDTH))

    def on_resize(self, event: events.Resize) -> None:
        self.query_one("#panes").styles.grid_size_columns = self.columns

    def panes(self) -> list[SessionPane]:
        return [p for p in self.query(SessionPane) if p.display]

    def add_panes(self, views: list[SessionView], now: datetime) -> None:
        if not views:
            return
        self.query_one("#empty").display = False
        grid = self.query_one("#panes")
        grid.mount_all(SessionPane(view, now) for view in views)
        filter_text = self.query_one("#filter", Input).value
        if filter_text:
            self.apply_filter(filter_text)
        if self.focused is None or not isinstance(self.focused, SessionPane):
            self.call_after_refresh(self._focus_first)

    def _focus_first(self) -> None:
        panes = self.panes()
        if panes and not isinstance(self.focused, SessionPane | Input):
            panes[0].focus()

    def refresh_panes(self, session_ids: list[str], now: datetime) -> None:
        for sid in session_ids:
            for pane in self.query(f"#pane-{sid}").results(SessionPane):
                pane.show(now)

    def tick(self, now: datetime) -> None:
        for pane in self.query(SessionPane):
            if pane.view.state.status in ("running", "rescheduling"):
                pane.show(now)

    @property
    def focused_session(self) -> str | None:
        focused = self.focused
        return focused.view.id if isinstance(focused, SessionPane) else None

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
        if self.focused_session:
            self.app.open_session(self.focused_session)

    def on_session_pane_opened(self, message: SessionPane.Opened) -> None:
        self.app.open_session(message.session_id)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.disabled = False
        box.add_class("-active")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("-active")
        box.disabled = True
        self.apply_filter("")
        self._focus_first()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._focus_first()

    def apply_filter(self, text: str) -> None:
        for pane in self.query(SessionPane):
            pane.display = pane.view.matches(text)
