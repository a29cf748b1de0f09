"""corral's own operations over the API (``/v1/corral/…``): checkpoints, rewind with a dry
run, fork, diff, budgets, policies (show, apply, simulate), export and import, estimates,
gc, and the raw event log — each checked against what the engine then holds."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tui.server.daemon import Daemon

from .conftest import write_script
from .server_helpers import server_in_thread, socket_client

TOOLSET = "agent_toolset_20260401"
C = "/v1/corral"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with server_in_thread(tmp_path_factory.mktemp("extras") / "data") as served:
        yield served


@pytest.fixture
def http(daemon: Daemon) -> Iterator[httpx.Client]:
    with socket_client(daemon) as client:
        yield client


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def wait_idle(http: httpx.Client, sid: str, after_seq: int = 0) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        session = ok(http.get(f"/v1/sessions/{sid}"))
        extra = session["corral"]
        if session["status"] == "idle" and extra["stop_reason"] and extra["last_seq"] > after_seq:
            return session
        time.sleep(0.05)
    raise AssertionError(f"{sid} did not stop")


def run_session(
    http: httpx.Client, tmp_path: Path, turns: list[dict[str, Any]], **body: Any
) -> str:
    model = "scripted:" + str(write_script(tmp_path / "script.toml", turns))
    tools = [{"type": TOOLSET, "default_config": {"permission_policy": {"type": "always_allow"}}}]
    agent = ok(http.post("/v1/agents", json={"name": "x", "model": model, "tools": tools}))
    env = ok(http.post("/v1/environments", json={"name": "e", "config": {"type": "cloud"}}))
    first = [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]
    created = {"agent": agent["id"], "environment_id": env["id"], "initial_events": first}
    sid: str = ok(http.post("/v1/sessions", json={**created, **body}))["id"]
    wait_idle(http, sid)
    return sid


WRITES = [
    {"text": "one", "tool_uses": [("write", {"file_path": "a.txt", "content": "first\n"})]},
    {"text": "two", "tool_uses": [("write", {"file_path": "a.txt", "content": "second\n"})]},
    {"text": "done"},
]


def test_checkpoints_diff_rewind_and_fork(http: httpx.Client, tmp_path: Path) -> None:
    sid = run_session(http, tmp_path, WRITES)
    workspace = Path(ok(http.get(f"/v1/sessions/{sid}"))["corral"]["workspace"])
    timeline = ok(http.get(f"{C}/sessions/{sid}/checkpoints"))["data"]
    assert [c["number"] for c in timeline] == list(range(1, len(timeline) + 1))
    made = ok(http.post(f"{C}/sessions/{sid}/checkpoints", json={"label": "by hand"}))
    assert made["type"] == "checkpoint" and made["label"] == "by hand"
    after_first = next(c for c in timeline if c["changed"] and c["number"] > 1)
    last = timeline[-1]

    diff = ok(http.get(f"{C}/sessions/{sid}/diff", params={"a": "#1", "b": f"#{last['number']}"}))
    assert [(c["path"], c["kind"]) for c in diff["changes"]] == [("a.txt", "added")]

    preview = ok(
        http.post(
            f"{C}/sessions/{sid}/rewind",
            json={"checkpoint": f"#{after_first['number']}", "dry_run": True},
        )
    )
    assert preview["type"] == "rewind_preview" and preview["changes"]
    assert (workspace / "a.txt").read_text() == "second\n"  # a dry run changes nothing

    forked = ok(
        http.post(f"{C}/sessions/{sid}/fork", json={"checkpoint": f"#{after_first['number']}"})
    )
    fork_ws = Path(ok(http.get(f"/v1/sessions/{forked['session_id']}"))["corral"]["workspace"])
    assert (fork_ws / "a.txt").read_text() == "first\n"

    done = ok(
        http.post(f"{C}/sessions/{sid}/rewind", json={"checkpoint": f"#{after_first['number']}"})
    )
    assert done["type"] == "rewound"
    assert (workspace / "a.txt").read_text() == "first\n"
    raw = ok(http.get(f"{C}/sessions/{sid}/events"))
    assert raw["data"][-1]["type"] in ("session.rewound", "session.status_idle")
    assert any(e["type"] == "session.rewound" for e in raw["data"])
    # corral-only events stay out of the Managed Agents log.
    plain = ok(http.get(f"/v1/sessions/{sid}/events", params={"limit": 1000}))["data"]
    assert not any(e["type"] == "session.rewound" for e in plain)


def test_budget_and_policy(http: httpx.Client, tmp_path: Path) -> None:
    sid = run_session(http, tmp_path, [{"text": "hi"}])
    assert ok(http.get(f"{C}/sessions/{sid}/budget"))["max_list_cost"] is None
    raised = ok(http.post(f"{C}/sessions/{sid}/budget", json={"max_list_cost": "2.50"}))
    assert raised["max_list_cost"] == "2.50" and raised["resumed"] is False
    session = ok(http.get(f"/v1/sessions/{sid}"))
    assert session["budget"]["max_list_cost"] == {"amount": "2.50", "currency": "USD"}
    bad = http.post(f"{C}/sessions/{sid}/budget", json={"max_list_cost": 2.5})
    assert bad.status_code == 400  # money is never a float

    policy = ok(http.get(f"{C}/sessions/{sid}/policy"))["policy"]
    policy["tools"]["bash"]["permission_policy"] = "always_ask"
    policy["tools"]["bash"]["rules"] = [{"allow": "pytest"}]
    applied = ok(http.post(f"{C}/sessions/{sid}/policy", json={"policy": policy}))
    assert applied["policy"]["tools"]["bash"]["rules"] == [{"allow": "pytest"}]
    garbage = http.post(f"{C}/sessions/{sid}/policy", json={"policy": {"tools": 3}})
    assert garbage.status_code == 400 and "policy" in garbage.json()["error"]["message"]
    simulated = ok(http.post(f"{C}/policy/simulate", json={"policy": policy, "sessions": [sid]}))
    assert simulated["type"] == "simulation"
    assert (
        http.post(f"{C}/policy/simulate", json={"policy": policy, "sessions": 7}).status_code == 400
    )


def test_a_budget_on_an_unpriced_model_is_refused_like_the_hosted_api(
    http: httpx.Client, tmp_path: Path
) -> None:
    model = "scripted:" + str(
        write_script(tmp_path / "s.toml", [{"text": "x"}], price_as="claude-mythos-preview")
    )
    agent = ok(http.post("/v1/agents", json={"name": "m", "model": model}))
    env = ok(http.post("/v1/environments", json={"name": "e", "config": {"type": "cloud"}}))
    budget = {"type": "limit", "max_list_cost": {"amount": "5", "currency": "USD"}}
    refused = http.post(
        "/v1/sessions", json={"agent": agent["id"], "environment_id": env["id"], "budget": budget}
    )
    assert refused.status_code == 400
    assert "claude-mythos-preview" in refused.json()["error"]["message"]
    # Without a budget it runs (its cost shows as unknown).
    made = http.post("/v1/sessions", json={"agent": agent["id"], "environment_id": env["id"]})
    assert made.status_code == 200


def test_export_streams_a_bundle_that_imports_back(http: httpx.Client, tmp_path: Path) -> None:
    sid = run_session(http, tmp_path, WRITES)
    exported = http.get(f"{C}/sessions/{sid}/export")
    assert exported.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(exported.content)) as bundle:
        assert bundle.getnames()
    again = http.post(f"{C}/import", content=exported.content)
    message = again.json()["error"]["message"]
    assert again.status_code == 400 and "already in this data dir" in message
    assert "corral-import-" not in message  # the server's temporary file is not the client's
    with server_in_thread(tmp_path / "elsewhere") as other, socket_client(other) as there:
        imported = ok(there.post(f"{C}/import", content=exported.content))
        assert imported["type"] == "import" and imported["session_id"] == sid
        copy = ok(there.get(f"/v1/sessions/{sid}"))
        assert copy["status"] == "idle" and copy["corral"]["import_accepted"] is False
        workspace = Path(copy["corral"]["workspace"])
        assert (workspace / "a.txt").read_text() == "second\n"
        garbage = there.post(f"{C}/import", content=b"not a bundle at all")
        assert garbage.status_code == 400 and "\n" not in garbage.json()["error"]["message"]


def test_estimate_and_gc(http: httpx.Client, tmp_path: Path) -> None:
    script = write_script(tmp_path / "est.toml", [{"text": "a", "latency_ms": 1000}, {"text": "b"}])
    spec = {"title": "est", "prompt": "go", "agent": {"model": f"scripted:{script}"}}
    estimate = ok(http.post(f"{C}/estimate", json={"spec": spec, "base": str(tmp_path)}))
    assert estimate["type"] == "estimate" and estimate["basis"]
    assert estimate["cost_typical"] is None or float(estimate["cost_typical"]) >= 0
    bad = http.post(f"{C}/estimate", json={"spec": {"title": 3}, "base": str(tmp_path)})
    assert bad.status_code == 400
    plan = ok(http.post(f"{C}/gc", json={"dry_run": True}))
    assert plan["type"] == "gc" and plan["applied"] is False
    # With sessions stored (and the server able to run them), gc applies: what it keeps
    # is every blob a checkpoint needs, so the sessions can still be rewound.
    sid = run_session(http, tmp_path, WRITES)
    done = ok(http.post(f"{C}/gc", json={"dry_run": False}))
    assert done["applied"] is True
    rewound = ok(http.post(f"{C}/sessions/{sid}/rewind", json={"checkpoint": "#1"}))
    assert rewound["type"] == "rewound"
