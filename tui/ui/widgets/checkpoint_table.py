"""The checkpoints of one session as table rows: when, branch, turn, changes, cost."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.core.checkpoints.timeline import Timeline
from tui.core.money.pricing import format_usd
from tui.core.printable import printable_line


def note(label: str, skipped: int) -> str:
    """The label (anyone's text, made printable) and what the checkpoint could not capture."""
    text = printable_line(label)
    if skipped:
        text = f"{text} · {skipped} not captured" if text else f"{skipped} not captured"
    return text


class CheckpointTable(DataTable[Text | str]):
    DEFAULT_CSS = """
    CheckpointTable { height: 1fr; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(
            "", "#", "time", "branch", "turn", "kind", "changed", "files", "cost", "note"
        )

    def show(self, timeline: Timeline, marked: str | None) -> None:
        """Replace the rows, keeping the cursor on the same checkpoint when it is still there."""
        keep = self.selected_id
        self.clear()
        for row in timeline.rows:
            cp = row.checkpoint
            mark = "A" if cp.id == marked else ("●" if row.current else "○")
            style = "" if row.current else "dim"
            self.add_row(
                Text(mark, style="bold" if cp.id == marked else style),
                Text(f"#{row.number}", style=style),
                Text(f"{cp.created_at:%H:%M:%S}", style=style),
                Text(str(row.branch), style=style),
                Text(str(cp.turn), style=style),
                Text(printable_line(cp.kind), style=style),
                Text(str(cp.changed), style=style, justify="right"),
                Text(str(cp.files), style=style, justify="right"),
                Text(format_usd(cp.model_cost, 4), style=style, justify="right"),
                Text(note(cp.label, cp.skipped), style=style),
                key=cp.id,
            )
        if keep is not None and keep in {r.checkpoint.id for r in timeline.rows}:
            self.move_cursor(row=self.get_row_index(keep))
        elif timeline.rows:
            self.move_cursor(row=len(timeline.rows) - 1)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
