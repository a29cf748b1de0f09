"""A session's card on the dashboard: status, model, sandbox, a live tail, tokens and cost."""

from __future__ import annotations

import humanize
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from tui.core.money.pricing import format_usd
from tui.core.printable import printable_line
from tui.core.session.views import TailLine
from tui.ui.fleet import SessionSnapshot

STATUS_KEYS = (
    "running",
    "rescheduling",
    "approval",
    "done",
    "paused",
    "interrupted",
    "budget",
    "error",
    "terminated",
)
TAIL_STYLE = {
    "user": "bold",
    "agent": "",
    "thinking": "italic dim",
    "tool": "bold $accent",
    "result": "dim",
    "error": "$error",
    "status": "$warning",
}
TAIL_MARK = {
    "user": ">",
    "agent": "◆",
    "thinking": "…",
    "tool": "$",
    "result": " ",
    "error": "!",
    "status": "•",
}


def short_duration(seconds: object) -> str:
    """Compact elapsed time for a narrow pane: 8s, 3m12s, 1h04m."""
    total = int(float(seconds))  # type: ignore[arg-type]
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


TAIL_ROWS = 8


def same_text(old: object, new: Text) -> bool:
    """Would showing ``new`` change nothing? (Text's == ignores the base style.)"""
    return isinstance(old, Text) and old == new and old.style == new.style


def set_row(static: Static, text: Text) -> None:
    # Every row's size is fixed by the CSS (height 1 or 1fr, the pane's width), so new text
    # never needs a layout; Static.update's default (layout=True) reflows the whole screen,
    # which with 16 streaming panes was most of each frame's cost.
    static.update(text, layout=False)


class SessionPane(Widget, can_focus=True):
    """Shows ``snapshot``; the dashboard gives it a new one when the session changes."""

    DEFAULT_CSS = """
    SessionPane {
        height: 13;
        layout: vertical;
        padding: 0 1;
    }
    SessionPane > Static { text-wrap: nowrap; text-overflow: ellipsis; }
    SessionPane > .pane--title { height: 1; }
    SessionPane > .pane--meta { height: 1; }
    SessionPane > .pane--tail { height: 1fr; overflow: hidden; }
    SessionPane > .pane--usage { height: 1; }
    """

    # Equality of snapshots is identity: a new snapshot repaints, the same one does not.
    snapshot: reactive[SessionSnapshot] = reactive(None, init=False)  # type: ignore[arg-type]

    class Opened(Message):
        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    def __init__(self, snapshot: SessionSnapshot) -> None:
        super().__init__(id=f"pane-{snapshot.id}")
        self.session_id = snapshot.id
        self.set_reactive(SessionPane.snapshot, snapshot)
        self._borders: tuple[str, str] | None = None
        self._shown_version = -1
        # Held, not queried: the rows are painted from on_mount on.
        self._title = Static(classes="pane--title")
        self._meta = Static(classes="pane--meta")
        self._tail = Static(classes="pane--tail")
        self._usage = Static(classes="pane--usage")

    def compose(self) -> ComposeResult:
        yield self._title
        yield self._meta
        yield self._tail
        yield self._usage

    def on_mount(self) -> None:
        self.paint(force=True)

    def watch_snapshot(self) -> None:
        if self.is_mounted:
            self.paint()

    def on_click(self, event: events.Click) -> None:
        # A click focuses the pane (Textual does that); a double click opens it.
        if event.chain >= 2:
            self.post_message(self.Opened(self.session_id))

    def paint(self, *, force: bool = False) -> None:
        """Repaint from the snapshot; only the rows whose text changed are updated."""
        snap = self.snapshot
        label, key = snap.status
        for status in STATUS_KEYS:
            self.set_class(status == key, f"-{status}")
        # Setting a border title repaints the whole pane even when it is the same text:
        # only set what changed.
        if force or self._borders != (snap.title, label):
            self._borders = (snap.title, label)
            # Content, not str: a str border title is parsed as markup, and a session's
            # title is anyone's text ("[@click=app.quit]" would become a live link).
            self.border_title = Content(snap.title)
            self.border_subtitle = Content(label)
        for static, text in (
            (self._title, self._title_text()),
            (self._meta, self._meta_text()),
            (self._usage, self._usage_text()),
        ):
            if force or not same_text(static.content, text):
                set_row(static, text)
        if force or snap.version != self._shown_version:
            self._shown_version = snap.version
            set_row(self._tail, self._tail_text())

    def on_resize(self) -> None:
        # How many tail rows fit may have changed: redraw them for the new height.
        set_row(self._tail, self._tail_text())

    def _title_text(self) -> Text:
        pending = self.snapshot.pending()
        if not pending:
            return Text(self.snapshot.status[0], style="bold")
        _, use = pending[0]
        name = printable_line(str(use.get("name")))
        return Text.assemble(("⚠ approve? ", "bold reverse"), f" {name}  y allow · d deny · a more")

    def _meta_text(self) -> Text:
        record = self.snapshot.record
        isolation = record.isolation.split(" (")[0]
        sandbox = printable_line(f"{record.sandbox}: {isolation}")
        return Text.assemble((self.snapshot.model, "bold"), "  ", (sandbox, "dim"))

    def _usage_text(self) -> Text:
        snap = self.snapshot
        state, now = snap.state, snap.at
        usage = state.usage
        return Text.assemble(
            (format_usd(snap.cost), "bold"),
            "  ",
            (f"{humanize.intcomma(usage.total_tokens)} tok · {usage.requests} req", ""),
            "  ",
            (
                f"{short_duration(state.active_at(now))} active"
                f" / {short_duration(state.duration_at(now))}",
                "dim",
            ),
        )

    def _style(self, style: str) -> str:
        """Rich style text whose ``$name`` words are the current theme's colours."""
        theme = self.app.current_theme
        words = [
            (getattr(theme, w[1:], None) or "") if w.startswith("$") else w for w in style.split()
        ]
        return " ".join(w for w in words if w)

    def _tail_text(self) -> Text:
        # Newest lines win: when the pane is squeezed, or a line is still streaming, the
        # oldest ones are dropped rather than the newest being cut off at the bottom.
        snap = self.snapshot
        rows = min(TAIL_ROWS, self._tail.size.height or TAIL_ROWS)
        if snap.streaming:
            rows -= 1
        lines: tuple[TailLine, ...] = snap.tail[-rows:] if rows > 0 else ()
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, line in enumerate(lines):
            if n:
                text.append("\n")
            text.append(f"{TAIL_MARK.get(line.kind, ' ')} ", style="dim")
            text.append(line.text, style=self._style(TAIL_STYLE.get(line.kind, "")))
        if snap.streaming:
            text.append(
                ("\n" if lines else "") + "◆ " + snap.streaming_line(200) + "▌",
                style="italic",
            )
        return text
