"""The egress proxy for ``networking = "limited"``: HTTP and CONNECT to listed hosts only.

A docker session's container sits on an internal Docker network, which has no route
out; the only address it can reach is this proxy, which corral runs on the host and
binds to that network's gateway address. A local session's bubblewrapped shell has a
network namespace of its own with only ``lo``; the proxy listens on a Unix socket that is
bind-mounted into the sandbox, where a small forwarder (``FORWARDER``) relays
``127.0.0.1:EGRESS_PORT`` to it. ``HTTP_PROXY``/``HTTPS_PROXY`` in the shell point at
the proxy either way. A request for a host not in ``allowed_hosts`` gets ``403``; host
names are resolved here, on the host side. Entries match exactly, or ``*.example.com``
any subdomain.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shlex

MAX_HEADER = 64 * 1024
CONNECT_TIMEOUT_S = 15
# Inside a local sandbox: where the proxy's socket is mounted, and where the forwarder
# listens (the sandbox's network namespace is its own, so any port is free).
SANDBOX_SOCKET = "/tmp/.corral-egress.sock"
EGRESS_PORT = 3128

# Runs inside the sandbox as `python3 -c`, where corral itself is not importable (homes
# are hidden): standard library only. It binds, then forks; the parent's exit says
# "listening" to the shell that started it, and the child, an orphan the sandbox's init
# adopts, is no descendant of the shell (a timed-out command's kill does not reach it).
# One thread, so it costs the sandbox's pids limit one process.
FORWARDER = """
import asyncio, os, socket, sys
path, port = sys.argv[1], int(sys.argv[2])
listener = socket.create_server(("127.0.0.1", port))
if os.fork():
    os._exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except (OSError, RuntimeError):
        pass

async def handle(reader, writer):
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(path)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    writer.close()
    up_writer.close()

async def main():
    server = await asyncio.start_server(handle, sock=listener)
    await server.serve_forever()

asyncio.run(main())
"""


def forwarder_command(python: str = "python3") -> str:
    """The shell command that starts the forwarder; it returns once it listens."""
    args = [python, "-c", FORWARDER, SANDBOX_SOCKET, str(EGRESS_PORT)]
    return " ".join(shlex.quote(a) for a in args)


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


def _host_header(header_lines: list[str]) -> str | None:
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "host":
            return value.strip()
    return None


def _same_host(header: str, host: str) -> bool:
    try:
        named, _ = split_host_port(header, 80)
    except ValueError:
        return False
    return named.strip("[]").lower().rstrip(".") == host.strip("[]").lower().rstrip(".")


def split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):  # [ipv6]:port
        host, _, rest = authority[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = (
            authority.rpartition(":") if authority.count(":") == 1 else (authority, "", "")
        )
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ValueError(f"bad port in {authority!r}") from None


class EgressProxy:
    def __init__(self, allowed_hosts: tuple[str, ...]) -> None:
        self.allowed = allowed_hosts
        self._server: asyncio.Server | None = None
        self.refused: list[str] = []  # hosts asked for and refused, for the log and tests

    async def start(self, host: str) -> int:
        ipaddress.ip_address(host)  # bind only to an address, never to "all interfaces"
        self._server = await asyncio.start_server(self._handle, host, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def start_unix(self, path: str) -> None:
        """Listen on a Unix socket at ``path``; only its owner may connect."""
        self._server = await asyncio.start_unix_server(self._handle, path)
        os.chmod(path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        if len(head) > MAX_HEADER:
            await self._refuse(writer, 431, "request header too large")
            return
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await self._refuse(writer, 400, "bad request line")
            return
        try:
            if method.upper() == "CONNECT":
                host, port = split_host_port(target, 443)
            elif target.lower().startswith("http://"):
                authority, _, path = target[7:].partition("/")
                host, port = split_host_port(authority, 80)
            else:
                await self._refuse(writer, 400, "only absolute http:// URLs and CONNECT")
                return
        except ValueError as exc:
            await self._refuse(writer, 400, str(exc))
            return
        if not host_allowed(host, self.allowed):
            self.refused.append(host)
            await self._refuse(writer, 403, f"corral: {host} is not in allowed_hosts")
            return
        fronted = _host_header(lines[1:])
        if method.upper() != "CONNECT" and fronted is not None and not _same_host(fronted, host):
            # The upstream serves by Host header: a different one would reach a site
            # the list does not name through one it does (domain fronting).
            self.refused.append(fronted)
            await self._refuse(writer, 403, f"corral: Host {fronted} differs from {host}")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            await self._refuse(writer, 502, f"cannot reach {host}:{port}: {exc}")
            return
        if method.upper() == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            # Origin-form to the server; the proxy's own headers stay here.
            headers = [h for h in lines[1:] if h and not h.lower().startswith("proxy-")]
            request = "\r\n".join([f"{method} /{path} {version}", *headers]) + "\r\n\r\n"
            up_writer.write(request.encode("latin-1"))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for end in (up_writer, writer):
                with contextlib.suppress(Exception):
                    end.close()

    async def _refuse(self, writer: asyncio.StreamWriter, status: int, why: str) -> None:
        body = (why + "\n").encode()
        writer.write(
            f"HTTP/1.1 {status} Refused\r\ncontent-type: text/plain\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction; at its end, half-close so the other direction can finish
    (a client that has sent its request still wants the answer)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
