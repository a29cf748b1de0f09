"""Asked on quit while sessions run: stop them, or leave them resumable."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

QuitChoice = Literal["leave", "stop"]


class QuitScreen(ModalScreen[QuitChoice | None]):
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 64; height: auto; padding: 1 2; }
    QuitScreen Horizontal { height: auto; margin-top: 1; }
    QuitScreen Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("l", "choose('leave')", "Leave resumable"),
        Binding("s", "choose('stop')", "Stop them"),
        Binding("escape", "choose(None)", "Cancel"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.running} session(s) still running.")
            yield Label("Leave them idle and resumable, or stop (terminate) them?")
            with Horizontal():
                yield Button("Leave resumable (l)", variant="primary", id="leave")
                yield Button("Stop them (s)", variant="error", id="stop")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id if event.button.id in ("leave", "stop") else None)

    def action_choose(self, choice: QuitChoice | None) -> None:
        self.dismiss(choice)
