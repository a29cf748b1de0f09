"""What an edited policy would have decided for the session's recent tool uses."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.core.simulator import SimRow

STYLE = {"allow": "green", "ask": "yellow", "deny": "bold red"}


class PolicyPreview(DataTable[Text | str]):
    DEFAULT_CSS = """
    PolicyPreview { height: 1fr; min-height: 6; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("#", "tool", "was", "now", "what", "rule")

    def show(self, rows: list[SimRow]) -> None:
        self.clear()
        for row in rows:
            mark = "bold reverse" if row.changed else ""
            self.add_row(
                f"#{row.seq}",
                row.tool,
                Text(row.recorded, style=STYLE.get(row.recorded, "")),
                Text(row.simulated, style=f"{STYLE.get(row.simulated, '')} {mark}".strip()),
                row.subject[:70],
                row.rule or "",
            )
