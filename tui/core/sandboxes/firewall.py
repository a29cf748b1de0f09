"""Host firewall rules that seal a ``limited`` Docker network.

An internal Docker network has no route to other machines, but its containers still
reach the host itself: the gateway address is the host's bridge interface, and the
container's default route leads there, so any host service listening on all interfaces
(a database, a dev server, the docker API on TCP) answers. corral's proxy listens on that
gateway too, so the host cannot simply be cut off.

The rules, in a chain of their own (``CORRAL-<hash>``) that every packet from the
network's bridge jumps to from ``INPUT``: each container may open a TCP connection to its
own proxy's port on the gateway; everything else from the bridge is rejected (TCP with a
reset, so a refused connection fails at once). IPv6 from the bridge is rejected outright.
They are made with ``iptables`` (which on Debian drives nftables) and removed with the
network. Without them ``limited`` is refused: half a seal is none.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tui.core.errors import SandboxError

CHAIN_PREFIX = "CORRAL-"
REJECT_TCP = ("-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
# Chains this process has flushed: rules left by a process that died are dropped once,
# then the chain only grows and shrinks by this process's own sandboxes.
_fresh: set[str] = set()


def chain_name(network: str) -> str:
    return CHAIN_PREFIX + hashlib.sha256(network.encode()).hexdigest()[:12]


def _tables() -> list[str]:
    """iptables, and ip6tables where the kernel has IPv6 (rules for both, or neither)."""
    return ["iptables"] + (["ip6tables"] if Path("/proc/net/if_inet6").exists() else [])


class Firewall:
    """The rules of one limited network: ``seal`` it, ``allow`` each container's proxy,
    ``remove`` all with the network."""

    def __init__(self, network: str, bridge: str, gateway: str) -> None:
        self.chain = chain_name(network)
        self.bridge = bridge
        self.gateway = gateway

    def seal(self) -> None:
        """The chain with its closing reject rules, and the jump to it (idempotent)."""
        require_firewall()
        for table in _tables():
            if not _ok(table, "-L", self.chain, "-n"):
                _run(table, "-N", self.chain)
            elif self.chain not in _fresh:
                _run(table, "-F", self.chain)
            if self.chain not in _fresh or not _ok(table, "-C", self.chain, "-j", "REJECT"):
                _run(table, "-A", self.chain, *REJECT_TCP)
                _run(table, "-A", self.chain, "-j", "REJECT")
            jump = ("INPUT", "-i", self.bridge, "-j", self.chain)
            if not _ok(table, "-C", *jump):
                _run(table, "-I", jump[0], "1", *jump[1:])
        _fresh.add(self.chain)

    def _accept(self, source: str, port: int) -> tuple[str, ...]:
        return (
            self.chain, "-s", source, "-d", self.gateway, "-p", "tcp", "--dport", str(port),
            "-j", "ACCEPT",
        )  # fmt: skip

    def allow(self, source: str, port: int) -> None:
        """``source`` (a container's address) may reach the proxy at ``port``."""
        rule = self._accept(source, port)
        _run("iptables", "-I", rule[0], "1", *rule[1:])

    def disallow(self, source: str, port: int) -> None:
        _ok("iptables", "-D", *self._accept(source, port))

    def remove(self) -> None:
        """The jump and the chain (the network is gone or going)."""
        for table in _tables():
            while _ok(table, "-D", "INPUT", "-i", self.bridge, "-j", self.chain):
                pass
            _ok(table, "-F", self.chain)
            _ok(table, "-X", self.chain)
        _fresh.discard(self.chain)


def require_firewall() -> None:
    """SandboxError unless this process can install the rules (checked at session start,
    before a container exists, so a spec that cannot be honoured is refused at once)."""
    if shutil.which("iptables") is None:
        raise SandboxError(
            'networking = "limited" needs iptables to seal the host from the container'
            " (not installed); use none or unrestricted"
        )
    if os.geteuid() != 0:
        raise SandboxError(
            'networking = "limited" needs host firewall rules, which need root: run the'
            " corral server as root, or use none or unrestricted"
        )


def _ok(table: str, *args: str) -> bool:
    done = subprocess.run([table, "-w", *args], capture_output=True, check=False)
    return done.returncode == 0


def _run(table: str, *args: str) -> None:
    done = subprocess.run([table, "-w", *args], capture_output=True, check=False)
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
        raise SandboxError(f"cannot set the firewall rules of a limited network: {why[0]}")
