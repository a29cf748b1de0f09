"""Benchmark: the dashboard with 16 streaming sessions, against the same app showing 1.

Each configuration runs the real app (``CorralApp``: store, supervisor, bridge,
dashboard) headless at 160x48 with ``App.run_test``, on a fresh data directory in a
temp directory. Configurations: 16 sessions; the peer, the same app with 1 session;
and, for reference, the same 16 sessions with no app at all (store and supervisor
only), which shows what the core alone costs at this load.

* load: every session runs the real runner, store, bridge and tools against a paced
  scripted model (``PacedScript``: the turns of a ``scripted:`` file, played in a
  loop): each turn streams 60 characters of text as 5 deltas, then makes one ``read``
  tool call on a small file in the session's own workspace (``local`` sandbox). A turn
  appends 5 stored events (request start; message, tool use and request end in one
  append; the tool result, committed with its workspace checkpoint). Turn n of a
  session is due at start + n x 100 ms, so a session makes 50 stored events/s (and 50
  deltas/s) while the process keeps up, and falls behind, without bursting to catch
  up, when it does not. Rates are measured, not assumed: stored events are the growth
  of ``store.state(sid).last_seq`` over the window; deltas are counted as the model
  hands them to the runner.
* frames: ``App._display`` is wrapped. Headless Textual builds each frame (the
  compositor's update) but skips turning it into terminal bytes; the wrapper does
  that step as well (``render_segments`` with the app's console), so a frame costs
  what it would on a terminal, and it records when each frame was written. Frame
  interval is the time between consecutive frames.
* key-to-paint: keys are sent the way a terminal driver sends them
  (``driver.send_message``, a thread-safe post onto the app's queue) and timed from
  just before sending to the end of the first frame that repaints the top row (the
  border) of the widget the key focused, while it has focus. A key not painted within
  2 s is a miss; misses count as slower than any painted key in the percentiles. Two
  probes: ``arrows`` (right then left, moving focus between the first two panes;
  16 sessions only, as one pane has nowhere to go) and ``filter`` (``/`` opens and
  focuses the filter box, which shifts the grid; ``escape`` closes it and focuses the
  first pane), the probe both configurations share.
* CPU: ``time.process_time()`` (all threads: the event loop, aiosqlite's writer, the
  tool and checkpoint threads) and ``time.thread_time()`` on the event loop's thread,
  as percentages of one core; ``other %`` is what the rest of the machine used over the
  same window (``/proc/stat``), to show when the figures were taken on a busy machine.

After every pane is mounted and every session streams, a warm-up, then two windows
in turn, with the sessions streaming throughout: ``stream`` (no keys: events/s,
frames, CPU) and ``keys`` (a key every 300-600 ms, seeded: key-to-paint; the JSON
also has this window's frames and load). ``--quick``: 2 s warm-up and 8 s windows
(under a minute in all); full: 5 s and 60 s (about 5 minutes). The output ends with
the verdict against the aim: at 16 sessions, p99 frame interval < 50 ms and p99
key-to-paint < 100 ms.

Run ``python bench/ui.py [--quick] [--json]``; ``--json`` prints one JSON object
(figures, machine, verdict) instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from textual import events
from textual._compositor import ChopsUpdate, CompositorUpdate, LayoutUpdate
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from tui.core.engine import supervisor as supervisor_module
from tui.core.engine.supervisor import Supervisor
from tui.core.providers import resolve_provider
from tui.core.providers.base import DeltaSink, ModelProvider, ModelRequest, ModelResponse
from tui.core.providers.scripted import CHUNK, ScriptedProvider
from tui.core.session.spec import SessionSpec
from tui.core.session.spec_reader import parse_spec
from tui.core.session.state import USAGE_FIELDS
from tui.core.store.datadir import db_path
from tui.core.store.store import Store
from tui.ui.app import CorralApp

SIZE = (160, 48)
SESSION_COUNTS = (16, 1)
TARGET_EVENTS_PER_S = 50
EVENTS_PER_TURN = 5  # request start; message + tool use + request end; tool result
TURN_PERIOD_S = EVENTS_PER_TURN / TARGET_EVENTS_PER_S  # a turn every 100 ms
SCRIPT_TURNS = 10  # played in a loop
TURN_TEXT_CHARS = 60  # 5 deltas of 12 characters
KEY_GAP_S = (0.3, 0.6)
KEY_TIMEOUT_S = 2.0
AIM_SESSIONS = 16
AIM_FRAME_P99_MS = 50.0
AIM_KEY_P99_MS = 100.0
NOTES = "\n".join(f"line {n}: the quick brown fox jumps over the lazy dog" for n in range(1, 6))


@dataclass
class Mode:
    warmup_s: float
    window_s: float  # each of the two windows


MODES = {"quick": Mode(warmup_s=2.0, window_s=8.0), "full": Mode(warmup_s=5.0, window_s=60.0)}


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
    events_per_s_per_session: float
    deltas_per_s_per_session: float
    frames: int
    frames_per_s: float
    frame_interval: Stats
    frame_write: Stats  # the wrapper's step: compositor update -> terminal bytes
    cpu_process_pct: float
    cpu_loop_thread_pct: float
    other_cpu_pct: float | None
    key_to_paint: dict[str, Stats] = field(default_factory=dict)


@dataclass
class Result:
    config: str
    sessions: int
    stream: Window
    keys: Window | None  # None for the core-only reference
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


def write_script(path: Path) -> Path:
    lines = ['price_as = "claude-sonnet-4-5"']
    for n in range(SCRIPT_TURNS):
        text = f"Step {n}: reading notes.txt once more to check a line. ".ljust(TURN_TEXT_CHARS)
        lines += [
            "[[turns]]",
            f"text = {json.dumps(text[:TURN_TEXT_CHARS])}",  # a JSON string is a TOML one
            "usage = { input_tokens = 900, output_tokens = 20 }",
            "[[turns.tool_uses]]",
            'name = "read"',
            'input = { file_path = "notes.txt" }',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_specs(root: Path, sessions: int) -> list[SessionSpec]:
    workspace = root / "workspace"
    workspace.mkdir()
    (workspace / "notes.txt").write_text(NOTES + "\n")
    script = write_script(root / "stream.toml")
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


# -- load -----------------------------------------------------------------------------


class PacedScript:
    """A scripted model on a fixed schedule: one turn per period, turns played in a loop.

    The turns come from a ``scripted:`` file (parsed by ``ScriptedProvider.load``) and
    stream the way that provider streams them (``CHUNK``-character deltas spread over
    the turn, then the response). Two things differ, both so that the load is the
    same all through a run:

    * pacing: a fixed ``latency_ms`` would make the rate depend on the runner's own
      work per turn (appends, folds, the tool, the checkpoint), which grows with the
      number of sessions and the app's load. Turn n is due at start + n x period
      instead, and streams over what is left of its slot; a late turn starts a new
      schedule from now (no burst to catch up), so a session falls behind, never ahead.
    * turn choice: the scripted provider finds its turn by scanning the whole
      conversation on every call, which at 1,000+ turns costs more than the rest of the
      turn; here a counter picks it, and the script repeats.
    """

    deltas = 0  # all sessions: what the runner hands the bridge to apply

    def __init__(self, script: ScriptedProvider, period_s: float) -> None:
        self.script = script
        self.model_id = script.model_id
        self.price_model = script.price_model
        self.period_s = period_s
        self._played = 0
        self._due: float | None = None

    async def complete(self, request: ModelRequest, on_delta: DeltaSink) -> ModelResponse:
        now = time.perf_counter()
        previous = now if self._due is None else self._due
        self._due = max(previous + self.period_s, now)
        turn = self.script.turns[self._played % len(self.script.turns)]
        self._played += 1
        pieces = [("text", turn.text[i : i + CHUNK]) for i in range(0, len(turn.text), CHUNK)]
        for n, (kind, piece) in enumerate(pieces):
            PacedScript.deltas += 1
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


# -- instrumentation ----------------------------------------------------------------------


@dataclass
class Probe:
    key: str
    kind: str
    target: Callable[[], Widget | None]


class FrameRecorder:
    """Wraps ``App._display``: writes each frame as a terminal driver would, and times it."""

    def __init__(self, app: CorralApp) -> None:
        self.app = app
        self.recording = False
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
        self._original(screen, renderable)
        # The same early outs as App._display: nothing would reach a terminal.
        if renderable is None or self.app._batch_count or not self.recording:
            return
        started = time.perf_counter()
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(self.app.console)  # what headless mode skips
        now = time.perf_counter()
        self.frames.append(now)
        self.write_s.append(now - started)
        if self.pending is not None:
            probe, sent = self.pending
            widget = probe.target()
            if widget is not None and self.app.focused is widget and paints_top(renderable, widget):
                self.key_s.setdefault(probe.kind, []).append(now - sent)
                self.pending = None
                self.painted.set()

    async def press(self, probe: Probe) -> None:
        """Send one key as a terminal driver would; wait for its paint, or note a miss."""
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


def paints_top(update: RenderableType, widget: Widget) -> bool:
    """Does this frame repaint the widget's top row (its border) across its width?"""
    region = widget.region
    if not region:
        return False
    y, left, right = region.y, region.x, region.right  # right is exclusive, as are spans
    if isinstance(update, LayoutUpdate):
        r = update.region
        return r.y <= y < r.bottom and r.x <= left and right <= r.right
    if isinstance(update, ChopsUpdate):
        return any(span_y == y and x1 <= left and right <= x2 for span_y, x1, x2 in update.spans)
    return False


