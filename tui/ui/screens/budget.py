"""Set or raise a session's cost cap; a session stopped at its budget then goes on."""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tui.core.errors import SpecError
from tui.core.money.amounts import parse_money
from tui.core.money.pricing import format_usd
from tui.core.printable import printable_line

NO_CAP = "none"


class BudgetScreen(ModalScreen[Decimal | str | None]):
    """Dismisses with the new cap, ``NO_CAP`` to lift it, or None when cancelled."""

    DEFAULT_CSS = """
    BudgetScreen { align: center middle; }
    BudgetScreen > Vertical { width: 72; height: auto; padding: 1 2; }
    BudgetScreen #budget-error { height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, current: Decimal | None, spent: Decimal | None) -> None:
        super().__init__()
        self.heading = title
        self.current = current
        self.spent = spent

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text.assemble(("Budget", "bold"), f" — {printable_line(self.heading)}"))
            yield Label(
                f"spent {format_usd(self.spent)} · cap now "
                f"{format_usd(self.current) if self.current is not None else 'none'}"
            )
            yield Input(
                value="" if self.current is None else str(self.current),
                placeholder="max list cost in USD, e.g. 2.50 ('none' lifts the cap)",
                id="max-cost",
            )
            yield Label("", id="budget-error")

    def on_input_changed(self, event: Input.Changed) -> None:
        # Validation as you type: a bad amount says why before it can be submitted. The
        # problem quotes what was typed, so it is Text: never parsed as markup.
        problem = printable_line(self._problem(event.value) or "")
        self.query_one("#budget-error", Label).update(Text(problem))

    def _problem(self, value: str) -> str | None:
        if value.strip().lower() in ("", NO_CAP):
            return None
        try:
            parse_money(value.strip(), "budget", "max_list_cost")
        except SpecError as exc:
            return exc.problem
        return None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if self._problem(value):
            return
        if value.lower() in ("", NO_CAP):
            self.dismiss(NO_CAP)
        else:
            self.dismiss(parse_money(value, "budget", "max_list_cost"))

    def action_cancel(self) -> None:
        self.dismiss(None)
