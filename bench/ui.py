"""Benchmark: the dashboard with 16 and 64 streaming sessions, against the same app showing 1,
with the engine in a server process of its own.

Each configuration gets a fresh data directory in a temp directory and its own server,
started here as a separate process (``corral --data-dir D serve --foreground
--max-concurrent 64``) and stopped with SIGTERM at the end. The app (``CorralApp``:
client, bridge, dashboard) runs headless at 160x48 in this process with
``App.run_test``, attached to that server over its Unix socket, so this process only
follows the feed and renders. Configurations: 16 sessions (panes); the peer, the same app
with 1 session; 64 sessions, past the 24 at which the dashboard shows a table of sessions
instead of a pane each; and, for reference, the same 16 sessions with no app attached
(the server alone), which shows what the server produces when nothing reads its stream.

* load, made inside the server process: every session runs the real runner, store,
  tools and checkpoints against a paced scripted model (``PacedScript``: the turns of a
  ``scripted:`` file, played in a loop): each turn streams 60 characters of text as 5
  deltas, then makes one ``read`` tool call on a small file in the session's own
  workspace (``local`` sandbox). A turn stores 5 events (request start; message, tool
  use and request end in one append; the tool result, committed with its workspace
  checkpoint: counted from the store in every window). Turn n of a session is due at
  start + n x 100 ms, so a session makes 50 stored events/s (and 50 deltas/s) while the
  server keeps up, and falls behind, without bursting to catch up, when it does not.
  The server is the real ``corral serve`` started through this file
  (``python bench/ui.py serve-paced --data-dir D serve ...``), which only makes the
  supervisor resolve models to ``PacedScript`` before handing over to corral's CLI.
  ``--load scripted`` runs plain ``python -m tui ... serve --speed S`` with a scripted
  file of 100 ms turns instead (its rate then depends on the runner's own time per
  turn and on the scripted provider's scan of the conversation, both growing).
* rates, both ends: produced is the growth of each session's last seq in the server's
  store (read here read-only with ``sqlite3``); delivered is the growth of each
  session's last seq in the fleet the bridge hands the screens (what the app can
  paint). Deltas delivered are counted as the bridge folds them (``CoreBridge._take``
  wrapped), and so are the feed's reconnections (the server drops a client that falls
  2,048 items behind; it then reads back what it missed and loses the deltas).
* frames: ``App._display`` is wrapped. Headless Textual builds each frame (the
  compositor's update) but skips turning it into terminal bytes; the wrapper does
  that step as well (``render_segments`` with the app's console), so a frame costs
  what it would on a terminal, and it records when each frame was written. Frame
  interval is the time between consecutive frames.
* key-to-paint: keys are sent the way a terminal driver sends them
  (``driver.send_message``, a thread-safe post onto the app's queue) and timed from
  just before sending to the end of the first frame that repaints what the key changed,
  while the widget it concerns has focus. A key not painted within 2 s is a miss;
  misses count as slower than any painted key in the percentiles. Probes: ``arrows``
  with panes (right then left: focus moves between the first two panes; painted when a
  frame repaints the top row, the border, of the pane focused), ``arrows`` with the
  table (down then up: the table's cursor moves a row; painted when a frame repaints
  the row the cursor moved to), and ``filter`` (``/`` opens the filter on the key line
  and focuses it; ``escape`` closes it and focuses the first pane or the table; painted
  when a frame repaints the top row of what got focus).
* CPU: this process (the app): ``time.process_time()`` (all threads) and
  ``time.thread_time()`` on the event loop's thread; the server: ``/proc/PID/stat``
  (all threads) and ``/proc/PID/task/PID/stat`` (its main thread, where its event loop
  runs); all as percentages of one core. ``other %`` is what the rest of the machine
  used over the same window (``/proc/stat``), to show when the figures were taken on a
  busy machine.

After every session streams into the app, a warm-up, then two windows in turn, with the
sessions streaming throughout: ``stream`` (no keys: events/s, frames, CPU) and ``keys``
(a key every 300-600 ms, seeded: key-to-paint; the JSON also has this window's frames
and load). ``--quick``: 2 s warm-up and 6 s windows (about 100 s in all, for four
configurations); full: 5 s and 60 s (about 6 minutes). The output ends with the
verdict against the aims: at 16 sessions, the full load delivered, p99 frame interval
< 50 ms and p99 key-to-paint < 100 ms; at 64 sessions (the table), p99 key-to-paint
< 150 ms.

Run ``python bench/ui.py [--quick] [--json] [--load paced|scripted] [--speed S]``;
``--json`` prints one JSON object (figures, machine, verdict) instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tui.ui  # noqa: F401  (first: it sets the app's frame-rate cap before Textual loads)
from tui.client.discovery import ping, read_info
from tui.core.engine import supervisor as supervisor_module
from tui.core.providers import resolve_provider
from tui.core.providers.base import DeltaSink, ModelProvider, ModelRequest, ModelResponse
from tui.core.providers.scripted import CHUNK, ScriptedProvider
from tui.core.session import events as ev
from tui.core.session.spec import SessionSpec
from tui.core.session.spec_reader import parse_spec
from tui.core.session.state import USAGE_FIELDS
from tui.core.store.bus import Delta, Item
from tui.core.store.datadir import db_path

if TYPE_CHECKING:
    from rich.console import RenderableType
    from textual.screen import Screen
    from textual.widget import Widget

    from tui.ui.app import CorralApp

# Textual and the app are imported where they are used, not here: this file is also the
# server's launcher (``serve-paced``), and the server should not carry them.

SIZE = (160, 48)
APP_SESSION_COUNTS = (16, 1, 64)
TARGET_EVENTS_PER_S = 50
EVENTS_PER_TURN = 5  # request start; message + tool use + request end; tool result
TURN_PERIOD_S = EVENTS_PER_TURN / TARGET_EVENTS_PER_S  # a turn every 100 ms
SCRIPT_TURNS = 10  # played in a loop by PacedScript
TURN_TEXT_CHARS = 60  # 5 deltas of 12 characters
KEY_GAP_S = (0.3, 0.6)
KEY_TIMEOUT_S = 2.0
SERVER_MAX_CONCURRENT = 64  # every session works at once (the default is 8)
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 30.0
COMPACT_AT = 24  # tui/ui/screens/dashboard.py: more sessions than this, a table
AIM_SESSIONS = 16
AIM_FRAME_P99_MS = 50.0
AIM_KEY_P99_MS = 100.0
AIM_COMPACT_SESSIONS = 64
AIM_COMPACT_KEY_P99_MS = 150.0
AIM_LOAD_SHARE = 0.95  # "full load": at least this share of 50 events/s per session
SERVE_PACED = "serve-paced"  # first argument: run corral's CLI with PacedScript models
TRACE_ENV = "CORRAL_BENCH_TRACE_DIR"  # for the server: tracemalloc, snapshots on SIGUSR1
NOTES = "\n".join(f"line {n}: the quick brown fox jumps over the lazy dog" for n in range(1, 6))


@dataclass
class Mode:
    warmup_s: float
    window_s: float  # each of the two windows


MODES = {"quick": Mode(warmup_s=2.0, window_s=6.0), "full": Mode(warmup_s=5.0, window_s=60.0)}


@dataclass
class Stats:
    count: int
    p50_ms: float | None  # None: no sample, or the percentile falls on a miss
    p99_ms: float | None
    max_ms: float | None
    missed: int = 0


@dataclass
class Window:
    seconds: float
    produced_events_per_s_per_session: float  # the server's store
    delivered_events_per_s_per_session: float | None  # the app's fleet (None: no app)
    delivered_deltas_per_s_per_session: float | None
    behind_events: int | None  # at the window's end: stored, not yet in the app's fleet
    events_per_turn: float | None  # stored events per model request, in the window
    event_types: dict[str, int]
    feed_reconnects: int | None
    frames: int
    frames_per_s: float
    frame_interval: Stats
    frame_write: Stats  # the wrapper's step: compositor update -> terminal bytes
    cpu_app_pct: float | None
    cpu_app_loop_pct: float | None
    cpu_server_pct: float | None
    cpu_server_loop_pct: float | None
    other_cpu_pct: float | None
    key_to_paint: dict[str, Stats] = field(default_factory=dict)


@dataclass
class Result:
    config: str
    sessions: int
    layout: str  # panes, table, or none (no app)
    stream: Window
    keys: Window | None  # None for the server-only reference
    load_average: tuple[float, float, float]  # when the configuration started
    notes: list[str] = field(default_factory=list)


# -- helpers ----------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def stats(seconds: list[float]) -> Stats:
    """Percentiles in ms; a miss is ``inf``: slower than anything, so never flattered."""
    if not seconds:
        return Stats(0, None, None, None)
    ordered = sorted(seconds)

    def ms(value: float) -> float | None:
        return None if math.isinf(value) else round(value * 1000, 2)

    return Stats(
        count=len(ordered),
        p50_ms=ms(percentile(ordered, 0.50)),
        p99_ms=ms(percentile(ordered, 0.99)),
        max_ms=ms(ordered[-1]),
        missed=sum(math.isinf(v) for v in ordered),
    )


def write_script(path: Path, turns: int = SCRIPT_TURNS, latency_ms: int = 0) -> Path:
    lines = ['price_as = "claude-sonnet-4-5"']
    for n in range(turns):
        text = f"Step {n}: reading notes.txt once more to check a line. ".ljust(TURN_TEXT_CHARS)
        lines += [
            "[[turns]]",
            f"text = {json.dumps(text[:TURN_TEXT_CHARS])}",  # a JSON string is a TOML one
            # Counts given: without them the provider sums the whole conversation per turn.
            "usage = { input_tokens = 900, output_tokens = 20 }",
        ]
        if latency_ms:
            lines.append(f"latency_ms = {latency_ms}")
        lines += ["[[turns.tool_uses]]", 'name = "read"', 'input = { file_path = "notes.txt" }']
    path.write_text("\n".join(lines) + "\n")
    return path


def make_specs(root: Path, sessions: int, script: Path) -> list[SessionSpec]:
    workspace = root / "workspace"
    workspace.mkdir(exist_ok=True)
    (workspace / "notes.txt").write_text(NOTES + "\n")
    specs = []
    for n in range(sessions):
        data = {
            "title": f"stream {n + 1:02d}",
            "prompt": "Keep reading notes.txt.",
            "agent": {
                "model": f"scripted:{script}",
                "tools": {"default": {"enabled": True, "permission_policy": "always_allow"}},
            },
            "environment": {"backend": "local"},
            "workspace": {"source": str(workspace)},  # copied per session
        }
        specs.append(parse_spec(data, source="bench", base=root))
    return specs


def system_busy_s() -> float | None:
    """CPU seconds used by the whole machine so far (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    jiffies = [int(f) for f in fields]
    busy = sum(jiffies[:8]) - jiffies[3] - jiffies[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int, tid: int | None = None) -> float | None:
    """CPU seconds (user + system) of a process, or of one of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def rss_kib(pid: int | str = "self") -> int | None:
    """Resident set size in KiB (VmRSS of /proc/PID/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# -- load (in the server process) ---------------------------------------------------------


class PacedScript:
    """A scripted model on a fixed schedule: one turn per period, turns played in a loop.

    The turns come from a ``scripted:`` file (parsed by ``ScriptedProvider.load``) and
    stream the way that provider streams them (``CHUNK``-character deltas spread over
    the turn, then the response). Two things differ, both so that the load is the
    same all through a run:

    * pacing: a fixed ``latency_ms`` would make the rate depend on the runner's own
      work per turn (appends, folds, the tool, the checkpoint), which grows with the
      number of sessions and the server's load. Turn n is due at start + n x period
      instead, and streams over what is left of its slot; a late turn starts a new
      schedule from now (no burst to catch up), so a session falls behind, never ahead.
    * turn choice: the scripted provider finds its turn by scanning the whole
      conversation on every call, which grows with every turn; here a counter picks
      it, and the script repeats (so a run may last hours).
    """

    def __init__(self, script: ScriptedProvider, period_s: float) -> None:
        self.script = script
        self.model_id = script.model_id
        self.price_model = script.price_model
        self.period_s = period_s
        self._played = 0
        self._due: float | None = None

    async def count_tokens(self, request: ModelRequest) -> int | None:
        return None  # no caps in this benchmark: never asked

    async def complete(self, request: ModelRequest, on_delta: DeltaSink) -> ModelResponse:
        now = time.perf_counter()
        previous = now if self._due is None else self._due
        self._due = max(previous + self.period_s, now)
        turn = self.script.turns[self._played % len(self.script.turns)]
        self._played += 1
        pieces = [("text", turn.text[i : i + CHUNK]) for i in range(0, len(turn.text), CHUNK)]
        for n, (kind, piece) in enumerate(pieces):
            on_delta(kind, piece)
            # Spread what is left of the slot over the remaining pieces.
            left = self._due - time.perf_counter()
            if left > 0:
                await asyncio.sleep(left / (len(pieces) - n))
        return ModelResponse(
            text=turn.text,
            thinking=turn.thinking,
            tool_calls=list(turn.tool_calls),
            stop_reason="tool_use" if turn.tool_calls else "end_turn",
            usage={name: int(turn.usage.get(name, 0)) for name in USAGE_FIELDS},
        )


def paced_provider(model_id: str, **options: Any) -> ModelProvider:
    script = resolve_provider(model_id, **options)  # options as the supervisor passes them
    assert isinstance(script, ScriptedProvider)
    return PacedScript(script, TURN_PERIOD_S)


class paced_models:
    """Within the block, the supervisor resolves every model to a ``PacedScript``."""

    def __enter__(self) -> None:
        if not hasattr(supervisor_module, "resolve_provider"):
            raise RuntimeError("tui.core.engine.supervisor no longer imports resolve_provider")
        self._saved = supervisor_module.resolve_provider
        supervisor_module.resolve_provider = paced_provider  # type: ignore[assignment]

    def __exit__(self, *_: object) -> None:
        supervisor_module.resolve_provider = self._saved  # type: ignore[assignment]


def serve_paced(argv: list[str]) -> int:
    """The server process: corral's own CLI (``serve --foreground``), paced models; with
    ``TRACE_ENV`` set, tracemalloc on and a snapshot dumped there at each SIGUSR1
    (``soak.py --trace-server``)."""
    from tui.cli import main as corral

    trace_dir = os.environ.get(TRACE_ENV)
    if trace_dir:
        tracemalloc.start(1)
        taken = itertools.count(1)

        def dump(*_: object) -> None:
            path = Path(trace_dir) / f"{next(taken)}.snapshot"
            tracemalloc.take_snapshot().dump(str(path))
            path.with_suffix(".done").touch()  # whole: the reader waits for this

        signal.signal(signal.SIGUSR1, dump)
    with paced_models():
        return corral(argv)


# -- the server process -----------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    output: Path  # its stdout and stderr

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_server(root: Path, data_dir: Path, load: str, speed: float) -> Server:
    """``corral serve --foreground`` in a process of its own; returns once it answers a ping."""
    data_dir.mkdir(parents=True, exist_ok=True)
    launcher = [sys.executable, __file__, SERVE_PACED] if load == "paced" else [sys.executable]
    command = [
        *launcher,
        *(["-m", "tui"] if load != "paced" else []),
        "--data-dir",
        str(data_dir),
        "serve",
        "--foreground",
        "--max-concurrent",
        str(SERVER_MAX_CONCURRENT),
        "--speed",
        repr(speed),
    ]
    # Not another server's address; the trace directory only when soak.py sets it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_SERVER")}
    output = root / "server.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C of the bench is ours to pass on (SIGTERM)
        )
    server = Server(proc, data_dir, output)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_info(data_dir)
        if info is not None and info.pid == proc.pid and ping(info) is not None:
            return server
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{server.tail()}")
        time.sleep(0.05)
    stop_server(server)
    raise RuntimeError(f"the server did not answer within {SERVER_START_TIMEOUT_S:g}s")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


class StoreReader:
    """The server's store, read-only from this process (WAL: never in the writer's way)."""

    def __init__(self, data_dir: Path) -> None:
        self.uri = f"{db_path(data_dir).as_uri()}?mode=ro"

    def _query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.uri, uri=True, timeout=10)) as db:
            return db.execute(sql, args).fetchall()

    def last_seqs(self) -> dict[str, int]:
        return dict(self._query("SELECT session_id, MAX(seq) FROM events GROUP BY session_id"))

    def last_rowid(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(rowid), 0) FROM events")[0][0])

    def types_after(self, rowid: int) -> dict[str, int]:
        rows = self._query("SELECT type, COUNT(*) FROM events WHERE rowid > ? GROUP BY type", rowid)
        return dict(sorted(rows))


