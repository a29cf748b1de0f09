"""One session's checkpoints along time, with its branches: diff, rewind or fork from any."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import humanize
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui.core.checkpoint_diff import compare
from tui.core.errors import CorralError
from tui.core.pricing import format_usd
from tui.core.printable import printable, printable_line
from tui.core.timeline import Timeline, build_timeline
from tui.core.views import SessionView
from tui.ui.screens.checkpoint_diff import CheckpointDiffScreen
from tui.ui.screens.confirm_rewind import ConfirmRewindScreen
from tui.ui.widgets.checkpoint_table import CheckpointTable
from tui.ui.widgets.cost_ticker import CostTicker

if TYPE_CHECKING:
    from tui.ui.app import CorralApp


class TimelineScreen(Screen[None]):
    DEFAULT_CSS = """
    TimelineScreen { layout: vertical; }
    TimelineScreen > .timeline--header { height: 2; padding: 0 1; }
    TimelineScreen > .timeline--detail { height: 5; padding: 0 1; border-top: solid $panel; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("d", "diff", "Diff"),
        Binding("space", "mark", "Mark A"),
        Binding("r", "rewind", "Rewind…"),
        Binding("f", "fork", "Fork"),
        Binding("k", "checkpoint", "Checkpoint now"),
    ]

    app: CorralApp  # type: ignore[assignment]

    def __init__(self, view: SessionView) -> None:
        super().__init__()
        self.view = view
        self.session_id = view.id
        self.timeline: Timeline | None = None
        self.marked: str | None = None

    def compose(self) -> ComposeResult:
        yield CostTicker()
        yield Static(classes="timeline--header")
        yield CheckpointTable()
        yield Static(classes="timeline--detail")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.app.update_tickers()  # the new screen's ticker shows totals at once

    # -- loading -------------------------------------------------------------------------

    @work(group="timeline", exclusive=True)
    async def reload(self) -> None:
        store = self.app.store
        events, checkpoints = await asyncio.gather(
            store.events(self.session_id), store.checkpoints(self.session_id)
        )
        self.timeline = build_timeline(events, checkpoints)
        self._show()

    def _show(self) -> None:
        timeline = self.timeline
        if timeline is None:
            return
        self.query_one(CheckpointTable).show(timeline, self.marked)
        abandoned = sum(1 for b in timeline.branches if b.abandoned)
        header = Text.assemble(
            (self.view.title, "bold"),
            f"  {len(timeline.rows)} checkpoints · {len(timeline.branches)} branches",
            f" ({abandoned} abandoned) · dead-end spend {format_usd(timeline.dead_end_spend, 4)}",
        )
        self.query_one(".timeline--header", Static).update(
            Text.assemble(header, "\n", ("● current branch  ○ abandoned  A marked for diff", "dim"))
        )
        self._show_detail()

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        cp_id = self.query_one(CheckpointTable).selected_id
        if self.timeline is None or cp_id is None:
            return
        row = self.timeline.row(cp_id)
        cp = row.checkpoint
        label = printable_line(f"{cp.kind}{' · ' + cp.label if cp.label else ''}")
        self.query_one(".timeline--detail", Static).update(
            Text.assemble(
                # `#N` is also how the CLI names it: corral rewind SESSION '#N'.
                (f"checkpoint #{row.number}", "bold"),
                f"  {label}\n",
                f"log position seq {cp.seq} on branch {row.branch}"
                f"{'' if row.current else ' (abandoned)'} · turn {cp.turn}\n",
                f"{cp.files} files, {humanize.naturalsize(cp.bytes)} · {cp.changed} paths changed"
                f" since the previous · {humanize.naturalsize(cp.stored_bytes)} newly stored\n",
                f"spent so far {format_usd(cp.model_cost, 4)}",
                f" · {humanize.intcomma(cp.tokens)} tokens",
                *(
                    [(f"\nnot captured ({cp.skipped}): {printable_line(cp.notes[0])}", "bold")]
                    if cp.skipped and cp.notes
                    else []
                ),
            )
        )

    def refresh_from_core(self) -> None:
        """The session changed (new events, maybe new checkpoints): read it again."""
        self.reload()

    # -- actions -------------------------------------------------------------------------

    def _selected(self) -> str | None:
        cp_id = self.query_one(CheckpointTable).selected_id
        if cp_id is None:
            self.notify("No checkpoint yet.", severity="warning")
        return cp_id

    def action_mark(self) -> None:
        cp_id = self._selected()
        self.marked = None if cp_id == self.marked else cp_id
        self._show()

    def action_diff(self) -> None:
        cp_id = self._selected()
        if cp_id is None or self.timeline is None:
            return
        row = self.timeline.row(cp_id)
        if self.marked and self.marked != cp_id:
            a = self.timeline.row(self.marked).checkpoint
        elif row.number > 1:
            a = self.timeline.rows[row.number - 2].checkpoint
        else:
            self.notify("The first checkpoint has nothing before it; mark another (space).")
            return
        self.show_diff(a.id, cp_id)

    @work(group="timeline-action")
    async def show_diff(self, a_id: str, b_id: str) -> None:
        store, checkpointer = self.app.store, self.app.supervisor.checkpointer
        events = await store.events(self.session_id)
        a = await store.get_checkpoint(self.session_id, a_id)
        b = await store.get_checkpoint(self.session_id, b_id)
        result = await asyncio.to_thread(compare, checkpointer, events, a, b)
        diffs = await asyncio.to_thread(CheckpointDiffScreen.render_diffs, checkpointer, result)
        self.app.push_screen(CheckpointDiffScreen(self.view.title, result, diffs))

    def action_rewind(self) -> None:
        cp_id = self._selected()
        if cp_id is not None:
            self.confirm_rewind(cp_id)

    @work(group="timeline-action")
    async def confirm_rewind(self, cp_id: str) -> None:
        try:
            _, target, changes = await self.app.supervisor.rewind_preview(self.session_id, cp_id)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        number = self.timeline.row(cp_id).number if self.timeline else 0
        screen = ConfirmRewindScreen(self.view.title, f"#{number} ({target.kind})", changes)
        if await self.app.push_screen_wait(screen):
            self.rewind(cp_id)

    @work(group="timeline-action")
    async def rewind(self, cp_id: str) -> None:
        try:
            _, changes = await self.app.supervisor.rewind(self.session_id, cp_id)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        number = self.timeline.row(cp_id).number if self.timeline else "?"
        self.notify(
            f"{self.view.title}: rewound to #{number}, {len(changes)} paths restored;"
            " paused on a new branch (r on the dashboard resumes)",
            markup=False,  # the title is anyone's text
        )
        self.reload()

    @work(group="timeline-action")
    async def action_fork(self) -> None:
        cp_id = self._selected()
        if cp_id is None:
            return
        try:
            new_id = await self.app.supervisor.fork(self.session_id, cp_id)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        self.notify(
            f"Forked {self.view.title} as {new_id[-8:]}; it waits for you to resume it.",
            markup=False,
        )

    @work(group="timeline-action")
    async def action_checkpoint(self) -> None:
        try:
            cp = await self.app.supervisor.checkpoint(self.session_id, "from the app")
        except (CorralError, OSError) as exc:
            self.notify(printable(f"No checkpoint: {exc}"), severity="error", markup=False)
            return
        self.notify(f"Checkpoint {cp.id[-8:]}: {cp.changed} paths changed since the last.")
        self.reload()
