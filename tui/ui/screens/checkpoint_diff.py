"""Two checkpoints side by side: changed files with their diffs, the transcript between
them and what it cost."""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tui.core.checkpoints.diff import CheckpointDiff
from tui.core.money.pricing import format_usd
from tui.core.printable import printable, printable_line
from tui.core.session import events as ev
from tui.core.session.describe import describe
from tui.ui.widgets.key_hints import KeyHints

MAX_DIFFS = 50  # files with a line diff on screen; the rest are listed only


class CheckpointDiffScreen(Screen[None]):
    DEFAULT_CSS = """
    CheckpointDiffScreen VerticalScroll { padding: 0 1; }
    CheckpointDiffScreen .diff--heading { text-style: bold; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, title: str, result: CheckpointDiff) -> None:
        super().__init__()
        self.heading = title
        self.result = result
        # The diff came with every changed file's text; the first MAX_DIFFS are shown.
        self.diffs = dict(list(result.texts.items())[:MAX_DIFFS])

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
        yield KeyHints()
