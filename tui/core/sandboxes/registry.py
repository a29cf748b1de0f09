"""Maps an environment's ``backend`` to a sandbox class."""

from __future__ import annotations

from pathlib import Path

from tui.core.errors import SandboxError
from tui.core.sandboxes.base import Sandbox
from tui.core.spec import EnvironmentSpec


def open_sandbox(environment: EnvironmentSpec, workspace: Path) -> Sandbox:
    backend = environment.backend
    if backend == "docker":
        # UNFINISHED: the docker backend is issue 5.
        raise SandboxError(
            "backend 'docker' is not available yet in this corral; use backend = \"local\""
        )
    # "auto" picks docker where an engine answers once that backend exists; local until then.
    from tui.core.sandboxes.local import LocalSandbox

    return LocalSandbox(workspace, network=environment.networking != "none")
