"""corral's Docker images: what ``corral env ls`` lists and ``corral gc --images`` removes.

Every image corral makes carries the label ``corral.image`` saying what it is:

- ``env``: an environment built by ``corral env build`` (the default is
  ``corral-python:latest``);
- ``rootfs``: the Debian root filesystem an offline build imported (its cache);
- ``derived``: a spec's image plus its ``packages`` (``corral-env:<hash>``), made at a
  session's start and reused by every session that asks for the same packages.

Derived images made before the label existed are recognised by their repository name.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tui.core.sandboxes.engine import docker_client

LABEL_IMAGE = "corral.image"
LABEL_RECIPE = "corral.recipe"  # the build's inputs, hashed: a rebuild is needed if they change
DERIVED_REPOSITORY = "corral-env"


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    kind: str  # env, rootfs or derived
    size: int  # bytes
    created: datetime
    containers: int  # containers (running or not) made from it


def _kind(image: Any) -> str | None:
    labels = image.labels or {}
    if labels.get(LABEL_IMAGE):
        return str(labels[LABEL_IMAGE])
    if any(t.split(":")[0] == DERIVED_REPOSITORY for t in image.tags):
        return "derived"
    return None


def _created(image: Any) -> datetime:
    raw = str(image.attrs.get("Created", ""))
    try:  # Docker writes nanoseconds; fromisoformat takes microseconds
        head, _, tail = raw.rstrip("Z").partition(".")
        return datetime.fromisoformat(head + ("." + tail[:6] if tail else "")).replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def list_images() -> list[ImageInfo]:
    """corral's images on the engine, newest first (SandboxError if none answers)."""
    client = docker_client()
    try:
        users: dict[str, int] = {}
        for container in client.containers.list(all=True, ignore_removed=True):
            image_id = str(container.attrs.get("Image", ""))
            users[image_id] = users.get(image_id, 0) + 1
        found = []
        for image in client.images.list():
            kind = _kind(image)
            if kind is None:
                continue
            for tag in image.tags or [image.short_id]:
                found.append(
                    ImageInfo(
                        tag=tag,
                        kind=kind,
                        size=int(image.attrs.get("Size", 0)),
                        created=_created(image),
                        containers=users.get(str(image.id), 0),
                    )
                )
        return sorted(found, key=lambda i: i.created, reverse=True)
    finally:
        client.close()


def unused_derived() -> list[ImageInfo]:
    """Derived images no container uses: the next session that needs one rebuilds it."""
    return [i for i in list_images() if i.kind == "derived" and i.containers == 0]


def remove_images(tags: list[str]) -> list[str]:
    """Remove these images; the tags actually removed (one in use by a container made
    since is left alone: the engine refuses without ``force``)."""
    removed = []
    client = docker_client()
    try:
        for tag in tags:
            with contextlib.suppress(Exception):
                client.images.remove(tag)
                removed.append(tag)
    finally:
        client.close()
    return removed
