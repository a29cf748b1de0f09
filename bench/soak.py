"""Soak: 16 sessions streaming into the dashboard for a long time; does memory stay put?

The set-up is ``ui.py``'s 16-session configuration, for much longer: a fresh data
directory in a temp directory, the server in a process of its own (``corral serve
--foreground`` through ``ui.py``'s launcher, so every session runs the real runner,
store, tools and checkpoints against ``PacedScript``: 5 stored events and 5 deltas per
turn, a turn every 100 ms, 50 stored events/s per session), and the app (``CorralApp``)
headless at 160x48 in this process with ``App.run_test``, every frame written out as a
terminal driver would (``ui.FrameRecorder``, counting frames, not keeping them). Use goes
on throughout: a key every 1.5-2.5 s (seeded), the ``ui.py`` probes in turn (focus moves
between two panes, the filter box opens and closes), each timed to its paint.

What is sampled, at a fixed interval from the moment every session streams:

* the app (this process): RSS (``VmRSS`` of ``/proc/self/status``) and, with
  ``--tracemalloc``, the memory Python allocated and still holds
  (``tracemalloc.get_traced_memory()``). tracemalloc is off by default: it slows every
  allocation of the app (see the README for how much), and RSS is what the aim is about.
  With it on, a snapshot is taken at the reference point and at the end, and the top
  10 differences by file:line are printed: what grew.
* the server: RSS (``/proc/PID/status``), the events it stored (its store, read-only)
  and, with ``--trace-server``, tracemalloc in the server process too (snapshots on
  SIGUSR1, diffed the same way).
* the load at both ends (stored by the server, in the app's fleet), frames, the feed's
  reconnections, and garbage collections.

The reference point is 10 minutes in (``--quick``: 10 s; ``--minutes N`` under 30: a
third of the run); the report compares the end with it: the aim is app RSS at the end
<= 1.5x the reference. The server's growth is reported as a ratio and per stored event:
the runner keeps each session's conversation, so some growth is expected; twice the
messages would show as twice the bytes per event.

Run ``python bench/soak.py [--quick | --minutes N] [--json] [--tracemalloc]
[--trace-server]``. ``--quick``: 45 s of streaming (under a minute in all); the default
(full) is 2 hours.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import linecache
import os
import random
import signal
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ui import (
    AIM_SESSIONS,
    SIZE,
    TARGET_EVENTS_PER_S,
    TRACE_ENV,
    FeedCounter,
    FrameRecorder,
    Server,
    StoreReader,
    fleet_seqs,
    machine,
    make_specs,
    probes,
    proc_cpu_s,
    rss_kib,
    start_server,
    stats,
    stop_server,
    streaming,
    wait_for,
    write_script,
)

AIM_RATIO = 1.5
KEY_GAP_S = (1.5, 2.5)
TOP = 10  # lines of the tracemalloc diff
TRACE_FRAMES = 1  # frames per traced allocation: enough for file:line, and cheapest


@dataclass
class Mode:
    run_s: float  # from the moment every session streams
    reference_s: float  # the point the end is compared with
    sample_s: float


QUICK = Mode(run_s=45.0, reference_s=10.0, sample_s=1.0)
FULL = Mode(run_s=2 * 3600.0, reference_s=600.0, sample_s=30.0)


def minutes_mode(minutes: float) -> Mode:
    run_s = minutes * 60
    reference_s = 600.0 if minutes >= 30 else run_s / 3
    return Mode(run_s=run_s, reference_s=reference_s, sample_s=min(30.0, max(1.0, run_s / 120)))


@dataclass
class Sample:
    t_s: float  # since every session streamed
    app_rss_kib: int | None
    app_traced_kib: int | None  # tracemalloc's current, when on
    server_rss_kib: int | None
    stored_events: int  # all sessions, in the server's store
    shown_events: int  # all sessions, in the app's fleet
    frames: int
    keys: int
    feed_reconnects: int
    gc_collections: list[int]  # per generation, so far
    app_cpu_s: float
    server_cpu_s: float | None


@dataclass
class Growth:
    reference_kib: int | None
    end_kib: int | None
    ratio: float | None


@dataclass
class Result:
    mode: str
    seconds: float
    tracemalloc: bool
    samples: list[Sample]
    app_rss: Growth
    app_traced: Growth
    server_rss: Growth
    server_bytes_per_stored_event: float | None  # growth from reference to end
    stored_events_per_s_per_session: float
    shown_events_per_s_per_session: float
    frames_per_s: float
    app_cpu_pct: float
    server_cpu_pct: float | None
    key_to_paint: dict[str, Any]
    app_top: list[str] = field(default_factory=list)  # tracemalloc diff, reference -> end
    server_top: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def growth(reference: int | None, end: int | None) -> Growth:
    ratio = round(end / reference, 3) if reference and end is not None else None
    return Growth(reference, end, ratio)


def top_diff(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> list[str]:
    """What grew most from one snapshot to the other, by file:line."""
    filters = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, linecache.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ]
    diff = after.filter_traces(filters).compare_to(before.filter_traces(filters), "lineno")
    lines = []
    for stat in diff[:TOP]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} blocks"
            f" (now {stat.size / 1024:.1f} KiB)  {frame.filename}:{frame.lineno}"
        )
    return lines


class ServerTrace:
    """tracemalloc snapshots of the server process, taken on SIGUSR1 (``ui.serve_paced``)."""

    def __init__(self, server: Server, directory: Path) -> None:
        self.server = server
        self.directory = directory
        self.taken = 0

    async def snapshot(self) -> tracemalloc.Snapshot | None:
        self.taken += 1  # the server numbers its snapshots the same way
        target = self.directory / f"{self.taken}.snapshot"
        done = target.with_suffix(".done")
        os.kill(self.server.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while not done.exists():
            if time.monotonic() > deadline or self.server.proc.poll() is not None:
                return None
            await asyncio.sleep(0.2)
        return await asyncio.to_thread(tracemalloc.Snapshot.load, str(target))


async def soak(mode: Mode, mode_name: str, trace: bool, trace_server: bool) -> Result:
    from tui.ui.app import CorralApp

    rng = random.Random(AIM_SESSIONS)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="corral-bench-soak-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        specs = make_specs(root, AIM_SESSIONS, write_script(root / "stream.toml"))
        trace_dir = root / "trace"
        if trace_server:
            trace_dir.mkdir()
            os.environ[TRACE_ENV] = str(trace_dir)
        try:
            server = await asyncio.to_thread(start_server, root, data_dir, "paced", 1.0)
        finally:
            os.environ.pop(TRACE_ENV, None)
        server_trace = ServerTrace(server, trace_dir) if trace_server else None
        store = StoreReader(data_dir)
        try:
            if trace:
                tracemalloc.start(TRACE_FRAMES)
            app = CorralApp(data_dir, start_specs=specs, watch_themes=False, live_ticker=True)
            async with app.run_test(size=SIZE):
                recorder = FrameRecorder(app, keep=False)
                recorder.recording = True
                await wait_for(app.ready.is_set, "the app to connect and create the sessions")
                feed = FeedCounter(app)
                await wait_for(lambda: streaming(app, AIM_SESSIONS), "every session to stream")

                samples: list[Sample] = []
                keys = probes(app, AIM_SESSIONS)
                snapshots: dict[str, tracemalloc.Snapshot | None] = {}
                started = time.perf_counter()
                cpu0, server0 = time.process_time(), proc_cpu_s(server.pid)
                next_sample = next_key = 0.0
                reference_taken = False

                async def sample(t: float) -> None:
                    seqs = await asyncio.to_thread(store.last_seqs)
                    traced = tracemalloc.get_traced_memory()[0] // 1024 if trace else None
                    server_cpu = proc_cpu_s(server.pid)
                    samples.append(
                        Sample(
                            t_s=round(t, 1),
                            app_rss_kib=rss_kib(),
                            app_traced_kib=traced,
                            server_rss_kib=rss_kib(server.pid),
                            stored_events=sum(seqs.values()),
                            shown_events=sum(fleet_seqs(app).values()),
                            frames=recorder.count,
                            keys=sum(len(v) for v in recorder.key_s.values()),
                            feed_reconnects=feed.reconnects,
                            gc_collections=[s["collections"] for s in gc.get_stats()],
                            app_cpu_s=round(time.process_time() - cpu0, 2),
                            server_cpu_s=(
                                None
                                if server_cpu is None or server0 is None
                                else round(server_cpu - server0, 2)
                            ),
                        )
                    )

                while (t := time.perf_counter() - started) < mode.run_s:
                    if t >= next_sample:
                        await sample(t)
                        next_sample += mode.sample_s
                    if not reference_taken and t >= mode.reference_s:
                        reference_taken = True
                        if trace:
                            snapshots["app"] = tracemalloc.take_snapshot()
                        if server_trace:
                            snapshots["server"] = await server_trace.snapshot()
                    if t >= next_key:
                        await recorder.press(next(keys))
                        next_key = time.perf_counter() - started + rng.uniform(*KEY_GAP_S)
                    await asyncio.sleep(0.1)
                await sample(time.perf_counter() - started)
                app_top = server_top = []
                if trace and snapshots.get("app") is not None:
                    app_top = top_diff(snapshots["app"], tracemalloc.take_snapshot())
                if server_trace and snapshots.get("server") is not None:
                    end = await server_trace.snapshot()
                    if end is not None:
                        server_top = top_diff(snapshots["server"], end)  # type: ignore[arg-type]
                recorder.recording = False
                await app.close_core()
            if server.proc.poll() is not None:
                notes.append("the server had exited before the end")
        finally:
            if trace:
                tracemalloc.stop()
            await asyncio.to_thread(stop_server, server)
    return summarise(mode, mode_name, trace, samples, recorder, app_top, server_top, notes)


def summarise(
    mode: Mode,
    mode_name: str,
    trace: bool,
    samples: list[Sample],
    recorder: FrameRecorder,
    app_top: list[str],
    server_top: list[str],
    notes: list[str],
) -> Result:
    end = samples[-1]
    # The reference: the first sample at or after the reference point.
    reference = next((s for s in samples if s.t_s >= mode.reference_s), end)
    seconds = end.t_s - samples[0].t_s
    stored = end.stored_events - samples[0].stored_events
    shown = end.shown_events - samples[0].shown_events
    server_bytes = None
    events_since = end.stored_events - reference.stored_events
    if end.server_rss_kib and reference.server_rss_kib and events_since > 0:
        server_bytes = round((end.server_rss_kib - reference.server_rss_kib) * 1024 / events_since)
    if any(s.app_rss_kib is None for s in samples):
        notes.append("RSS not readable (no /proc?)")
    keys = {k: asdict(stats(v)) for k, v in sorted(recorder.key_s.items())}
    return Result(
        mode=mode_name,
        seconds=round(seconds, 1),
        tracemalloc=trace,
        samples=samples,
        app_rss=growth(reference.app_rss_kib, end.app_rss_kib),
        app_traced=growth(reference.app_traced_kib, end.app_traced_kib),
        server_rss=growth(reference.server_rss_kib, end.server_rss_kib),
        server_bytes_per_stored_event=server_bytes,
        stored_events_per_s_per_session=round(stored / seconds / AIM_SESSIONS, 1),
        shown_events_per_s_per_session=round(shown / seconds / AIM_SESSIONS, 1),
        frames_per_s=round((end.frames - samples[0].frames) / seconds, 1),
        app_cpu_pct=round(100 * (end.app_cpu_s - samples[0].app_cpu_s) / seconds, 1),
        server_cpu_pct=(
            None
            if end.server_cpu_s is None or samples[0].server_cpu_s is None
            else round(100 * (end.server_cpu_s - samples[0].server_cpu_s) / seconds, 1)
        ),
        key_to_paint=keys,
        app_top=app_top,
        server_top=server_top,
        notes=notes,
    )


# -- output -------------------------------------------------------------------------------


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def verdict(r: Result) -> bool | None:
    return None if r.app_rss.ratio is None else r.app_rss.ratio <= AIM_RATIO


def report_table(r: Result, reference_s: float) -> str:
    lines = [
        f"corral soak: {AIM_SESSIONS} sessions x {TARGET_EVENTS_PER_S} stored events/s into the"
        f" dashboard (headless {SIZE[0]}x{SIZE[1]}), server in its own process;"
        f" mode={r.mode}, {r.seconds:g} s; tracemalloc {'on' if r.tracemalloc else 'off'}",
        f"machine: {machine()}",
        "",
        f"{'t s':>8} {'app RSS MiB':>11} {'traced MiB':>10} {'server RSS MiB':>14}"
        f" {'stored':>9} {'shown':>9} {'frames':>7} {'keys':>5} {'reconn':>6} {'gen2 gc':>7}",
    ]
    step = max(1, len(r.samples) // 20)  # about 20 rows, and always the last
    shown = r.samples[::step] + ([r.samples[-1]] if (len(r.samples) - 1) % step else [])
    for s in shown:
        lines.append(
            f"{s.t_s:>8.1f} {mib(s.app_rss_kib):>11} {mib(s.app_traced_kib):>10}"
            f" {mib(s.server_rss_kib):>14} {s.stored_events:>9} {s.shown_events:>9}"
            f" {s.frames:>7} {s.keys:>5} {s.feed_reconnects:>6} {s.gc_collections[2]:>7}"
        )
    lines += [
        "",
        f"load: stored {r.stored_events_per_s_per_session} and shown"
        f" {r.shown_events_per_s_per_session} events/s per session; {r.frames_per_s} frames/s;"
        f" CPU app {r.app_cpu_pct}%, server {r.server_cpu_pct}%",
        "key-to-paint (ms, p50 / p99 / max, count): "
        + "; ".join(
            f"{k} {v['p50_ms']} / {v['p99_ms']} / {v['max_ms']} ({v['count']})"
            for k, v in r.key_to_paint.items()
        ),
        f"app RSS: {mib(r.app_rss.reference_kib)} MiB at {reference_s:g} s,"
        f" {mib(r.app_rss.end_kib)} MiB at the end: {r.app_rss.ratio}x",
    ]
    if r.tracemalloc:
        lines.append(
            f"app traced (tracemalloc): {mib(r.app_traced.reference_kib)} MiB ->"
            f" {mib(r.app_traced.end_kib)} MiB: {r.app_traced.ratio}x"
        )
    lines.append(
        f"server RSS: {mib(r.server_rss.reference_kib)} MiB -> {mib(r.server_rss.end_kib)} MiB:"
        f" {r.server_rss.ratio}x, {r.server_bytes_per_stored_event} bytes per event stored since"
    )
    for title, top in (("app", r.app_top), ("server", r.server_top)):
        if top:
            lines += ["", f"what grew in the {title} (tracemalloc, reference -> end, by line):"]
            lines += [f"  {line}" for line in top]
    for note in r.notes:
        lines.append(f"note: {note}")
    ok = verdict(r)
    lines.append(
        f"aim: app RSS at the end <= {AIM_RATIO:g}x at {reference_s:g} s:"
        f" {'-' if ok is None else 'met' if ok else 'NOT met'} ({r.app_rss.ratio}x)"
    )
    return "\n".join(lines)


def report_json(r: Result, reference_s: float) -> str:
    return json.dumps(
        {
            "benchmark": "soak",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "reference_s": reference_s,
            "machine": machine(),
            "result": asdict(r),
            "aim": {"app_rss_end_over_reference_at_most": AIM_RATIO, "met": verdict(r)},
        },
        indent=2,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--quick", action="store_true", help="45 s of streaming")
    length.add_argument("--minutes", type=float, help="this long instead of 2 hours")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="trace the app's allocations (slows it)"
    )
    parser.add_argument(
        "--trace-server", action="store_true", help="trace the server's allocations too"
    )
    args = parser.parse_args(argv)
    if args.quick:
        mode, name = QUICK, "quick"
    elif args.minutes:
        mode, name = minutes_mode(args.minutes), f"{args.minutes:g} min"
    else:
        mode, name = FULL, "full"
    result = asyncio.run(soak(mode, name, args.tracemalloc, args.trace_server))
    if args.json:
        print(report_json(result, mode.reference_s))
    else:
        print(report_table(result, mode.reference_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
