"""A session's card on the dashboard: status, model, sandbox, a live tail, tokens and cost."""

from __future__ import annotations

from collections.abc import Callable

import humanize
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.content import Content
from textual.errors import NoWidget
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import NoScreen, Widget
from textual.widgets import Static

from tui.core.money.pricing import format_usd
from tui.core.printable import printable_line
from tui.core.session.records import SANDBOX_NOTICE
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


def in_view(widget: Widget) -> bool:
    """Is any of ``widget`` on screen (not scrolled out of its container's view)?"""
    try:
        geometry = widget.screen.find_widget(widget)
    except (NoScreen, NoWidget):
        return True  # not laid out yet: paint, as before
    return geometry.clip.overlaps(geometry.region)


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

    # Equality of snapshots is identity: a new snapshot calls ``paint``, the same one does
    # not. No repaint of its own: ``paint`` updates the rows that changed, and repainting
    # the whole pane (border and all) on every flush was a third of each frame's cost.
    snapshot: reactive[SessionSnapshot] = reactive(None, init=False, repaint=False)  # type: ignore[arg-type]

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
        self._stale = False  # a snapshot came while out of view (``catch_up``)
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

    def show_session(self, snapshot: SessionSnapshot) -> None:
        """Show ``snapshot``, of this pane's session or of another one."""
        if snapshot.id != self.session_id:
            self.session_id = snapshot.id
            self.set_reactive(SessionPane.snapshot, snapshot)
            if self.is_mounted:
                self.paint(force=True)
        else:
            self.snapshot = snapshot  # the same snapshot repaints nothing

    def watch_snapshot(self) -> None:
        if not self.is_mounted:
            return
        if in_view(self):
            self.paint()
        else:
            # Scrolled out of sight: painting would change nothing on screen, and a
            # change to a widget off screen makes Textual rebuild its map of every widget
            # for the next frame (milliseconds per frame at 16 panes). ``catch_up`` paints
            # it once it is in view again.
            self._stale = True

    def catch_up(self) -> None:
        """Paint what changed while the pane was out of view, if it is in view now."""
        if self._stale and in_view(self):
            self._stale = False
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
            if not force and not in_view(static):
                self._stale = True  # a pane cut by the screen's edge: this row is past it
            elif force or not same_text(static.content, text):
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
        model = (self.snapshot.model, "bold")
        notice = record.metadata.get(SANDBOX_NOTICE)
        if notice:  # it runs on local only for want of an image: say how to get it
            return Text.assemble(model, "  ", (printable_line(str(notice)), "yellow"))
        isolation = record.isolation.split(" (")[0]
        sandbox = printable_line(f"{record.sandbox}: {isolation}")
        return Text.assemble(model, "  ", (sandbox, "dim"))

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
    lines (never the oldest) and the streaming line is never the one cut off.

    Drawn line by line (Textual's line API) from strips kept by content: when a new line
    arrives the others only move up, and a moved line is a dictionary lookup, not a new
    render (with 16 streaming panes the tail was the largest cost of a frame)."""

    DEFAULT_CSS = """
    PaneTail { height: 1fr; overflow: hidden; }
    """
    KEPT_STRIPS = 256

    def __init__(self, style: Callable[[str], str], classes: str = "") -> None:
        super().__init__(classes=classes)
        self._style = style
        self._lines: tuple[TailLine, ...] = ()
        self._streaming = ""
        self._strips: dict[tuple[str, str, int], Strip] = {}
        self._styles: dict[str, Style] = {}
        self._painted: list[tuple[str, str]] = []
        self._painted_size = Size(0, 0)

    def show(self, lines: tuple[TailLine, ...], streaming: str) -> None:
        self._lines, self._streaming = lines, streaming
        # Repaint only the rows that changed (the size is the CSS's, never the text's):
        # while a message streams that is its one line, not the whole tail.
        rows, size = self.rows(), self.size
        if size != self._painted_size or len(rows) != len(self._painted):
            self.refresh()
        else:
            for y, (old, new) in enumerate(zip(self._painted, rows, strict=True)):
                if old != new:
                    self.refresh(Region(0, y, size.width, 1))
        self._painted, self._painted_size = rows, size

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # a theme change: colours and the base style are new
        self._styles.clear()

    def rows(self) -> list[tuple[str, str]]:
        """(kind, text) per row as laid out for the current height, newest at the bottom."""
        rows = self.size.height
        if self._streaming:
            rows -= 1
        out = [(line.kind, line.text) for line in (self._lines[-rows:] if rows > 0 else ())]
        if self._streaming:
            out.append(("streaming", self._streaming))
        return out

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        rows = self.rows()
        if y >= len(rows):
            return Strip.blank(width, self.rich_style)
        kind, text = rows[y]
        key = (kind, text, width)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._row_strip(kind, text, width)
            if len(self._strips) >= self.KEPT_STRIPS:
                self._strips.clear()
            self._strips[key] = strip
        return strip

    def _row_strip(self, kind: str, text: str, width: int) -> Strip:
        base = self.rich_style
        if kind == "streaming":
            segments = [Segment(f"◆ {text}▌", base + self._rich("italic"))]
        else:
            segments = [
                Segment(f"{TAIL_MARK.get(kind, ' ')} ", base + self._rich("dim")),
                Segment(text, base + self._rich(TAIL_STYLE.get(kind, ""))),
            ]
        strip = Strip(segments)
        if strip.cell_length > width > 0:
            # Cut with an ellipsis in the style of what it ends, as the rows above are.
            kept = list(strip.crop(0, width - 1))
            style = kept[-1].style if kept else base
            strip = Strip([*kept, Segment("…", style)])
        return strip.extend_cell_length(width, base)

    def _rich(self, style: str) -> Style:
        parsed = self._styles.get(style)
        if parsed is None:
            parsed = Style.parse(self._style(style)) if style else Style()
            self._styles[style] = parsed
        return parsed

    @property
    def shown(self) -> list[str]:
        """The rows as painted now, for tests."""
        return [self.render_line(y).text.rstrip() for y in range(len(self.rows()))]
