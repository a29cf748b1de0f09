"""A session's permission policy: the spec's at start, then whatever the user changed.

Edits are ``session.policy_updated`` events (the whole new policy and a line saying
what changed), so they apply from the next tool use on and the log says when.
"""

from __future__ import annotations

from tui.core.permissions.policy import Policy, Rule, ToolPolicy
from tui.core.session import events as ev
from tui.core.session.spec import AgentSpec, SessionSpec


def policy_from_agent(agent: AgentSpec) -> Policy:
    return Policy(
        {
            name: ToolPolicy(
                config.enabled,
                config.permission_policy,
                [Rule(d, p) for d, p in config.rules],  # type: ignore[arg-type]
            )
            for name, config in agent.tools.items()
        }
    )


def apply(policy: Policy, event: ev.Event) -> Policy:
    if event.type == ev.SESSION_POLICY:
        return Policy.from_data(event.payload["policy"])
    return policy


def policy_of(spec: SessionSpec, events: list[ev.Event]) -> Policy:
    policy = policy_from_agent(spec.agent)
    for event in events:
        policy = apply(policy, event)
    return policy


def describe_change(before: Policy, after: Policy) -> str:
    """One line: which rules and defaults changed."""
    changes = []
    for name in sorted(before.tools.keys() | after.tools.keys()):
        a, b = before.tools.get(name), after.tools.get(name)
        if a is None or b is None:
            continue
        if a.default != b.default:
            changes.append(f"{name}: default {a.default} → {b.default}")
        if a.enabled != b.enabled:
            changes.append(f"{name}: {'enabled' if b.enabled else 'disabled'}")
        added = [r for r in b.rules if r not in a.rules]
        removed = [r for r in a.rules if r not in b.rules]
        changes += [f"{name}: + {r.decision} {r.pattern!r}" for r in added]
        changes += [f"{name}: - {r.decision} {r.pattern!r}" for r in removed]
        if not added and not removed and a.rules != b.rules:
            changes.append(f"{name}: rules reordered")
    if before.hosts != after.hosts:
        changes.append(f"hosts: {', '.join(after.hosts) or 'none'}")
    return "; ".join(changes) or "no change"
