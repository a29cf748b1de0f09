"""The local sandbox: one persistent bash per session, in the session's workspace.

Uses bubblewrap when it is installed and works here (read-only host, writable
workspace and /tmp, no network unless allowed); otherwise a plain subprocess
whose working directory is the workspace. ``isolation`` says which.

The spec's resource limits are applied by limits.py (cgroups, or refused with one line).
``networking = "limited"`` needs bubblewrap: the shell gets a network namespace with only
``lo``, and reaches corral's egress proxy through a forwarder (egress.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from tui.core.errors import SandboxError
from tui.core.sandboxes.base import BashResult
from tui.core.sandboxes.egress import EGRESS_PORT, SANDBOX_SOCKET, EgressProxy, forwarder_command
from tui.core.sandboxes.limits import ResourceLimiter
from tui.core.session.spec import Limits
from tui.core.tools.output import OUTPUT_LIMIT, CappedBuffer

# Only these reach the agent's shell: never an API key or other secret of the host's.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
KILL_GRACE_S = 2.0
# Hidden from a bubblewrapped shell: homes hold keys and credentials.
PRIVATE_DIRS = ("/root", "/home", "/run", "/var/tmp")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
FORWARDER_START_TIMEOUT_S = 30


@cache
def bubblewrap_works() -> bool:
    """True when ``bwrap`` is installed and can make a sandbox on this machine."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-all", "--", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class LocalSandbox:
    """``network`` opens the host's network to the shell; ``egress`` (networking =
    "limited") gives it only corral's egress proxy to these hosts; ``limits`` are the
    spec's caps. A setting this machine cannot honour raises SandboxError here."""

    backend = "local"
    notice = ""

    def __init__(
        self,
        workspace: Path,
        *,
        network: bool = False,
        egress: tuple[str, ...] | None = None,
        limits: Limits | None = None,
        bubblewrap: bool | None = None,
        label: str = "",
    ):
        self.workspace = workspace.resolve()
        self.network = network
        self.egress = egress
        self.use_bwrap = bubblewrap_works() if bubblewrap is None else bubblewrap
        if egress is not None and not self.use_bwrap:
            raise SandboxError(
                'networking = "limited": the local backend needs bubblewrap for it, which is'
                ' not usable here; install bubblewrap or use backend = "docker"'
            )
        if egress is not None and not egress:
            raise SandboxError('networking = "limited" needs allowed_hosts')
        self.limiter = (
            ResourceLimiter(limits, label) if limits is not None and limits.any_set else None
        )
        self.isolation = self._describe()
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._proxy_dir: Path | None = None  # the egress proxy's socket lives here
        self._egress_proxy: EgressProxy | None = None

    def _describe(self) -> str:
        if not self.use_bwrap:
            text = "none (subprocess in the workspace; install bubblewrap to confine it)"
        elif self.egress is not None:
            hosts = ", ".join(self.egress)
            text = f"bubblewrap (read-only host, private /tmp, egress proxy to {hosts})"
        else:
            net = ")" if self.network else ", no network)"
            text = "bubblewrap (read-only host, private /tmp" + net
        if self.limiter is not None:
            text += f", {self.limiter.description}"
        return text

    def _argv(self) -> list[str]:
        shell = ["bash", "--noprofile", "--norc"]
        if not self.use_bwrap:
            return shell
        ws = str(self.workspace)
        argv = ["bwrap", "--die-with-parent", "--unshare-all"]
        if self.network:
            argv.append("--share-net")
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for private in PRIVATE_DIRS:
            if Path(private).exists():
                argv += ["--tmpfs", private]
        # The interpreter corral runs on may live in a hidden home (pyenv): bring it back.
        prefix = sys.base_prefix
        if any(prefix == p or prefix.startswith(p + "/") for p in PRIVATE_DIRS):
            argv += ["--ro-bind", prefix, prefix]
        if self._proxy_dir is not None:
            argv += ["--bind", str(self._proxy_dir / "proxy.sock"), SANDBOX_SOCKET]
        argv += ["--bind", ws, ws, "--chdir", ws, "--"]
        return argv + shell

    async def start(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        # `python3` in the sandbox is the interpreter corral itself runs on.
        env["PATH"] = os.pathsep.join(
            [str(Path(sys.base_prefix) / "bin"), env.get("PATH", "/usr/bin:/bin")]
        )
        env.update(HOME=str(self.workspace), TERM="dumb", PS1="", CORRAL_SANDBOX="local")
        if self.egress is not None:
            await self._start_egress_proxy()
            env.update(dict.fromkeys(PROXY_VARS, f"http://127.0.0.1:{EGRESS_PORT}"))
        argv = self._argv()
        if self.limiter is not None:
            self.limiter.create()
            argv, env = self.limiter.wrap(argv, env)
        try:
            self._proc = await spawn_shell(argv, env, cwd=self.workspace)
        except OSError as exc:
            await self._discard()
            raise SandboxError(f"cannot start a shell in {self.workspace}: {exc}") from None
        try:
            # Safe after spawning: the shell runs nothing until it reads a command.
            if self.limiter is not None:
                self.limiter.apply(self._proc.pid)
            if self.egress is not None:
                await self._start_forwarder()
        except BaseException:
            await asyncio.shield(self._discard())
            raise

    async def _start_egress_proxy(self) -> None:
        if self._egress_proxy is not None:
            return
        assert self.egress is not None
        # A private directory (0700): only corral's user can reach the socket.
        self._proxy_dir = Path(tempfile.mkdtemp(prefix="corral-egress-"))
        self._egress_proxy = EgressProxy(self.egress)
        try:
            await self._egress_proxy.start_unix(str(self._proxy_dir / "proxy.sock"))
        except OSError as exc:
            await self._close_egress_proxy()
            raise SandboxError(f"cannot start the egress proxy: {exc}") from None

    async def _start_forwarder(self) -> None:
        python = Path(sys.base_prefix) / "bin" / "python3"
        command = forwarder_command(str(python) if python.exists() else "python3")
        result = await self._run(command, FORWARDER_START_TIMEOUT_S)
        if result.exit_code != 0:
            last = (result.output.strip().splitlines() or [result.note or "no output"])[-1]
            raise SandboxError(f"cannot start the egress forwarder in the sandbox: {last}")

    async def _close_egress_proxy(self) -> None:
        proxy, self._egress_proxy = self._egress_proxy, None
        if proxy is not None:
            await proxy.close()
        if self._proxy_dir is not None:
            shutil.rmtree(self._proxy_dir, ignore_errors=True)
            self._proxy_dir = None

    async def bash(self, command: str, timeout_s: float) -> BashResult:
        async with self._lock:
            await self.start()
            return await self._run(command, timeout_s)

    async def _run(self, command: str, timeout_s: float) -> BashResult:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        nonce = secrets.token_hex(8)
        marker = f"\n__corral_done_{nonce}__ ".encode()
        # The command reads /dev/null, not the shell's pipe, so it cannot eat the
        # lines that follow; the marker carries the exit status back.
        script = (
            f"{{\n{command}\n}} </dev/null 2>&1\nprintf '\\n__corral_done_{nonce}__ %d\\n' $?\n"
        )
        try:
            proc.stdin.write(script.encode())
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            await self._discard()
            return BashResult("", None, note="the shell had died; it was restarted, run again")
        buffer = CappedBuffer(OUTPUT_LIMIT)
        try:
            exit_code = await asyncio.wait_for(self._read_until(proc, marker, buffer), timeout_s)
        except TimeoutError:
            note = await self._kill_running_command(proc, marker)
            return BashResult(buffer.text(), None, timed_out=True, note=note)
        except asyncio.CancelledError:
            # An interrupt: stop the command too, or it would run on unseen.
            await asyncio.shield(self._kill_running_command(proc, marker))
            raise
        if exit_code is None:
            await self._discard()
            return BashResult(
                buffer.text(), None, note="the shell exited; a new one starts next call"
            )
        return BashResult(buffer.text(), exit_code)

    async def _read_until(
        self, proc: asyncio.subprocess.Process, marker: bytes, buffer: CappedBuffer
    ) -> int | None:
        assert proc.stdout is not None
        pending = b""
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                buffer.feed(pending)
                return None
            pending += chunk
            at = pending.find(marker)
            if at >= 0:
                rest = pending[at + len(marker) :]
                while b"\n" not in rest:
                    more = await proc.stdout.read(64)
                    if not more:
                        break
                    rest += more
                buffer.feed(pending[:at])
                try:
                    return int(rest.split(b"\n", 1)[0])
                except ValueError:
                    return None
            # Keep back enough bytes that a marker split across reads is still found.
            keep = len(marker) + 16
            if len(pending) > keep:
                buffer.feed(pending[:-keep])
                pending = pending[-keep:]

    async def _kill_running_command(self, proc: asyncio.subprocess.Process, marker: bytes) -> str:
        """Kill what the shell is running, keeping the shell (and its cwd and env) if it answers."""
        for pid in _descendants(self._shell_pid(proc.pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(self._read_until(proc, marker, CappedBuffer(0)), KILL_GRACE_S)
            return "timed out: the command was killed; the shell kept its state"
        except TimeoutError:
            await self._discard()
            return "timed out: the shell was restarted (cwd and environment reset)"

    def _shell_pid(self, root: int) -> int:
        """The bash inside: the process itself, or under bubblewrap the first bash below it."""
        if not self.use_bwrap:
            return root
        for pid in reversed(_descendants(root)):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "bash":
                    return pid
        return root

    async def restart(self) -> None:
        async with self._lock:
            await self._discard()
            await self.start()

    async def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except PermissionError:  # not a group we may signal: the shell alone
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            except ProcessLookupError:
                pass
            # No proc.kill() after a killpg that worked: its liveness check could reap
            # the shell before asyncio's watcher does ("Unknown child process pid").
            await proc.wait()
        # What escaped the process group (setsid, daemons) is still in the cgroup.
        if self.limiter is not None:
            await asyncio.to_thread(self.limiter.close)

    async def close(self) -> None:
        await self._discard()
        await self._close_egress_proxy()


async def spawn_shell(
    argv: list[str], env: dict[str, str], *, cwd: Path | None = None
) -> asyncio.subprocess.Process:
    """Start a shell with piped stdin and stdout (stderr joined), in a session of its own.

    Not cancellable half-way: cancelling ``create_subprocess_exec`` before its pipes are
    connected leaves asyncio (3.11) waiting forever for the child to finish. An interrupt
    that lands here lets the spawn complete, kills the child, and then cancels.
    """
    spawn = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    )
    try:
        return await asyncio.shield(spawn)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            proc = await spawn
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        raise


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, deepest first, read from /proc."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        children: list[int] = []
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children += [int(c) for c in f.read().split()]
        found.extend(children)
        stack.extend(children)
    return list(reversed(found))
