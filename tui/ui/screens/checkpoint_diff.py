"""Two checkpoints side by side: changed files with their diffs, the transcript between
them and what it cost."""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.core import events as ev
from tui.core.checkpoint_diff import CheckpointDiff
from tui.core.checkpoints import Checkpointer
from tui.core.describe import describe
from tui.core.pricing import format_usd
from tui.core.printable import printable, printable_line

MAX_DIFFS = 50  # files with a line diff on screen; the rest are listed only


class CheckpointDiffScreen(Screen[None]):
    DEFAULT_CSS = """
    CheckpointDiffScreen VerticalScroll { padding: 0 1; }
    CheckpointDiffScreen .diff--heading { text-style: bold; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, title: str, result: CheckpointDiff, diffs: dict[str, str]) -> None:
        super().__init__()
        self.heading = title
        self.result = result
        self.diffs = diffs

    @classmethod
    def render_diffs(cls, checkpointer: Checkpointer, result: CheckpointDiff) -> dict[str, str]:
        """The line diffs, read from the blob store: call off the message loop."""
        files = [c for c in result.changes if (c.after or c.before)[0] != "d"][:MAX_DIFFS]  # type: ignore[index]
        return {c.path: result.unified(checkpointer, c.path) for c in files}

    def compose(self) -> ComposeResult:
        # File names, the transcript and the diffs are the workspace's and the model's text:
        # all of it goes through printable and reaches widgets as Text, never as markup.
        r = self.result
        with VerticalScroll():
            yield Static(
                Text.assemble(
                    (printable_line(self.heading), "bold"),
                    f"  {r.a.id} (seq {r.a.seq}) → {r.b.id} (seq {r.b.seq})",
                )
            )
            yield Static(
                f"{len(r.changes)} paths changed · {len(r.events)} events · cost between:"
                f" {format_usd(r.cost, 4)}"
            )
            yield Static("Files", classes="diff--heading")
            sign = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}
            listing = Text()
            for change in r.changes:
                mark, style = sign[change.kind]
                listing.append(f"{mark} {printable_line(change.path)}\n", style=style)
            yield Static(listing or Text("(no file changed)", style="dim"))
            yield Static("Transcript", classes="diff--heading")
            lines = [
                f"#{e.seq:<4} {printable_line(describe(e, 110))}"
                for e in r.events
                if e.type != ev.SPAN_MODEL_REQUEST_START
            ]
            yield Static(Text("\n".join(lines) or "(nothing between them)"))
            for path, text in self.diffs.items():
                yield Static(Text(printable_line(path)), classes="diff--heading")
                yield Static(Syntax(printable(text), "diff", theme="ansi_dark", word_wrap=True))
        yield Footer()
