"""Resource limits for the local sandbox: enforced by the kernel, or refused up front.

The local backend applies exactly the limits a spec sets (``environment.limits``; None
is "not set"). How is chosen once per machine (``probe_mechanism``, cached), preferring:

1. cgroup v2: a child of corral's own cgroup, when that cgroup delegates the controllers
   (lists them in its ``cgroup.subtree_control``);
2. a transient systemd scope (``systemd-run --scope``), when systemd answers and the probe
   shows the scope really gets the caps;
3. cgroup v1: a ``corral-…`` directory under corral's own cgroup in each writable
   hierarchy (pids, memory, cpu);
4. memory only: RLIMIT_AS through ``prlimit``. That caps address space, not resident
   memory, so it is an approximation and the isolation text says so.

A limit that none of these can enforce is refused with one line (``SandboxError``).
New cgroups go *under* corral's own, so whatever caps corral itself keep applying.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from tui.core.errors import SandboxError
from tui.core.session.spec import Limits

CONTROLLERS = ("pids", "memory", "cpu")
CGROUP_V1, CGROUP_V2, SYSTEMD, NONE = "cgroup v1", "cgroup v2", "systemd scope", "none"
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000  # the kernel refuses less
SYSTEMD_PROBE_TIMEOUT_S = 15
EMPTY_TIMEOUT_S = 5.0  # killed processes leave the cgroup within this, or close gives up
# What each limit is called in a refusal, and which controller enforces it.
NOUNS = {"pids": "a process limit", "memory_mb": "a memory limit", "cpus": "a CPU limit"}
CONTROLLER_OF = {"pids": "pids", "memory_mb": "memory", "cpus": "cpu"}
# systemd-run --user finds the user's manager through these; the shell must not inherit them.
SYSTEMD_BUS_ENV = ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")


@dataclass(frozen=True)
class Mechanism:
    """How this machine can cap a sandbox's processes."""

    kind: str  # CGROUP_V2, SYSTEMD, CGROUP_V1 or NONE
    # controller -> the cgroup directory ours are made in (the cgroup kinds only)
    parents: Mapping[str, Path] = field(default_factory=dict)
    systemd_run: tuple[str, ...] = ()  # the systemd-run command, for SYSTEMD
    prlimit: str | None = None  # for memory as RLIMIT_AS when no cgroup caps memory

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(CONTROLLERS) if self.kind == SYSTEMD else frozenset(self.parents)


NO_MECHANISM = Mechanism(NONE)


@cache
def probe_mechanism() -> Mechanism:
    """The best way to cap processes here; probed once (tests replace this function)."""
    best = NO_MECHANISM
    for probe in (_probe_cgroup2, _probe_systemd, _probe_cgroup1):
        found = probe()
        if found is not None and len(found.controllers) > len(best.controllers):
            best = found
        if best.controllers == frozenset(CONTROLLERS):
            break
    return replace(best, prlimit=shutil.which("prlimit"))


