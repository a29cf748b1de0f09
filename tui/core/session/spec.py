"""Session specs: an agent, an environment, a workspace and a task, as corral keeps
them (the JSON form stored with each session); reading them from TOML and checking them
is ``spec_reader.py``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tui.core.errors import SpecError

TOOL_NAMES = ("bash", "read", "write", "edit", "glob", "grep")
POLICIES = ("always_allow", "always_ask", "deny")
BACKENDS = ("auto", "local", "docker")
NETWORKING = ("none", "unrestricted", "limited")
WORKSPACE_MODES = ("copy", "in_place")
MAX_SCRIPT_BYTES = 4 << 20  # a scripted model's TOML; more is a mistake or a trap
MAX_SPEC_BYTES = 1 << 20


@dataclass(frozen=True)
class ToolConfig:
    enabled: bool = True
    permission_policy: str = "always_allow"
    # (decision, pattern) pairs; see policy.py for what patterns mean and precedence.
    rules: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AgentSpec:
    model: str
    name: str = "agent"
    system: str = ""
    tools: dict[str, ToolConfig] = field(default_factory=dict)

    def tool(self, name: str) -> ToolConfig | None:
        """The config for ``name``; None for a tool corral does not have."""
        return self.tools.get(name) if name in TOOL_NAMES else None


@dataclass(frozen=True)
class Limits:
    """Resource caps; None means the spec did not set one.

    The docker backend always applies caps (``DOCKER_DEFAULTS`` where unset); the local
    backend applies exactly the ones a spec sets, and refuses a spec whose caps it
    cannot enforce on this machine.
    """

    cpus: float | None = None
    memory_mb: int | None = None
    pids: int | None = None

    def or_defaults(self, defaults: Limits) -> Limits:
        return Limits(
            cpus=self.cpus if self.cpus is not None else defaults.cpus,
            memory_mb=self.memory_mb if self.memory_mb is not None else defaults.memory_mb,
            pids=self.pids if self.pids is not None else defaults.pids,
        )

    @property
    def any_set(self) -> bool:
        return self.cpus is not None or self.memory_mb is not None or self.pids is not None


# The image `corral env build` makes; `auto` uses docker only when it is there.
DEFAULT_IMAGE = "corral-python:latest"
DOCKER_DEFAULTS = Limits(cpus=1.0, memory_mb=1024, pids=256)
# Sane ranges: a typo such as 1e9 cpus is refused rather than passed to the kernel.
MAX_CPUS = 1024.0
MEMORY_MB_RANGE = (16, 16 << 20)  # 16 MB .. 16 TB
PIDS_RANGE = (8, 4_194_304)


@dataclass(frozen=True)
class EnvironmentSpec:
    backend: str = "auto"
    image: str = DEFAULT_IMAGE
    networking: str = "none"
    allowed_hosts: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    pip: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkspaceSpec:
    source: Path | None = None
    mode: str = "copy"


@dataclass(frozen=True)
class SessionSpec:
    title: str
    agent: AgentSpec
    environment: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    workspace: WorkspaceSpec = field(default_factory=WorkspaceSpec)
    messages: tuple[str, ...] = ()
    description: str = ""
    max_list_cost: Decimal | None = None
    max_active_hours: Decimal | None = None
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe copy for the store (paths and money as strings)."""
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        data["workspace"]["source"] = str(self.workspace.source) if self.workspace.source else None
        data["max_list_cost"] = str(self.max_list_cost) if self.max_list_cost is not None else None
        hours = self.max_active_hours
        data["max_active_hours"] = str(hours) if hours is not None else None
        return data

    def with_model(self, model: str) -> SessionSpec:
        from dataclasses import replace

        return replace(self, agent=replace(self.agent, model=model))

    def with_backend(self, backend: str) -> SessionSpec:
        """The same session in another sandbox backend (``demo --backend docker``)."""
        from dataclasses import replace

        if backend not in BACKENDS:
            raise SpecError(f"backend must be one of {', '.join(BACKENDS)}")
        return replace(self, environment=replace(self.environment, backend=backend))


