"""Asked before a rewind: what the workspace will lose, then yes or no."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from tui.core.checkpoints.scan import Change
from tui.core.printable import printable_line

SHOWN = 200  # paths listed; the rest are counted


class ConfirmRewindScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmRewindScreen { align: center middle; }
    ConfirmRewindScreen > Vertical { width: 90; height: auto; max-height: 80%; padding: 1 2; }
    ConfirmRewindScreen VerticalScroll { height: auto; max-height: 20; margin-top: 1; }
    ConfirmRewindScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmRewindScreen Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("ctrl+y", "answer(True)", "Rewind"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, target: str, changes: list[Change]) -> None:
        super().__init__()
        self.heading = title
        self.target = target
        self.changes = changes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                Text.assemble(
                    ("Rewind ", "bold"),
                    printable_line(self.heading),
                    " to ",
                    (printable_line(self.target), "bold"),
                )
            )
            yield Label(self._summary())
            with VerticalScroll():
                yield Static(self._lines())
            yield Label(
                Text(
                    "The log keeps the abandoned branch; its spend is shown as dead-end spend.",
                    style="dim",
                )
            )
            with Horizontal():
                yield Button("Rewind (ctrl+y)", variant="warning", id="yes")
                yield Button("Cancel (esc)", id="no")

    def _summary(self) -> Text:
        if not self.changes:
            return Text("The workspace already matches this checkpoint; only the log branches.")
        counts = {
            k: sum(1 for c in self.changes if c.kind == k) for k in ("added", "changed", "removed")
        }
        return Text(
            f"The workspace loses what happened since: {counts['removed']} paths deleted,"
            f" {counts['changed']} reverted, {counts['added']} brought back."
        )

    def _lines(self) -> Text:
        # Phrased from the workspace's side: what a rewind takes away or brings back.
        verb = {
            "added": ("restored", "green"),
            "changed": ("reverted", "yellow"),
            "removed": ("deleted", "red"),
        }
        out = Text()
        for change in self.changes[:SHOWN]:
            word, style = verb[change.kind]
            out.append(f"{word:<9}", style=style)
            out.append(f" {printable_line(change.path)}\n")  # a file name is anyone's text
        if len(self.changes) > SHOWN:
            out.append(f"… and {len(self.changes) - SHOWN} more\n", style="dim")
        return out

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
