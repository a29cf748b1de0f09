"""Start a session: pick a spec from sessions/ (title and description), or type a prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.client.protocol import CorralClient
from tui.core.errors import CorralError, SpecError
from tui.core.money.estimate import format_estimate
from tui.core.printable import printable, printable_line
from tui.core.session.spec import SessionSpec
from tui.core.session.spec_reader import load_spec


@dataclass(frozen=True)
class NewSession:
    spec: SessionSpec | None = None
    prompt: str = ""
    workspace: str = ""
    model: str = ""


def spec_choices(directory: Path) -> list[tuple[Path, SessionSpec | SpecError]]:
    choices: list[tuple[Path, SessionSpec | SpecError]] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            choices.append((path, load_spec(path)))
        except SpecError as exc:
            choices.append((path, exc))
    return choices


class NewSessionScreen(ModalScreen[NewSession | None]):
    DEFAULT_CSS = """
    NewSessionScreen { align: center middle; }
    NewSessionScreen > Vertical { width: 100; height: auto; max-height: 90%; padding: 1 2; }
    NewSessionScreen OptionList { height: auto; max-height: 16; }
    NewSessionScreen Input { margin-top: 1; }
    NewSessionScreen Horizontal { height: auto; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, specs_dir: Path, client: CorralClient) -> None:
        super().__init__()
        self.client = client  # for estimates
        self.choices = spec_choices(specs_dir)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("New session — pick a spec", style="bold"))
            options = []
            # Spec files may come from anywhere (an imported bundle): their names, titles
            # and descriptions are shown as printable Text.
            for path, spec in self.choices:
                name = printable_line(path.name)
                if isinstance(spec, SpecError):
                    problem = printable(str(spec.problem))
                    prompt = Text.assemble((name, "bold"), "\n", (problem, "italic"))
                    options.append(Option(prompt, id=str(path), disabled=True))
                else:
                    title = printable_line(spec.title)
                    about = printable(spec.description) if spec.description else name
                    prompt = Text.assemble((title, "bold"), "\n", (about, "dim"))
                    options.append(Option(prompt, id=str(path)))
            yield OptionList(*options, id="specs")
            yield Label(Text("", style="dim"), id="estimate")
            yield Label(Text("…or an ad-hoc session", style="bold"))
            yield Input(placeholder="prompt: what should the agent do?", id="prompt")
            yield Input(
                placeholder="workspace directory (used in place; empty for a fresh one)",
                id="workspace",
            )
            yield Input(placeholder="model: scripted:PATH or a claude-… id", id="model")
            with Horizontal():
                yield Button("Start ad-hoc", variant="primary", id="start")
                yield Button("Cancel (esc)", id="cancel")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        spec = dict(self.choices).get(Path(event.option.id or ""))
        if isinstance(spec, SessionSpec):
            self.show_estimate(spec)

    @work(exclusive=True, group="estimate")
    async def show_estimate(self, spec: SessionSpec) -> None:
        """Cost and time before it runs: from history when there is some (off the loop)."""
        try:
            estimate = await self.client.estimate(spec)
        except (CorralError, OSError, ValueError) as exc:
            problem = printable_line(f"no estimate: {exc}")
            self.query_one("#estimate", Label).update(Text(problem, style="dim"))
            return
        text = printable_line(format_estimate(estimate).replace("\n", " · "))
        self.query_one("#estimate", Label).update(Text(text, style="dim"))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        path = Path(event.option.id or "")
        spec = dict(self.choices).get(path)
        if isinstance(spec, SessionSpec):
            self.dismiss(NewSession(spec=spec))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self._start_ad_hoc()
        else:
            self.dismiss(None)

    def on_input_submitted(self) -> None:
        self._start_ad_hoc()

    def _start_ad_hoc(self) -> None:
        prompt = self.query_one("#prompt", Input).value.strip()
        if not prompt:
            self.notify("An ad-hoc session needs a prompt.", severity="warning")
            return
        self.dismiss(
            NewSession(
                prompt=prompt,
                workspace=self.query_one("#workspace", Input).value.strip(),
                model=self.query_one("#model", Input).value.strip(),
            )
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
