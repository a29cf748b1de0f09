"""The docker backend on a real engine: hardening, the shell, a container killed from
outside, cleanup. Skipped without an engine, unless CORRAL_REQUIRE_DOCKER=1 (CI)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tui.core.engine.supervisor import Supervisor
from tui.core.errors import SandboxError
from tui.core.sandboxes.docker import (
    LABEL_SESSION,
    DockerSandbox,
    docker_client,
    orphan_containers,
    remove_containers,
)
from tui.core.sandboxes.firewall import chain_name
from tui.core.sandboxes.images import remove_images, unused_derived
from tui.core.session import events as ev
from tui.core.session.spec import EnvironmentSpec, Limits
from tui.core.session.state import finished_after, is_finished

from .conftest import make_spec

IMAGE = "corral-test-busybox:latest"
REQUIRED = os.environ.get("CORRAL_REQUIRE_DOCKER") == "1"


def build_test_image() -> None:
    """FROM scratch plus a static busybox: no registry needed."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    context = Path("/tmp/corral-test-busybox")
    context.mkdir(exist_ok=True)
    shutil.copy(busybox, context / "busybox")
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        'CMD ["/bin/sh"]\n'
    )
    subprocess.run(
        ["docker", "build", "-q", "-t", IMAGE, str(context)], check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def engine() -> None:
    try:
        client = docker_client()
    except SandboxError as exc:
        if REQUIRED:
            pytest.fail(f"CORRAL_REQUIRE_DOCKER=1 but {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    try:
        client.images.get(IMAGE)
    except Exception:
        if not (shutil.which("busybox") or Path("/bin/busybox").exists()):
            if REQUIRED:
                pytest.fail("CORRAL_REQUIRE_DOCKER=1 but no busybox to build the test image")
            pytest.skip("no busybox to build the test image from")
        build_test_image()
    finally:
        client.close()


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait until ``condition`` holds (asked off the event loop: it may call the engine),
    or fail after ``timeout`` seconds saying what did not happen."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)


def runs(container_label: str, program: str) -> bool:
    """True when the container with this label runs ``program`` right now."""
    client = docker_client()
    try:
        containers = client.containers.list(filters={"label": container_label})
        return any(
            program in " ".join(process)
            for container in containers
            for process in container.top().get("Processes") or []
        )
    finally:
        client.close()


def env(**changes: object) -> EnvironmentSpec:
    base = EnvironmentSpec(
        backend="docker", image=IMAGE, limits=Limits(cpus=0.5, memory_mb=128, pids=64)
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def docker_spec(tmp_path: Path, turns: list[dict], name: str = "script"):  # type: ignore[no-untyped-def]
    spec = make_spec(tmp_path, turns, name=name)
    return dataclasses.replace(spec, environment=env())


pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture(autouse=True)
def no_leftover_containers(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Idle sessions keep their container for the next turn; a test's go with the test."""
    yield
    ids = [cid for cid, _ in orphan_containers(tmp_path / "data", set())]
    ids += [cid for cid, _ in orphan_containers(tmp_path, set())]
    remove_containers(ids)


async def test_hardened_container_and_a_persistent_shell(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    box = DockerSandbox(workspace, env(), "sesn_test_hardening", tmp_path)
    try:
        first = await box.bash("cd /tmp && export X=42 && id -u && echo made > /workspace/f", 20)
        assert first.exit_code == 0
        assert first.output.splitlines()[0] == str(os.getuid())  # the host user, not root
        assert (workspace / "f").read_text() == "made\n"  # the file tools see what bash wrote
        again = await box.bash("pwd; echo $X", 20)
        assert again.output.split() == ["/tmp", "42"]  # cwd and env persist
        refused = await box.bash("touch /etc/x 2>&1; ls /var/run/docker.sock 2>&1; echo done", 20)
        assert "Read-only file system" in refused.output and "No such file" in refused.output
        slow = await box.bash("sleep 30", 1)
        assert slow.timed_out and "kept its state" in slow.note
        assert (await box.bash("echo $X", 20)).output.strip() == "42"  # the shell survived
        client = docker_client()
        attrs = client.containers.get(box.container_id).attrs
        client.close()
        host = attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert host["ReadonlyRootfs"] is True
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["NetworkMode"] == "none"
        assert host["PidsLimit"] == 64 and host["Memory"] == 128 * 1024 * 1024
        assert not any("docker.sock" in b for b in host.get("Binds") or [])
        assert attrs["Config"]["Labels"][LABEL_SESSION] == "sesn_test_hardening"
    finally:
        await box.close(remove=True)


def containers_of(session_id: str) -> list[str]:
    client = docker_client()
    try:
        found = client.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={session_id}"})
        return [str(c.id) for c in found]
    finally:
        client.close()


async def test_a_start_cancelled_before_it_learnt_its_container_leaves_none_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sid = "sesn_test_cancelled_start"
    box = DockerSandbox(workspace, env(), sid, tmp_path)
    made, go_on = threading.Event(), threading.Event()
    create = box._create

    def slow_create() -> str:
        # The container exists, and start is cancelled before this returns its id.
        cid = create()
        made.set()
        go_on.wait(30)
        return cid

    monkeypatch.setattr(box, "_create", slow_create)
    start = asyncio.create_task(box.start())
    await eventually(made.is_set, "the container made")
    start.cancel()
    await asyncio.wait({start})
    go_on.set()
    assert box.container_id is None and len(containers_of(sid)) == 1
    await box.close(remove=True)
    assert containers_of(sid) == []


async def test_a_session_runs_in_docker_and_survives_a_killed_container(
    live_supervisor: Supervisor, tmp_path: Path
) -> None:
    turns = [
        {"text": "one", "tool_uses": [("bash", {"command": "echo one >> log.txt"})]},
        {"text": "slow", "tool_uses": [("bash", {"command": "sleep 5; echo two >> log.txt"})]},
        {"text": "three", "tool_uses": [("bash", {"command": "echo three >> log.txt"})]},
        {"text": "done"},
    ]
    sid = await live_supervisor.create_session(docker_spec(tmp_path, turns))
    record = await live_supervisor.store.get_session(sid)
    assert record.sandbox == "docker"
    # Kill the container from outside while `sleep 5` runs.
    with live_supervisor.bus.subscribe(sid) as sub:
        while True:
            item = await asyncio.wait_for(sub.get(), 30)
            if item.type == ev.AGENT_TOOL_USE and "sleep" in str(item.payload["input"]):
                break
    # Kill it once `sleep 5` runs in it, not after a guess at how long starting takes.
    label = f"{LABEL_SESSION}={sid}"
    await eventually(lambda: runs(label, "sleep 5"), "sleep 5 running in the container")
    client = docker_client()
    (container,) = client.containers.list(filters={"label": label})
    container.kill()
    client.close()
    state = await asyncio.wait_for(live_supervisor.wait_for(sid, is_finished), 60)
    assert state.stop_type == ev.END_TURN
    events = await live_supervisor.store.events(sid)
    types = [e.type for e in events]
    assert ev.STATUS_RESCHEDULED in types
    cut = [
        e
        for e in events
        if e.type == ev.AGENT_TOOL_RESULT and e.text.startswith(ev.INTERRUPTED_RESULT)
    ]
    assert len(cut) == 1
    # The scripted model ran the cut call again in a new container; nothing twice.
    workspace = Path(record.workspace)
    assert (workspace / "log.txt").read_text() == "one\ntwo\nthree\n"


async def test_terminated_sessions_lose_their_container_and_gc_finds_orphans(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    turns = [{"text": "x", "tool_uses": [("bash", {"command": "echo hi"})]}, {"text": "done"}]
    sid = await supervisor.create_session(docker_spec(tmp_path, turns))
    state = await asyncio.wait_for(supervisor.wait_for(sid, is_finished), 60)
    assert state.stop_type == ev.END_TURN
    # Idle but resumable: its container stays for the next turn.
    assert orphan_containers(supervisor.data_dir, {sid}) == []
    assert [s for _, s in orphan_containers(supervisor.data_dir, set())] == [sid]
    before = state.last_seq
    await supervisor.send_message(sid, "again")
    await asyncio.wait_for(supervisor.wait_for(sid, finished_after(before)), 60)
    await supervisor.cancel(sid)
    await eventually(
        lambda: orphan_containers(supervisor.data_dir, set()) == [], "the container to be removed"
    )


async def test_docker_asked_for_without_an_engine_is_one_clear_error(
    supervisor: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    spec = docker_spec(tmp_path, [{"text": "x"}])
    with pytest.raises(SandboxError, match="no Docker engine answers here"):
        await supervisor.create_session(spec)
    assert await supervisor.store.list_sessions() == []


async def test_limited_networking_passes_only_listed_hosts(tmp_path: Path) -> None:
    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-length: 8\r\n\r\nupstream")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    # A host service on every interface: the gateway address is one of the host's.
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HOST-SERVICE\n")  # says it was reached before reading anything
        await writer.drain()
        writer.close()

    exposed = await asyncio.start_server(banner, "0.0.0.0", 0)
    exposed_port = exposed.sockets[0].getsockname()[1]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    limited = env(networking="limited", allowed_hosts=("127.0.0.1",))
    box = DockerSandbox(workspace, limited, "sesn_test_limited", tmp_path)
    ask = (
        "p=${HTTP_PROXY#http://}; h=${p%:*}; o=${p##*:}; "
        "printf 'GET http://{host}:%s/ HTTP/1.0\\r\\n\\r\\n' " + str(port) + " | nc -w 5 $h $o"
    )
    try:
        allowed = await box.bash(ask.replace("{host}", "127.0.0.1"), 30)
        assert "200 OK" in allowed.output and "upstream" in allowed.output, allowed
        refused = await box.bash(ask.replace("{host}", "localhost"), 30)
        assert "403" in refused.output and "not in allowed_hosts" in refused.output
        direct = await box.bash(
            f"nc -w 3 127.0.0.1 {port} </dev/null; nc -w 3 1.1.1.1 80 </dev/null; echo out", 30
        )
        assert "upstream" not in direct.output  # no way out but the proxy
        assert box._proxy is not None and box._proxy.refused == ["localhost"]
        # The host's other ports through the gateway, or any of its addresses: refused
        # at once (a reset), while the proxy's port on the same address answers.
        host_ips = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout
        targets = ["$h", *host_ips.split()[:3]]
        probe = "; ".join(f"nc -w 3 {t} {exposed_port} </dev/null" for t in targets)
        sealed = await box.bash(ask.split("printf")[0] + probe + "; echo done", 60)
        assert "done" in sealed.output and "HOST-SERVICE" not in sealed.output, sealed.output
        again = await box.bash(ask.replace("{host}", "127.0.0.1"), 30)
        assert "upstream" in again.output
        assert rules_of(box) != ""  # the seal is in place while the container is
    finally:
        chain_rules = rules_of(box)
        await box.close(remove=True)
        server.close()
        exposed.close()
    assert chain_rules and rules_of(box) == ""  # removed with the network


def rules_of(box: DockerSandbox) -> str:
    """The iptables rules of the sandbox's limited network ("" once removed)."""
    chain = chain_name(box._network_name())
    done = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def build_pip_stub_image() -> str:
    """The busybox image plus a `pip` that records what it was asked to install: the
    build and the cache are real, only the package index is not (there is no network)."""
    context = Path("/tmp/corral-test-pipstub")
    context.mkdir(exist_ok=True)
    (context / "pip").write_text(
        '#!/bin/sh\nmkdir -p /opt/pkgs\nfor p in "$@"; do case "$p" in -*|install) ;;'
        ' *) touch "/opt/pkgs/$p";; esac; done\n'
    )
    (context / "Dockerfile").write_text(
        f"FROM {IMAGE}\nCOPY pip /bin/pip\nRUN chmod 755 /bin/pip\n"
    )
    tag = "corral-test-pipstub:latest"
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True
    )
    return tag


async def test_packages_go_into_a_derived_image_built_once(tmp_path: Path) -> None:
    base = build_pip_stub_image()
    wanted = env(image=base, pip=(f"demo-pkg-{os.getpid()}",))
    builds = DockerSandbox.builds
    boxes = []
    try:
        for n in range(2):
            workspace = tmp_path / f"ws{n}"
            workspace.mkdir()
            box = DockerSandbox(workspace, wanted, f"sesn_test_pkgs{n}", tmp_path)
            boxes.append(box)
            result = await box.bash("ls /opt/pkgs", 30)
            assert result.output.split() == [f"demo-pkg-{os.getpid()}"]
        assert DockerSandbox.builds == builds + 1  # the second start used the cached image
        derived = {i.tag for i in unused_derived()}
        assert boxes[0].image() not in derived  # its containers use it
    finally:
        for box in boxes:
            await box.close(remove=True)
    # Unused now: `corral gc --images` finds it (labelled) and removes it.
    tag = boxes[0].image()
    assert tag in {i.tag for i in unused_derived()}
    assert remove_images([tag]) == [tag]
    with pytest.raises(SandboxError, match="not a package name"):
        DockerSandbox(tmp_path, env(pip=("x; rm -rf /",)), "sesn_bad", tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_limited_is_refused_at_once_where_the_host_cannot_be_sealed(tmp_path: Path) -> None:
    # Not root: no firewall rules, so no half-sealed network. The check runs in a forked
    # child that has become "nobody"; the refusal comes before any container exists.
    limited = env(networking="limited", allowed_hosts=("example.com",))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        said = b""
        try:
            os.setgid(65534)
            os.setuid(65534)
            DockerSandbox(tmp_path, limited, "sesn_t_nobody", tmp_path)
            said = b"accepted"
        except SandboxError as exc:
            said = str(exc).encode()
        finally:
            os.write(write, said)
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as answer:
        said = answer.read().decode()
    assert "needs host firewall rules, which need root" in said, said
    assert "\n" not in said