def probes(app: CorralApp, sessions: int) -> Iterator[Probe]:
    def pane(index: int) -> Callable[[], Widget | None]:
        def find() -> Widget | None:
            panes = app.dashboard.panes()
            return panes[index] if len(panes) > index else None

        return find

    def filter_box() -> Widget | None:
        return app.dashboard.query_one("#filter", Input)

    cycle = [Probe("slash", "filter", filter_box), Probe("escape", "filter", pane(0))]
    if sessions > 1:
        cycle = [Probe("right", "arrows", pane(1)), Probe("left", "arrows", pane(0)), *cycle]
    while True:
        yield from cycle


# -- measuring ------------------------------------------------------------------------


class Meter:
    """Load and CPU over one window: stored events, deltas, process and loop-thread CPU."""

    def __init__(self, store: Store, ids: list[str]) -> None:
        self.store = store
        self.ids = ids

    async def start(self) -> None:
        self.seq = {sid: (await self.store.state(sid)).last_seq for sid in self.ids}
        self.deltas = PacedScript.deltas
        self.busy = system_busy_s()
        self.cpu, self.loop = time.process_time(), time.thread_time()
        self.wall = time.perf_counter()

    async def stop(self, recorder: FrameRecorder | None = None) -> Window:
        wall = time.perf_counter() - self.wall
        cpu, loop = time.process_time() - self.cpu, time.thread_time() - self.loop
        busy = system_busy_s()
        deltas = PacedScript.deltas - self.deltas
        after = {sid: (await self.store.state(sid)).last_seq for sid in self.ids}
        stored = sum(after[sid] - self.seq[sid] for sid in self.ids)
        other = None
        if busy is not None and self.busy is not None:
            other = round(100 * max(0.0, busy - self.busy - cpu) / wall, 1)
        frames = recorder.frames if recorder else []
        intervals = [b - a for a, b in itertools.pairwise(frames)]
        n = len(self.ids)
        return Window(
            seconds=round(wall, 2),
            events_per_s_per_session=round(stored / wall / n, 1),
            deltas_per_s_per_session=round(deltas / wall / n, 1),
            frames=len(frames),
            frames_per_s=round(len(frames) / wall, 1),
            frame_interval=stats(intervals),
            frame_write=stats(recorder.write_s if recorder else []),
            cpu_process_pct=round(100 * cpu / wall, 1),
            cpu_loop_thread_pct=round(100 * loop / wall, 1),
            other_cpu_pct=other,
            key_to_paint={
                k: stats(v) for k, v in sorted((recorder.key_s if recorder else {}).items())
            },
        )


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def measure_app(mode: Mode, sessions: int) -> Result:
    rng = random.Random(sessions)  # the same key gaps on every run
    with tempfile.TemporaryDirectory(prefix="corral-bench-ui-") as tmp, paced_models():
        root = Path(tmp)
        data_dir = root / "data"
        data_dir.mkdir()
        app = CorralApp(
            data_dir,
            start_specs=make_specs(root, sessions),
            max_concurrent=sessions,  # all at once (the default runs 8)
            watch_themes=False,
            live_ticker=True,  # as in use: the 1 s tick repaints the running panes
        )
        async with app.run_test(size=SIZE):
            recorder = FrameRecorder(app)
            await wait_for(app.ready.is_set, "the core to start")
            await wait_for(
                lambda: (
                    len(app.bridge.fleet.sessions) == sessions
                    and len(app.dashboard.panes()) == sessions
                    and all(
                        v.state.last_seq > 2 * EVENTS_PER_TURN
                        for v in app.bridge.fleet.sessions.values()
                    )
                ),
                "every session to stream",
            )
            ids = list(app.bridge.fleet.sessions)
            meter = Meter(app.client.store, ids)  # type: ignore[attr-defined]
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

            statuses = Counter(app.bridge.fleet.sessions[sid].state.status for sid in ids)
            await app.close_core(stop=True)
    notes = []
    if statuses["running"] != sessions:
        notes.append(f"not every session was running at the end: {dict(statuses)}")
    config = f"{sessions} session{'s' if sessions > 1 else ''}"
    return Result(config=config, sessions=sessions, stream=stream, keys=keyed, notes=notes)


