"""Agents and environments, the API's nouns: what a caller defines once and starts many
sessions from. An agent (versioned: each update is a new version) names a model, a system
prompt and the built-in toolset's configuration; an environment says where tools run
(corral's backend, image, networking, packages, limits). A session started from them gets
an ordinary ``SessionSpec`` (``spec_for``), so everything after that is the engine as ever.

The bodies are checked here, field by field, and kept in the shape the API returns. What
the hosted API has and corral does not (MCP servers, skills, multiagent, custom tools,
the `auto` permission policy, web tools) is refused by name, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tui.core.errors import CorralError, UsageError
from tui.core.money.amounts import parse_money
from tui.core.session.spec import (
    TOOL_NAMES,
    AgentSpec,
    EnvironmentSpec,
    Limits,
    SessionSpec,
    ToolConfig,
    WorkspaceSpec,
    limits_problem,
)

TOOLSET = "agent_toolset_20260401"
POLICY_TYPES = ("always_allow", "always_ask")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
MAX_METADATA_PAIRS = 16


class InvalidRequest(UsageError):
    """A request body that is not what the API takes; ``param`` names the field."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param


class NotSupported(CorralError):
    """Something the hosted API offers that corral does not (yet): named, never ignored."""

    exit_code = 2

    def __init__(self, feature: str) -> None:
        super().__init__(f"{feature} is not supported by corral")
        self.feature = feature


@dataclass(frozen=True)
class AgentRecord:
    id: str
    version: int
    created_at: str
    updated_at: str
    archived_at: str | None
    body: dict[str, Any]  # name, description, system, model, tools, metadata


@dataclass(frozen=True)
class EnvironmentRecord:
    id: str
    created_at: str
    updated_at: str
    archived_at: str | None
    body: dict[str, Any]  # name, description, config, metadata


# -- checking bodies --------------------------------------------------------------------------


def _text(data: dict[str, Any], key: str, *, required: bool = False, limit: int = 1 << 20) -> Any:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidRequest(key, "is required")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidRequest(key, "must be a string")
    return value


def metadata_of(value: Any, key: str = "metadata") -> dict[str, str]:
    """The caller's metadata: at most 16 str -> str pairs, as the hosted API allows."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS:
        raise InvalidRequest(key, f"must be an object of at most {MAX_METADATA_PAIRS} pairs")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str) or len(k) > 64 or len(v) > 512:
            raise InvalidRequest(key, "keys must be strings up to 64 chars, values up to 512")
    return dict(value)


def check_agent(data: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored body of an agent from a create request, or (with ``base``) an update's
    replacement fields applied to the current body."""
    if not isinstance(data, dict):
        raise InvalidRequest("body", "must be a JSON object")
    for feature in ("mcp_servers", "skills"):
        if data.get(feature):
            raise NotSupported(feature)
    if data.get("multiagent"):
        raise NotSupported("multiagent")
    identity = data.get("execution_identity")
    if identity not in (None, {"type": "service_account"}):
        raise NotSupported("execution_identity")
    body = dict(base or {})
    if base is None or "name" in data:
        body["name"] = _text(data, "name", required=True, limit=256)
    for key in ("description", "system"):
        if base is None or key in data:
            body[key] = _text(data, key)
    if base is None or "model" in data:
        body["model"] = _model(data.get("model"))
    if base is None or "tools" in data:
        body["tools"] = _tools(data.get("tools") or [])
    if base is None or "metadata" in data:
        body["metadata"] = _merge_metadata(body.get("metadata", {}), data.get("metadata"), base)
    return body


def _merge_metadata(current: dict[str, str], given: Any, base: dict[str, Any] | None) -> Any:
    if base is None or given is None:
        return metadata_of(given)
    # An update sets keys; a key sent as null is removed.
    if not isinstance(given, dict):
        raise InvalidRequest("metadata", "must be an object")
    merged = dict(current)
    for k, v in given.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return metadata_of(merged)


def _model(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"id": value}
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
        raise InvalidRequest("model", "must be a model id or an object with an id")
    model: dict[str, Any] = {"id": value["id"]}
    effort = value.get("effort")
    if effort is not None:
        if not isinstance(effort, dict) or effort.get("type") not in (
            "low",
            "medium",
            "high",
            "xhigh",
            "max",
        ):
            raise InvalidRequest("model.effort", "must be low, medium, high, xhigh or max")
        model["effort"] = {"type": effort["type"]}
    if value.get("speed") not in (None, "standard"):
        raise NotSupported(f"model.speed {value.get('speed')!r}")
    return model


