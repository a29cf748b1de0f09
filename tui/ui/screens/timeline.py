"""One session's checkpoints along time, with its branches: diff, rewind or fork from any."""

from __future__ import annotations

import humanize
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tui.client.protocol import CorralClient
from tui.core.checkpoints.timeline import Timeline
from tui.core.errors import CorralError
from tui.core.money.pricing import format_usd
from tui.core.printable import printable, printable_line
from tui.ui.fleet import EMPTY_FLEET, Fleet, SessionSnapshot
from tui.ui.screens.checkpoint_diff import CheckpointDiffScreen
from tui.ui.screens.confirm_rewind import ConfirmRewindScreen
from tui.ui.screens.fleet_screen import FleetScreen
from tui.ui.widgets.checkpoint_table import CheckpointTable
from tui.ui.widgets.cost_ticker import CostTicker
from tui.ui.widgets.key_hints import KeyHints


class TimelineScreen(FleetScreen):
    DEFAULT_CSS = """
    TimelineScreen { layout: vertical; }
    TimelineScreen > .timeline--header { height: 2; padding: 0 1; }
    TimelineScreen > .timeline--detail { height: 5; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("d", "diff", "Diff"),
        Binding("space", "mark", "Mark A"),
        Binding("r", "rewind", "Rewind…"),
        Binding("f", "fork", "Fork"),
        Binding("k", "checkpoint", "Checkpoint now"),
    ]

    def __init__(
        self, client: CorralClient, snapshot: SessionSnapshot, fleet: Fleet = EMPTY_FLEET
    ) -> None:
        super().__init__(client, fleet)
        self.snapshot = snapshot
        self.session_id = snapshot.id
        self.title_text = snapshot.title
        self.timeline: Timeline | None = None
        self.marked: str | None = None

    def compose(self) -> ComposeResult:
        yield CostTicker().data_bind(FleetScreen.fleet)
        yield Static(classes="timeline--header")
        yield CheckpointTable()
        yield Static(classes="timeline--detail")
        yield KeyHints()

    def on_mount(self) -> None:
        self.reload()

    def watch_fleet(self, fleet: Fleet) -> None:
        """The session logged something (maybe a checkpoint): read the timeline again."""
        snapshot = fleet.sessions.get(self.session_id)
        if snapshot is not None and snapshot.version != self.snapshot.version:
            self.snapshot = snapshot
            self.reload()

    # -- loading -------------------------------------------------------------------------

    @work(group="timeline", exclusive=True)
    async def reload(self) -> None:
        try:
            self.timeline = await self.client.timeline(self.session_id)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        self._show()

    def _show(self) -> None:
        timeline = self.timeline
        if timeline is None:
            return
        self.query_one(CheckpointTable).show(timeline, self.marked)
        abandoned = sum(1 for b in timeline.branches if b.abandoned)
        header = Text.assemble(
            (self.title_text, "bold"),
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
        try:
            result = await self.client.diff(self.session_id, a_id, b_id)
        except (CorralError, OSError) as exc:
            self.notify(printable(f"No diff: {exc}"), severity="error", markup=False)
            return
        self.app.push_screen(CheckpointDiffScreen(self.title_text, result))

    def action_rewind(self) -> None:
        cp_id = self._selected()
        if cp_id is not None:
            self.confirm_rewind(cp_id)

    @work(group="timeline-action")
    async def confirm_rewind(self, cp_id: str) -> None:
        try:
            preview = await self.client.rewind_preview(self.session_id, cp_id)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        number = self.timeline.row(cp_id).number if self.timeline else 0
        target = f"#{number} ({preview.target.kind})"
        screen = ConfirmRewindScreen(self.title_text, target, preview.changes)
        if await self.app.push_screen_wait(screen):
            # An app worker: leaving the timeline must not cancel a rewind half way.
            self.app.run_worker(self._rewind(cp_id, number), group="control")

    async def _rewind(self, cp_id: str, number: int) -> None:
        try:
            rewound = await self.client.rewind(self.session_id, cp_id)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        self.notify(
            f"{self.title_text}: rewound to #{number}, {len(rewound.changes)} paths restored;"
            " paused on a new branch (r on the dashboard resumes)",
            markup=False,  # the title is anyone's text
        )
        self._reload_if_shown()

    def action_fork(self) -> None:
        cp_id = self._selected()
        if cp_id is not None:
            self.app.run_worker(self._fork(cp_id), group="control")

    async def _fork(self, cp_id: str) -> None:
        try:
            new_id = await self.client.fork(self.session_id, cp_id)
        except CorralError as exc:
            self.notify(printable(str(exc)), severity="error", markup=False)
            return
        self.notify(
            f"Forked {self.title_text} as {new_id[-8:]}; it waits for you to resume it.",
            markup=False,
        )

    def action_checkpoint(self) -> None:
        self.app.run_worker(self._checkpoint(), group="control")

    async def _checkpoint(self) -> None:
        try:
            cp = await self.client.checkpoint(self.session_id, "from the app")
        except (CorralError, OSError) as exc:
            self.notify(printable(f"No checkpoint: {exc}"), severity="error", markup=False)
            return
        self.notify(f"Checkpoint {cp.id[-8:]}: {cp.changed} paths changed since the last.")
        self._reload_if_shown()  # a checkpoint logs no event: no fleet change says so

    def _reload_if_shown(self) -> None:
        if self.is_attached:
            self.reload()