# -- instrumentation ----------------------------------------------------------------------

Line = tuple[int, int, int]  # a screen row and the columns [left, right) a frame must repaint


def top_line(widget: Widget) -> Line | None:
    """The widget's top row (a pane's border, the key line, the table's header)."""
    region = widget.region
    return (region.y, region.x, region.right) if region else None


def cursor_line(row: int) -> Callable[[Widget], Line | None]:
    """The table's row ``row`` on screen, once the cursor is on it."""

    from textual.widgets import DataTable

    def line(widget: Widget) -> Line | None:
        assert isinstance(widget, DataTable)
        if widget.cursor_row != row:
            return None
        content = widget.content_region
        # The row as DataTable.refresh_row sees it: header included, scrolled.
        y = content.y + widget._get_row_region(row).y - round(widget.scroll_offset.y)
        if not content.y <= y < content.bottom:
            return None
        return y, content.x, content.right

    return line


@dataclass
class Probe:
    key: str
    kind: str
    target: Callable[[], Widget | None]  # the widget that must have focus once painted
    line: Callable[[Widget], Line | None] = top_line  # what a frame must repaint


class FrameRecorder:
    """Wraps ``App._display``: writes each frame as a terminal driver would, and times it."""

    def __init__(self, app: CorralApp, keep: bool = True) -> None:
        self.app = app
        self.keep = keep  # False: count frames only (a soak must not grow a list)
        self.recording = False
        self.count = 0
        self.frames: list[float] = []
        self.write_s: list[float] = []
        self.pending: tuple[Probe, float] | None = None
        self.painted = asyncio.Event()
        self.key_s: dict[str, list[float]] = {}
        self._original = app._display
        app._display = self._display  # type: ignore[method-assign]

    def reset(self) -> None:
        self.frames, self.write_s, self.key_s = [], [], {}

    def _display(self, screen: Screen, renderable: RenderableType | None) -> None:
        from textual._compositor import CompositorUpdate

        self._original(screen, renderable)
        # The same early outs as App._display: nothing would reach a terminal.
        if renderable is None or self.app._batch_count or not self.recording:
            return
        started = time.perf_counter()
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(self.app.console)  # what headless mode skips
        now = time.perf_counter()
        self.count += 1
        if self.keep:
            self.frames.append(now)
            self.write_s.append(now - started)
        if self.pending is not None:
            probe, sent = self.pending
            widget = probe.target()
            if widget is not None and self.app.focused is widget:
                line = probe.line(widget)
                if line is not None and repaints(renderable, line):
                    self.key_s.setdefault(probe.kind, []).append(now - sent)
                    self.pending = None
                    self.painted.set()

    async def press(self, probe: Probe) -> None:
        """Send one key as a terminal driver would; wait for its paint, or note a miss."""
        from textual import events

        self.painted.clear()
        self.pending = (probe, time.perf_counter())
        driver = self.app._driver
        assert driver is not None
        driver.send_message(events.Key(probe.key, None))
        try:
            await asyncio.wait_for(self.painted.wait(), KEY_TIMEOUT_S)
        except TimeoutError:
            self.key_s.setdefault(probe.kind, []).append(math.inf)
            self.pending = None


