"""Maps an environment's ``backend`` to a sandbox: docker, local, or auto (docker when an
engine answers and the image is here, else local)."""

from __future__ import annotations

from pathlib import Path

from tui.core.sandboxes.base import Sandbox
from tui.core.session.spec import EnvironmentSpec


def open_sandbox(
    environment: EnvironmentSpec,
    workspace: Path,
    session_id: str = "",
    data_dir: Path | None = None,
) -> Sandbox:
    backend = environment.backend
    if backend == "auto":
        from tui.core.sandboxes.docker import engine_answers, image_present

        use_docker = engine_answers() and image_present(environment.image)
        backend = "docker" if use_docker else "local"
    if backend == "docker":
        from tui.core.sandboxes.docker import DockerSandbox, docker_client

        docker_client().close()  # a spec that asks for docker fails here, clearly, if none answers
        return DockerSandbox(workspace, environment, session_id, data_dir or workspace.parent)
    from tui.core.sandboxes.local import LocalSandbox

    limited = environment.networking == "limited"
    return LocalSandbox(
        workspace,
        network=environment.networking == "unrestricted",
        egress=environment.allowed_hosts if limited else None,
        limits=environment.limits,
        label=session_id,
    )
