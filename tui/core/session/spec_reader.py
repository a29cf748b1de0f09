"""Reading specs: TOML files a user wrote (every key checked, one line naming the file,
the key and the problem) and spec JSON from outside (an import), checked field by field."""

from __future__ import annotations

import tomllib
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from tui.core.errors import SpecError
from tui.core.money.amounts import MAX_HOURS, MAX_USD, parse_money
from tui.core.session.spec import (
    BACKENDS,
    MAX_SCRIPT_BYTES,
    MAX_SPEC_BYTES,
    NETWORKING,
    POLICIES,
    SYSTEM_TREES,
    TOOL_NAMES,
    WORKSPACE_MODES,
    AgentSpec,
    EnvironmentSpec,
    Limits,
    SessionSpec,
    ToolConfig,
    WorkspaceSpec,
    limits_problem,
    spec_from_json,
)
from tui.core.small_files import read_small_file


class _Reader:
    """Walks a parsed TOML table, checking keys and types, naming the key in errors."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> SpecError:
        return SpecError(self.source, key, problem)

    def table(self, data: Any, key: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(key, f"must be a table, got {type(data).__name__}")
        for name in data:
            if name not in allowed:
                where = f"{key}.{name}" if key else name
                raise self.fail(
                    where, f"unknown key (expected one of: {', '.join(sorted(allowed))})"
                )
        return data

    def get(
        self, data: dict[str, Any], key: str, name: str, kind: type | tuple, default: Any
    ) -> Any:
        if name not in data:
            return default
        value = data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(
                self._where(key, name), f"must be {expected}, got {type(value).__name__}"
            )
        return value

    def choice(
        self, data: dict[str, Any], key: str, name: str, options: tuple, default: str
    ) -> str:
        value = self.get(data, key, name, str, default)
        if value not in options:
            raise self.fail(self._where(key, name), f"{value!r} is not one of {', '.join(options)}")
        return value

    def strings(self, data: dict[str, Any], key: str, name: str) -> tuple[str, ...]:
        value = self.get(data, key, name, list, [])
        if not all(isinstance(v, str) for v in value):
            raise self.fail(self._where(key, name), "must be a list of strings")
        return tuple(value)

    @staticmethod
    def _where(key: str, name: str) -> str:
        return f"{key}.{name}" if key else name


def load_spec(path: Path | str) -> SessionSpec:
    path = Path(path)
    source = str(path)
    try:
        raw = read_small_file(path, MAX_SPEC_BYTES)
    except OSError as exc:
        raise SpecError(source, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(source, "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, "", f"invalid TOML: {exc}") from None
    return parse_spec(data, source=source, base=path.parent.resolve(), path=path.resolve())


def parse_spec(
    data: dict[str, Any], *, source: str, base: Path, path: Path | None = None
) -> SessionSpec:
    r = _Reader(source)
    top = r.table(
        data,
        "",
        {
            "title",
            "description",
            "agent",
            "environment",
            "workspace",
            "messages",
            "prompt",
            "budget",
        },
    )
    title = r.get(top, "", "title", str, "")
    if not title.strip():
        raise r.fail("title", "is required and must not be empty")
    if "agent" not in top:
        raise r.fail("agent", "is required (a table with at least `model`)")

    agent = _parse_agent(r, top["agent"], base)
    environment = _parse_environment(r, top.get("environment", {}))
    workspace = _parse_workspace(r, top.get("workspace", {}), base)

    messages = list(r.strings(top, "", "messages"))
    prompt = r.get(top, "", "prompt", str, None)
    if prompt is not None:
        messages.insert(0, prompt)
    if not messages or not all(m.strip() for m in messages):
        raise r.fail(
            "messages", "at least one non-empty user message (`prompt` or `messages`) is required"
        )

    budget = r.table(top.get("budget", {}), "budget", {"max_list_cost", "max_active_hours"})
    max_cost = max_hours = None
    if "max_list_cost" in budget:
        max_cost = parse_money(budget["max_list_cost"], source, "budget.max_list_cost")
    if "max_active_hours" in budget:
        max_hours = parse_money(
            budget["max_active_hours"], source, "budget.max_active_hours", maximum=MAX_HOURS
        )

    return SessionSpec(
        title=title.strip(),
        description=r.get(top, "", "description", str, "").strip(),
        agent=agent,
        environment=environment,
        workspace=workspace,
        messages=tuple(messages),
        max_list_cost=max_cost,
        max_active_hours=max_hours,
        path=path,
    )


def _parse_agent(r: _Reader, data: Any, base: Path) -> AgentSpec:
    agent = r.table(data, "agent", {"model", "name", "system", "tools"})
    model = r.get(agent, "agent", "model", str, "")
    if not model.strip():
        raise r.fail(
            "agent.model", 'is required (e.g. "scripted:script.toml" or a Claude model id)'
        )
    if model.startswith("scripted:"):
        script = Path(model.removeprefix("scripted:"))
        script = script if script.is_absolute() else (base / script)
        if not script.is_file():
            raise r.fail("agent.model", f"script file not found: {script}")
        if script.stat().st_size > MAX_SCRIPT_BYTES:
            raise r.fail("agent.model", f"script file is over {MAX_SCRIPT_BYTES} bytes: {script}")
        model = f"scripted:{script.resolve()}"

    tools_data = r.table(agent.get("tools", {}), "agent.tools", {"default", *TOOL_NAMES})
    default = _parse_tool(r, tools_data.get("default", {}), "agent.tools.default", ToolConfig())
    tools = {
        name: _parse_tool(r, tools_data.get(name, {}), f"agent.tools.{name}", default)
        for name in TOOL_NAMES
    }
    return AgentSpec(
        model=model,
        name=r.get(agent, "agent", "name", str, "agent"),
        system=r.get(agent, "agent", "system", str, ""),
        tools=tools,
    )


def _parse_tool(r: _Reader, data: Any, key: str, default: ToolConfig) -> ToolConfig:
    from tui.core.permissions.policy import RuleError, parse_rule

    tool = r.table(data, key, {"enabled", "permission_policy", "rules"})
    name = key.rsplit(".", 1)[-1]
    rules: list[tuple[str, str]] = []
    raw_rules = tool.get("rules", [])
    if not isinstance(raw_rules, list):
        raise r.fail(f"{key}.rules", "must be a list of {allow|ask|deny = PATTERN} tables")
    for i, raw in enumerate(raw_rules):
        if name == "default":
            raise r.fail(f"{key}.rules", "rules belong to a tool, not to the default")
        try:
            rule = parse_rule(name, raw)
        except RuleError as exc:
            raise r.fail(f"{key}.rules[{i}]", str(exc)) from None
        rules.append((rule.decision, rule.pattern))
    return ToolConfig(
        enabled=r.get(tool, key, "enabled", bool, default.enabled),
        permission_policy=r.choice(
            tool, key, "permission_policy", POLICIES, default.permission_policy
        ),
        rules=tuple(rules),
    )


def _parse_environment(r: _Reader, data: Any) -> EnvironmentSpec:
    key = "environment"
    env = r.table(
        data, key, {"backend", "image", "networking", "allowed_hosts", "limits", "packages"}
    )
    limits_data = r.table(
        env.get("limits", {}), "environment.limits", {"cpus", "memory_mb", "pids"}
    )
    limits = Limits(
        cpus=r.get(limits_data, "environment.limits", "cpus", float, None),
        memory_mb=r.get(limits_data, "environment.limits", "memory_mb", int, None),
        pids=r.get(limits_data, "environment.limits", "pids", int, None),
    )
    problem = limits_problem(limits)
    if problem:
        raise r.fail(f"environment.limits.{problem[0]}", problem[1])
    packages = r.table(env.get("packages", {}), "environment.packages", {"pip", "apt"})
    networking = r.choice(env, key, "networking", NETWORKING, "none")
    hosts = r.strings(env, key, "allowed_hosts")
    if hosts and networking != "limited":
        raise r.fail("environment.allowed_hosts", 'only applies with networking = "limited"')
    return EnvironmentSpec(
        backend=r.choice(env, key, "backend", BACKENDS, "auto"),
        image=r.get(env, key, "image", str, EnvironmentSpec.image),
        networking=networking,
        allowed_hosts=hosts,
        limits=limits,
        pip=r.strings(packages, "environment.packages", "pip"),
        apt=r.strings(packages, "environment.packages", "apt"),
    )


def _parse_workspace(r: _Reader, data: Any, base: Path) -> WorkspaceSpec:
    ws = r.table(data, "workspace", {"source", "mode"})
    source = r.get(ws, "workspace", "source", str, None)
    path = None
    if source is not None:
        path = Path(source).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        if not path.is_dir():
            raise r.fail("workspace.source", f"not a directory: {path}")
        if any(path == Path(t) or Path(t) in path.parents for t in SYSTEM_TREES):
            raise r.fail("workspace.source", f"{path}: /proc, /sys and /dev cannot be workspaces")
    return WorkspaceSpec(
        source=path, mode=r.choice(ws, "workspace", "mode", WORKSPACE_MODES, "copy")
    )


def check_spec_json(data: Any, source: str) -> SessionSpec:
    """``spec_from_json`` for a spec from outside (an import): every field's type, choice
    and range is checked, so nothing that reads the spec later can fail on it."""
    if not isinstance(data, dict):
        raise SpecError(source, "spec", "must be an object")
    try:
        spec = spec_from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
        raise SpecError(source, "spec", f"is malformed ({type(exc).__name__}: {exc})") from None
    problem = _spec_problem(spec, data, source)
    if problem:
        raise SpecError(source, f"spec.{problem[0]}", problem[1])
    return spec


def _spec_problem(spec: SessionSpec, data: dict[str, Any], source: str) -> tuple[str, str] | None:
    from tui.core.permissions.policy import Rule, RuleError, check_rule

    def text(value: Any, limit: int = 1 << 20) -> bool:
        return isinstance(value, str) and len(value) <= limit

    if not text(spec.title, 1000) or not spec.title.strip():
        return "title", "must be a non-empty string"
    if not text(spec.description) or not all(text(m) for m in spec.messages):
        return "messages", "must be strings"
    agent = spec.agent
    if not text(agent.model, 4096) or not text(agent.name, 1000) or not text(agent.system):
        return "agent", "model, name and system must be strings"
    for name, tool in agent.tools.items():
        if name not in TOOL_NAMES or not isinstance(tool.enabled, bool):
            return f"agent.tools.{name}", "is not a known tool with enabled true or false"
        if tool.permission_policy not in POLICIES:
            return f"agent.tools.{name}.permission_policy", f"is not one of {', '.join(POLICIES)}"
        for decision, pattern in tool.rules:
            try:
                check_rule(name, Rule(decision, pattern))
            except RuleError as exc:
                return f"agent.tools.{name}.rules", str(exc)
    env = spec.environment
    if env.backend not in BACKENDS or env.networking not in NETWORKING:
        return "environment", "backend or networking is not a known choice"
    if not text(env.image, 1000) or not all(
        text(h, 1000) for h in (*env.allowed_hosts, *env.pip, *env.apt)
    ):
        return "environment", "image, hosts and packages must be strings"
    limits = env.limits
    for key, kind in (("cpus", (int, float)), ("memory_mb", int), ("pids", int)):
        value = getattr(limits, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            return f"environment.limits.{key}", "must be a number"
    problem = limits_problem(limits)
    if problem:
        return f"environment.limits.{problem[0]}", problem[1]
    if spec.workspace.mode not in WORKSPACE_MODES:
        return "workspace.mode", f"is not one of {', '.join(WORKSPACE_MODES)}"
    for key, maximum in (("max_list_cost", MAX_USD), ("max_active_hours", MAX_HOURS)):
        value = data.get(key)
        if value is not None:
            try:
                parse_money(value, source, key, maximum=maximum)
            except SpecError as exc:
                return key, exc.problem
    return None
