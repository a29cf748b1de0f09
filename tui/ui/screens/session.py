"""One session in full: transcript, usage per model request, the spec, and its controls."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from tui.client.protocol import CorralClient
from tui.core.money.pricing import default_pricing, format_usd
from tui.core.money.spend import hosted_cost
from tui.core.printable import printable, printable_line
from tui.core.session import events as ev
from tui.ui.fleet import EMPTY_FLEET, Fleet, SessionSnapshot
from tui.ui.screens.fleet_screen import FleetScreen
from tui.ui.screens.session_actions import SessionActions
from tui.ui.widgets.cost_ticker import CostTicker
from tui.ui.widgets.key_hints import KeyHints
from tui.ui.widgets.transcript import Transcript


class SessionScreen(SessionActions):
    DEFAULT_CSS = """
    SessionScreen { layout: vertical; }
    SessionScreen > .session--header { height: 2; padding: 0 1; }
    SessionScreen TabbedContent { height: 1fr; }
    SessionScreen #message { dock: bottom; margin: 0 1 1 1; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("y", "approve(True)", "Allow"),
        Binding("d", "approve(False)", "Deny…"),
        Binding("p", "control('pause')", "Pause"),
        Binding("r", "control('resume')", "Resume"),
        Binding("i", "control('interrupt')", "Interrupt"),
        Binding("x", "control('cancel')", "Cancel"),
        Binding("m", "focus_message", "Message"),
        Binding("h", "timeline", "Timeline"),
        Binding("k", "checkpoint", "Checkpoint"),
        Binding("b", "budget", "Budget"),
        Binding("e", "policy", "Permissions"),
    ]

    # The session as the latest fleet has it; identity equality: a new one repaints.
    snapshot: reactive[SessionSnapshot] = reactive(None, init=False, repaint=False)  # type: ignore[arg-type]

    def __init__(
        self,
        client: CorralClient,
        snapshot: SessionSnapshot,
        profiles_dir: Path,
        fleet: Fleet = EMPTY_FLEET,
    ) -> None:
        super().__init__(client, profiles_dir, fleet)
        self.set_reactive(SessionScreen.snapshot, snapshot)
        self.session_id = snapshot.id
        self._requests: dict[str, int] = {}  # request start id -> its number
        self._models: dict[str, str] = {}  # request start id -> model priced
        self._last_seq = 0
        self._saving = Decimal(0)  # what prompt caching saved, over the requests seen

    def compose(self) -> ComposeResult:
        yield CostTicker().data_bind(FleetScreen.fleet)
        yield Static(classes="session--header")
        with TabbedContent(initial="transcript"):
            with TabPane("Transcript", id="transcript"):
                yield Transcript()
            with TabPane("Usage", id="usage"):
                yield DataTable(cursor_type="row", zebra_stripes=True)
            with TabPane("Spec", id="spec"):
                yield Static(self._spec_text())
        yield Input(
            placeholder="message the agent (enter sends; resumes an idle session)", id="message"
        )
        yield KeyHints()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(
            "#", "model", "input", "output", "cache read", "cache write", "cost", "cache saved", ""
        )
        self.show()
        self.load_events()

    def selected(self) -> SessionSnapshot:
        return self.snapshot

    def watch_fleet(self, fleet: Fleet) -> None:
        if snapshot := fleet.sessions.get(self.session_id):
            self.snapshot = snapshot

    def watch_snapshot(self, old: SessionSnapshot, new: SessionSnapshot) -> None:
        if not self.is_mounted:
            return  # on_mount shows it
        self.show()
        if new.version != old.version:
            self.load_events()

    def _spec_text(self) -> Text:
        spec = dict(self.snapshot.record.spec)
        spec.pop("path", None)
        # JSON escapes C0 controls but passes C1, bidi overrides and lone surrogates.
        return Text(printable(json.dumps(spec, indent=2, ensure_ascii=False)))

    def show(self) -> None:
        view = self.snapshot
        now = view.at
        label, _ = view.status
        state = view.state
        header = Text.assemble(
            (view.title, "bold"),
            "  ",
            (label, "bold"),
            "  ",
            (view.model, ""),
            "  ",
            (printable_line(f"{view.record.sandbox}: {view.record.isolation}"), "dim"),
            "\n",
            (f"{state.usage.requests} requests · {state.usage.total_tokens:,} tokens · ", "dim"),
            (format_usd(view.cost), "bold"),
            (f" · hosted {format_usd(hosted_cost(state, now))}", "dim"),
            (f" · caching saved {format_usd(self._saving)}", "dim"),
        )
        if view.pending():
            header.append("   ⚠ waiting for approval: y allow · d deny", style="bold reverse")
        header_widget = self.query_one(".session--header", Static)
        header_widget.update(header)
        header_widget.set_class(bool(view.pending()), "-approval")

    @work(exclusive=True, group="session-events")
    async def load_events(self) -> None:
        """New events since the last look, off the message loop; then update the widgets."""
        events = await self.client.events(self.session_id, after_seq=self._last_seq)
        if not events:
            return
        self._last_seq = events[-1].seq
        self.query_one(Transcript).add_events(events)
        table = self.query_one(DataTable)
        pricing = default_pricing()
        for event in events:
            if event.type == ev.SPAN_MODEL_REQUEST_START:
                self._requests[event.id] = len(self._requests) + 1
                self._models[event.id] = event.payload.get("model", "")
            elif event.type == ev.SPAN_MODEL_REQUEST_END:
                start = event.payload.get("model_request_start_id", "")
                model = self._models.get(start, "")
                u = event.payload.get("model_usage", {})
                table.add_row(
                    str(self._requests.get(start, "?")),
                    Text(printable_line(model)),  # a str cell would be parsed as markup
                    f"{u.get('input_tokens', 0):,}",
                    f"{u.get('output_tokens', 0):,}",
                    f"{u.get('cache_read_input_tokens', 0):,}",
                    f"{u.get('cache_creation_input_tokens', 0):,}",
                    format_usd(pricing.token_cost(model, u), 6),
                    format_usd(saved := pricing.cache_saving(model, u), 6),
                    "failed" if event.payload.get("is_error") else "",
                )
                self._saving += saved or 0
        self.show()

    def action_focus_message(self) -> None:
        self.query_one("#message", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.send_message(self.snapshot, text)
            event.input.value = ""
