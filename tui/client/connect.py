"""The one way a command or the app gets its client: the server of the data dir (over its
Unix socket, started if none runs), or, with a URL, a server on another machine (over
TCP, with its key)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx2 as httpx

from tui.client.discovery import ensure_server
from tui.client.remote import REQUEST_TIMEOUT_S, RemoteClient, ServerError
from tui.core.errors import UsageError

SERVER_ENV = "CORRAL_SERVER"  # a URL: use that server rather than the data dir's
KEY_ENV = "CORRAL_SERVER_KEY"  # its key (never on the command line, where ps shows it)


async def connect(
    data_dir: Path,
    *,
    server: str | None = None,
    serve_args: tuple[str, ...] = (),
) -> RemoteClient:
    """``serve_args``: for the data dir's server, if this call starts it."""
    server = server or os.environ.get(SERVER_ENV) or None
    if server is not None:
        return await _remote(data_dir, server)
    info = await asyncio.to_thread(ensure_server, data_dir, serve_args)
    where = f"the corral server of {data_dir}"

    async def restart() -> None:
        await asyncio.to_thread(ensure_server, data_dir, serve_args)

    transport = httpx.AsyncHTTPTransport(uds=str(info.socket))
    http = httpx.AsyncClient(
        transport=transport, base_url="http://corral", timeout=REQUEST_TIMEOUT_S
    )
    return RemoteClient(http, data_dir, where=where, reconnect=restart)


async def _remote(data_dir: Path, url: str) -> RemoteClient:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--server {url!r}: expected a URL such as http://host:8765")
    key = os.environ.get(KEY_ENV)
    if not key:
        raise UsageError(
            f"--server {url}: set {KEY_ENV} to its key (`corral server key --show` there)"
        )
    http = httpx.AsyncClient(
        base_url=url.rstrip("/"), headers={"x-api-key": key}, timeout=REQUEST_TIMEOUT_S
    )
    client = RemoteClient(http, data_dir, where=url)
    try:
        await client.request("GET", "/v1/corral/server")  # the key, before anything else
    except ServerError:
        await http.aclose()
        raise
    return client
