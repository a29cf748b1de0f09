"""Small user preferences kept beside the store (``settings.json``), e.g. the theme."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tui.core.store.datadir import ensure_data_dir

FILE_NAME = "settings.json"


def load_settings(data_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((data_dir / FILE_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: defaults, and the next save repairs it
    return data if isinstance(data, dict) else {}


def save_setting(data_dir: Path, key: str, value: Any) -> None:
    settings = load_settings(data_dir)
    settings[key] = value
    ensure_data_dir(data_dir)
    tmp = data_dir / (FILE_NAME + ".tmp")
    tmp.write_text(json.dumps(settings, indent=2), "utf-8")
    os.replace(tmp, data_dir / FILE_NAME)  # atomic: never a half-written file
