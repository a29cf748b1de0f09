"""``corral serve`` driven only through the real ``anthropic`` SDK, as code written for
the hosted Managed Agents API would drive it: ``base_url`` to a real server process,
over TCP with its key and over its Unix socket, every response parsed by the SDK's own
types with ``_strict_response_validation=True``."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import pytest

from .conftest import write_script
from .server_helpers import Served, start_server, stop_server

TOOLSET = "agent_toolset_20260401"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_server(tmp_path_factory.mktemp("served") / "data")
    yield server
    stop_server(server)
    assert server.proc.returncode == 0


def scripted(tmp_path: Path, name: str, turns: list[dict[str, Any]]) -> str:
    return "scripted:" + str(write_script(tmp_path / f"{name}.toml", turns))


def toolset(**policies: str) -> list[dict[str, Any]]:
    configs = [
        {"name": tool, "permission_policy": {"type": policy}} for tool, policy in policies.items()
    ]
    return [
        {
            "type": TOOLSET,
            "default_config": {"permission_policy": {"type": "always_allow"}},
            "configs": configs,
        }
    ]


def make_session(
    client: anthropic.Anthropic, model: str, *, title: str, **policies: str
) -> tuple[str, str]:
    agent = client.beta.agents.create(name=title, model=model, tools=toolset(**policies))
    environment = client.beta.environments.create(
        name=f"{title} env",
        config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": []}},
    )
    session = client.beta.sessions.create(
        agent=agent.id, environment_id=environment.id, title=title, metadata={"test": title}
    )
    assert session.agent.id == agent.id and session.environment_id == environment.id
    assert session.status == "idle" and session.metadata == {"test": title}
    return session.id, agent.id


def say(client: anthropic.Anthropic, session_id: str, text: str) -> None:
    sent = client.beta.sessions.events.send(
        session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": text}]}]
    )
    assert [e.type for e in sent.data] == ["user.message"]


def workspace_of(client: anthropic.Anthropic, session_id: str) -> Path:
    session = client.beta.sessions.retrieve(session_id)
    return Path((session.model_extra or {})["corral"]["workspace"])


# -- the whole loop, over TCP with the key -----------------------------------------------------


def test_a_session_streams_with_deltas_until_idle_end_turn(served: Served, tmp_path: Path) -> None:
    model = scripted(
        tmp_path,
        "hello",
        [
            {
                "text": "Writing the file now.",
                "latency_ms": 300,
                "tool_uses": [("write", {"file_path": "hello.txt", "content": "hi\n"})],
            },
            {"text": "Done: hello.txt says hi.", "latency_ms": 300},
        ],
    )
    client = served.client()
    sid, _ = make_session(client, model, title="hello")
    seen: list[Any] = []
    with client.beta.sessions.events.stream(sid, event_deltas=["agent.message"]) as stream:
        say(client, sid, "write hello.txt")
        for event in stream:
            seen.append(event)
            if event.type == "session.status_idle":
                break
    kinds = [e.type for e in seen]
    assert kinds[0] == "user.message" and kinds[-1] == "session.status_idle"
    assert seen[-1].stop_reason.type == "end_turn"
    messages = [e for e in seen if e.type == "agent.message"]
    assert [m.content[0].text for m in messages] == [
        "Writing the file now.",
        "Done: hello.txt says hi.",
    ]
    # Each message was previewed first, under the id it was then stored with.
    for message in messages:
        at = seen.index(message)
        starts = [e for e in seen[:at] if e.type == "event_start" and e.event.id == message.id]
        assert len(starts) == 1
        pieces = [
            e.delta.content.text
            for e in seen[:at]
            if e.type == "event_delta" and e.event_id == message.id
        ]
        assert "".join(pieces) == message.content[0].text
    assert "agent.tool_use" in kinds and "agent.tool_result" in kinds
    assert (workspace_of(client, sid) / "hello.txt").read_text() == "hi\n"
    session = client.beta.sessions.retrieve(sid)
    assert session.status == "idle" and session.usage.input_tokens > 0
    assert session.usage.list_cost is not None and session.usage.list_cost.currency == "USD"
    float(session.usage.list_cost.amount)  # a decimal string


def test_always_ask_bash_is_allowed_once_and_denied_once(served: Served, tmp_path: Path) -> None:
    model = scripted(
        tmp_path,
        "asks",
        [
            {"text": "first", "tool_uses": [("bash", {"command": "echo one > a.txt"})]},
            {"text": "second", "tool_uses": [("bash", {"command": "echo two > b.txt"})]},
            {"text": "finished"},
        ],
    )
    client = served.client()
    sid, _ = make_session(client, model, title="asks", bash="always_ask")
    answers = iter([("allow", None), ("deny", "not b.txt, please")])
    stops: list[str] = []
    with client.beta.sessions.events.stream(sid) as stream:
        say(client, sid, "go")
        for event in stream:
            if event.type != "session.status_idle":
                continue
            stops.append(event.stop_reason.type)
            if event.stop_reason.type != "requires_action":
                break
            (tool_use_id,) = event.stop_reason.event_ids
            result, why = next(answers)
            confirmation: dict[str, Any] = {
                "type": "user.tool_confirmation",
                "tool_use_id": tool_use_id,
                "result": result,
            }
            if why:
                confirmation["deny_message"] = why
            client.beta.sessions.events.send(sid, events=[confirmation])
    assert stops == ["requires_action", "requires_action", "end_turn"]
    workspace = workspace_of(client, sid)
    assert (workspace / "a.txt").read_text() == "one\n"
    assert not (workspace / "b.txt").exists()
    events = list(client.beta.sessions.events.list(sid))
    confirmations = [e for e in events if e.type == "user.tool_confirmation"]
    assert [(c.result, c.deny_message) for c in confirmations] == [
        ("allow", None),
        ("deny", "not b.txt, please"),
    ]
    denied = [e for e in events if e.type == "agent.tool_result"][-1]
    assert denied.is_error and "not b.txt, please" in denied.model_dump_json()


def test_an_interrupt_mid_turn_stops_the_session(served: Served, tmp_path: Path) -> None:
    model = scripted(
        tmp_path,
        "slow",
        [
            {"text": "a long one", "tool_uses": [("bash", {"command": "sleep 30"})]},
            {"text": "never reached"},
        ],
    )
    client = served.client()
    sid, _ = make_session(client, model, title="slow")
    began = time.monotonic()
    with client.beta.sessions.events.stream(sid) as stream:
        say(client, sid, "go")
        for event in stream:
            if event.type == "agent.tool_use":
                sent = client.beta.sessions.events.send(sid, events=[{"type": "user.interrupt"}])
                assert sent.data[0].type == "user.interrupt"
            if event.type == "session.status_idle":
                break
    assert time.monotonic() - began < 20  # not the sleep's 30 s
    session = client.beta.sessions.retrieve(sid)
    assert session.status == "idle"
    assert (session.model_extra or {})["corral"]["stop_reason"]["type"] == "interrupted"
    texts = [
        e.content[0].text
        for e in client.beta.sessions.events.list(sid)
        if e.type == "agent.message"
    ]
    assert "never reached" not in texts


def test_events_list_across_pages_in_order(served: Served, tmp_path: Path) -> None:
    model = scripted(
        tmp_path,
        "pages",
        [{"text": f"step {n}", "tool_uses": [("bash", {"command": f"echo {n}"})]} for n in range(5)]
        + [{"text": "done"}],
    )
    client = served.client()
    sid, _ = make_session(client, model, title="pages")
    with client.beta.sessions.events.stream(sid) as stream:
        say(client, sid, "go")
        for event in stream:
            if event.type == "session.status_idle":
                break
    first = client.beta.sessions.events.list(sid, limit=4)
    assert len(first.data) == 4 and first.has_next_page()
    paged = [e.id for e in client.beta.sessions.events.list(sid, limit=4)]
    whole = [e.id for e in client.beta.sessions.events.list(sid, limit=1000).data]
    assert paged == whole and len(whole) == len(set(whole)) > 20
    newest_first = [e.id for e in client.beta.sessions.events.list(sid, limit=3, order="desc")]
    assert newest_first == whole[::-1]
    listed = [s.id for s in client.beta.sessions.list(limit=2)]
    assert sid in listed and len(listed) == len(set(listed))


# -- the Unix socket, with the async client ---------------------------------------------------


def test_the_async_client_over_the_unix_socket(served: Served, tmp_path: Path) -> None:
    mode = os.stat(served.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat(served.data_dir / "server.key").st_mode) == 0o600
    model = scripted(tmp_path, "unix", [{"text": "over the socket", "latency_ms": 200}])

    async def run() -> list[str]:
        transport = httpx.AsyncHTTPTransport(uds=served.socket)
        async with anthropic.AsyncAnthropic(
            base_url="http://corral",
            api_key="unused: the socket's mode decides who may connect",
            http_client=httpx.AsyncClient(transport=transport),
            _strict_response_validation=True,
        ) as client:
            agent = await client.beta.agents.create(name="unix", model=model, tools=toolset())
            env = await client.beta.environments.create(name="unix", config={"type": "cloud"})
            session = await client.beta.sessions.create(agent=agent.id, environment_id=env.id)
            kinds = []
            stream = await client.beta.sessions.events.stream(session.id)
            async with stream:
                await client.beta.sessions.events.send(
                    session.id, events=[{"type": "user.message", "content": "hello"}]
                )
                async for event in stream:
                    kinds.append(event.type)
                    if event.type == "session.status_idle":
                        assert event.stop_reason.type == "end_turn"
                        break
            ids = [s.id async for s in client.beta.sessions.list()]
            assert session.id in ids
            return kinds

    kinds = asyncio.run(run())
    assert kinds[0] == "user.message" and "agent.message" in kinds


# -- keys and refusals ------------------------------------------------------------------------


def test_tcp_without_the_key_or_with_a_wrong_one_is_401(served: Served) -> None:
    bare = httpx.get(served.url + "/v1/sessions")
    assert bare.status_code == 401
    assert bare.json()["type"] == "error"
    assert bare.json()["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        served.client(api_key="crl-not-the-key").beta.sessions.list()
    assert served.client().beta.sessions.list() is not None
    # Nothing of the key reaches the log.
    log = (served.data_dir / "logs" / "server.log").read_text()
    assert served.key not in log and "crl-not-the-key" not in log


@pytest.mark.parametrize(
    ("make", "feature"),
    [
        (
            lambda c, m: c.beta.agents.create(
                name="x", model=m, mcp_servers=[{"type": "url", "name": "s", "url": "https://e"}]
            ),
            "mcp_servers",
        ),
        (
            lambda c, m: c.beta.agents.create(
                name="x", model=m, tools=[{"type": TOOLSET, "configs": [{"name": "web_search"}]}]
            ),
            "web_search",
        ),
        (
            lambda c, m: c.beta.agents.create(
                name="x", model=m, skills=[{"type": "anthropic", "skill_id": "xlsx"}]
            ),
            "skills",
        ),
    ],
)
def test_an_unsupported_feature_is_a_400_that_names_it(
    served: Served, tmp_path: Path, make: Any, feature: str
) -> None:
    model = scripted(tmp_path, "unused", [{"text": "x"}])
    with pytest.raises(anthropic.BadRequestError) as refused:
        make(served.client(), model)
    assert refused.value.status_code == 400
    assert feature in refused.value.message


def test_vaults_on_a_session_are_refused_by_name(served: Served, tmp_path: Path) -> None:
    client = served.client()
    model = scripted(tmp_path, "vault", [{"text": "x"}])
    agent = client.beta.agents.create(name="v", model=model)
    env = client.beta.environments.create(name="v", config={"type": "cloud"})
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.sessions.create(agent=agent.id, environment_id=env.id, vault_ids=["vlt_1"])
    assert "vault_ids" in refused.value.message
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.retrieve("sesn_no_such_thing")


# -- a server killed mid-session ------------------------------------------------------------


def test_kill_9_mid_session_then_restart_resumes_the_stream_exactly_once(
    tmp_path: Path,
) -> None:
    turns = [
        {
            "text": f"turn {n}",
            "latency_ms": 250,
            "tool_uses": [("bash", {"command": f"sleep 0.2; echo {n} >> log.txt"})],
        }
        for n in range(8)
    ] + [{"text": "all done"}]
    model = scripted(tmp_path, "long", turns)
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    client = first.client()
    sid, _ = make_session(client, model, title="survivor")
    got: list[Any] = []
    try:
        with client.beta.sessions.events.stream(sid) as stream:
            say(client, sid, "go")
            for event in stream:
                got.append(event)
                if sum(e.type == "agent.tool_result" for e in got) == 3:
                    os.kill(first.proc.pid, signal.SIGKILL)  # mid-session, mid-stream
                    break
    finally:
        first.proc.kill()
        first.proc.wait(10)
    second = start_server(data_dir)
    try:
        client = second.client()
        # Resume after the last event received, as an EventSource would.
        with client.beta.sessions.events.stream(
            sid, extra_headers={"Last-Event-ID": got[-1].id}
        ) as stream:
            for event in stream:
                got.append(event)
                if event.type == "session.status_idle":
                    break
        ids = [e.id for e in got]
        assert len(ids) == len(set(ids)), "an event came twice"
        logged = [e.id for e in client.beta.sessions.events.list(sid, limit=1000).data]
        start = logged.index(ids[0])  # the stream began at the message, not at creation
        assert ids == logged[start : start + len(ids)], "an event was missed or out of order"
        assert got[-1].stop_reason.type == "end_turn"
        kinds = [e.type for e in got]
        assert "session.status_rescheduled" in kinds  # the takeover, not an end
        texts = [e.content[0].text for e in got if e.type == "agent.message"]
        assert texts[-1] == "all done"
        # Every line once: the workspace went back to its checkpoint before going on.
        lines = (workspace_of(client, sid) / "log.txt").read_text().split()
        assert lines == [str(n) for n in range(8)]
    finally:
        stop_server(second)


# -- agents and environments ----------------------------------------------------------------


def test_agents_version_on_update_and_environments_update_and_delete(
    served: Served, tmp_path: Path
) -> None:
    client = served.client()
    model = scripted(tmp_path, "defs", [{"text": "x"}])
    agent = client.beta.agents.create(name="v1", model=model, metadata={"team": "a"})
    updated = client.beta.agents.update(agent.id, version=1, name="v2", system="Be brief.")
    assert (updated.version, updated.name, updated.system) == (2, "v2", "Be brief.")
    assert updated.metadata == {"team": "a"}
    with pytest.raises(anthropic.ConflictError):
        client.beta.agents.update(agent.id, version=1, name="stale")
    versions = [a.version for a in client.beta.agents.versions.list(agent.id)]
    assert sorted(versions) == [1, 2]
    assert client.beta.agents.retrieve(agent.id, version=1).name == "v1"
    assert client.beta.agents.retrieve(agent.id).name == "v2"
    archived = client.beta.agents.archive(agent.id)
    assert archived.archived_at is not None
    assert agent.id not in [a.id for a in client.beta.agents.list()]

    env = client.beta.environments.create(name="e1", config={"type": "cloud"})
    renamed = client.beta.environments.update(env.id, name="e2", description="local")
    assert (renamed.name, renamed.description) == ("e2", "local")
    assert env.id in [e.id for e in client.beta.environments.list()]
    deleted = client.beta.environments.delete(env.id)
    assert deleted.id == env.id
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.retrieve(env.id)


def test_deleting_a_session_removes_it_and_the_workspace_corral_made(
    served: Served, tmp_path: Path
) -> None:
    client = served.client()
    model = scripted(
        tmp_path,
        "gone",
        [{"text": "x", "tool_uses": [("write", {"file_path": "f", "content": "1"})]}],
    )
    sid, _ = make_session(client, model, title="gone")
    say(client, sid, "go")
    workspace = workspace_of(client, sid)
    deadline = time.monotonic() + 30
    while client.beta.sessions.retrieve(sid).status != "idle" or not (workspace / "f").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    deleted = client.beta.sessions.delete(sid)
    assert (deleted.type, deleted.id) == ("session_deleted", sid)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.retrieve(sid)
    assert not workspace.exists()
    assert sid not in [s.id for s in client.beta.sessions.list()]
