"""Benchmark: the docker sandbox's persistent shell against a fresh ``docker exec`` per call.

What is measured, all in one run on the same machine:

* tool-call latency of a trivial command (``echo x``), wall time from the call to its
  output in hand, N calls per method, in blocks of ``BLOCK`` calls whose order rotates
  from block to block so machine noise falls on every method alike:

  - ``persistent``: ``DockerSandbox.bash("echo x")``, corral's docker backend: one
    ``docker exec -i CONTAINER bash`` started with the session, commands written to its
    stdin, the end found by a marker.
  - ``exec`` (the peer the aim names): ``docker exec -w /workspace CONTAINER sh -c
    'echo x'`` as a fresh subprocess per call (asyncio, as corral would spawn it), into
    the same container. The docker CLI starts, asks the engine for an exec instance,
    attaches, starts it and waits for its exit code, every call.
  - ``exec-api``: the same exec made through the engine's API with the docker SDK
    (``container.exec_run``, one client kept open), i.e. without the CLI's start-up:
    what a per-call design that skipped the CLI would pay. For reference, no aim.
  - ``local``: ``LocalSandbox.bash("echo x")``, corral's local backend, a persistent
    bash under bubblewrap (when ``bwrap`` works here, as by default).

  Every method first makes ``WARMUP`` untimed calls. Each answer is checked (output
  ``x``, exit status 0); a wrong one is counted and still timed (per-call execs lose
  the output now and then). Reported: p50, p99 (nearest rank), mean, max, wrong
  answers, and the ratio of each peer's p50 and p99 to the persistent shell's. The
  persistent shell is first checked to run in the container (its ``hostname``).

* session start: from nothing to the first command's answer: ``DockerSandbox(...)``,
  ``start()`` (the container is created and started, the engine asked whether it has
  bash, the ``docker exec -i`` shell spawned) and the first ``bash("echo x")``, whose
  time includes the docker CLI's start-up and attach. The phases are reported apart.
  ``cold``: just before, ``sync`` and ``echo 3 > /proc/sys/vm/drop_caches`` (needs root)
  empty the page cache, dentries and inodes, so the image's layer files, the docker CLI,
  runc and the shell's binaries are read from disk again. Running processes keep what
  they hold in memory (dockerd, containerd and their mapped code, this interpreter and
  its imported modules), so this is the cold cache of a machine whose engine is already
  up, not a boot. ``warm``: the same again straight after a cold start, everything
  cached. Cold and warm alternate; every container is removed (untimed) before the
  next start. The bytes read from the disk holding /var/lib/docker during each start
  (``/proc/diskstats``, the whole device: anything else reading then counts too) show
  how cold it was. A local (bubblewrap) start, warm, is timed the same way.

Full run: 500 calls per method, 7 cold, 7 warm and 7 local starts (about 1.5 min here);
``--quick``: 40 calls, 2, 2 and 3 starts (about 15 s).

The aim (issue 16): the persistent shell's p50 at most 20 ms and at least 3x faster than
``docker exec`` per call (exec p50 / persistent p50 >= 3).

Every container made here is labelled with a fresh temp data dir and removed at the end,
failure or not (``close(remove=True)``, then a sweep by that label); temp workspaces go
with their directories.

Run ``python bench/sandbox.py [--quick] [--json]`` as root (for the cold starts; without
root they are skipped and the JSON says why) with a Docker engine and the image
``corral-python:latest`` (``corral env build``); ``--json`` prints one JSON object
(figures, machine, verdict) instead of the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tui.core.errors import SandboxError
from tui.core.sandboxes.docker import DockerSandbox, orphan_containers, remove_containers
from tui.core.sandboxes.engine import docker_client
from tui.core.sandboxes.local import LocalSandbox, bubblewrap_works
from tui.core.session.spec import DEFAULT_IMAGE, EnvironmentSpec

COMMAND = "echo x"
EXPECTED = "x"
TIMEOUT_S = 60.0
WARMUP = 5
BLOCK = 10  # calls per method in a row before the next method's turn
AIM_P50_MS = 20.0
AIM_RATIO = 3.0
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
PEER = (
    "docker exec -w /workspace CONTAINER sh -c 'echo x', a fresh CLI subprocess per call,"
    " into the same container"
)


@dataclass(frozen=True)
class Mode:
    calls: int  # timed calls per method
    starts: int  # cold starts, and as many warm ones
    local_starts: int


MODES = {
    "full": Mode(calls=500, starts=7, local_starts=7),
    "quick": Mode(calls=40, starts=2, local_starts=3),
}
METHODS = ("persistent", "exec", "exec-api", "local")


# -- statistics --------------------------------------------------------------------------


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Latency:
    method: str
    calls: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    wrong: int  # answers without the output or status expected (timed all the same)
    samples_ms: list[float] = field(default_factory=list)


def latency(method: str, seconds: list[float], wrong: int) -> Latency:
    ordered = sorted(seconds)

    def ms(value: float) -> float:
        return round(value * 1000, 3)

    return Latency(
        method=method,
        calls=len(ordered),
        p50_ms=ms(percentile(ordered, 0.50)),
        p99_ms=ms(percentile(ordered, 0.99)),
        mean_ms=ms(statistics.fmean(ordered)),
        min_ms=ms(ordered[0]),
        max_ms=ms(ordered[-1]),
        wrong=wrong,
        samples_ms=[ms(s) for s in seconds],  # in call order
    )


def ratio(peer: float, ours: float) -> float:
    return round(peer / ours, 2) if ours else float("inf")


# -- the calls ---------------------------------------------------------------------------


def answered(output: str, exit_code: int | None) -> bool:
    return exit_code == 0 and output.strip() == EXPECTED


def check(method: str, output: str, exit_code: int | None) -> None:
    if not answered(output, exit_code):
        raise SystemExit(
            f"{method}: expected {EXPECTED!r} and status 0, got {output!r} {exit_code}"
        )


async def via_sandbox(sandbox: LocalSandbox) -> tuple[str, int | None]:
    result = await sandbox.bash(COMMAND, TIMEOUT_S)
    return result.output, result.exit_code


async def via_exec_cli(container_id: str) -> tuple[str, int | None]:
    proc = await asyncio.create_subprocess_exec(
        *("docker", "exec", "-w", "/workspace", container_id, "sh", "-c", COMMAND),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return out.decode(), proc.returncode


async def via_exec_api(container: Any) -> tuple[str, int | None]:
    # Blocking on purpose: nothing else runs meanwhile, and a thread hop would add its own
    # latency to this peer only.
    result = container.exec_run(["sh", "-c", COMMAND], workdir="/workspace")
    return result.output.decode(), result.exit_code


async def measure_calls(
    calls: dict[str, Callable[[], Awaitable[tuple[str, int | None]]]],
    count: int,
    log: Callable[[str], None],
) -> dict[str, Latency]:
    names = list(calls)
    for name in names:
        for _ in range(WARMUP):
            await calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    # A per-call exec now and then returns status 0 and no output (docker-py #2042,
    # moby #27289): counted, not fatal, so one lost answer does not void the run.
    wrong = dict.fromkeys(names, 0)
    blocks = -(-count // BLOCK)
    for block in range(blocks):
        # Rotate who goes first so no method always follows the same one.
        order = names[block % len(names) :] + names[: block % len(names)]
        for name in order:
            call = calls[name]
            for _ in range(min(BLOCK, count - block * BLOCK)):
                t0 = time.perf_counter()
                output, code = await call()
                samples[name].append(time.perf_counter() - t0)
                if not answered(output, code):
                    wrong[name] += 1
                    log(f"  {name}: wrong answer {output!r} status {code}")
        if block % 10 == 9:
            log(f"  calls: {(block + 1) * BLOCK}/{count} per method")
    return {name: latency(name, samples[name], wrong[name]) for name in names}


# -- session start -----------------------------------------------------------------------


def drop_caches() -> str | None:
    """Empty the page cache, dentries and inodes; the reason it cannot, or None."""
    if os.geteuid() != 0:
        return "not root: cannot write /proc/sys/vm/drop_caches"
    try:
        os.sync()
        DROP_CACHES.write_text("3\n")
    except OSError as exc:
        return f"cannot drop caches: {exc}"
    return None


def disk_read_bytes(path: str = "/var/lib/docker") -> int | None:
    """Bytes read so far from the block device holding ``path`` (/proc/diskstats)."""
    try:
        dev = os.stat(path if os.path.exists(path) else "/").st_dev
        for line in Path("/proc/diskstats").read_text().splitlines():
            f = line.split()
            if (int(f[0]), int(f[1])) == (os.major(dev), os.minor(dev)):
                return int(f[5]) * 512  # sectors read, always 512-byte units here
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass
class Start:
    kind: str  # "cold", "warm", or "local"
    start_s: float  # construction + start()
    first_call_s: float  # the first bash()
    total_s: float
    # Read from the disk during it: shows a cold start really went to the disk.
    disk_read_mb: float | None


@dataclass
class StartSummary:
    kind: str
    runs: int
    total_p50_ms: float
    total_min_ms: float
    total_max_ms: float
    start_p50_ms: float
    first_call_p50_ms: float
    disk_read_mb_p50: float | None
    samples: list[Start] = field(default_factory=list)


def summarise(kind: str, runs: list[Start]) -> StartSummary:
    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 1)

    totals = [r.total_s for r in runs]
    return StartSummary(
        kind=kind,
        runs=len(runs),
        total_p50_ms=ms(totals),
        total_min_ms=round(min(totals) * 1000, 1),
        total_max_ms=round(max(totals) * 1000, 1),
        start_p50_ms=ms([r.start_s for r in runs]),
        first_call_p50_ms=ms([r.first_call_s for r in runs]),
        disk_read_mb_p50=(
            None
            if any(r.disk_read_mb is None for r in runs)
            else round(statistics.median([r.disk_read_mb or 0.0 for r in runs]), 1)
        ),
        samples=runs,
    )


class Bench:
    """Holds every sandbox it makes, so ``close`` can remove them all on any exit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"  # labels this run's containers; never holds a store
        self.data_dir.mkdir()
        self.environment = EnvironmentSpec(backend="docker", image=DEFAULT_IMAGE)
        self.open: list[LocalSandbox] = []
        self.made = 0

    def workspace(self) -> Path:
        self.made += 1
        path = self.root / f"ws-{self.made}"
        path.mkdir()
        return path

    def docker(self) -> DockerSandbox:
        sandbox = DockerSandbox(
            self.workspace(), self.environment, f"bench-sandbox-{self.made}", self.data_dir
        )
        self.open.append(sandbox)
        return sandbox

    def local(self) -> LocalSandbox:
        sandbox = LocalSandbox(self.workspace())  # bubblewrap when it works: the default
        self.open.append(sandbox)
        return sandbox

    async def discard(self, sandbox: LocalSandbox) -> None:
        self.open.remove(sandbox)
        if isinstance(sandbox, DockerSandbox):
            await sandbox.close(remove=True)
        else:
            await sandbox.close()

    async def close(self) -> None:
        for sandbox in list(self.open):
            with contextlib.suppress(Exception):
                await self.discard(sandbox)
        # Anything a half-made start left behind carries this run's label.
        with contextlib.suppress(Exception):
            left = orphan_containers(self.data_dir, set())
            await asyncio.to_thread(remove_containers, [cid for cid, _ in left])

    async def timed_start(self, kind: str) -> Start:
        read0 = disk_read_bytes()
        t0 = time.perf_counter()
        sandbox = self.local() if kind == "local" else self.docker()
        try:
            await sandbox.start()
            t1 = time.perf_counter()
            output, code = await via_sandbox(sandbox)
            t2 = time.perf_counter()
            read1 = disk_read_bytes()
            check(f"{kind} start", output, code)
        finally:
            await self.discard(sandbox)  # untimed
        mb = None if read0 is None or read1 is None else round((read1 - read0) / 1e6, 1)
        return Start(kind, round(t1 - t0, 4), round(t2 - t1, 4), round(t2 - t0, 4), mb)


