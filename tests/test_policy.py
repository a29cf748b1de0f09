"""The permission engine: known bypass attempts, properties over generated commands, and
path rules against `..`, symlinks, `//` and case tricks."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.permissions.policy import Policy, Rule, RuleError, ToolPolicy, check_rule

DANGER = "rm -rf *"


def bash_policy(default: str = "always_allow", *rules: Rule) -> Policy:
    return Policy({"bash": ToolPolicy(True, default, [Rule("deny", DANGER), *rules])})


def decide(command: str, policy: Policy | None = None) -> str:
    return (policy or bash_policy()).evaluate("bash", {"command": command}, None).permission


# Each hides `rm -rf …` behind something that is allowed by default. None may be allowed.
BYPASSES = [
    "ls && rm -rf /",
    "ls || rm -rf /",
    "ls; rm -rf /",
    "ls | rm -rf /",
    "ls & rm -rf /",
    "ls\nrm -rf /",
    "ls;rm -rf /",
    "ls&&rm -rf /",
    "(rm -rf /)",
    "( ls; rm -rf / )",
    "{ rm -rf /; }",
    "echo $(rm -rf /)",
    'echo "$(rm -rf /)"',
    "echo `rm -rf /`",
    'echo "`rm -rf /`"',
    "echo $(echo $(rm -rf /))",
    "bash -c 'rm -rf /'",
    'sh -c "rm -rf /"',
    "bash -lc 'rm -rf /'",
    "/bin/bash -c 'ls; rm -rf /'",
    "zsh -c 'rm -rf /'",
    "eval 'rm -rf /'",
    "eval rm -rf /",
    "sudo rm -rf /",
    "sudo -u root rm -rf /",
    "env rm -rf /",
    "env X=1 rm -rf /",
    "X=1 rm -rf /",
    "nohup rm -rf / &",
    "timeout 5 rm -rf /",
    "nice -n 10 rm -rf /",
    "command rm -rf /",
    "builtin rm -rf /",  # not a builtin, but still judged
    "exec rm -rf /",
    "xargs rm -rf < list",
    "find / -exec rm -rf {} \\;",
    "find . -name '*' -execdir rm -rf {} +",
    "busybox rm -rf /",
    "/bin/rm -rf /",
    "/usr/bin/rm -rf /",
    "\\rm -rf /",
    "r''m -rf /",
    '"rm" -rf /',
    "'rm' '-rf' '/'",
    "r\\m -rf /",
    "rm -rf / 2>&1",
    "rm -rf / > /dev/null",
    "ls > out; rm -rf /",
    "if true; then rm -rf /; fi",
    "while true; do rm -rf /; done",
    "for f in a; do rm -rf $f; done",
    "true && (false || rm -rf /)",
    "echo $((1 + $(rm -rf / )))",
    "bash -c \"bash -c 'rm -rf /'\"",
    "sudo env X=1 timeout 3 nohup rm -rf /",
    "cat <<EOF\nrm -rf /\nEOF",
    "X=rm; $X -rf /",  # the command name is a variable: asked, not allowed
    "$(echo rm) -rf /",  # the command name is a substitution
    "`echo rm` -rf /",
    "rm -rf / # trailing comment",
    "ls; 'rm' -rf /",
    "ls ; $'rm' -rf /",
    "echo 'unclosed; rm -rf /",  # cannot be split: asked
]


def test_the_list_is_long_enough() -> None:
    assert len(BYPASSES) >= 50


@pytest.mark.parametrize("command", BYPASSES)
def test_no_known_bypass_is_allowed(command: str) -> None:
    assert decide(command) in ("deny", "ask"), command


@pytest.mark.parametrize("command", ["ls -la", "pytest -q", "echo 'rm -rf / is bad'", "grep rm x"])
def test_harmless_commands_stay_allowed(command: str) -> None:
    assert decide(command) == "allow"


def test_precedence_is_deny_over_ask_over_allow() -> None:
    policy = Policy(
        {
            "bash": ToolPolicy(
                True,
                "always_ask",
                [
                    Rule("allow", "git *"),
                    Rule("ask", "git push*"),
                    Rule("deny", "git push --force*"),
                ],
            )
        }
    )
    assert decide("git status", policy) == "allow"
    assert decide("git push origin main", policy) == "ask"
    assert decide("git push --force origin", policy) == "deny"
    assert decide("make", policy) == "ask"  # no rule: the tool's default
    decision = policy.evaluate("bash", {"command": "git status && git push --force x"}, None)
    assert decision.permission == "deny"
    assert decision.rule == "bash: deny 'git push --force*'"


def test_a_prefix_rule_matches_whole_words() -> None:
    policy = Policy({"bash": ToolPolicy(True, "always_ask", [Rule("allow", "pytest")])})
    assert decide("pytest -q tests", policy) == "allow"
    assert decide("pytestevil", policy) == "ask"


# -- properties ------------------------------------------------------------------------

SAFE = st.sampled_from(["ls", "echo hi", "pwd", "true", "cat x", "git status", "grep a b"])
WRAP = st.sampled_from(
    [
        "{}",
        "sudo {}",
        "env A=1 {}",
        "timeout 3 {}",
        "nohup {}",
        "( {} )",
        "{{ {}; }}",
        "echo $({})",
        "echo `{}`",
        'echo "$({})"',
        "bash -c {q}",
        "sh -c {q}",
        "eval {q}",
        "xargs {}",
        "command {}",
    ]
)
JOIN = st.sampled_from([" && ", " || ", "; ", " | ", " & ", "\n", ";"])
DANGEROUS = st.sampled_from(["rm -rf /", "rm -rf .", "/bin/rm -rf x", "r''m -rf y", "\\rm -rf z"])


def wrap(template: str, command: str) -> str:
    if "`" in template:
        # Backticks nest only escaped, as a person would write them.
        command = command.replace("\\", "\\\\").replace("`", "\\`").replace("$", "\\$")
    return template.replace("{q}", shlex.quote(command)).replace("{}", command, 1)


@st.composite
def hidden(draw: st.DrawFn) -> str:
    """A dangerous command wrapped and chained among safe ones, up to three levels deep."""
    command = draw(DANGEROUS)
    for _ in range(draw(st.integers(0, 3))):
        command = wrap(draw(WRAP).replace("{{", "{").replace("}}", "}"), command)
    before = draw(st.lists(SAFE, max_size=3))
    after = draw(st.lists(SAFE, max_size=3))
    joins = draw(
        st.lists(JOIN, min_size=len(before) + len(after), max_size=len(before) + len(after))
    )
    parts = [*before, command, *after]
    out = parts[0]
    for join, part in zip(joins, parts[1:], strict=False):
        out += join + part
    return out


@settings(max_examples=400, deadline=None)
@given(hidden())
def test_a_command_containing_a_denied_part_is_never_allowed(command: str) -> None:
    assert decide(command) != "allow", command


@settings(max_examples=200, deadline=None)
@given(st.lists(SAFE, min_size=1, max_size=4), JOIN)
def test_chains_of_allowed_commands_stay_allowed(parts: list[str], join: str) -> None:
    assert decide(join.join(parts)) == "allow"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_judged_without_crashing(text: str) -> None:
    # Whatever arrives, a decision comes back, and it is never looser than the default.
    assert decide(text, bash_policy("always_ask")) in ("ask", "deny")


# -- paths -----------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("x")
    (root / "src" / "pkg" / "a.py").write_text("x")
    os.symlink(".git", root / "innocent")
    os.symlink("../..", root / "src" / "up")
    return root


def path_policy() -> Policy:
    rules = [Rule("allow", "src/**"), Rule("deny", ".git/**")]
    return Policy({"write": ToolPolicy(True, "always_ask", rules)})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src/pkg/a.py", "allow"),
        ("src/new.py", "allow"),
        ("/workspace/src/pkg/a.py", "allow"),
        ("src//pkg//a.py", "allow"),
        ("README.md", "ask"),
        (".git/config", "deny"),
        (".git//config", "deny"),
        ("src/../.git/config", "deny"),
        ("./.git/config", "deny"),
        ("innocent/config", "deny"),  # a symlink into .git
        (".GIT/config", "deny"),  # case tricks do not slip past a deny
        (".Git/hooks/pre-commit", "deny"),
        ("SRC/pkg/a.py", "ask"),  # but an allow is exact
        ("../outside.txt", "deny"),
        ("/etc/passwd", "deny"),
        ("src/up/etc/passwd", "deny"),  # a symlink out of the workspace
    ],
)
def test_path_rules_hold_against_tricks(workspace: Path, path: str, expected: str) -> None:
    decision = path_policy().evaluate("write", {"file_path": path, "content": ""}, workspace)
    assert decision.permission == expected, decision.reason


@pytest.mark.parametrize(
    ("tool", "rule", "problem"),
    [
        ("write", Rule("allow", "/etc/**"), "relative"),
        ("write", Rule("allow", "../x"), "climb"),
        ("write", Rule("allow", "src/[ab"), "unclosed"),
        ("bash", Rule("allow", "  "), "empty"),
        ("bash", Rule("maybe", "ls"), "allow, ask or deny"),  # type: ignore[arg-type]
        ("bash", Rule("allow", "ls\nrm"), "newline"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(tool: str, rule: Rule, problem: str) -> None:
    with pytest.raises(RuleError, match=problem):
        check_rule(tool, rule)