async def measure_core_only(mode: Mode, sessions: int) -> Result:
    """The same sessions with no app: store and supervisor on a bare event loop."""
    with tempfile.TemporaryDirectory(prefix="corral-bench-core-") as tmp, paced_models():
        root = Path(tmp)
        data_dir = root / "data"
        data_dir.mkdir()
        specs = make_specs(root, sessions)
        store = await Store.open(db_path(data_dir))
        sup = Supervisor(store, data_dir, max_concurrent=sessions)
        try:
            await sup.start()
            ids = [await sup.create_session(spec) for spec in specs]
            meter = Meter(store, ids)
            await asyncio.sleep(mode.warmup_s + 1)
            await meter.start()
            await asyncio.sleep(mode.window_s)
            stream = await meter.stop()
        finally:
            await sup.close()
            await store.close()
    return Result(
        config=f"{sessions} sessions, no app", sessions=sessions, stream=stream, keys=None
    )


# -- machine and output ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "textual": version("textual"),
        "rich": version("rich"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
    }


def aim(results: list[Result]) -> dict[str, Any]:
    verdict: dict[str, Any] = {
        "sessions": AIM_SESSIONS,
        "frame_interval_p99_ms_below": AIM_FRAME_P99_MS,
        "key_to_paint_p99_ms_below": AIM_KEY_P99_MS,
        "checked": False,
    }
    for r in results:
        if r.sessions != AIM_SESSIONS or r.keys is None:
            continue
        frame_p99 = r.stream.frame_interval.p99_ms
        key_p99 = [s.p99_ms for s in r.keys.key_to_paint.values()]
        verdict.update(
            checked=True,
            frame_interval_met=frame_p99 is not None and frame_p99 < AIM_FRAME_P99_MS,
            key_to_paint_met=bool(key_p99)
            and all(p is not None and p < AIM_KEY_P99_MS for p in key_p99),
            load_reached=r.stream.events_per_s_per_session >= 0.95 * TARGET_EVENTS_PER_S,
        )
    return verdict


