"""The approval prompt: allow or deny one tool use, optionally telling the agent why."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui.core.permissions.policy import Rule
from tui.core.permissions.simulator import propose_rule
from tui.core.printable import printable, printable_line
from tui.core.session.describe import tool_subject


@dataclass(frozen=True)
class Decision:
    allow: bool
    message: str | None = None
    always: Rule | None = None  # "always allow this": the rule to add to the session's policy


class ApprovalScreen(ModalScreen[Decision | None]):
    DEFAULT_CSS = """
    ApprovalScreen { align: center middle; }
    ApprovalScreen > Vertical { width: 80; height: auto; max-height: 80%; padding: 1 2; }
    ApprovalScreen .approval--input { height: auto; max-height: 12; overflow-y: auto; }
    ApprovalScreen Horizontal { height: auto; margin-top: 1; }
    ApprovalScreen Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("ctrl+y", "allow", "Allow"),
        Binding("ctrl+n", "deny", "Deny"),
        Binding("ctrl+l", "always", "Always allow this"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, session_title: str, tool_use: dict[str, Any]) -> None:
        super().__init__()
        self.session_title = session_title
        self.tool_use = tool_use
        # Shown before it applies: the precise rule "always allow" would add.
        self.proposal = propose_rule(tool_use.get("name", ""), tool_use.get("input", {}))

    def compose(self) -> ComposeResult:
        # The tool use is the model's: its name, input and the reason it was asked about are
        # shown as printable Text, so none of it is obeyed by the terminal or read as markup.
        raw_name = self.tool_use.get("name", "?")
        name = printable_line(str(raw_name))
        tool_input = self.tool_use.get("input", {})
        subject = printable(tool_subject(raw_name, tool_input))
        shown_input = printable(json.dumps(tool_input, indent=2, ensure_ascii=False))
        reason = printable(str(self.tool_use.get("permission_reason", "")))
        with Vertical(classes="approval"):
            yield Label(
                Text.assemble(
                    ("Approve a tool use", "bold"), f" — {printable_line(self.session_title)}"
                )
            )
            yield Static(Text.assemble((f"{name}: ", "bold"), subject))
            yield Static(Text(shown_input, style="dim"), classes="approval--input")
            yield Static(Text(reason, style="dim italic"))
            yield Input(
                placeholder="optional: tell the agent why (sent with a deny)", id="deny-message"
            )
            if self.proposal is not None:
                yield Static(
                    Text.assemble(
                        ("Always allow this adds: ", "dim"),
                        (printable_line(f"{name}: allow {self.proposal.pattern!r}"), "bold"),
                    ),
                    id="proposal",
                )
            with Horizontal():
                yield Button("Allow (ctrl+y)", variant="success", id="allow")
                if self.proposal is not None:
                    yield Button("Always allow this (ctrl+l)", id="always")
                yield Button("Deny (ctrl+n)", variant="error", id="deny")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"allow": self.action_allow, "deny": self.action_deny, "always": self.action_always}.get(
            event.button.id or "", self.action_cancel
        )()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_deny() if event.value.strip() else self.action_allow()

    def action_allow(self) -> None:
        self.dismiss(Decision(True))

    def action_always(self) -> None:
        if self.proposal is not None:
            self.dismiss(Decision(True, always=self.proposal))

    def action_deny(self) -> None:
        message = self.query_one("#deny-message", Input).value.strip()
        self.dismiss(Decision(False, message or None))

    def action_cancel(self) -> None:
        self.dismiss(None)
