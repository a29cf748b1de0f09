"""The Docker engine as corral reaches it: a client that fails with one clear line."""

from __future__ import annotations

import shutil
from typing import Any

from tui.core.errors import SandboxError

PING_TIMEOUT_S = 3


def docker_client() -> Any:
    """A client for the engine the environment names (DOCKER_HOST), or SandboxError."""
    try:
        import docker

        client = docker.from_env(timeout=PING_TIMEOUT_S)
        client.ping()
    except Exception as exc:
        raise SandboxError(f"no Docker engine answers here ({type(exc).__name__}: {exc})") from None
    client.api.timeout = 120  # pings are quick; creating and removing may not be
    return client


def engine_answers() -> bool:
    try:
        docker_client().close()
    except SandboxError:
        return False
    return shutil.which("docker") is not None


def image_present(image: str) -> bool:
    try:
        client = docker_client()
    except SandboxError:
        return False
    try:
        client.images.get(image)
        return True
    except Exception:
        return False
    finally:
        client.close()