def report_json(mode: str, results: list[Result]) -> str:
    return json.dumps(
        {
            "benchmark": "ui",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
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


def key_cells(r: Result, kind: str) -> tuple[str, str]:
    s = r.keys.key_to_paint.get(kind) if r.keys else None
    if s is None:
        return "-", "-"
    return ms(s.p50_ms, s.missed), ms(s.p99_ms, s.missed)


def report_table(mode: str, results: list[Result]) -> str:
    kinds = ("arrows", "filter")
    header = (
        f"{'':>20} {'ev/s/sess':>9} {'fps':>5} {'frame p50':>9} {'frame p99':>9}"
        + "".join(f" {k + ' p50':>10} {k + ' p99':>10}" for k in kinds)
        + f" {'CPU %':>6} {'loop %':>6} {'other %':>7}"
    )
    lines = [
        f"corral dashboard, headless {SIZE[0]}x{SIZE[1]}; mode={mode}; target"
        f" {TARGET_EVENTS_PER_S} stored events/s per session; times in ms; frames, CPU and"
        " ev/s from the window without keys, key-to-paint from the window with keys",
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
        other = "-" if s.other_cpu_pct is None else f"{s.other_cpu_pct:.1f}"
        lines.append(
            f"{r.config:>20} {s.events_per_s_per_session:>9.1f}{frames}{keys}"
            f" {s.cpu_process_pct:>6.1f} {s.cpu_loop_thread_pct:>6.1f} {other:>7}"
        )
        for note in r.notes:
            lines.append(f"  note ({r.config}): {note}")
    v = aim(results)
    if v["checked"]:
        lines.append(
            f"aim at {AIM_SESSIONS} sessions: p99 frame interval < {AIM_FRAME_P99_MS:g} ms"
            f" {'met' if v['frame_interval_met'] else 'NOT met'};"
            f" p99 key-to-paint < {AIM_KEY_P99_MS:g} ms"
            f" {'met' if v['key_to_paint_met'] else 'NOT met'};"
            f" load of {TARGET_EVENTS_PER_S} events/s per session"
            f" {'reached' if v['load_reached'] else 'NOT reached'}"
        )
    return "\n".join(lines)


def run(mode: Mode, progress: bool) -> list[Result]:
    results = []
    for sessions in SESSION_COUNTS:
        results.append(asyncio.run(measure_app(mode, sessions)))
        if progress:
            print(f"  {results[-1].config} done", file=sys.stderr)
    results.append(asyncio.run(measure_core_only(mode, AIM_SESSIONS)))
    if progress:
        print(f"  {results[-1].config} done", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 s windows: under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    results = run(MODES[mode], progress=not args.json)
    print(report_json(mode, results) if args.json else report_table(mode, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
