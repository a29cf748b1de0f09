"""What an export leaves out: the values of environment variables that look like
credentials, found in any string of the session record, its events and checkpoints."""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)


def secret_values(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Values of environment variables that look like credentials -> the variable's name,
    longest value first (so a key that contains a shorter one is redacted whole)."""
    env = os.environ if environ is None else environ
    found = {v: k for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return dict(sorted(found.items(), key=lambda item: len(item[0]), reverse=True))


class Redactor:
    """Replaces secret values inside strings of a JSON-shaped value, before it is encoded
    (so quotes, backslashes or non-ASCII in a secret cannot hide it behind JSON escapes),
    and counts what it replaced, by the variable's name."""

    def __init__(self, secrets_by_value: dict[str, str]) -> None:
        self.secrets = secrets_by_value
        self.counts: Counter[str] = Counter()

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret, name in self.secrets.items():
                if secret in value:
                    self.counts[name] += value.count(secret)
                    value = value.replace(secret, f"[redacted {name}]")
            return value
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value
