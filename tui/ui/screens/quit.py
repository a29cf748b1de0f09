"""Asked on quit while sessions work: they go on in the server (detach), or stop here."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

QuitChoice = Literal["detach", "stop"]


class QuitScreen(ModalScreen[QuitChoice | None]):
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 68; height: auto; padding: 1 2; }
    QuitScreen Horizontal { height: auto; margin-top: 1; }
    QuitScreen Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("d,q,enter", "choose('detach')", "Detach"),
        Binding("s", "choose('stop')", "Stop them all"),
        Binding("escape", "choose(None)", "Cancel"),
    ]

    def __init__(self, running: int) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.running} session(s) working.")
            yield Label(
                "They keep running in the corral server when you leave; `corral` shows them"
                " again, with what happened meanwhile."
            )
            with Horizontal():
                yield Button("Detach (d)", variant="primary", id="detach")
                yield Button("Stop them all (s)", variant="error", id="stop")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id if event.button.id in ("detach", "stop") else None)

    def action_choose(self, choice: QuitChoice | None) -> None:
        self.dismiss(choice)
