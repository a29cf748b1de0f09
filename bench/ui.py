"""Benchmark: the dashboard under 16 streaming sessions, against the same app showing 1.

What is measured, for 16 sessions and for 1 (the peer), each run on a fresh data
directory in a temp directory, the app headless at 160x48 (``App.run_test``):

* load: every session is a scripted model (``scripted:`` provider, ``script_speed``
  1, so its ``latency_ms`` is honoured) that plays short turns: one line of text
  streamed as 12-character deltas over ``TURN_LATENCY_MS``, then one ``read`` tool
  call on a small file in its workspace (``local`` sandbox; the file tools run in a
  thread). A turn appends 5 stored events (request start; message, tool use and
  request end in one append; tool result), so 10 turns/s make the target of 50
  stored events/s per session. The achieved rate is measured, not assumed: stored
  events per session are the difference in ``store.state(sid).last_seq`` over the
  measured window; streamed deltas (the preview the bridge also applies) are
  counted by a bus subscription and reported separately.
* frames: ``App._display`` is wrapped. Headless Textual builds each frame (the
  compositor's update) but skips turning it into terminal bytes; the wrapper does
  that step too (``render_segments`` with the app's console) so a frame costs what
  it would on a terminal, and records when it was written. Frame interval is the
  time between consecutive frames written in the window.
* key-to-paint: keys are sent as a terminal driver sends them
  (``driver.send_message``), every 200-400 ms (seeded random), and timed from just
  before sending to the first frame that paints the newly focused widget's top row
  (its border) while it has focus. Two probes: ``arrows`` (right, then left, moving
  focus between the first two panes; 16 sessions only, as one pane has nowhere to
  move) and ``filter`` (``/`` focuses the filter box, which appears and shifts the
  grid; ``escape`` hides it and focuses the first pane again), run in both
  configurations so the two are compared on the same key.
* CPU: ``time.process_time()`` (all threads: the event loop, aiosqlite's thread,
  the tool threads) and ``time.thread_time()`` on the event loop's thread, over the
  window, as a percentage of one core.

Each configuration starts the app, waits until every pane is mounted and every
session has streamed at least one turn, warms up, then measures for the window:
``--quick`` 3 s warm-up and 12 s windows (about 40 s in all), full 3 s and 60 s.
The output ends with the verdict against the aim: at 16 sessions, p99 frame
interval < 50 ms and p99 key-to-paint < 100 ms.

Run ``python bench/ui.py [--quick] [--json]``; ``--json`` prints one JSON object
(figures, machine, verdict) instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
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

from tui.core import supervisor
from tui.core.bus import Delta
from tui.core.providers import resolve_provider
from tui.core.providers.base import DeltaSink, ModelProvider, ModelRequest, ModelResponse
from tui.core.providers.scripted import ScriptedProvider
from tui.core.spec import SessionSpec, parse_spec
from tui.ui.app import CorralApp
from tui.ui.widgets.session_pane import SessionPane

SIZE = (160, 48)
SESSION_COUNTS = (16, 1)
TARGET_EVENTS_PER_S = 50
EVENTS_PER_TURN = 5  # request start; message + tool use + request end; tool result
TURN_PERIOD_S = EVENTS_PER_TURN / TARGET_EVENTS_PER_S  # one turn per 100 ms: 50 events/s
TURN_LATENCY_MS = 100  # nominal; PacedScript stretches or squeezes it to fit the schedule
TURN_TEXT_CHARS = 60  # 5 deltas of 12 characters per turn
PROBE_GAP_S = (0.2, 0.4)
AIM_SESSIONS = 16
AIM_FRAME_P99_MS = 50.0
AIM_KEY_P99_MS = 100.0
NOTES = "\n".join(f"line {n}: the quick brown fox jumps over the lazy dog" for n in range(1, 6))


@dataclass
class Mode:
    warmup_s: float
    window_s: float


MODES = {"quick": Mode(warmup_s=3.0, window_s=12.0), "full": Mode(warmup_s=3.0, window_s=60.0)}


@dataclass
class Stats:
    count: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


@dataclass
class Result:
    sessions: int
    window_s: float
    events_per_s_per_session: float
    deltas_per_s_per_session: float
    sessions_running_at_end: int
    frames: int
    frames_per_s: float
    frame_interval: Stats
    frame_write: Stats  # the wrapper's own step: update -> terminal bytes
    key_to_paint: dict[str, Stats]
    cpu_process_pct: float
    cpu_loop_thread_pct: float
    missed_probes: int = 0
    notes: list[str] = field(default_factory=list)


# -- helpers ----------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def stats(seconds: list[float]) -> Stats:
    if not seconds:
        return Stats(0, None, None, None)
    ordered = sorted(seconds)
    return Stats(
        count=len(ordered),
        p50_ms=round(percentile(ordered, 0.50) * 1000, 2),
        p99_ms=round(percentile(ordered, 0.99) * 1000, 2),
        max_ms=round(ordered[-1] * 1000, 2),
    )


def toml_string(text: str) -> str:
    return json.dumps(text)  # a TOML basic string is a JSON string


def write_script(path: Path, turns: int) -> Path:
    lines = ['price_as = "claude-sonnet-4-5"']
    for n in range(turns):
        text = f"Turn {n}: reading notes.txt once more to check a line. ".ljust(TURN_TEXT_CHARS)
        lines += [
            "[[turns]]",
            f"latency_ms = {TURN_LATENCY_MS}",
            f"text = {toml_string(text[:TURN_TEXT_CHARS])}",
            "usage = { input_tokens = 900, output_tokens = 20 }",
            "[[turns.tool_uses]]",
            'name = "read"',
            'input = { file_path = "notes.txt" }',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_specs(root: Path, sessions: int, turns: int) -> list[SessionSpec]:
    workspace = root / "workspace"
    workspace.mkdir()
    (workspace / "notes.txt").write_text(NOTES + "\n")
    script = write_script(root / "stream.toml", turns)
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


class PacedScript:
    """A scripted model that keeps a session on a fixed schedule of one turn per period.

    A fixed ``latency_ms`` would give a rate that depends on the runner's own work per
    turn (appends, folds, the tool, the checkpoint), which grows with the number of
    sessions. Instead each turn streams over whatever is left of its slot, so a session
    makes exactly the target rate while the app keeps up, and falls behind (never
    catches up in a burst) when it does not. The achieved rate is measured either way.
    """

    def __init__(self, inner: ScriptedProvider, period_s: float) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.price_model = inner.price_model
        self.period_s = period_s
        self._deadline: float | None = None

    async def complete(self, request: ModelRequest, on_delta: DeltaSink) -> ModelResponse:
        now = time.perf_counter()
        previous = now if self._deadline is None else self._deadline
        # Late turns start a new schedule from now: no bursts to make up lost time.
        self._deadline = max(previous + self.period_s, now)
        self.inner.speed = (self._deadline - now) / (TURN_LATENCY_MS / 1000)
        return await self.inner.complete(request, on_delta)


def paced_provider(model_id: str, *, script_speed: float = 1.0) -> ModelProvider:
    inner = resolve_provider(model_id, script_speed=script_speed)
    assert isinstance(inner, ScriptedProvider)
    return PacedScript(inner, TURN_PERIOD_S)


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
        self.times: list[float] = []
        self.write_s: list[float] = []
        self.bytes = 0
        self.recording = False
        self.pending: tuple[Probe, float] | None = None
        self.key_s: dict[str, list[float]] = {}
        self.painted = asyncio.Event()
        self._original = app._display
        app._display = self._display  # type: ignore[method-assign]

    def _display(self, screen: Screen, renderable: RenderableType | None) -> None:
        self._original(screen, renderable)
        # The same early outs as App._display: nothing reaches the terminal then.
        if renderable is None or self.app._batch_count or not self.recording:
            return
        started = time.perf_counter()
        if isinstance(renderable, CompositorUpdate):
            # Headless Textual stops short of this step; a terminal pays for it.
            self.bytes += len(renderable.render_segments(self.app.console))
        now = time.perf_counter()
        self.times.append(now)
        self.write_s.append(now - started)
        if self.pending is not None:
            probe, sent = self.pending
            widget = probe.target()
            if widget is not None and self.app.focused is widget and paints_top(renderable, widget):
                self.key_s.setdefault(probe.kind, []).append(now - sent)
                self.pending = None
                self.painted.set()

    def send(self, probe: Probe) -> None:
        self.painted.clear()
        self.pending = (probe, time.perf_counter())
        driver = self.app._driver
        assert driver is not None
        # As a terminal driver does it: a thread-safe post onto the app's queue.
        driver.send_message(events.Key(probe.key, None))


def paints_top(update: RenderableType, widget: Widget) -> bool:
    """Does this frame repaint the widget's top row (its border) across its width?"""
    region = widget.region
    if not region:
        return False
    y, left, right = region.y, region.x, region.right - 1
    if isinstance(update, LayoutUpdate):
        r = update.region
        return r.y <= y < r.bottom and r.x <= left and right < r.right
    if isinstance(update, ChopsUpdate):
        return any(
            span_y == y and x1 <= left and right <= x2 for span_y, x1, x2 in update.spans
        )
    return False


