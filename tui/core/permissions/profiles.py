"""Named permission profiles: TOML files in ``policies/`` (bundled) and in the data dir.

    [tools.bash]
    permission_policy = "always_ask"
    rules = [{ allow = "pytest *" }, { ask = "git push*" }, { deny = "rm -rf *" }]

    [tools.write]
    rules = [{ allow = "src/**" }, { deny = ".git/**" }]

    [network]
    allow = ["pypi.org"]

Tools a profile does not name keep what the session had.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from tui.core.errors import SpecError
from tui.core.permissions.policy import Policy, RuleError, ToolPolicy, parse_rule
from tui.core.session.spec import POLICIES, TOOL_NAMES
from tui.core.small_files import read_small_file

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def profile_dirs(data_dir: Path, bundled: Path) -> list[Path]:
    return [data_dir / "policies", bundled]


def find_profile(name: str, dirs: list[Path]) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".toml" and candidate.is_file():
        return candidate
    if not NAME_RE.fullmatch(name):
        raise SpecError(name, "", "a profile name is letters, digits, '_', '-' and '.'")
    for directory in dirs:
        path = directory / f"{name}.toml"
        if path.is_file():
            return path
    raise SpecError(name, "", f"no profile {name!r} in {', '.join(str(d) for d in dirs)}")


def load_profile(path: Path, base: Policy | None = None) -> Policy:
    source = str(path)
    try:
        data = tomllib.loads(read_small_file(path, 1 << 20).decode("utf-8"))
    except OSError as exc:
        raise SpecError(source, "", f"cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(source, "", f"invalid TOML: {exc}") from None
    return parse_profile(data, source, base)


def parse_profile(data: dict[str, Any], source: str, base: Policy | None = None) -> Policy:
    unknown = set(data) - {"tools", "network", "description"}
    if unknown:
        raise SpecError(source, sorted(unknown)[0], "unknown key (expected tools, network)")
    policy = base.copy() if base else Policy({name: ToolPolicy() for name in TOOL_NAMES})
    tools = data.get("tools", {})
    if not isinstance(tools, dict):
        raise SpecError(source, "tools", "must be a table")
    for name, raw in tools.items():
        key = f"tools.{name}"
        if name not in TOOL_NAMES:
            raise SpecError(source, key, f"unknown tool (expected one of {', '.join(TOOL_NAMES)})")
        if not isinstance(raw, dict) or set(raw) - {"enabled", "permission_policy", "rules"}:
            raise SpecError(source, key, "expected enabled, permission_policy and rules")
        current = policy.tools.get(name, ToolPolicy())
        default = raw.get("permission_policy", current.default)
        if default not in POLICIES:
            raise SpecError(source, f"{key}.permission_policy", f"not one of {', '.join(POLICIES)}")
        rules = []
        for i, rule in enumerate(raw.get("rules", [])):
            try:
                rules.append(parse_rule(name, rule))
            except RuleError as exc:
                raise SpecError(source, f"{key}.rules[{i}]", str(exc)) from None
        enabled = raw.get("enabled", current.enabled)
        if not isinstance(enabled, bool):
            raise SpecError(source, f"{key}.enabled", "must be true or false")
        policy.tools[name] = ToolPolicy(enabled, default, rules)
    network = data.get("network", {})
    if network:
        hosts = network.get("allow", []) if isinstance(network, dict) else None
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise SpecError(source, "network.allow", "must be a list of host names")
        policy.hosts = list(hosts)
    return policy


def profile_toml(policy: Policy, description: str = "") -> str:
    """The profile file for ``policy`` (JSON strings are valid TOML basic strings)."""
    lines = []
    if description:
        lines.append(f"description = {json.dumps(description)}")
    for name, tool in policy.tools.items():
        lines.append("")
        lines.append(f"[tools.{name}]")
        lines.append(f"enabled = {'true' if tool.enabled else 'false'}")
        lines.append(f"permission_policy = {json.dumps(tool.default)}")
        rules = ", ".join(f"{{ {r.decision} = {json.dumps(r.pattern)} }}" for r in tool.rules)
        lines.append(f"rules = [{rules}]")
    if policy.hosts:
        lines.append("")
        lines.append("[network]")
        lines.append(f"allow = [{', '.join(json.dumps(h) for h in policy.hosts)}]")
    return "\n".join(lines).lstrip("\n") + "\n"


def save_profile(policy: Policy, directory: Path, name: str, description: str = "") -> Path:
    if not NAME_RE.fullmatch(name):
        raise SpecError(name, "", "a profile name is letters, digits, '_', '-' and '.'")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    tmp = directory / f".{name}.toml.tmp"
    tmp.write_text(profile_toml(policy, description), "utf-8")
    os.replace(tmp, path)
    return path