def repaints(update: RenderableType, line: Line) -> bool:
    """Does this frame repaint the screen row ``y`` across [left, right)?"""
    from textual._compositor import ChopsUpdate, LayoutUpdate

    y, left, right = line  # right is exclusive, as are spans
    if isinstance(update, LayoutUpdate):
        r = update.region
        return r.y <= y < r.bottom and r.x <= left and right <= r.right
    if isinstance(update, ChopsUpdate):
        return any(span_y == y and x1 <= left and right <= x2 for span_y, x1, x2 in update.spans)
    return False


def probes(app: CorralApp, sessions: int) -> Iterator[Probe]:
    from textual.widgets import DataTable

    from tui.ui.widgets.key_hints import KeyHints

    dashboard = app.dashboard

    def pane(index: int) -> Callable[[], Widget | None]:
        def find() -> Widget | None:
            panes = dashboard.panes()
            return panes[index] if len(panes) > index else None

        return find

    def table() -> Widget | None:
        return dashboard.compact.table if dashboard.compact is not None else None

    def filter_box() -> Widget | None:
        return dashboard.query_one(KeyHints)  # the filter is typed on the key line

    def cursor(key: str, step: int) -> Probe:
        # Built when it is due: the row it should reach is the current one plus a step.
        found = table()
        row = (found.cursor_row if isinstance(found, DataTable) else 0) + step
        return Probe(key, "arrows", table, cursor_line(row))

    if sessions > COMPACT_AT:
        while True:
            yield cursor("down", 1)
            yield cursor("up", -1)
            yield Probe("slash", "filter", filter_box)
            yield Probe("escape", "filter", table)
    cycle = [Probe("slash", "filter", filter_box), Probe("escape", "filter", pane(0))]
    if sessions > 1:
        cycle = [Probe("right", "arrows", pane(1)), Probe("left", "arrows", pane(0)), *cycle]
    while True:
        yield from cycle