def default_tools(*, allow_all: bool) -> dict[str, ToolConfig]:
    """The six tools; without ``allow_all``, the ones that change things ask first."""
    asks = () if allow_all else ("bash", "write", "edit")
    return {
        name: ToolConfig(True, "always_ask" if name in asks else "always_allow")
        for name in TOOL_NAMES
    }


# claude-sonnet-4-5 retires on 2026-11-30 (per the SDK's deprecation table); 4-6 is priced.
DEFAULT_MODEL = "claude-sonnet-4-6"


def ad_hoc_spec(
    prompt: str, *, model: str, workspace: Path | None, allow_all: bool, backend: str = "auto"
) -> SessionSpec:
    title = prompt.strip().splitlines()[0][:60] if prompt.strip() else "ad-hoc session"
    # A prompt from argv may hold undecodable bytes; a title is stored and shown as text.
    title = title.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return SessionSpec(
        title=title,
        agent=AgentSpec(model=model, tools=default_tools(allow_all=allow_all)),
        environment=EnvironmentSpec(backend=backend),
        workspace=WorkspaceSpec(workspace, "in_place") if workspace else WorkspaceSpec(),
        messages=(prompt,),
    )


def limits_problem(limits: Limits) -> tuple[str, str] | None:
    """(key, problem) for the first limit out of its sane range, else None."""
    if limits.cpus is not None and not (0 < limits.cpus <= MAX_CPUS):  # also refuses nan
        return "cpus", f"must be a number above 0 and at most {MAX_CPUS:g}"
    low, high = MEMORY_MB_RANGE
    if limits.memory_mb is not None and not low <= limits.memory_mb <= high:
        return "memory_mb", f"must be between {low} and {high}"
    low, high = PIDS_RANGE
    if limits.pids is not None and not low <= limits.pids <= high:
        return "pids", f"must be between {low} and {high}"
    return None


SYSTEM_TREES = ("/proc", "/sys", "/dev")


def refuse_system_tree(path: Path) -> None:
    """A workspace source under /proc, /sys or /dev would copy kernel state or devices."""
    real = path.resolve()
    for tree in SYSTEM_TREES:
        if real == Path(tree) or Path(tree) in real.parents:
            raise SpecError(str(path), "workspace.source", f"{tree} cannot be a workspace")


def spec_from_json(data: dict[str, Any]) -> SessionSpec:
    """Rebuild a spec the store saved with ``to_json`` (trusted: corral wrote it)."""
    agent = data["agent"]
    env = data["environment"]
    ws = data["workspace"]
    return SessionSpec(
        title=data["title"],
        description=data.get("description", ""),
        agent=AgentSpec(
            model=agent["model"],
            name=agent.get("name", "agent"),
            system=agent.get("system", ""),
            tools={
                k: ToolConfig(
                    v["enabled"],
                    v["permission_policy"],
                    tuple((d, p) for d, p in v.get("rules", ())),
                )
                for k, v in agent["tools"].items()
            },
        ),
        environment=EnvironmentSpec(
            backend=env["backend"],
            image=env["image"],
            networking=env["networking"],
            allowed_hosts=tuple(env["allowed_hosts"]),
            limits=Limits(**env.get("limits", {})),
            pip=tuple(env.get("pip", ())),
            apt=tuple(env.get("apt", ())),
        ),
        workspace=WorkspaceSpec(Path(ws["source"]) if ws["source"] else None, ws["mode"]),
        messages=tuple(data["messages"]),
        max_list_cost=Decimal(data["max_list_cost"]) if data.get("max_list_cost") else None,
        max_active_hours=(
            Decimal(data["max_active_hours"]) if data.get("max_active_hours") else None
        ),
        path=Path(data["path"]) if data.get("path") else None,
    )
