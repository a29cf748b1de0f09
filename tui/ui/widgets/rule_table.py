"""One tool's rules as rows: decision and pattern, in the order they were written."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.core.permissions.policy import Rule
from tui.core.printable import printable_line

STYLE = {"allow": "green", "ask": "yellow", "deny": "bold red"}


class RuleTable(DataTable[Text | str]):
    DEFAULT_CSS = """
    RuleTable { height: 1fr; min-height: 6; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("#", "decision", "pattern")

    def show(self, rules: list[Rule], select: int | None = None) -> None:
        self.clear()
        for i, rule in enumerate(rules, 1):
            # A Text cell: a str cell is parsed as markup, and a pattern is anyone's text.
            pattern = Text(printable_line(rule.pattern))
            self.add_row(str(i), Text(rule.decision, style=STYLE[rule.decision]), pattern)
        if rules:
            self.move_cursor(row=min(select if select is not None else 0, len(rules) - 1))

    @property
    def selected(self) -> int | None:
        return self.cursor_row if self.row_count else None