class FeedCounter:
    """Counts what the bridge folds (events, deltas) and how often the feed reconnected."""

    def __init__(self, app: CorralApp) -> None:
        self.events = self.deltas = self.reconnects = 0
        bridge = app.bridge
        take = bridge._take

        def counted(item: Item) -> None:
            if isinstance(item, Delta):
                self.deltas += 1
            else:
                self.events += 1
            take(item)

        bridge._take = counted  # type: ignore[method-assign]
        feed = bridge._feed
        if feed is not None and hasattr(feed, "_catch_up"):
            catch_up = feed._catch_up

            async def counted_catch_up() -> None:
                self.reconnects += 1
                await catch_up()

            feed._catch_up = counted_catch_up


def fleet_seqs(app: CorralApp) -> dict[str, int]:
    return {sid: snap.state.last_seq for sid, snap in app.bridge.fleet.sessions.items()}


# -- measuring ------------------------------------------------------------------------


class Meter:
    """Load and CPU over one window: both ends' events, deltas, both processes' CPU."""

    def __init__(
        self,
        store: StoreReader,
        server: Server,
        app: CorralApp | None = None,
        feed: FeedCounter | None = None,
    ) -> None:
        self.store = store
        self.server = server
        self.app = app
        self.feed = feed

    async def start(self) -> None:
        self.produced = await asyncio.to_thread(self.store.last_seqs)
        self.rowid = await asyncio.to_thread(self.store.last_rowid)
        self.delivered = fleet_seqs(self.app) if self.app else {}
        self.deltas = self.feed.deltas if self.feed else 0
        self.reconnects = self.feed.reconnects if self.feed else 0
        self.busy = system_busy_s()
        self.server_cpu = proc_cpu_s(self.server.pid)
        self.server_loop = proc_cpu_s(self.server.pid, self.server.pid)
        self.cpu, self.loop = time.process_time(), time.thread_time()
        self.wall = time.perf_counter()

    async def stop(self, recorder: FrameRecorder | None = None) -> Window:
        wall = time.perf_counter() - self.wall
        cpu, loop = time.process_time() - self.cpu, time.thread_time() - self.loop
        busy = system_busy_s()
        server_cpu = delta(proc_cpu_s(self.server.pid), self.server_cpu)
        server_loop = delta(proc_cpu_s(self.server.pid, self.server.pid), self.server_loop)
        delivered_now = fleet_seqs(self.app) if self.app else {}
        deltas = (self.feed.deltas - self.deltas) if self.feed else 0
        produced_now = await asyncio.to_thread(self.store.last_seqs)
        types = await asyncio.to_thread(self.store.types_after, self.rowid)
        sessions = max(1, len(produced_now))
        produced = sum(v - self.produced.get(sid, 0) for sid, v in produced_now.items())
        delivered = sum(v - self.delivered.get(sid, 0) for sid, v in delivered_now.items())
        behind = sum(max(0, v - delivered_now.get(sid, 0)) for sid, v in produced_now.items())
        requests = types.get(ev.SPAN_MODEL_REQUEST_START, 0)
        other = None
        if busy is not None and self.busy is not None:
            mine = cpu if self.app else 0.0
            other = round(100 * max(0.0, busy - self.busy - mine - (server_cpu or 0)) / wall, 1)
        frames = recorder.frames if recorder else []
        intervals = [b - a for a, b in itertools.pairwise(frames)]

        def pct(seconds: float | None) -> float | None:
            return None if seconds is None else round(100 * seconds / wall, 1)

        def per_session(count: int) -> float:
            return round(count / wall / sessions, 1)

        return Window(
            seconds=round(wall, 2),
            produced_events_per_s_per_session=per_session(produced),
            delivered_events_per_s_per_session=per_session(delivered) if self.app else None,
            delivered_deltas_per_s_per_session=per_session(deltas) if self.app else None,
            behind_events=behind if self.app else None,
            events_per_turn=round(sum(types.values()) / requests, 3) if requests else None,
            event_types=types,
            feed_reconnects=(self.feed.reconnects - self.reconnects) if self.feed else None,
            frames=len(frames),
            frames_per_s=round(len(frames) / wall, 1),
            frame_interval=stats(intervals),
            frame_write=stats(recorder.write_s if recorder else []),
            cpu_app_pct=pct(cpu) if self.app else None,
            cpu_app_loop_pct=pct(loop) if self.app else None,
            cpu_server_pct=pct(server_cpu),
            cpu_server_loop_pct=pct(server_loop),
            other_cpu_pct=other,
            key_to_paint={
                k: stats(v) for k, v in sorted((recorder.key_s if recorder else {}).items())
            },
        )


