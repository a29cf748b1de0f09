"""Sandboxes: where a session's commands run. One module per backend."""

from tui.core.sandboxes.base import BashResult, Sandbox
from tui.core.sandboxes.registry import open_sandbox

__all__ = ["BashResult", "Sandbox", "open_sandbox"]
