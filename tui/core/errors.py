"""The error hierarchy. The CLI turns each into one line and an exit code."""

from __future__ import annotations


class CorralError(Exception):
    """Base of every error corral reports to a user."""

    exit_code = 1


class SpecError(CorralError):
    """A session spec is malformed; nothing was started."""

    exit_code = 2

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


class UsageError(CorralError):
    """The command line asked for something that cannot be done."""

    exit_code = 2


class NotFoundError(CorralError):
    """A session, event or tool use that does not exist."""

    exit_code = 3


class StoreError(CorralError):
    """The store cannot be opened or written."""


class StoreBusyError(StoreError):
    """Another live corral process owns this data dir."""


class ModelError(CorralError):
    """A model request failed. ``retryable`` says whether backoff may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        kind: str = "model_request_failed_error",
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.kind = kind
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did


class ModelNotAvailableError(CorralError):
    """A model id names a provider that is not built yet or not configured."""

    exit_code = 2


class ToolError(CorralError):
    """A tool call failed in a way the model should hear about (an error result)."""


class PathEscapeError(ToolError):
    """A tool path resolves outside the session's workspace."""


class SandboxError(CorralError):
    """The sandbox cannot run a command (dead shell, missing backend)."""


class SandboxLost(SandboxError):
    """The sandbox (a container) went away under a running command; a new one can be made."""
