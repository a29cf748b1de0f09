"""The local sandbox's resource limits and ``networking = "limited"``: enforced, or
refused with one line. On a machine with no usable cgroup the limit tests check the
refusal instead; the limited-network tests need bubblewrap."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tui.cli import main
from tui.core.errors import SandboxError
from tui.core.sandboxes import limits as limits_module
from tui.core.sandboxes.limits import CGROUP_V2, NO_MECHANISM, SYSTEMD, Mechanism
from tui.core.sandboxes.local import LocalSandbox, bubblewrap_works
from tui.core.sandboxes.registry import open_sandbox
from tui.core.session.spec import EnvironmentSpec, Limits

from .conftest import REPO, write_script
from .server_helpers import server_in_thread

needs_bwrap = pytest.mark.skipif(
    not bubblewrap_works(), reason="bubblewrap is not installed or cannot run here"
)
# Starts 60 sleeps in a subshell: bash retries a refused fork for ~15 s, then the subshell
# gives up; the main shell (and its state) lives on. Counting uses builtins only, since
# every process slot may be taken by then.
START_60 = (
    "( for ((i = 0; i < 60; i++)); do sleep {n} & echo $! >> started; done ) 2>/dev/null;"
    ' mapfile -t pids < started; echo "started ${{#pids[@]}}"'
)


def assert_refused(exc: SandboxError, key: str) -> None:
    text = str(exc)
    assert "\n" not in text
    assert f"environment.limits.{key}" in text
    assert 'backend = "docker"' in text


def live_processes(argv: list[str]) -> list[int]:
    """Pids whose command line is exactly ``argv`` (zombies have none, so never match)."""
    wanted = ("\0".join(argv) + "\0").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def limited_sandbox(tmp_path: Path, limits: Limits, **kwargs: object) -> LocalSandbox | None:
    """A sandbox with these limits, or None after checking the refusal names them."""
    try:
        return LocalSandbox(tmp_path, limits=limits, label="test", **kwargs)  # type: ignore[arg-type]
    except SandboxError as exc:
        assert_refused(exc, next(k for k in ("pids", "memory_mb", "cpus") if getattr(limits, k)))
        return None


# -- limits -------------------------------------------------------------------------------


async def test_pids_limit_caps_the_processes_and_the_shell_goes_on(tmp_path: Path) -> None:
    sandbox = limited_sandbox(tmp_path, Limits(pids=16), bubblewrap=False)
    if sandbox is None:
        return
    assert "16 pids" in sandbox.isolation
    assert sandbox.limiter is not None
    dirs = dict(sandbox.limiter.dirs)
    try:
        await sandbox.bash("export KEPT=yes", 10)
        dirs = dict(sandbox.limiter.dirs)
        result = await sandbox.bash(START_60.format(n=3210), 90)
        started = int(result.output.split("started ")[-1].split()[0])
        assert 0 < started <= 16
        if sandbox.limiter.mechanism.kind != SYSTEMD:
            assert len(sandbox.limiter.processes()) <= 16
        after = await sandbox.bash('echo "alive $KEPT"', 10)
        assert after.output.strip() == "alive yes"
        assert live_processes(["sleep", "3210"])
    finally:
        await sandbox.close()
    assert live_processes(["sleep", "3210"]) == []
    assert not any(path.exists() for path in dirs.values())


@pytest.mark.parametrize(
    "bubblewrap",
    [False, pytest.param(True, marks=needs_bwrap)],
    ids=["plain", "bubblewrap"],
)
async def test_memory_limit_kills_a_big_allocation_only(tmp_path: Path, bubblewrap: bool) -> None:
    sandbox = limited_sandbox(tmp_path, Limits(memory_mb=128), bubblewrap=bubblewrap)
    if sandbox is None:
        return
    try:
        # Bytes are written, not just reserved: a cgroup charges resident memory.
        big = await sandbox.bash("python3 -c 'b = b\"x\" * (400 << 20); print(len(b))'", 60)
        assert big.exit_code not in (0, None), big
        small = await sandbox.bash("python3 -c 'b = b\"x\" * (8 << 20); print(len(b))'", 60)
        assert (small.exit_code, small.output.strip()) == (0, str(8 << 20))
        if sandbox.limiter is not None and sandbox.limiter.dirs:
            shell = sandbox._proc
            assert shell is not None and shell.pid in sandbox.limiter.processes()
    finally:
        await sandbox.close()


async def test_cpu_limit_writes_the_quota(tmp_path: Path) -> None:
    sandbox = limited_sandbox(tmp_path, Limits(cpus=0.5), bubblewrap=False)
    if sandbox is None:
        return
    assert sandbox.limiter is not None
    if sandbox.limiter.mechanism.kind == SYSTEMD:
        pytest.skip("a systemd scope holds the quota; systemd's own probe checked it")
    try:
        assert (await sandbox.bash("echo up", 10)).output.strip() == "up"
        cpu = sandbox.limiter.dirs["cpu"]
        if sandbox.limiter.mechanism.kind == CGROUP_V2:
            assert (cpu / "cpu.max").read_text().split() == ["50000", "100000"]
        else:
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert "0.5 cpu" in sandbox.isolation
    finally:
        await sandbox.close()
    assert not cpu.exists()


@pytest.fixture
def no_cgroups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits_module, "probe_mechanism", lambda: NO_MECHANISM)


@pytest.mark.usefixtures("no_cgroups")
async def test_a_limit_this_machine_cannot_enforce_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as refused:
        LocalSandbox(tmp_path, limits=Limits(pids=16), bubblewrap=False)
    assert_refused(refused.value, "pids")
    assert "process limit" in str(refused.value)
    # The same through the registry, as a session would open it.
    environment = EnvironmentSpec(backend="local", limits=Limits(pids=16, cpus=1.0))
    with pytest.raises(SandboxError) as both:
        open_sandbox(environment, tmp_path, "sesn_x")
    assert_refused(both.value, "pids")
    assert "cpus" in str(both.value)


@pytest.mark.usefixtures("no_cgroups")
async def test_no_limits_set_needs_no_mechanism(tmp_path: Path) -> None:
    sandbox = open_sandbox(EnvironmentSpec(backend="local"), tmp_path, "sesn_x")
    try:
        assert "limits" not in sandbox.isolation
        assert (await sandbox.bash("echo fine", 10)).output.strip() == "fine"
    finally:
        await sandbox.close()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit is not installed")
async def test_without_cgroups_memory_falls_back_to_an_address_space_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_rlimit = Mechanism("none", prlimit=shutil.which("prlimit"))
    monkeypatch.setattr(limits_module, "probe_mechanism", lambda: only_rlimit)
    sandbox = LocalSandbox(tmp_path, limits=Limits(memory_mb=256), bubblewrap=False)
    assert "RLIMIT_AS" in sandbox.isolation and "approximation" in sandbox.isolation
    try:
        big = await sandbox.bash("python3 -c 'b = b\"x\" * (400 << 20)'", 60)
        assert big.exit_code not in (0, None) and "MemoryError" in big.output
        small = await sandbox.bash("python3 -c 'print(len(b\"x\" * (8 << 20)))'", 60)
        assert small.exit_code == 0
    finally:
        await sandbox.close()


# -- networking = "limited" ---------------------------------------------------------------


def test_limited_networking_without_bubblewrap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as refused:
        LocalSandbox(tmp_path, egress=("example.com",), bubblewrap=False)
    assert "\n" not in str(refused.value) and "bubblewrap" in str(refused.value)
    with pytest.raises(SandboxError, match="needs allowed_hosts"):
        LocalSandbox(tmp_path, egress=(), bubblewrap=True)


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the host"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def host_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


PROBE = """
import http.client, socket, sys, urllib.error, urllib.request
port = int(sys.argv[1])