def delta(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def script_for(root: Path, load: str, mode: Mode) -> Path:
    if load == "paced":
        return write_script(root / "stream.toml")
    # Enough 100 ms turns for the whole run, with room for a slow start.
    turns = int((mode.warmup_s + 2 * mode.window_s + 60) / TURN_PERIOD_S)
    return write_script(root / "stream.toml", turns, latency_ms=round(TURN_PERIOD_S * 1000))


def streaming(app: CorralApp, sessions: int) -> bool:
    """Every session is in the app's fleet, shown, has streamed a few turns, and the
    dashboard has put focus where the keys expect it."""
    fleet = app.bridge.fleet.sessions
    if len(fleet) != sessions or any(
        s.state.last_seq <= 2 * EVENTS_PER_TURN for s in fleet.values()
    ):
        return False
    dashboard = app.dashboard
    if sessions > COMPACT_AT:
        compact = dashboard.compact
        return (
            compact is not None
            and compact.table.row_count == sessions
            and app.focused is compact.table
        )
    return len(dashboard.panes()) == sessions and app.focused is dashboard.panes()[0]


async def measure_app(mode: Mode, sessions: int, load: str, speed: float) -> Result:
    from tui.ui.app import CorralApp

    rng = random.Random(sessions)  # the same key gaps on every run
    loadavg = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="corral-bench-ui-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        specs = make_specs(root, sessions, script_for(root, load, mode))
        server = await asyncio.to_thread(start_server, root, data_dir, load, speed)
        try:
            app = CorralApp(
                data_dir,
                start_specs=specs,
                watch_themes=False,
                live_ticker=True,  # as in use: the 1 s tick repaints the running panes
            )
            async with app.run_test(size=SIZE):
                recorder = FrameRecorder(app)
                await wait_for(app.ready.is_set, "the app to connect and create the sessions")
                feed = FeedCounter(app)
                await wait_for(lambda: streaming(app, sessions), "every session to stream")
                meter = Meter(StoreReader(data_dir), server, app, feed)
                await asyncio.sleep(mode.warmup_s)

                recorder.reset()
                recorder.recording = True
                await meter.start()
                await asyncio.sleep(mode.window_s)
                stream = await meter.stop(recorder)

                recorder.reset()
                await meter.start()
                keys = probes(app, sessions)
                while time.perf_counter() - meter.wall < mode.window_s:
                    await recorder.press(next(keys))
                    await asyncio.sleep(rng.uniform(*KEY_GAP_S))
                keyed = await meter.stop(recorder)
                recorder.recording = False

                ids = list(app.bridge.fleet.sessions)
                statuses = Counter(app.bridge.fleet.sessions[sid].state.status for sid in ids)
                await app.close_core()  # the sessions go on until the server stops
            alive = server.proc.poll() is None
        finally:
            await asyncio.to_thread(stop_server, server)
    gc.unfreeze()  # the app froze what it made at start-up; let this run's go
    gc.collect()
    notes = []
    if statuses["running"] != sessions:
        notes.append(f"not every session was running at the end: {dict(statuses)}")
    if not alive:
        notes.append("the server had exited before the end")
    layout = "table" if sessions > COMPACT_AT else "panes"
    config = f"{sessions} session{'s' if sessions > 1 else ''}"
    return Result(config, sessions, layout, stream, keyed, loadavg, notes)


async def measure_server_only(mode: Mode, sessions: int, load: str, speed: float) -> Result:
    """The same sessions with no app: the server alone, sessions created over its API."""
    from tui.client.connect import connect

    loadavg = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="corral-bench-server-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        specs = make_specs(root, sessions, script_for(root, load, mode))
        server = await asyncio.to_thread(start_server, root, data_dir, load, speed)
        try:
            client = await connect(data_dir)  # finds the running server; starts none
            try:
                await client.attach()
                for spec in specs:
                    await client.create(spec)
            finally:
                await client.close()
            meter = Meter(StoreReader(data_dir), server)
            reader = StoreReader(data_dir)

            def started() -> bool:
                seqs = reader.last_seqs()
                return len(seqs) == sessions and min(seqs.values()) > 2 * EVENTS_PER_TURN

            await wait_for(started, "every session to stream")
            await asyncio.sleep(mode.warmup_s)
            await meter.start()
            await asyncio.sleep(mode.window_s)
            stream = await meter.stop()
        finally:
            await asyncio.to_thread(stop_server, server)
    config = f"{sessions} sessions, no app"
    return Result(config, sessions, "none", stream, None, loadavg)


# -- machine and output ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def textual_fps() -> int:
    """The frame rate cap the app runs with (corral's package sets it; see tui/ui)."""
    from textual import constants

    return constants.MAX_FPS


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "textual": version("textual"),
        "textual_fps": textual_fps(),
        "rich": version("rich"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
    }


def keys_below(r: Result, limit_ms: float) -> bool:
    key_p99 = [s.p99_ms for s in r.keys.key_to_paint.values()] if r.keys else []
    return len(key_p99) == 2 and all(p is not None and p < limit_ms for p in key_p99)


def aim(results: list[Result]) -> dict[str, Any]:
    verdict: dict[str, Any] = {
        "sessions": AIM_SESSIONS,
        "load_events_per_s_per_session": TARGET_EVENTS_PER_S,
        "load_share_counted_as_full": AIM_LOAD_SHARE,
        "frame_interval_p99_ms_below": AIM_FRAME_P99_MS,
        "key_to_paint_p99_ms_below": AIM_KEY_P99_MS,
        "compact_sessions": AIM_COMPACT_SESSIONS,
        "compact_key_to_paint_p99_ms_below": AIM_COMPACT_KEY_P99_MS,
        "checked": False,
        "compact_checked": False,
    }
    full = AIM_LOAD_SHARE * TARGET_EVENTS_PER_S
    for r in results:
        if r.keys is None:
            continue
        if r.sessions == AIM_SESSIONS:
            frame_p99 = r.stream.frame_interval.p99_ms
            delivered = r.stream.delivered_events_per_s_per_session or 0.0
            verdict.update(
                checked=True,
                load_produced=r.stream.produced_events_per_s_per_session >= full,
                load_delivered=delivered >= full,
                frame_interval_met=frame_p99 is not None and frame_p99 < AIM_FRAME_P99_MS,
                key_to_paint_met=keys_below(r, AIM_KEY_P99_MS),
            )
        elif r.sessions == AIM_COMPACT_SESSIONS:
            verdict.update(
                compact_checked=True,
                compact_key_to_paint_met=keys_below(r, AIM_COMPACT_KEY_P99_MS),
            )
    return verdict


def report_json(mode: str, load: str, speed: float, results: list[Result]) -> str:
    return json.dumps(
        {
            "benchmark": "ui",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "load": load,
            "speed": speed,
            "size": list(SIZE),
            "target_events_per_s_per_session": TARGET_EVENTS_PER_S,
            "machine": machine(),
            "results": [asdict(r) for r in results],
            "aim": aim(results),
        },
        indent=2,
    )


def ms(value: float | None, missed: int = 0) -> str:
    if value is None:
        return "miss" if missed else "-"
    return f"{value:.1f}"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def key_cells(r: Result, kind: str) -> tuple[str, str]:
    s = r.keys.key_to_paint.get(kind) if r.keys else None
    if s is None:
        return "-", "-"
    return ms(s.p50_ms, s.missed), ms(s.p99_ms, s.missed)


def met(flag: bool) -> str:
    return "met" if flag else "NOT met"


def report_table(mode: str, load: str, results: list[Result]) -> str:
    kinds = ("arrows", "filter")
    header = (
        f"{'':>20} {'layout':>6} {'made/s':>6} {'shown/s':>7} {'fps':>5} {'frame p50':>9}"
        f" {'frame p99':>9}"
        + "".join(f" {k + ' p50':>10} {k + ' p99':>10}" for k in kinds)
        + f" {'app %':>6} {'loop %':>6} {'srv %':>6} {'other %':>7}"
    )
    lines = [
        f"corral dashboard, headless {SIZE[0]}x{SIZE[1]}, server in its own process;"
        f" mode={mode}; load={load}; target {TARGET_EVENTS_PER_S} stored events/s per session"
        " (made/s: stored by the server, shown/s: in the app's fleet; per session); times in"
        " ms; frames, CPU and rates from the window without keys, key-to-paint from the"
        " window with keys",
        f"machine: {machine()}",
        "",
        header,
    ]
    for r in results:
        s = r.stream
        frames = (
            f" {s.frames_per_s:>5.1f} {ms(s.frame_interval.p50_ms):>9}"
            f" {ms(s.frame_interval.p99_ms):>9}"
            if r.keys
            else f" {'-':>5} {'-':>9} {'-':>9}"
        )
        keys = "".join(f" {a:>10} {b:>10}" for a, b in (key_cells(r, k) for k in kinds))
        lines.append(
            f"{r.config:>20} {r.layout:>6} {s.produced_events_per_s_per_session:>6.1f}"
            f" {num(s.delivered_events_per_s_per_session):>7}{frames}{keys}"
            f" {num(s.cpu_app_pct):>6} {num(s.cpu_app_loop_pct):>6} {num(s.cpu_server_pct):>6}"
            f" {num(s.other_cpu_pct):>7}"
        )
        if r.keys is not None:
            k = r.keys
            lines.append(
                f"{'':>20} keys window: made/s {k.produced_events_per_s_per_session:.1f},"
                f" shown/s {num(k.delivered_events_per_s_per_session)}, fps"
                f" {k.frames_per_s:.1f}, app {num(k.cpu_app_pct)}%, server"
                f" {num(k.cpu_server_pct)}%; events per turn {s.events_per_turn};"
                f" deltas/s {num(s.delivered_deltas_per_s_per_session)};"
                f" behind at the end {s.behind_events} events;"
                f" feed reconnects {s.feed_reconnects}+{k.feed_reconnects}"
            )
        for note in r.notes:
            lines.append(f"  note ({r.config}): {note}")
    v = aim(results)
    if v["checked"]:
        lines.append(
            f"aim at {AIM_SESSIONS} sessions: load of {TARGET_EVENTS_PER_S} events/s per session"
            f" delivered {met(v['load_delivered'])} (produced {met(v['load_produced'])});"
            f" p99 frame interval < {AIM_FRAME_P99_MS:g} ms {met(v['frame_interval_met'])};"
            f" p99 key-to-paint < {AIM_KEY_P99_MS:g} ms {met(v['key_to_paint_met'])}"
        )
    if v["compact_checked"]:
        lines.append(
            f"aim at {AIM_COMPACT_SESSIONS} sessions (table): p99 key-to-paint"
            f" < {AIM_COMPACT_KEY_P99_MS:g} ms {met(v['compact_key_to_paint_met'])}"
        )
    return "\n".join(lines)


def run(mode: Mode, load: str, speed: float, progress: bool) -> list[Result]:
    results = []
    for sessions in APP_SESSION_COUNTS:
        results.append(asyncio.run(measure_app(mode, sessions, load, speed)))
        if progress:
            print(f"  {results[-1].config} done", file=sys.stderr)
    results.append(asyncio.run(measure_server_only(mode, AIM_SESSIONS, load, speed)))
    if progress:
        print(f"  {results[-1].config} done", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [SERVE_PACED]:
        return serve_paced(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 s windows: about 100 s")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--load",
        choices=("paced", "scripted"),
        default="paced",
        help="paced: PacedScript in the server (default); scripted: plain `corral serve`"
        " with a scripted file of 100 ms turns",
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="the server's --speed (scripted load only)"
    )
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    results = run(MODES[mode], args.load, args.speed, progress=not args.json)
    if args.json:
        print(report_json(mode, args.load, args.speed, results))
    else:
        print(report_table(mode, args.load, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
