"""Where corral keeps its store: ``--data-dir``, else ``$CORRAL_HOME``, else the user data dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DB_NAME = "corral.db"


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("CORRAL_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir("corral", appauthor=False))


def ensure_data_dir(data_dir: Path) -> Path:
    """Make the data dir if it is missing, readable by its owner only: it holds every
    conversation, tool output and file the agents saw. One that exists keeps its mode."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return data_dir


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def workspaces_dir(data_dir: Path) -> Path:
    return data_dir / "workspaces"


def blobs_dir(data_dir: Path) -> Path:
    """The content-addressed workspace store, beside the database."""
    return data_dir / "blobs"