def get(url, opener=urllib.request.build_opener()):
    try:
        return opener.open(url, timeout=10).read().decode()
    except urllib.error.HTTPError as exc:
        return f"status {exc.code}"
    except OSError as exc:
        return f"failed {exc}"

print("allowed:", get(f"http://localhost:{port}/"))
print("not allowed:", get(f"http://127.0.0.1:{port}/"))
print("direct:", get(f"http://127.0.0.1:{port}/", urllib.request.build_opener(
    urllib.request.ProxyHandler({}))))
tunnel = http.client.HTTPConnection("127.0.0.1", 3128, timeout=10)
tunnel.set_tunnel("localhost", port)
tunnel.request("GET", "/")
print("tunnel:", tunnel.getresponse().read().decode())
try:
    socket.create_connection(("192.0.2.1", 80), timeout=5)
    print("outside: connected")
except OSError as exc:
    print("outside: failed", exc)
"""


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[LocalSandbox]:
    sandbox = LocalSandbox(tmp_path, egress=("localhost",), bubblewrap=True)
    yield sandbox
    await sandbox.close()


@needs_bwrap
async def test_limited_networking_reaches_only_allowed_hosts_through_the_proxy(
    limited: LocalSandbox, tmp_path: Path, host_server: int
) -> None:
    assert "egress proxy to localhost" in limited.isolation
    (tmp_path / "probe.py").write_text(PROBE)
    result = await limited.bash(f"python3 probe.py {host_server}", 60)
    lines = dict(line.split(": ", 1) for line in result.output.strip().splitlines())
    assert lines["allowed"] == "hello from the host"
    assert lines["not allowed"] == "status 403"
    assert lines["direct"].startswith("failed")  # the sandbox's own 127.0.0.1: nothing there
    assert lines["tunnel"] == "hello from the host"  # CONNECT, as HTTPS would use
    assert lines["outside"].startswith("failed")  # no route out of the namespace


@needs_bwrap
async def test_limited_networking_survives_a_timeout_and_closes_with_the_sandbox(
    limited: LocalSandbox, tmp_path: Path, host_server: int
) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    timed_out = await limited.bash("sleep 30", 0.5)
    assert timed_out.timed_out and "kept its state" in timed_out.note
    result = await limited.bash(f"python3 probe.py {host_server}", 60)
    assert "allowed: hello from the host" in result.output
    socket_dir = limited._proxy_dir
    assert socket_dir is not None and socket_dir.is_dir()
    await limited.close()
    assert not socket_dir.exists()


# -- end to end ---------------------------------------------------------------------------


def pids_spec(tmp_path: Path) -> Path:
    """A local session with ``pids = 16`` whose one command starts 60 sleeps."""
    write_script(
        tmp_path / "script.toml",
        [
            {
                "text": "starting many processes",
                "tool_uses": [
                    ("bash", {"command": START_60.format(n=4321) + ' > count.txt; echo "$?"'})
                ],
            },
            {"text": "done"},
        ],
    )
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'title = "pids"\nprompt = "go"\n[agent]\nmodel = "scripted:script.toml"\n'
        '[environment]\nbackend = "local"\n[environment.limits]\npids = 16\n'
    )
    return spec


def test_cli_run_with_a_pids_limit_is_capped_or_refused(tmp_path: Path) -> None:
    spec = pids_spec(tmp_path)
    data = tmp_path / "data"
    command = [sys.executable, "-m", "tui", "--data-dir", str(data)]
    try:
        run = subprocess.run(
            [*command, "run", str(spec), "--headless", "--speed", "0"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=180,
        )
        if run.returncode != 0:
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1 and "environment.limits.pids" in lines[0], run.stderr
            return
        listing = subprocess.run(
            [*command, "ls", "--json"], capture_output=True, text=True, cwd=REPO, timeout=60
        )
        (session,) = json.loads(listing.stdout)
        assert "16 pids" in session["sandbox"]["isolation"]
        count = (Path(session["workspace"]) / "count.txt").read_text()
        started = int(count.split("started ")[-1].split()[0])
        assert 0 < started <= 16
    finally:
        # An idle session keeps its shell (and what it left running) until its server
        # stops: then every process of its sandbox goes.
        subprocess.run([*command, "server", "stop"], capture_output=True, cwd=REPO, timeout=60)
        assert live_processes(["sleep", "4321"]) == []


@pytest.mark.usefixtures("no_cgroups")
def test_cli_run_refuses_an_unenforceable_limit_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(pids_spec(tmp_path))
    data = tmp_path / "data"
    # The server in this process, so it too finds no cgroups; the CLI goes through it.
    with server_in_thread(data):
        code = main(["--data-dir", str(data), "run", spec, "--headless", "--speed", "0"])
    assert code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "environment.limits.pids" in lines[0]
    assert live_processes(["sleep", "4321"]) == []