# -- one configuration ------------------------------------------------------------------


async def count_deltas(app: CorralApp, counter: list[int]) -> None:
    with app.store.bus.subscribe(deltas=True) as sub:
        async for item in sub:
            if isinstance(item, Delta):
                counter[0] += 1


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def probes_for(app: CorralApp, sessions: int) -> list[Probe]:
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
    return cycle


async def measure(mode: Mode, sessions: int) -> Result:
    rng = random.Random(sessions)
    with tempfile.TemporaryDirectory(prefix="corral-bench-ui-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        data_dir.mkdir()
        # Enough turns to outlast the run at 10 turns/s, with room to spare.
        turns = int((mode.warmup_s + mode.window_s + 30) / TURN_PERIOD_S)
        app = CorralApp(
            data_dir,
            start_specs=make_specs(root, sessions, turns),
            script_speed=1.0,
            max_concurrent=sessions,  # all run at once (the default caps at 8)
            watch_themes=False,
            live_ticker=True,  # as in real use: the 1 s tick repaints running panes
        )
        # The supervisor resolves each session's model through this name.
        supervisor.resolve_provider = paced_provider  # type: ignore[assignment]
        async with app.run_test(size=SIZE):
            recorder = FrameRecorder(app)
            await wait_for(app.ready.is_set, "the core to start")
            ids = list(app.bridge.views)
            await wait_for(
                lambda: len(app.dashboard.panes()) == sessions
                and all(app.bridge.views[s].state.last_seq > 2 * EVENTS_PER_TURN for s in ids),
                "every session to stream",
            )
            deltas = [0]
            counter = asyncio.create_task(count_deltas(app, deltas))
            await asyncio.sleep(mode.warmup_s)

            seq_before = {sid: (await app.store.state(sid)).last_seq for sid in ids}
            deltas[0] = 0
            recorder.recording = True
            cpu0, loop0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
            missed = 0
            for probe in cycle_forever(probes_for(app, sessions)):
                if time.perf_counter() - wall0 >= mode.window_s:
                    break
                recorder.send(probe)
                try:
                    # A key that has not painted within a second is a miss, not a wait.
                    await asyncio.wait_for(recorder.painted.wait(), 1.0)
                except TimeoutError:
                    missed += 1
                    recorder.pending = None
                await asyncio.sleep(rng.uniform(*PROBE_GAP_S))
            wall = time.perf_counter() - wall0
            cpu, loop = time.process_time() - cpu0, time.thread_time() - loop0
            recorder.recording = False
            delta_count = deltas[0]
            seq_after = {sid: (await app.store.state(sid)).last_seq for sid in ids}
            statuses = Counter(app.bridge.views[s].state.status for s in ids)
            running = statuses["running"]
            counter.cancel()

            if app.dashboard.query_one("#filter", Input).has_class("-active"):
                recorder.send(Probe("escape", "filter", lambda: None))
            await app.close_core(stop=True)

        stored = sum(seq_after[s] - seq_before[s] for s in ids)
        frames = recorder.times
        intervals = [b - a for a, b in zip(frames, frames[1:], strict=False)]
        notes = []
        if running < sessions:
            notes.append(f"not all sessions running at the end of the window: {dict(statuses)}")
        return Result(
            sessions=sessions,
            window_s=round(wall, 2),
            events_per_s_per_session=round(stored / wall / sessions, 1),
            deltas_per_s_per_session=round(delta_count / wall / sessions, 1),
            sessions_running_at_end=running,
            frames=len(frames),
            frames_per_s=round(len(frames) / wall, 1),
            frame_interval=stats(intervals),
            frame_write=stats(recorder.write_s),
            key_to_paint={kind: stats(s) for kind, s in sorted(recorder.key_s.items())},
            cpu_process_pct=round(100 * cpu / wall, 1),
            cpu_loop_thread_pct=round(100 * loop / wall, 1),
            missed_probes=missed,
            notes=notes,
        )


def cycle_forever(probes: list[Probe]) -> Any:
    while True:
        yield from probes


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
        if r.sessions != AIM_SESSIONS:
            continue
        keys = [s.p99_ms for s in r.key_to_paint.values() if s.p99_ms is not None]
        verdict.update(
            checked=True,
            frame_interval_met=r.frame_interval.p99_ms is not None
            and r.frame_interval.p99_ms < AIM_FRAME_P99_MS,
            key_to_paint_met=bool(keys)
            and r.missed_probes == 0
            and all(k < AIM_KEY_P99_MS for k in keys),
            events_per_s_reached=r.events_per_s_per_session >= 0.95 * TARGET_EVENTS_PER_S,
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


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report_table(mode: str, results: list[Result]) -> str:
    kinds = sorted({k for r in results for k in r.key_to_paint})
    header = (
        f"{'sessions':>8} {'ev/s/sess':>9} {'Δ/s/sess':>8} {'frames/s':>8}"
        f" {'frame p50':>9} {'frame p99':>9}"
        + "".join(f" {k + ' p50':>11} {k + ' p99':>11}" for k in kinds)
        + f" {'CPU %':>6} {'loop %':>6}"
    )
    lines = [
        f"corral dashboard, headless {SIZE[0]}x{SIZE[1]}; mode={mode};"
        f" target {TARGET_EVENTS_PER_S} stored events/s per session; ms unless noted",
        f"machine: {machine()}",
        "",
        header,
    ]
    for r in results:
        keys = "".join(
            f" {ms(r.key_to_paint[k].p50_ms) if k in r.key_to_paint else '-':>11}"
            f" {ms(r.key_to_paint[k].p99_ms) if k in r.key_to_paint else '-':>11}"
            for k in kinds
        )
        lines.append(
            f"{r.sessions:>8} {r.events_per_s_per_session:>9.1f}"
            f" {r.deltas_per_s_per_session:>8.1f} {r.frames_per_s:>8.1f}"
            f" {ms(r.frame_interval.p50_ms):>9} {ms(r.frame_interval.p99_ms):>9}"
            f"{keys} {r.cpu_process_pct:>6.1f} {r.cpu_loop_thread_pct:>6.1f}"
        )
        for note in r.notes:
            lines.append(f"  note ({r.sessions} sessions): {note}")
        if r.missed_probes:
            lines.append(f"  {r.missed_probes} key(s) not painted within 1 s")
    v = aim(results)
    if v["checked"]:
        lines.append(
            f"aim at {AIM_SESSIONS} sessions: p99 frame interval < {AIM_FRAME_P99_MS:g} ms"
            f" {'met' if v['frame_interval_met'] else 'NOT met'};"
            f" p99 key-to-paint < {AIM_KEY_P99_MS:g} ms"
            f" {'met' if v['key_to_paint_met'] else 'NOT met'};"
            f" load {'reached' if v['events_per_s_reached'] else 'NOT reached'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows: under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    results = []
    for sessions in SESSION_COUNTS:
        results.append(asyncio.run(measure(MODES[mode], sessions)))
        if not args.json:
            print(f"  {sessions} session(s) done", file=sys.stderr)
    print(report_json(mode, results) if args.json else report_table(mode, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