# -- the run -----------------------------------------------------------------------------


@dataclass
class Results:
    calls: dict[str, Latency]
    starts: dict[str, StartSummary]
    cold_note: str | None  # why there are no cold starts, if there are none
    shell: str  # what the persistent shell runs in the container
    isolation: dict[str, str]
    wall_s: float
    load_before: list[float]
    load_after: list[float]
    other_containers: int  # running when the run began, not ours


async def run(mode: Mode, root: Path, log: Callable[[str], None]) -> Results:
    # SIGTERM too (Ctrl-C already does) goes through the finally below: nothing left behind.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    t_begin = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    client = docker_client()
    bench = Bench(root)
    try:
        other = len(client.containers.list())
        client.images.get(DEFAULT_IMAGE)  # fails clearly before anything is timed
        if not bubblewrap_works():
            log("  note: bubblewrap does not work here; local runs a plain subprocess")

        docker = bench.docker()
        local = bench.local()
        await docker.start()
        await local.start()
        assert docker.container_id is not None
        cid = docker.container_id
        container = client.containers.get(cid)
        # The shell really is in the container: docker names its host after the id.
        where = await docker.bash("hostname", TIMEOUT_S)
        if where.output.strip() != cid[:12]:
            raise SystemExit(f"persistent shell is not in {cid[:12]}: {where.output!r}")
        calls = {
            "persistent": lambda: via_sandbox(docker),
            "exec": lambda: via_exec_cli(cid),
            "exec-api": lambda: via_exec_api(container),
            "local": lambda: via_sandbox(local),
        }
        log(f"  calls: {mode.calls} per method, {list(calls)}")
        latencies = await measure_calls(calls, mode.calls, log)
        shell = docker._shell
        isolation = {"docker": docker.isolation, "local": local.isolation}
        await bench.discard(docker)
        await bench.discard(local)

        starts: dict[str, list[Start]] = {"cold": [], "warm": [], "local": []}
        cold_note = drop_caches()  # also a probe: may it drop them at all?
        for i in range(mode.starts):
            if cold_note is None:
                cold_note = drop_caches()
                if cold_note is None:
                    starts["cold"].append(await bench.timed_start("cold"))
            starts["warm"].append(await bench.timed_start("warm"))
            log(f"  session start: {i + 1}/{mode.starts} cold+warm")
        for _ in range(mode.local_starts):
            starts["local"].append(await bench.timed_start("local"))
        summaries = {k: summarise(k, v) for k, v in starts.items() if v}
    finally:
        await bench.close()
        client.close()
    return Results(
        calls=latencies,
        starts=summaries,
        cold_note=cold_note,
        shell=shell,
        isolation=isolation,
        wall_s=round(time.perf_counter() - t_begin, 1),
        load_before=load_before,
        load_after=[round(x, 2) for x in os.getloadavg()],
        other_containers=other,
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


def docker_versions() -> dict[str, str]:
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Client.Version}} {{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        client, server = done.stdout.split()
    except (OSError, ValueError, subprocess.SubprocessError):
        return {"client": "?", "server": "?"}
    return {"client": client, "server": server}


def machine() -> dict[str, Any]:
    import docker

    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "docker": docker_versions(),
        "docker_sdk": docker.__version__,
        "bwrap": shutil.which("bwrap") or "none",
    }


def aim(r: Results) -> dict[str, Any]:
    p50 = r.calls["persistent"].p50_ms
    speedup = ratio(r.calls["exec"].p50_ms, p50)
    return {
        "p50_ms_target": AIM_P50_MS,
        "ratio_target": AIM_RATIO,
        "persistent_p50_ms": p50,
        "exec_over_persistent_p50": speedup,
        "p50_met": p50 <= AIM_P50_MS,
        "ratio_met": speedup >= AIM_RATIO,
        "persistent_wrong": r.calls["persistent"].wrong,
        "all_met": p50 <= AIM_P50_MS and speedup >= AIM_RATIO,
    }


def report_json(mode: str, r: Results) -> str:
    base = r.calls["persistent"]
    return json.dumps(
        {
            "benchmark": "sandbox",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "command": COMMAND,
            "peer": PEER,
            "machine": machine(),
            "load_before": r.load_before,
            "load_after": r.load_after,
            "other_containers_running": r.other_containers,
            "wall_s": r.wall_s,
            "shell": r.shell,
            "isolation": r.isolation,
            "calls": {k: asdict(v) for k, v in r.calls.items()},
            "ratios_over_persistent": {
                k: {"p50": ratio(v.p50_ms, base.p50_ms), "p99": ratio(v.p99_ms, base.p99_ms)}
                for k, v in r.calls.items()
                if k != "persistent"
            },
            "session_start": {k: asdict(v) for k, v in r.starts.items()},
            "cold_note": r.cold_note,
            "aim": aim(r),
        },
        indent=2,
    )


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report_table(mode: str, r: Results) -> str:
    base = r.calls["persistent"]
    lines = [
        f"corral's docker persistent shell vs {PEER}; mode={mode}",
        f"machine: {machine()}",
        f"load average before {r.load_before}, after {r.load_after};"
        f" {r.other_containers} other containers running; wall {r.wall_s} s",
        f"shell in the container: {r.shell}; docker: {r.isolation['docker']}",
        f"local: {r.isolation['local']}",
        "",
        f"tool-call latency of {COMMAND!r} (ms; ratio = method / persistent)",
        f"{'method':>11} {'calls':>6} {'p50':>8} {'p99':>8} {'mean':>8} {'max':>8}"
        f" {'p50 ratio':>10} {'p99 ratio':>10} {'wrong':>6}",
    ]
    for name, lat in r.calls.items():
        lines.append(
            f"{name:>11} {lat.calls:>6} {lat.p50_ms:>8.2f} {lat.p99_ms:>8.2f}"
            f" {lat.mean_ms:>8.2f} {lat.max_ms:>8.2f}"
            f" {ratio(lat.p50_ms, base.p50_ms):>9.2f}x {ratio(lat.p99_ms, base.p99_ms):>9.2f}x"
            f" {lat.wrong:>6}"
        )
    lines += [
        "",
        "session start to the first answer (ms; p50 of runs; start = create + start(),"
        " first = the first bash())",
        f"{'kind':>6} {'runs':>5} {'total p50':>10} {'min':>8} {'max':>8}"
        f" {'start p50':>10} {'first p50':>10} {'disk MB':>8}",
    ]
    for s in r.starts.values():
        lines.append(
            f"{s.kind:>6} {s.runs:>5} {s.total_p50_ms:>10.1f} {s.total_min_ms:>8.1f}"
            f" {s.total_max_ms:>8.1f} {s.start_p50_ms:>10.1f} {s.first_call_p50_ms:>10.1f}"
            f" {'?' if s.disk_read_mb_p50 is None else s.disk_read_mb_p50:>8}"
        )
    if r.cold_note:
        lines.append(f"no cold starts: {r.cold_note}")
    v = aim(r)
    lines += [
        "",
        f"aim: persistent p50 <= {AIM_P50_MS:g} ms: {met(v['p50_met'])}"
        f" ({v['persistent_p50_ms']:.2f} ms)",
        f"aim: exec p50 / persistent p50 >= {AIM_RATIO:g}: {met(v['ratio_met'])}"
        f" ({v['exec_over_persistent_p50']:.2f}x)",
    ]
    return "\n".join(lines)


def sweep(root: Path) -> None:
    """Remove what may outlive the event loop: a container whose creation, in a thread,
    was still under way when the run was interrupted (asyncio.run has waited for that
    thread by now), and the temp directory (docker recreates a missing bind source)."""
    # Another Ctrl-C or SIGTERM now must not cut the cleaning short.
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.suppress(Exception):
            left = orphan_containers(root / "data", set())
            remove_containers([cid for cid, _ in left])
        shutil.rmtree(root, ignore_errors=True)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and starts: under 60 s")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    root = Path(tempfile.mkdtemp(prefix="corral-bench-sandbox-"))
    try:
        try:
            results = asyncio.run(run(MODES[mode], root, log))
        finally:
            sweep(root)
        print(report_json(mode, results) if args.json else report_table(mode, results))
    except SandboxError as exc:
        print(f"sandbox.py: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("sandbox.py: interrupted; its containers and workspaces removed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
