"""Files corral ships inside the package (so an installed corral has them too): the demo
sessions with their scripts and workspaces, the themes, and the policy profiles."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _folder(name: str) -> Path:
    # Installed from a wheel or as an editable checkout, the package is files on disk.
    return Path(str(resources.files("tui.data").joinpath(name)))


def sessions_dir() -> Path:
    """The bundled session specs (the demos are ``demo-*.toml``)."""
    return _folder("sessions")


def themes_dir() -> Path:
    return _folder("themes")


def policies_dir() -> Path:
    return _folder("policies")
