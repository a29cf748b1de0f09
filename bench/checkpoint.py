"""Benchmark: corral's workspace checkpoints against ``git add -A && git commit``.

What is measured, for workspaces of 10,000 and 100,000 files (``--quick``: 1,000) and
for 1 and 100 files changed between two checkpoints, all in one run on the same
machine, with three sides each on their own copy of the same tree:

* ``tracked``: corral as sessions run it, a change tracker (inotify) naming what
  changed, so an incremental checkpoint or a restore looks only at those paths;
* ``scan``: corral with tracking off (``checkpoint_tracking = false``), every
  checkpoint and restore walking the whole tree (the fallback path);
* ``git``.

* tree: generated from a fixed seed. Directories nested up to 4 deep, about 20 files
  each; file sizes log-normal (median 4 KiB, 128 B to 2 MiB) scaled so the mean is
  10,000 bytes (1,000 and 10,000 files: 10 MB and 100 MB) or, for the 100,000-file
  tree, 1,000 bytes (100 MB: small files, as in a ``node_modules``). 90% of files are
  text (slices of a pseudo-source pool, so zlib shrinks them about as it shrinks
  code), 10% random bytes (incompressible). Every file starts with a line naming it,
  so no two are identical.
* initial checkpoint: a fresh blob store and a fresh ``Checkpointer`` (empty stat
  cache) snapshotting the whole tree (the tracked side also puts a watch on every
  directory as it walks: arming its tracker is part of its time), against
  ``git add -A && git commit -q`` into a fresh ``git init`` (creating the empty
  repository is not timed, as creating the empty blob directory is not).
* incremental checkpoint: ``changed`` files (the same seeded choice every repetition)
  rewritten in place with new content of the same size, then ``Checkpointer.snapshot``
  with the previous manifest as base, against ``git add -A && git commit -q``. One
  ``Checkpointer`` serves the whole sequence, as in a session, so its stat cache is
  warm, as git's index is.
* restore: the workspace back to the previous checkpoint (``Checkpointer.restore``)
  against ``git checkout -q -f <previous commit>``, then forward to the new one again.
  ``checkout -f`` to a commit, unlike ``checkout <commit> -- .``, also deletes files
  tracked now but absent there, as corral's restore does; the workspace has just been
  checkpointed, so nothing is untracked and ``git clean`` would have nothing to do.
* storage growth of the incremental checkpoint: the sum of file sizes under the blob
  directory after minus before (and the record's ``stored_bytes``), against the same
  for all of ``.git`` (objects, index, logs; git zlib-compresses its loose objects,
  corral stores content as is). Allocated blocks (``st_blocks``) are in the JSON too.
  A chain of manifests stores a full one instead of a delta once every
  ``FULL_EVERY`` checkpoints; "amortised" growth adds that (the initial checkpoint's
  full manifest, measured) spread over them.

Timing is wall time of the public async API (``await cp.snapshot(...)``,
``await cp.restore(...)``, each one ``asyncio.to_thread`` hop) and of the git
commands as subprocesses, which is what a checkpointer built on git would pay too.
The page cache is warm for both (the trees were just written); ``os.sync()`` runs,
untimed, before every timed step so neither side pays for the other's writeback, and
the side that goes first alternates between repetitions. Git runs with no system or
global config (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``) plus a user
name, ``gc.auto=0`` and ``maintenance.auto=false`` (no gc or repack mid-run); its
durability is its default ``core.fsync`` (loose objects, index and refs not
fsynced), which matches corral's blob store (no fsync). Reported times are medians
over the repetitions: full run 5 initial and 7 incremental ones at 10,000 files, 2
and 5 at 100,000; ``--quick`` the 1,000-file tree only with 2 and 3, in well under a
minute.

The aim: corral's checkpoint and restore take at most 0.5x git's time, and an
incremental checkpoint grows storage by at most the changed bytes + 16 KiB.

Run ``python bench/checkpoint.py [--quick] [--json]``; ``--json`` prints one JSON
object (figures, machine, verdict) instead of the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
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

from tui.core.checkpoints.checkpointer import Checkpointer, Tracking
from tui.core.checkpoints.manifests import FULL_EVERY
from tui.core.checkpoints.records import FULL, MANUAL, TRACKED

SEED = 20261126
MEAN_FILE_BYTES = 10_000
FILES_PER_DIR = 20
MAX_DEPTH = 4
MIN_FILE, MAX_FILE = 128, 2 << 20
BINARY_SHARE = 0.1
POOL_BYTES = 4 << 20  # text slices come from here; > MAX_FILE so any size fits

AIM_TIME_RATIO = 0.5
AIM_SLACK_BYTES = 16 * 1024

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}
GIT_CONFIG = (
    *("-c", "user.name=bench"),
    *("-c", "user.email=bench@example.invalid"),
    *("-c", "gc.auto=0"),
    *("-c", "maintenance.auto=false"),
    *("-c", "commit.gpgSign=false"),
)
PEER = (
    "git add -A && git commit -q (fresh repo for the initial one); restore:"
    " git checkout -q -f <commit>; no system/global config, gc.auto=0,"
    " default core.fsync"
)


@dataclass(frozen=True)
class Size:
    files: int
    mean_bytes: int
    initial_reps: int
    reps: int


@dataclass(frozen=True)
class Mode:
    sizes: tuple[Size, ...]
    changed: tuple[int, ...]


MODES = {
    "full": Mode(
        sizes=(Size(10_000, MEAN_FILE_BYTES, 5, 7), Size(100_000, 1_000, 2, 5)), changed=(1, 100)
    ),
    "quick": Mode(sizes=(Size(1_000, MEAN_FILE_BYTES, 2, 3),), changed=(1, 100)),
}
CORRAL_SIDES = ("tracked", "scan")
SIDES = (*CORRAL_SIDES, "git")


# -- the tree ----------------------------------------------------------------------------


@dataclass
class Tree:
    files: list[str]  # relative paths
    sizes: dict[str, int]
    binary: set[str]
    bytes: int
    dirs: int


class Content:
    """Seeded file contents: text slices of a pseudo-source pool, or random bytes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        letters = "abcdefghijklmnopqrstuvwxyz_"
        words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(2_000)]
        words += ["=", "(", ")", ":", "return", "def", "if", "self.", "0", "1", "+", ","]
        lines = []
        size = 0
        while size < POOL_BYTES:
            line = "    " * rng.randint(0, 3) + " ".join(rng.choices(words, k=rng.randint(3, 12)))
            lines.append(line)
            size += len(line) + 1
        self.pool = "\n".join(lines).encode()[:POOL_BYTES]

    def make(self, path: str, size: int, binary: bool, rev: int) -> bytes:
        # The revision leads, so even a file shorter than its header changes with it.
        head = f"# r{rev} {path}\n".encode()
        if binary:
            body = self.rng.randbytes(size)
        else:
            start = self.rng.randrange(0, len(self.pool) - size)
            body = self.pool[start : start + size]
        return (head + body)[:size]