class ResourceLimiter:
    """Caps one sandbox's processes: ``create`` before the shell starts, ``wrap`` its
    command, ``apply`` to its pid once spawned (before any command runs), ``close`` after.

    Raises SandboxError on construction when a set limit cannot be enforced here.
    """

    def __init__(self, limits: Limits, label: str = "", mechanism: Mechanism | None = None):
        self.limits = limits
        self.mechanism = mechanism if mechanism is not None else probe_mechanism()
        self.label = re.sub(r"[^A-Za-z0-9_.-]", "-", label)[:64] or "sandbox"
        wanted = {key for key in NOUNS if getattr(limits, key) is not None}
        by_kernel = {k for k in wanted if CONTROLLER_OF[k] in self.mechanism.controllers}
        self.memory_by_rlimit = (
            "memory_mb" in wanted and "memory_mb" not in by_kernel and bool(self.mechanism.prlimit)
        )
        missing = [k for k in NOUNS if k in wanted - by_kernel]
        if self.memory_by_rlimit:
            missing.remove("memory_mb")
        if missing:
            raise SandboxError(refusal(missing, self.mechanism))
        self.controllers = frozenset(CONTROLLER_OF[k] for k in by_kernel)
        self.dirs: dict[str, Path] = {}  # controller -> our cgroup, while one exists
        self.unit = ""  # the systemd scope, while one may exist
        self.description = self._describe()

    # -- the life cycle ------------------------------------------------------------------

    def create(self) -> None:
        """Make this sandbox's cgroups with the limits written in (cgroup kinds only)."""
        if self.dirs or not self.controllers or self.mechanism.kind == SYSTEMD:
            return
        name = f"corral-{self.label}-{secrets.token_hex(3)}"
        try:
            for controller in sorted(self.controllers):
                path = self.mechanism.parents[controller] / name
                if path not in self.dirs.values():
                    path.mkdir()
                self.dirs[controller] = path
                self._write_limit(controller, path)
        except OSError as exc:
            self.close()
            raise SandboxError(f"cannot set up the sandbox's cgroup: {exc}") from None

    def wrap(self, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """The shell's command and environment with the caps that apply from the start."""
        prefix: list[str] = []
        env = dict(env)
        if self.controllers and self.mechanism.kind == SYSTEMD:
            self.unit = f"corral-{self.label}-{secrets.token_hex(3)}.scope"
            prefix += [*self.mechanism.systemd_run, "--scope", "--quiet", "--collect"]
            prefix += [f"--unit={self.unit}", *systemd_properties(self.limits)]
            # systemd-run execs the shell in the scope; the bus address goes no further.
            prefix += ["--", "env", *(f"--unset={name}" for name in SYSTEMD_BUS_ENV)]
            env.update({k: os.environ[k] for k in SYSTEMD_BUS_ENV if k in os.environ})
        if self.memory_by_rlimit:
            assert self.mechanism.prlimit and self.limits.memory_mb is not None
            limit = self.limits.memory_mb << 20
            prefix += [self.mechanism.prlimit, f"--as={limit}:{limit}", "--"]
        return prefix + argv, env

    def apply(self, pid: int) -> None:
        """Move ``pid`` and everything below it into our cgroups.

        Top-down: a process is moved before its children are listed, and the kernel
        orders a move against fork, so a child forked meanwhile is either listed or born
        inside. The shell blocks reading its first command, so nothing forks for long.
        """
        if not self.dirs:
            return
        targets = {path / "cgroup.procs" for path in self.dirs.values()}
        queue = [pid]
        while queue:
            current = queue.pop(0)
            for procs in targets:
                try:
                    procs.write_text(str(current))
                except ProcessLookupError:
                    break  # it exited; so did its part of the tree
                except OSError as exc:
                    raise SandboxError(f"cannot move the shell into its cgroup: {exc}") from None
            else:
                queue.extend(_children(current))

    def processes(self) -> set[int]:
        """The pids in this sandbox's cgroups (cgroup kinds only)."""
        found: set[int] = set()
        for path in set(self.dirs.values()):
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return found

    def close(self) -> None:
        """Kill every process left in the cgroups and remove them."""
        if self.unit:
            unit, self.unit = self.unit, ""
            systemctl = [*self.mechanism.systemd_run]
            systemctl[0] = shutil.which("systemctl") or "systemctl"
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [*systemctl, "kill", "--signal=KILL", unit],
                    capture_output=True,
                    timeout=SYSTEMD_PROBE_TIMEOUT_S,
                )
        if not self.dirs:
            return
        paths = list(dict.fromkeys(self.dirs.values()))
        for path in paths:
            if (path / "cgroup.kill").exists():  # cgroup v2: all at once, racing no fork
                with contextlib.suppress(OSError):
                    (path / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + EMPTY_TIMEOUT_S
        while paths:
            for pid in self.processes():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            for path in list(paths):
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                        continue  # the killed are still leaving
                paths.remove(path)  # removed, or left behind: nothing more to do
            if paths:
                time.sleep(0.01)  # no event says when the last one has left
        self.dirs = {}

    # -- helpers ------------------------------------------------------------------------

    def _write_limit(self, controller: str, path: Path) -> None:
        limits, v2 = self.limits, self.mechanism.kind == CGROUP_V2
        if controller == "pids" and limits.pids is not None:
            (path / "pids.max").write_text(str(limits.pids))
        elif controller == "memory" and limits.memory_mb is not None:
            size = str(limits.memory_mb << 20)
            (path / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(size)
            # Swap would let the shell exceed the cap; not every kernel accounts for it.
            with contextlib.suppress(OSError):
                if v2:
                    (path / "memory.swap.max").write_text("0")
                else:
                    (path / "memory.memsw.limit_in_bytes").write_text(size)
        elif controller == "cpu" and limits.cpus is not None:
            quota = str(cpu_quota_us(limits.cpus))
            if v2:
                (path / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            else:
                (path / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (path / "cpu.cfs_quota_us").write_text(quota)

    def _describe(self) -> str:
        """E.g. ``limits by cgroup v1: 16 pids, 256 MB, 0.5 cpu``; empty when none set."""
        limits, parts = self.limits, []
        if limits.pids is not None:
            parts.append(f"{limits.pids} pids")
        if limits.memory_mb is not None and not self.memory_by_rlimit:
            parts.append(f"{limits.memory_mb} MB")
        if limits.cpus is not None:
            parts.append(f"{limits.cpus:g} cpu")
        text = f"limits by {self.mechanism.kind}: {', '.join(parts)}" if parts else ""
        if self.memory_by_rlimit:
            rlimit = (
                f"{limits.memory_mb} MB of address space by RLIMIT_AS"
                " (caps address space, an approximation of a memory limit)"
            )
            text = f"{text}; {rlimit}" if text else f"limits: {rlimit}"
        return text


def refusal(keys: list[str], mechanism: Mechanism) -> str:
    """One line: which limits this backend cannot enforce here, and what to do."""
    if mechanism.kind == NONE:
        why = "no writable cgroup"
    else:
        lacking = ", ".join(CONTROLLER_OF[k] for k in keys)
        why = f"{mechanism.kind} here has no writable {lacking} controller"
    if "memory_mb" in keys and not mechanism.prlimit:
        why += ", no prlimit"
    if len(keys) == 1:
        what, them = NOUNS[keys[0]], "the limit"
    else:
        what = " or ".join(NOUNS[k].removeprefix("a ").removesuffix(" limit") for k in keys)
        what, them = f"{what} limits", "the limits"
    return (
        f"environment.limits.{', '.join(keys)}: the local backend cannot enforce {what} here"
        f' ({why}); use backend = "docker" or remove {them}'
    )


def cpu_quota_us(cpus: float) -> int:
    return max(MIN_CPU_QUOTA_US, round(cpus * CPU_PERIOD_US))


def systemd_properties(limits: Limits) -> list[str]:
    props = []
    if limits.pids is not None:
        props += ["-p", f"TasksMax={limits.pids}"]
    if limits.memory_mb is not None:
        props += ["-p", f"MemoryMax={limits.memory_mb << 20}", "-p", "MemorySwapMax=0"]
    if limits.cpus is not None:
        props += ["-p", f"CPUQuota={cpu_quota_us(limits.cpus) * 100 // CPU_PERIOD_US}%"]
    return props


# -- probing --------------------------------------------------------------------------------


def _probe_cgroup2() -> Mechanism | None:
    base = _own_cgroup_dirs().get("")
    if base is None:
        return None
    with contextlib.suppress(OSError):
        delegated = set((base / "cgroup.subtree_control").read_text().split())
        usable = delegated & set(CONTROLLERS)
        if usable and _can_make_child(base):
            return Mechanism(CGROUP_V2, {c: base for c in usable})
    return None


def _probe_systemd() -> Mechanism | None:
    """A scope with caps, checked from inside: systemd may accept caps it cannot apply."""
    run = shutil.which("systemd-run")
    if run is None or not Path("/run/systemd/system").is_dir():
        return None
    command = (run,) if os.geteuid() == 0 else (run, "--user")
    probe = Limits(cpus=1.0, memory_mb=256, pids=64)
    show = (
        'd=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup);'
        ' cat "$d/pids.max" "$d/memory.max" "$d/cpu.max"'
    )
    argv = [*command, "--scope", "--quiet", "--collect", *systemd_properties(probe)]
    try:
        result = subprocess.run(
            [*argv, "--", "sh", "-c", show],
            capture_output=True,
            text=True,
            timeout=SYSTEMD_PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    expected = ["64", str(256 << 20), f"{CPU_PERIOD_US} {CPU_PERIOD_US}"]
    if result.returncode != 0 or result.stdout.split("\n")[:3] != expected:
        return None
    return Mechanism(SYSTEMD, systemd_run=command)


def _probe_cgroup1() -> Mechanism | None:
    dirs = _own_cgroup_dirs()
    usable = {c: dirs[c] for c in CONTROLLERS if c in dirs and _can_make_child(dirs[c])}
    return Mechanism(CGROUP_V1, usable) if usable else None


def _can_make_child(base: Path) -> bool:
    probe = base / f"corral-probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def _own_cgroup_dirs() -> dict[str, Path]:
    """Controller ("" for cgroup v2) -> the directory of this process's own cgroup."""
    mounts: dict[str, tuple[str, Path]] = {}  # controller or "" -> (mount root, mount point)
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            root, point = _unescape(fields[3]), Path(_unescape(fields[4]))
            if tail[0] == "cgroup2":
                mounts.setdefault("", (root, point))
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    if option in CONTROLLERS:
                        mounts.setdefault(option, (root, point))
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            for controller in names.split(",") if names else [""]:
                if controller not in mounts:
                    continue
                root, point = mounts[controller]
                if path == root or path.startswith(root.rstrip("/") + "/"):
                    found[controller] = point / path[len(root) :].lstrip("/")
    return found


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    return found
