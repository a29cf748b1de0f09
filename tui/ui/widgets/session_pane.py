"""A session's card on the dashboard: status, model, sandbox, a live tail, tokens and cost."""

from __future__ import annotations

from collections.abc import Callable

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
        height: 100%;
        layout: vertical;
        padding: 0 1;
    }
    SessionPane > Static { text-wrap: nowrap; text-overflow: ellipsis; }
    SessionPane > .pane--title { height: 1; }
    SessionPane > .pane--meta { height: 1; }
    SessionPane > .pane--usage { height: 1; }
    """

    # Equality of snapshots is identity: a new snapshot repaints, the same one does not.
    snapshot: reactive[SessionSnapshot] = reactive(None, init=False)  # type: ignore[arg-type]

    class Opened(Message):
        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    def __init__(self, snapshot: SessionSnapshot, *, with_id: bool = True) -> None:
        # An id (for tests and clicks) where one pane per session is shown; the compact
        # layout's few panes come and go, and take none.
        super().__init__(id=f"pane-{snapshot.id}" if with_id else None)
        self.session_id = snapshot.id
        self.set_reactive(SessionPane.snapshot, snapshot)
        self._borders: tuple[str, str] | None = None
        self._shown_version = -1
        # Held, not queried: the rows are painted from on_mount on.
        self._title = Static(classes="pane--title")
        self._meta = Static(classes="pane--meta")
        self._tail = PaneTail(self._style, classes="pane--tail")
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
            self._tail.show(snap.tail, snap.streaming_line(200) if snap.streaming else "")

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


class PaneTail(Widget):
    """The newest lines of a session, as many as fit, and the line still streaming below
    them. Laid out at paint time for the height it has, so a short pane shows the newest
    lines (never the oldest) and the streaming line is never the one cut off."""

    DEFAULT_CSS = """
    PaneTail { height: 1fr; overflow: hidden; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, style: Callable[[str], str], classes: str = "") -> None:
        super().__init__(classes=classes)
        self._style = style
        self._lines: tuple[TailLine, ...] = ()
        self._streaming = ""

    def show(self, lines: tuple[TailLine, ...], streaming: str) -> None:
        self._lines, self._streaming = lines, streaming
        self.refresh()  # a repaint; the size is the CSS's, never the text's

    def render(self) -> Text:
        rows = self.size.height
        if self._streaming:
            rows -= 1
        lines = self._lines[-rows:] if rows > 0 else ()
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, line in enumerate(lines):
            if n:
                text.append("\n")
            text.append(f"{TAIL_MARK.get(line.kind, ' ')} ", style="dim")
            text.append(line.text, style=self._style(TAIL_STYLE.get(line.kind, "")))
        if self._streaming:
            text.append(("\n" if lines else "") + "◆ " + self._streaming + "▌", style="italic")
        return text

    @property
    def shown(self) -> list[str]:
        """The rows as painted now, for tests."""
        return self.render().plain.splitlines()