def plan_tree(files: int, rng: random.Random, mean_bytes: int = MEAN_FILE_BYTES) -> Tree:
    dirs: list[tuple[str, int]] = [("", 0)]  # (relative path, depth)
    for i in range(max(1, files // FILES_PER_DIR) - 1):
        parent, depth = rng.choice([d for d in dirs if d[1] < MAX_DEPTH] or dirs[:1])
        name = f"{parent}/pkg{i:04d}" if parent else f"pkg{i:04d}"
        dirs.append((name, depth + 1))
    raw = [rng.lognormvariate(math.log(4096), 1.3) for _ in range(files)]
    scale = mean_bytes * files / sum(raw)
    sizes: dict[str, int] = {}
    binary: set[str] = set()
    paths = []
    for i, r in enumerate(raw):
        parent = rng.choice(dirs)[0]
        is_binary = rng.random() < BINARY_SHARE
        name = f"mod{i:05d}.{'bin' if is_binary else rng.choice(('py', 'md', 'json', 'txt'))}"
        path = f"{parent}/{name}" if parent else name
        paths.append(path)
        sizes[path] = min(MAX_FILE, max(MIN_FILE, int(r * scale)))
        if is_binary:
            binary.add(path)
    return Tree(paths, sizes, binary, sum(sizes.values()), len(dirs) - 1)


def write_files(roots: list[Path], contents: dict[str, bytes]) -> None:
    """Write each file in place (same inode), into every root: as an editor saves."""
    for path, data in contents.items():
        for root in roots:
            full = root / path
            full.parent.mkdir(parents=True, exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)


def check_files(root: Path, contents: dict[str, bytes], side: str) -> None:
    for path, data in contents.items():
        if (root / path).read_bytes() != data:
            raise SystemExit(f"{side}: {path} does not hold the expected content")


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Usage:
    bytes: int  # sum of file sizes
    blocks: int  # allocated, in bytes (st_blocks * 512)


def usage(root: Path, skip: str | None = None) -> Usage:
    total = blocks = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and skip in dirnames and dirpath == str(root):
            dirnames.remove(skip)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_size
            blocks += st.st_blocks * 512
    return Usage(total, blocks)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *GIT_CONFIG, *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True
    )
    return done.stdout.decode().strip()


def timed_git_commit(repo: Path, message: str) -> tuple[float, str]:
    os.sync()
    t0 = time.perf_counter()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    seconds = time.perf_counter() - t0
    return seconds, git(repo, "rev-parse", "HEAD")  # untimed: only to name the commit


def timed_git_checkout(repo: Path, commit: str) -> float:
    os.sync()
    t0 = time.perf_counter()
    git(repo, "checkout", "-q", "-f", commit)
    return time.perf_counter() - t0


async def timed(step: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    os.sync()
    t0 = time.perf_counter()
    result = await step()
    return time.perf_counter() - t0, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(corral: float, git_value: float) -> float:
    return round(corral / git_value, 3) if git_value else math.inf


# -- results -----------------------------------------------------------------------------


@dataclass
class Initial:
    files: int
    dirs: int
    bytes: int
    seconds: dict[str, float]  # side -> median
    ratio: dict[str, float]  # corral side -> its time / git's
    corral_store_bytes: int  # blob directory after the initial checkpoint
    git_store_bytes: int  # .git after the initial commit
    # The initial checkpoint's manifest is a full one; every FULL_EVERY-th checkpoint of
    # a chain stores one again instead of a delta, so this is that checkpoint's extra.
    full_manifest_bytes: int
    samples: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Incremental:
    files: int
    changed: int
    changed_bytes: int
    # side -> median seconds of: the checkpoint, the restore back to the previous one,
    # and forward to the new one again; ratios are corral side / git.
    checkpoint_s: dict[str, float]
    restore_s: dict[str, float]
    forward_s: dict[str, float]
    checkpoint_ratio: dict[str, float]
    restore_ratio: dict[str, float]
    forward_ratio: dict[str, float]
    growth_corral_bytes: int  # median over repetitions, blob directory delta (tracked)
    stored_bytes: int  # median of the records' stored_bytes
    growth_git_bytes: int  # median, .git delta
    growth_git_objects_bytes: int
    growth_corral_blocks: int
    growth_git_blocks: int
    growth_limit_bytes: int  # changed bytes + 16 KiB
    # Growth with the periodic full manifest spread over its FULL_EVERY checkpoints.
    growth_amortised_bytes: int
    samples: dict[str, list[float]] = field(default_factory=dict)


def ratios(seconds: dict[str, float]) -> dict[str, float]:
    return {side: ratio(seconds[side], seconds["git"]) for side in CORRAL_SIDES}


# -- the run -----------------------------------------------------------------------------


def corral_checkpointer(side: str, blobs_root: Path) -> Checkpointer:
    # Verification off: the tracked side is timed as it runs between verifications.
    tracking = Tracking(verify_every=0) if side == "tracked" else Tracking(enabled=False)
    return Checkpointer(blobs_root, tracking=tracking)


async def bench_size(
    size: Size, changes: tuple[int, ...], work: Path, log: Callable[[str], None]
) -> tuple[Initial, list[Incremental]]:
    files = size.files
    rng = random.Random(SEED + files)
    content = Content(rng)
    tree = plan_tree(files, rng, size.mean_bytes)
    ws = {side: work / f"{side}-ws" for side in SIDES}
    blobs = {side: work / f"{side}-blobs" for side in CORRAL_SIDES}
    originals = {p: content.make(p, tree.sizes[p], p in tree.binary, 0) for p in tree.files}
    write_files(list(ws.values()), originals)
    del originals
    log(f"  {files} files: trees written ({tree.bytes / 1e6:.1f} MB in {tree.dirs + 1} dirs)")

    # Initial checkpoint: a fresh store and repository each repetition; the last stay.
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    cps: dict[str, Checkpointer] = {}
    manifest: dict[str, str] = {}
    commit = ""
    for rep in range(size.initial_reps):
        if rep:
            # Set the last stores and repository aside, not deleted: deleting 10k files
            # leaves the filesystem work (journal, discards) that would land in timings.
            for side in CORRAL_SIDES:
                cps[side].close()
                blobs[side].rename(work / f"old-{side}-blobs-{rep}")
            (ws["git"] / ".git").rename(work / f"old-git-{rep}")
        cps = {side: corral_checkpointer(side, blobs[side]) for side in CORRAL_SIDES}
        git(ws["git"], "init", "-q", "-b", "main")
        for side in SIDES[rep % 3 :] + SIDES[: rep % 3]:
            if side == "git":
                seconds, commit = timed_git_commit(ws["git"], "initial")
            else:

                async def first(cp: Checkpointer = cps[side], side: str = side) -> Any:
                    return await cp.snapshot("bench", ws[side], None, kind=MANUAL, turn=0)

                seconds, record = await timed(first)
                manifest[side] = record.manifest
            samples[side].append(seconds)
    med = {side: median(v) for side, v in samples.items()}
    initial = Initial(
        files=files,
        dirs=tree.dirs,
        bytes=tree.bytes,
        seconds=med,
        ratio=ratios(med),
        corral_store_bytes=usage(blobs["tracked"], skip="tmp").bytes,
        git_store_bytes=usage(ws["git"] / ".git").bytes,
        full_manifest_bytes=cps["tracked"].blobs.size(manifest["tracked"]),
        samples=samples,
    )
    log(f"  {files} files: initial checkpoint done")

    rev = 0
    rows = []
    for changed in changes:
        chosen = sorted(random.Random(SEED + files + changed).sample(tree.files, changed))
        changed_bytes = sum(tree.sizes[p] for p in chosen)
        s: dict[str, list[float]] = {
            f"{k}_{side}": [] for k in ("cp", "re", "fw") for side in SIDES
        }
        growth: dict[str, list[int]] = {
            k: [] for k in ("corral", "stored", "git", "git_objects", "corral_blk", "git_blk")
        }
        # Contents of the chosen files as of the current checkpoint, to check restores.
        before = {p: (ws["git"] / p).read_bytes() for p in chosen}
        for rep in range(size.reps):
            rev += 1
            after = {p: content.make(p, tree.sizes[p], p in tree.binary, rev) for p in chosen}
            write_files(list(ws.values()), after)
            blobs_before = usage(blobs["tracked"], skip="tmp")
            git_before = usage(ws["git"] / ".git")
            objects_before = usage(ws["git"] / ".git" / "objects").bytes
            previous, prev_commit = dict(manifest), commit
            order = SIDES[rep % 3 :] + SIDES[: rep % 3]
            for side in order:
                if side == "git":
                    seconds, commit = timed_git_commit(ws["git"], f"rev {rev}")
                else:

                    async def snap(
                        side: str = side, base: str = previous[side], turn: int = rev
                    ) -> Any:
                        return await cps[side].snapshot(
                            "bench", ws[side], base, kind=MANUAL, turn=turn
                        )

                    seconds, record = await timed(snap)
                    manifest[side] = record.manifest
                    if record.changed != changed:
                        raise SystemExit(f"{side}: saw {record.changed} changes, not {changed}")
                    if record.scan != (TRACKED if side == "tracked" else FULL):
                        raise SystemExit(f"{side}: a {record.scan} scan ({record.scan_note})")
                    if side == "tracked":
                        growth["stored"].append(record.stored_bytes)
                s[f"cp_{side}"].append(seconds)
            blobs_after = usage(blobs["tracked"], skip="tmp")
            git_after = usage(ws["git"] / ".git")
            growth["corral"].append(blobs_after.bytes - blobs_before.bytes)
            growth["corral_blk"].append(blobs_after.blocks - blobs_before.blocks)
            growth["git"].append(git_after.bytes - git_before.bytes)
            growth["git_blk"].append(git_after.blocks - git_before.blocks)
            growth["git_objects"].append(
                usage(ws["git"] / ".git" / "objects").bytes - objects_before
            )

            # Back to the previous checkpoint, then forward again.
            for targets, target_commit, expect, key in (
                (previous, prev_commit, before, "re"),
                (dict(manifest), commit, after, "fw"),
            ):
                for side in order:
                    if side == "git":
                        s[f"{key}_git"].append(timed_git_checkout(ws["git"], target_commit))
                    else:

                        async def go(side: str = side, m: str = targets[side]) -> Any:
                            return await cps[side].restore(ws[side], m)

                        seconds, _ = await timed(go)
                        s[f"{key}_{side}"].append(seconds)
                    check_files(ws[side], expect, side)
            before = after
        med = {k: median(v) for k, v in s.items()}
        g = {k: int(median(v)) for k, v in growth.items()}  # type: ignore[arg-type]
        cp_s = {side: med[f"cp_{side}"] for side in SIDES}
        re_s = {side: med[f"re_{side}"] for side in SIDES}
        fw_s = {side: med[f"fw_{side}"] for side in SIDES}
        rows.append(
            Incremental(
                files=files,
                changed=changed,
                changed_bytes=changed_bytes,
                checkpoint_s=cp_s,
                restore_s=re_s,
                forward_s=fw_s,
                checkpoint_ratio=ratios(cp_s),
                restore_ratio=ratios(re_s),
                forward_ratio=ratios(fw_s),
                growth_corral_bytes=g["corral"],
                stored_bytes=g["stored"],
                growth_git_bytes=g["git"],
                growth_git_objects_bytes=g["git_objects"],
                growth_corral_blocks=g["corral_blk"],
                growth_git_blocks=g["git_blk"],
                growth_limit_bytes=changed_bytes + AIM_SLACK_BYTES,
                growth_amortised_bytes=g["corral"] + initial.full_manifest_bytes // FULL_EVERY,
                samples=s,
            )
        )
        log(f"  {files} files, {changed} changed: done")
    for cp in cps.values():
        cp.close()
    return initial, rows


def run(mode: Mode, log: Callable[[str], None]) -> tuple[list[Initial], list[Incremental]]:
    initials: list[Initial] = []
    rows: list[Incremental] = []
    for size in mode.sizes:
        with tempfile.TemporaryDirectory(prefix="corral-bench-checkpoint-") as tmp:
            initial, incremental = asyncio.run(bench_size(size, mode.changed, Path(tmp), log))
        initials.append(initial)
        rows.extend(incremental)
    return initials, rows


# -- machine and output ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def filesystem(path: str) -> str:
    """Device and type of the mount holding ``path`` (the longest matching mount point)."""
    best = ("", "unknown", "unknown")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, point, kind = line.split()[:3]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[0]):
                best = (point, device, kind)
    except OSError:
        pass
    return f"{best[2]} on {best[1]} (mounted at {best[0] or '?'})"


def machine() -> dict[str, Any]:
    tmp = os.path.realpath(tempfile.gettempdir())
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "git": git(Path(tmp), "--version"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "tmp": tmp,
        "tmp_filesystem": filesystem(tmp),
        # Other work on the machine moves the figures; this says how busy it was.
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def aim(initials: list[Initial], rows: list[Incremental]) -> dict[str, Any]:
    """The verdict for the tracked side (how sessions run); the scan side's ratios are in
    the figures, for comparison."""
    out: dict[str, Any] = {"time_ratio_target": AIM_TIME_RATIO, "slack_bytes": AIM_SLACK_BYTES}
    for i in initials:
        out[f"initial_{i.files}"] = {"time_met": i.ratio["tracked"] <= AIM_TIME_RATIO}
    for r in rows:
        out[f"files_{r.files}_changed_{r.changed}"] = {
            "checkpoint_time_met": r.checkpoint_ratio["tracked"] <= AIM_TIME_RATIO,
            "restore_time_met": r.restore_ratio["tracked"] <= AIM_TIME_RATIO,
            "forward_restore_time_met": r.forward_ratio["tracked"] <= AIM_TIME_RATIO,
            "growth_met": r.growth_corral_bytes <= r.growth_limit_bytes,
            "growth_amortised_met": r.growth_amortised_bytes <= r.growth_limit_bytes,
        }
    checks = [v for k, d in out.items() if isinstance(d, dict) for v in d.values()]
    out["all_met"] = all(checks)
    return out


def report_json(mode: str, initials: list[Initial], rows: list[Incremental]) -> str:
    return json.dumps(
        {
            "benchmark": "checkpoint",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "peer": PEER,
            "machine": machine(),
            "initial": [asdict(i) for i in initials],
            "incremental": [asdict(r) for r in rows],
            "aim": aim(initials, rows),
        },
        indent=2,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report_table(mode: str, initials: list[Initial], rows: list[Incremental]) -> str:
    lines = [
        f"corral checkpoints (tracked and scan) vs {PEER}; mode={mode}",
        f"machine: {machine()}",
        "",
        "initial checkpoint (ms; store = blob dir / .git after it, manifest = its full"
        " manifest, bytes)",
        f"{'files':>7} {'MB':>6} {'tracked':>9} {'scan':>9} {'git':>9} {'t/git':>6} {'s/git':>6}"
        f" {'corral store':>13} {'git store':>13} {'manifest':>10}",
    ]
    for i in initials:
        sec, rat = i.seconds, i.ratio
        lines.append(
            f"{i.files:>7,} {i.bytes / 1e6:>6.1f} {ms(sec['tracked']):>9} {ms(sec['scan']):>9}"
            f" {ms(sec['git']):>9} {rat['tracked']:>6.2f} {rat['scan']:>6.2f}"
            f" {i.corral_store_bytes:>13,} {i.git_store_bytes:>13,} {i.full_manifest_bytes:>10,}"
        )
    lines += [
        "",
        "incremental checkpoint, restore back and forward (ms: tracked / scan / git, then"
        " tracked/git and scan/git)",
        f"{'files':>7} {'chg':>4} {'checkpoint t / s / git':>24} {'t/g':>5} {'s/g':>5}"
        f" {'back t / s / git':>24} {'t/g':>5} {'s/g':>5}"
        f" {'forward t / s / git':>24} {'t/g':>5} {'s/g':>5}",
    ]

    def trio(sec: dict[str, float], rat: dict[str, float]) -> str:
        times = f"{ms(sec['tracked'])} / {ms(sec['scan'])} / {ms(sec['git'])}"
        return f" {times:>24} {rat['tracked']:>5.2f} {rat['scan']:>5.2f}"

    for r in rows:
        lines.append(
            f"{r.files:>7,} {r.changed:>4}"
            + trio(r.checkpoint_s, r.checkpoint_ratio)
            + trio(r.restore_s, r.restore_ratio)
            + trio(r.forward_s, r.forward_ratio)
        )
    lines += [
        "",
        "storage growth of an incremental checkpoint (bytes; amort = with the full manifest"
        f" stored once every {FULL_EVERY} checkpoints, spread over them)",
        f"{'files':>7} {'chg':>4} {'chg bytes':>10} {'grow c':>9} {'amort c':>9}"
        f" {'grow git':>9} {'limit':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r.files:>7,} {r.changed:>4} {r.changed_bytes:>10,} {r.growth_corral_bytes:>9,}"
            f" {r.growth_amortised_bytes:>9,} {r.growth_git_bytes:>9,} {r.growth_limit_bytes:>9,}"
        )
    verdict = aim(initials, rows)
    lines.append("")
    for i in initials:
        lines.append(
            f"aim, initial {i.files} files: time <= {AIM_TIME_RATIO}x git"
            f" {met(verdict[f'initial_{i.files}']['time_met'])}"
        )
    for r in rows:
        v = verdict[f"files_{r.files}_changed_{r.changed}"]
        lines.append(
            f"aim (tracked), {r.files} files / {r.changed} changed:"
            f" checkpoint {met(v['checkpoint_time_met'])},"
            f" restore {met(v['restore_time_met'])}"
            f" (forward {met(v['forward_restore_time_met'])}),"
            f" growth <= changed + 16 KiB {met(v['growth_met'])}"
            f" (amortised {met(v['growth_amortised_met'])})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 files only: under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    initials, rows = run(MODES[mode], log)
    out = report_json(mode, initials, rows) if args.json else report_table(mode, initials, rows)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
