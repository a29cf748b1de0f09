"""What an edited policy would have decided for the session's recent tool uses."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.core.permissions.simulator import SimRow
from tui.core.printable import printable_line

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
            # Tool names, commands, paths and patterns are the model's or a policy file's:
            # Text cells, since a str cell is parsed as markup.
            self.add_row(
                f"#{row.seq}",
                Text(printable_line(row.tool)),
                Text(row.recorded, style=STYLE.get(row.recorded, "")),
                Text(row.simulated, style=f"{STYLE.get(row.simulated, '')} {mark}".strip()),
                Text(printable_line(row.subject[:70])),
                Text(printable_line(row.rule or "")),
            )