def _policy(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "auto":
        raise NotSupported(f"{where}: the auto permission policy")
    if kind not in POLICY_TYPES:
        raise InvalidRequest(where, "must be always_allow or always_ask")
    return {"type": kind}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools", "must be a list")
    out = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in ("mcp_toolset", "custom"):
            raise NotSupported(f"{kind} tools")
        if kind != TOOLSET:
            raise InvalidRequest(f"tools[{index}]", f"must be an {TOOLSET}")
        default = tool.get("default_config") or {}
        if not isinstance(default, dict):
            raise InvalidRequest(f"tools[{index}].default_config", "must be an object")
        enabled = default.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidRequest(f"tools[{index}].default_config.enabled", "must be a boolean")
        policy = _policy(default.get("permission_policy"), f"tools[{index}].default_config")
        policy = policy or {"type": "always_allow"}
        configs = []
        for n, config in enumerate(tool.get("configs") or []):
            # Stored resolved, as the API answers: each field the default's if not given.
            given = _tool_config(config, f"tools[{index}].configs[{n}]")
            configs.append({"enabled": enabled, "permission_policy": policy, **given})
        out.append(
            {
                "type": TOOLSET,
                "default_config": {
                    "enabled": enabled,
                    "permission_policy": policy,
                },
                "configs": configs,
            }
        )
    return out


def _tool_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise InvalidRequest(where, "must be an object")
    name = config.get("name")
    enabled = config.get("enabled")
    if name in ("web_fetch", "web_search"):
        if enabled is False:
            return {"name": name, "type": name, "enabled": False}  # off: nothing to refuse
        raise NotSupported(f"the {name} tool")
    if name not in TOOL_NAMES:
        raise InvalidRequest(f"{where}.name", f"is not one of {', '.join(TOOL_NAMES)}")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidRequest(f"{where}.enabled", "must be a boolean")
    out: dict[str, Any] = {"name": name, "type": name}
    if enabled is not None:
        out["enabled"] = enabled
    policy = _policy(config.get("permission_policy"), where)
    if policy is not None:
        out["permission_policy"] = policy
    return out


def check_environment(data: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored body of an environment (``base``: an update applied to it)."""
    if not isinstance(data, dict):
        raise InvalidRequest("body", "must be a JSON object")
    body = dict(base or {})
    if base is None or "name" in data:
        body["name"] = _text(data, "name", required=True, limit=256)
    if base is None or "description" in data:
        body["description"] = _text(data, "description")
    if base is None or "metadata" in data:
        body["metadata"] = _merge_metadata(body.get("metadata", {}), data.get("metadata"), base)
    if base is None or "config" in data:
        body["config"] = _config(data.get("config"))
    return body


def _config(config: Any) -> dict[str, Any]:
    """A cloud config, with corral's own choices under ``corral`` (backend, image, limits,
    and networking ``none``, which the hosted API has no word for)."""
    config = config or {"type": "cloud"}
    if not isinstance(config, dict):
        raise InvalidRequest("config", "must be an object")
    if config.get("type") == "self_hosted":
        raise NotSupported("self_hosted environments")
    if config.get("type", "cloud") != "cloud":
        raise InvalidRequest("config.type", "must be cloud")
    networking = config.get("networking") or {"type": "unrestricted"}
    kind = networking.get("type") if isinstance(networking, dict) else None
    if kind == "unrestricted":
        net: dict[str, Any] = {"type": "unrestricted"}
    elif kind == "limited":
        hosts = networking.get("allowed_hosts") or []
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise InvalidRequest("config.networking.allowed_hosts", "must be a list of hosts")
        if networking.get("allow_mcp_servers"):
            raise NotSupported("config.networking.allow_mcp_servers")
        net = {
            "type": "limited",
            "allowed_hosts": list(hosts),
            "allow_mcp_servers": False,
            "allow_package_managers": bool(networking.get("allow_package_managers", False)),
        }
    else:
        raise InvalidRequest("config.networking.type", "must be unrestricted or limited")
    packages = config.get("packages") or {}
    if not isinstance(packages, dict):
        raise InvalidRequest("config.packages", "must be an object")
    for manager in ("cargo", "gem", "go", "npm"):
        if packages.get(manager):
            raise NotSupported(f"{manager} packages")
    lists = {}
    for manager in ("pip", "apt"):
        names = packages.get(manager) or []
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise InvalidRequest(f"config.packages.{manager}", "must be a list of names")
        lists[manager] = list(names)
    return {
        "type": "cloud",
        "networking": net,
        "packages": {"type": "packages", "cargo": [], "gem": [], "go": [], "npm": [], **lists},
        "corral": _corral_config(config.get("corral") or {}),
    }


def _corral_config(extra: Any) -> dict[str, Any]:
    if not isinstance(extra, dict):
        raise InvalidRequest("config.corral", "must be an object")
    backend = extra.get("backend", "auto")
    if backend not in ("auto", "local", "docker"):
        raise InvalidRequest("config.corral.backend", "must be auto, local or docker")
    image = extra.get("image", EnvironmentSpec.image)
    if not isinstance(image, str) or not image:
        raise InvalidRequest("config.corral.image", "must be an image name")
    raw = extra.get("limits") or {}
    if not isinstance(raw, dict) or set(raw) - {"cpus", "memory_mb", "pids"}:
        raise InvalidRequest("config.corral.limits", "takes cpus, memory_mb and pids")
    try:
        limits = Limits(**raw)
    except TypeError:
        raise InvalidRequest("config.corral.limits", "takes cpus, memory_mb and pids") from None
    problem = (
        limits_problem(limits)
        if all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool))
            for v in raw.values()
        )
        else ("limits", "must be numbers")
    )
    if problem:
        raise InvalidRequest(f"config.corral.limits.{problem[0]}", problem[1])
    no_network = extra.get("no_network", False)
    if not isinstance(no_network, bool):
        raise InvalidRequest("config.corral.no_network", "must be a boolean")
    return {"backend": backend, "image": image, "limits": raw, "no_network": no_network}


# -- from definitions to a spec ---------------------------------------------------------------


def tool_configs(body: dict[str, Any]) -> dict[str, ToolConfig]:
    """corral's per-tool configs from an agent's toolset (no toolset: no tools)."""
    toolset = next((t for t in body.get("tools", []) if t.get("type") == TOOLSET), None)
    if toolset is None:
        return {name: ToolConfig(enabled=False) for name in TOOL_NAMES}
    default = toolset["default_config"]
    base = ToolConfig(default["enabled"], default["permission_policy"]["type"])
    out = dict.fromkeys(TOOL_NAMES, base)
    for config in toolset["configs"]:
        if config["name"] not in TOOL_NAMES:
            continue
        policy = config.get("permission_policy", {}).get("type", base.permission_policy)
        out[config["name"]] = ToolConfig(config.get("enabled", base.enabled), policy)
    return out


def environment_spec(body: dict[str, Any] | None) -> EnvironmentSpec:
    if body is None:
        return EnvironmentSpec(networking="none")
    config = body["config"]
    extra = config.get("corral", {})
    net = config["networking"]
    if extra.get("no_network") or (net["type"] == "limited" and not net["allowed_hosts"]):
        networking, hosts = "none", ()
    elif net["type"] == "limited":
        networking, hosts = "limited", tuple(net["allowed_hosts"])
    else:
        networking, hosts = "unrestricted", ()
    return EnvironmentSpec(
        backend=extra.get("backend", "auto"),
        image=extra.get("image", EnvironmentSpec.image),
        networking=networking,
        allowed_hosts=hosts,
        limits=Limits(**extra.get("limits", {})),
        pip=tuple(config["packages"].get("pip", [])),
        apt=tuple(config["packages"].get("apt", [])),
    )


def spec_for(
    agent: AgentRecord,
    environment: EnvironmentRecord | None,
    *,
    title: str | None,
    messages: list[str],
    max_list_cost: Decimal | None,
    workspace: WorkspaceSpec,
) -> SessionSpec:
    body = agent.body
    return SessionSpec(
        title=(title or body["name"]).strip() or body["name"],
        description=body.get("description") or "",
        agent=AgentSpec(
            model=body["model"]["id"],
            name=body["name"],
            system=body.get("system") or "",
            tools=tool_configs(body),
        ),
        environment=environment_spec(environment.body if environment else None),
        workspace=workspace,
        messages=tuple(messages),
        max_list_cost=max_list_cost,
    )


def budget_amount(budget: Any) -> Decimal | None:
    """The cap in a session's ``budget`` ({type: limit, max_list_cost: {amount, currency}})."""
    if budget is None:
        return None
    if not isinstance(budget, dict) or budget.get("type") != "limit":
        raise InvalidRequest("budget", "must be {type: limit, max_list_cost: {amount, currency}}")
    cost = budget.get("max_list_cost")
    if not isinstance(cost, dict) or cost.get("currency", "USD") != "USD":
        raise InvalidRequest("budget.max_list_cost", "must be an amount in USD")
    try:
        return parse_money(cost.get("amount"), "request", "budget.max_list_cost.amount")
    except CorralError as exc:
        raise InvalidRequest("budget.max_list_cost.amount", str(exc).rsplit(": ", 1)[-1]) from None


def workspace_of(extra: Any) -> WorkspaceSpec:
    """corral's extra on a session create: ``corral: {workspace: PATH, mode: copy|in_place}``;
    without it, a fresh empty workspace."""
    if extra is None:
        return WorkspaceSpec()
    if not isinstance(extra, dict):
        raise InvalidRequest("corral", "must be an object")
    path = extra.get("workspace")
    if path is None:
        return WorkspaceSpec()
    if not isinstance(path, str) or not Path(path).is_absolute():
        raise InvalidRequest("corral.workspace", "must be an absolute path")
    mode = extra.get("mode", "copy")
    if mode not in ("copy", "in_place"):
        raise InvalidRequest("corral.mode", "must be copy or in_place")
    source = Path(path).resolve()
    if not source.is_dir():
        raise InvalidRequest("corral.workspace", f"{path} is not a directory")
    return WorkspaceSpec(source, mode)
