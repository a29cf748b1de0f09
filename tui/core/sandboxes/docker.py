"""The docker sandbox: one hardened container per session, a persistent shell inside.

The container is made with the docker SDK (its blocking calls run in threads): all
capabilities dropped, no-new-privileges, a read-only root with a tmpfs ``/tmp``, the
session's workspace bind-mounted at ``/workspace`` (so the file tools, which work on the
host directory, see exactly what the shell sees), pids/memory/cpu limits from the spec,
the host user's uid (never root), no network unless the spec allows it, and never the
Docker socket. The shell is ``docker exec -i`` of ``bash`` (or ``sh``), driven with the
same protocol as the local sandbox.

A container that dies or is killed from outside raises ``SandboxLost`` from ``bash``;
the runner then shows the session as rescheduling, gets a new container with
``restart`` and carries on. Containers are labelled with the session id and the data
dir: a new supervisor re-attaches to a running one, and ``corral gc`` removes those
whose session is gone or terminated. ``networking = "limited"`` puts the container on
an internal network whose only way out is corral's egress proxy (egress.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

from tui.core.errors import SandboxError, SandboxLost
from tui.core.sandboxes.base import BashResult
from tui.core.sandboxes.egress import EgressProxy
from tui.core.sandboxes.engine import docker_client
from tui.core.sandboxes.firewall import Firewall, require_firewall
from tui.core.sandboxes.images import LABEL_IMAGE
from tui.core.sandboxes.local import KILL_GRACE_S, LocalSandbox, spawn_shell
from tui.core.session.spec import DOCKER_DEFAULTS, EnvironmentSpec
from tui.core.session.state import RUNNING
from tui.core.tools.output import CappedBuffer

LABEL_SESSION = "corral.session"
LABEL_DATA_DIR = "corral.data_dir"
# A process that keeps the container alive and does nothing; any image's sh has these.
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
# A package spec as pip or apt takes it (name, extras, a version constraint); nothing a
# Dockerfile line could be tricked with.
PACKAGE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._+\-]*(\[[A-Za-z0-9,._-]+\])?([<>=!~]=?[A-Za-z0-9.*+\-]+)?"
)


class DockerSandbox(LocalSandbox):
    backend = "docker"

    def __init__(
        self, workspace: Path, environment: EnvironmentSpec, session_id: str, data_dir: Path
    ) -> None:
        super().__init__(workspace, network=environment.networking != "none", bubblewrap=False)
        self.limited = environment.networking == "limited"
        if self.limited and not environment.allowed_hosts:
            raise SandboxError('networking = "limited" needs allowed_hosts')
        if self.limited:
            require_firewall()
        self._proxy: EgressProxy | None = None
        self._proxy_url = ""
        self._proxy_port = 0
        self._firewall: Firewall | None = None
        self._address = ""  # the limited container's, which its firewall rule names
        bad = [p for p in (*environment.pip, *environment.apt) if not PACKAGE_RE.fullmatch(p)]
        if bad:
            raise SandboxError(f"environment.packages: {bad[0]!r} is not a package name")
        if shutil.which("docker") is None:
            raise SandboxError("the docker command line is not installed (it runs the shell)")
        self.environment = environment
        self.session_id = session_id
        self.data_dir = data_dir
        self.container_id: str | None = None
        self._shell = "sh"
        limits = environment.limits.or_defaults(DOCKER_DEFAULTS)
        reach = {"none": "no network", "unrestricted": "network", "limited": "egress proxy to "}
        net = reach[environment.networking] + (
            ", ".join(environment.allowed_hosts) if self.limited else ""
        )
        self.isolation = (
            f"docker {environment.image}: no capabilities, read-only root,"
            f" {net}, {limits.cpus:g} cpu,"
            f" {limits.memory_mb} MB, {limits.pids} pids"
        )

    # -- the container ----------------------------------------------------------------

    builds = 0  # derived images built by this process (the cache's test can count)

    def image(self) -> str:
        """The environment's image, or the derived one with its packages (built once)."""
        env = self.environment
        if not env.pip and not env.apt:
            return env.image
        key = json.dumps([env.image, sorted(env.apt), sorted(env.pip)]).encode()
        tag = f"corral-env:{hashlib.sha256(key).hexdigest()[:16]}"
        client = docker_client()
        try:
            try:
                client.images.get(tag)
                return tag  # cached: the second start skips the install
            except Exception:
                pass
            lines = [f"FROM {env.image}", "USER 0"]
            if env.apt:
                lines.append(
                    "RUN apt-get update && apt-get install -y --no-install-recommends "
                    + " ".join(shlex.quote(p) for p in sorted(env.apt))
                    + " && rm -rf /var/lib/apt/lists/*"
                )
            if env.pip:
                names = " ".join(shlex.quote(p) for p in sorted(env.pip))
                pip = "pip install --no-cache-dir"
                lines.append(f"RUN {pip} {names} || python3 -m {pip} {names}")
            try:
                client.images.build(
                    fileobj=io.BytesIO("\n".join(lines).encode()),
                    tag=tag,
                    labels={LABEL_IMAGE: "derived"},  # `corral gc --images` may remove it
                    rm=True,
                    forcerm=True,
                )
            except Exception as exc:
                raise SandboxError(f"installing the environment's packages failed: {exc}") from None
            DockerSandbox.builds += 1
            return tag
        finally:
            client.close()

    def _labels(self) -> dict[str, str]:
        return {LABEL_SESSION: self.session_id, LABEL_DATA_DIR: str(self.data_dir)}

    def _own_containers(self, client: Any) -> list[Any]:
        """This session's containers in this data dir, running or not."""
        filters = {"label": [f"{k}={v}" for k, v in self._labels().items()]}
        return list(client.containers.list(all=True, filters=filters, ignore_removed=True))

    def _create(self) -> str:
        """Re-attach to this session's running container, or make a new one (blocking)."""
        client = docker_client()
        try:
            for old in self._own_containers(client):
                # A limited container's proxy died with the process that ran it: replace it.
                if old.status == RUNNING and not self.limited:
                    return str(old.id)
                with contextlib.suppress(Exception):
                    old.remove(force=True)
            env = self.environment
            limits = env.limits.or_defaults(DOCKER_DEFAULTS)
            image = self.image()
            try:
                container = client.containers.run(
                    image,
                    IDLE,
                    detach=True,
                    labels=self._labels(),
                    volumes={str(self.workspace): {"bind": "/workspace", "mode": "rw"}},
                    working_dir="/workspace",
                    user=f"{os.getuid()}:{os.getgid()}",
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                    read_only=True,
                    tmpfs={"/tmp": "rw,nosuid,size=256m"},
                    pids_limit=limits.pids,
                    mem_limit=f"{limits.memory_mb}m",
                    nano_cpus=int(limits.cpus * 1e9),  # type: ignore[operator]
                    **self._network_options(),
                    init=True,
                )
            except Exception as exc:
                raise SandboxError(f"cannot start a container from {env.image}: {exc}") from None
            return str(container.id)
        finally:
            client.close()

    def _network_options(self) -> dict[str, Any]:
        environment = {"HOME": "/tmp", "CORRAL_SANDBOX": "docker", "TERM": "dumb"}
        if not self.limited:
            return {
                "network_mode": "bridge" if self.network else "none",
                "environment": environment,
            }
        proxy = self._proxy_url
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            environment[name] = proxy
        return {"network": self._network_name(), "environment": environment}

    def _network_name(self) -> str:
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return f"corral-limited-{digest}"

    def _ensure_network(self) -> tuple[str, str]:
        """An internal network (no route out) for limited containers: its gateway address
        and the host's bridge interface."""
        client = docker_client()
        try:
            name = self._network_name()
            found = client.networks.list(names=[name])
            network = (
                found[0]
                if found
                else client.networks.create(
                    name,
                    driver="bridge",
                    internal=True,
                    labels={LABEL_DATA_DIR: str(self.data_dir)},
                )
            )
            network.reload()
            gateway = str(network.attrs["IPAM"]["Config"][0]["Gateway"])
            options = network.attrs.get("Options") or {}
            bridge = options.get("com.docker.network.bridge.name") or f"br-{network.id[:12]}"
            return gateway, str(bridge)
        except Exception as exc:
            raise SandboxError(f"cannot make the limited network: {exc}") from None
        finally:
            client.close()

    def _remove_network_if_unused(self) -> None:
        # Address pools are few (about 30 networks by default): give ours back when idle.
        with contextlib.suppress(Exception):
            client = docker_client()
            try:
                for network in client.networks.list(names=[self._network_name()]):
                    network.reload()
                    if not network.attrs.get("Containers"):
                        network.remove()
                        if self._firewall is not None:
                            self._firewall.remove()
            finally:
                client.close()

    def _running(self) -> bool:
        if self.container_id is None:
            return False
        client = docker_client()
        try:
            return client.containers.get(self.container_id).status == RUNNING
        except Exception:
            return False
        finally:
            client.close()

    def _remove(self) -> None:
        """Every container labelled as this session's, not only the one it knows: a start
        cancelled while ``_create`` ran never learnt the id of the one it made."""
        with contextlib.suppress(Exception):
            client = docker_client()
            try:
                for container in self._own_containers(client):
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
            finally:
                client.close()

    # -- the shell ----------------------------------------------------------------------

    def _argv(self) -> list[str]:
        assert self.container_id is not None
        return ["docker", "exec", "-i", "-w", "/workspace", self.container_id, self._shell]

    async def start(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        if self.limited and self._proxy is None:
            gateway, bridge = await asyncio.to_thread(self._ensure_network)
            self._firewall = Firewall(self._network_name(), bridge, gateway)
            await asyncio.to_thread(self._firewall.seal)
            self._proxy = EgressProxy(self.environment.allowed_hosts)
            self._proxy_port = await self._proxy.start(gateway)
            self._proxy_url = f"http://{gateway}:{self._proxy_port}"
        if not await asyncio.to_thread(self._running):
            self.container_id = await asyncio.to_thread(self._create)
            if self._firewall is not None:
                await asyncio.to_thread(self._open_proxy_to_container)
            has_bash = await asyncio.to_thread(self._exec_ok, ["sh", "-c", "command -v bash"])
            self._shell = "bash" if has_bash else "sh"
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "DOCKER_HOST", "DOCKER_CONFIG")}
        try:
            self._proc = await spawn_shell(self._argv(), env)
        except OSError as exc:
            raise SandboxError(f"cannot start a shell in the container: {exc}") from None

    def _open_proxy_to_container(self) -> None:
        """Its address may reach its proxy; nothing else of the host (firewall.py)."""
        assert self._firewall is not None and self.container_id is not None
        old = self._address
        client = docker_client()
        try:
            container = client.containers.get(self.container_id)
            networks = container.attrs["NetworkSettings"]["Networks"]
            self._address = str(networks[self._network_name()]["IPAddress"])
        except Exception as exc:
            raise SandboxError(f"cannot find the limited container's address: {exc}") from None
        finally:
            client.close()
        if old and old != self._address:  # a replaced container's rule goes with it
            self._firewall.disallow(old, self._proxy_port)
        self._firewall.allow(self._address, self._proxy_port)

    def _exec_ok(self, argv: list[str]) -> bool:
        client = docker_client()
        try:
            assert self.container_id is not None
            result = client.containers.get(self.container_id).exec_run(argv)
            return result.exit_code == 0
        except Exception:
            return False
        finally:
            client.close()

    async def bash(self, command: str, timeout_s: float) -> BashResult:
        result = await super().bash(command, timeout_s)
        shell_died = result.exit_code is None and not result.timed_out
        if shell_died and not await asyncio.to_thread(self._running):
            raise SandboxLost("the container stopped while the command ran")
        return result

    async def _kill_running_command(self, proc: asyncio.subprocess.Process, marker: bytes) -> str:
        """Kill the command's processes inside the container; the shell keeps its state."""
        # Every shell's descendants but this script's own (images may lack pgrep/pkill).
        script = (
            "kt() { for c in $(cat /proc/$1/task/*/children 2>/dev/null); do kt $c;"
            " kill -9 $c 2>/dev/null; done; };"
            " for p in /proc/[0-9]*; do n=$(cat $p/comm 2>/dev/null); q=${p#/proc/};"
            f' [ "$n" = {self._shell} ] && [ "$q" != $$ ] && kt $q; done'
        )
        await asyncio.to_thread(self._exec_ok, ["sh", "-c", script])
        try:
            await asyncio.wait_for(self._read_until(proc, marker, CappedBuffer(0)), KILL_GRACE_S)
            return "timed out: the command was killed; the shell kept its state"
        except TimeoutError:
            await self._discard()
            return "timed out: the shell was restarted (cwd and environment reset)"

    async def restart(self) -> None:
        """A new shell, and a new container if the old one is gone."""
        async with self._lock:
            await self._discard()
            await self.start()

    async def close(self, *, remove: bool = False) -> None:
        await self._discard()
        if remove or self.limited:  # a limited container cannot outlive its proxy
            await asyncio.to_thread(self._remove)
        if self._firewall is not None and self._address:
            await asyncio.to_thread(self._firewall.disallow, self._address, self._proxy_port)
            self._address = ""
        if self.limited:
            await asyncio.to_thread(self._remove_network_if_unused)
        if self._proxy is not None:
            await self._proxy.close()
            self._proxy = None


def orphan_containers(data_dir: Path, live_sessions: set[str]) -> list[tuple[str, str]]:
    """(container id, session id) of this data dir's containers whose session is not live."""
    try:
        client = docker_client()
    except SandboxError:
        return []
    try:
        filters = {"label": [f"{LABEL_DATA_DIR}={data_dir}"]}
        out = []
        # ignore_removed: one removed between the listing and its inspection (a
        # session's own close racing gc) is simply gone, not an error.
        for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
            sid = container.labels.get(LABEL_SESSION, "")
            if sid not in live_sessions:
                out.append((str(container.id), sid))
        return out
    finally:
        client.close()


def remove_containers(ids: list[str]) -> None:
    if not ids:
        return
    client = docker_client()
    try:
        for cid in ids:
            with contextlib.suppress(Exception):
                client.containers.get(cid).remove(force=True)
    finally:
        client.close()
