"""A stored session's record: its id, title, spec, model, workspace and sandbox, with
the usage projection the store keeps for listing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tui.core.session.state import SessionState

# Metadata key: why a session runs on local when docker was one step away (sandboxes).
SANDBOX_NOTICE = "sandbox_notice"


@dataclass
class SessionRecord:
    id: str
    title: str
    created_at: datetime
    spec: dict[str, Any]
    model: str
    workspace: str
    sandbox: str = ""
    isolation: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    state: SessionState | None = None
    # What ties it to the API's nouns, when it has them: agent_id, agent_version,
    # environment_id, the caller's metadata (str -> str), archived_at.
    api: dict[str, Any] = field(default_factory=dict)
