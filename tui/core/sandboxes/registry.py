"""Maps an environment's ``backend`` to a sandbox: docker, local, or auto (docker when an
engine answers and the image is here, else local)."""

from __future__ import annotations

from pathlib import Path

from tui.core.sandboxes.base import Sandbox
from tui.core.session.spec import DEFAULT_IMAGE, EnvironmentSpec


def open_sandbox(
    environment: EnvironmentSpec,
    workspace: Path,
    session_id: str = "",
    data_dir: Path | None = None,
) -> Sandbox:
    backend = environment.backend
    notice = ""
    if backend == "auto":
        from tui.core.sandboxes.engine import engine_answers, image_present

        backend = "local"
        if engine_answers():
            if image_present(environment.image):
                backend = "docker"
            else:  # the one case a user would want to hear about: docker is one step away
                notice = missing_image_notice(environment.image)
    if backend == "docker":
        from tui.core.sandboxes.docker import DockerSandbox
        from tui.core.sandboxes.engine import docker_client

        docker_client().close()  # a spec that asks for docker fails here, clearly, if none answers
        return DockerSandbox(workspace, environment, session_id, data_dir or workspace.parent)
    from tui.core.sandboxes.local import LocalSandbox

    limited = environment.networking == "limited"
    sandbox = LocalSandbox(
        workspace,
        network=environment.networking == "unrestricted",
        egress=environment.allowed_hosts if limited else None,
        limits=environment.limits,
        label=session_id,
    )
    sandbox.notice = notice
    return sandbox


def missing_image_notice(image: str) -> str:
    if image == DEFAULT_IMAGE:
        return "docker image missing: run `corral env build`"
    return f"docker image {image} missing: build or pull it"
