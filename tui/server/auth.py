"""Who may talk to the server. Over the Unix socket (mode 0600, in the owner's data dir)
the filesystem already said who; over TCP every request carries the key, as the SDK sends
it (``x-api-key``, or ``Authorization: Bearer``). The key is compared in constant time and
never logged."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from tui.core.store.datadir import ensure_data_dir
from tui.server.errors import envelope

KEY_FILE = "server.key"


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def load_or_make_key(data_dir: Path) -> str:
    """The server's key: made once (0600) and kept in the data dir."""
    path = key_path(data_dir)
    try:
        return path.read_text("utf-8").strip()
    except FileNotFoundError:
        pass
    ensure_data_dir(data_dir)
    key = "crl-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def over_unix_socket(scope: Scope) -> bool:
    server = scope.get("server")
    # uvicorn names a Unix socket's server by its path, with no port.
    return server is None or server[1] is None


class KeyCheck:
    """Refuses any TCP request without the key, in the API's error envelope."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app = app
        self.key = key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.key is not None and not over_unix_socket(scope):
            given = _presented_key(scope)
            if given is None or not hmac.compare_digest(given, self.key):
                why = "no API key" if given is None else "the API key is not this server's"
                response = envelope(401, "authentication_error", why)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _presented_key(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"x-api-key":
            return bytes(value)
        if name == b"authorization" and value.lower().startswith(b"bearer "):
            return bytes(value[7:])
    return None
