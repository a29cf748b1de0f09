"""``RemoteClient``: corral through its server's API — the data dir's own server over its
Unix socket (started if none runs), or another machine's over TCP with its key.

Every ``CorralClient`` call is one request to ``/v1/corral/rpc/{method}``, its answer read
back into the engine's types by the protocol's type hints (``tui.core.wire``). A feed is
an SSE stream that survives the server going away: it reconnects (starting the local
server again if it died) and reads back what it missed from the log, so a subscriber
sees every event once, in order per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tui.client.protocol import CorralClient, RewindPreview, Rewound
from tui.core.checkpoints.archive import ExportSummary, ImportSummary
from tui.core.checkpoints.diff import CheckpointDiff
from tui.core.checkpoints.gc import GcResult
from tui.core.checkpoints.records import CheckpointRecord
from tui.core.checkpoints.timeline import Timeline
from tui.core.errors import CorralError, UsageError
from tui.core.money.budget import Budget
from tui.core.money.estimate import Estimate
from tui.core.permissions.policy import Policy
from tui.core.session.events import Event
from tui.core.session.records import SessionRecord
from tui.core.session.spec import SessionSpec
from tui.core.session.state import SessionState
from tui.core.store.bus import Delta, Item
from tui.core.wire import WireError, decode, encode

REQUEST_TIMEOUT_S = 300.0  # a rewind or an import of a big workspace takes a while
RECONNECT_S = (0.05, 0.2, 0.5, 1.0, 2.0)  # back-off between attempts, then 2 s each
HELD_MAX = 100_000  # stream frames held during a catch-up, at most (then read back later)
MAX_UPLOAD = 8 << 30
JSON = {"content-type": "application/json"}


class ServerError(CorralError):
    """The server refused a request or could not be reached: its one line, its code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


Reconnect = Callable[[], Awaitable[None]]


class RemoteClient:
    runs_here = False

    def __init__(
        self,
        http: httpx.AsyncClient,
        data_dir: Path,
        *,
        where: str,
        reconnect: Reconnect | None = None,
    ) -> None:
        self.http = http
        self.data_dir = data_dir  # this machine's: settings, themes, policy profiles
        self.where = where  # for messages: "the corral server of DIR" or a URL
        self.reconnect = reconnect  # start the local server again if it went away
        self.recovered_after: dict[str, int] = {}
        self._feeds: list[RemoteFeed] = []

    # -- the one way a call goes --------------------------------------------------------

    async def call(self, method: str, **kwargs: Any) -> Any:
        hints = _hints(method)
        body = {name: encode(value) for name, value in kwargs.items()}
        # ASCII JSON: a name that is not UTF-8 (a lone surrogate) travels as an escape.
        response = await self.request(
            "POST", f"/v1/corral/rpc/{method}", content=json.dumps(body).encode(), headers=JSON
        )
        try:
            return decode(hints["return"], response.json()["result"], method)
        except (WireError, ValueError, KeyError, TypeError) as exc:
            raise ServerError(
                f"{self.where} answered {method} with something else: {exc}"
            ) from None

    async def request(self, verb: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a server that is not there (yet) is started again and retried,
        which is safe: a refused connection means nothing was sent."""
        for attempt in range(2):
            try:
                response = await self.http.request(verb, path, **kwargs)
            except httpx.ConnectError:
                if attempt == 0 and self.reconnect is not None:
                    await self.reconnect()
                    continue
                raise ServerError(f"{self.where} does not answer") from None
            except httpx.HTTPError as exc:
                raise ServerError(f"{self.where}: {type(exc).__name__}: {exc}") from None
            if response.status_code >= 400:
                raise _refusal(response)
            return response
        raise AssertionError("unreachable")

    # -- reads ----------------------------------------------------------------------------

    async def sessions(self) -> list[SessionRecord]:
        return await self.call("sessions")  # type: ignore[no-any-return]

    async def session(self, session_id: str) -> SessionRecord:
        return await self.call("session", session_id=session_id)  # type: ignore[no-any-return]

    async def state(self, session_id: str) -> SessionState:
        return await self.call("state", session_id=session_id)  # type: ignore[no-any-return]

    async def events(
        self, session_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        found: list[Event] = await self.call(
            "events", session_id=session_id, after_seq=after_seq, limit=limit
        )
        return found

    async def checkpoints(self, session_id: str) -> list[CheckpointRecord]:
        return await self.call("checkpoints", session_id=session_id)  # type: ignore[no-any-return]

    async def checkpoint_record(self, session_id: str, checkpoint: str) -> CheckpointRecord:
        record: CheckpointRecord = await self.call(
            "checkpoint_record", session_id=session_id, checkpoint=checkpoint
        )
        return record

    async def timeline(self, session_id: str) -> Timeline:
        return await self.call("timeline", session_id=session_id)  # type: ignore[no-any-return]

    async def diff(self, session_id: str, a: str, b: str) -> CheckpointDiff:
        return await self.call("diff", session_id=session_id, a=a, b=b)  # type: ignore[no-any-return]

    async def policy(self, session_id: str) -> Policy:
        return await self.call("policy", session_id=session_id)  # type: ignore[no-any-return]

    async def budget(self, session_id: str) -> Budget:
        return await self.call("budget", session_id=session_id)  # type: ignore[no-any-return]

    async def estimate(self, spec: SessionSpec) -> Estimate:
        return await self.call("estimate", spec=spec)  # type: ignore[no-any-return]

    async def spent_today(self) -> Decimal:
        return await self.call("spent_today")  # type: ignore[no-any-return]

    async def subscribe(self, session_id: str | None = None, *, deltas: bool = False) -> RemoteFeed:
        feed = RemoteFeed(self, session_id, deltas)
        await feed.start()
        self._feeds.append(feed)
        return feed

    # -- commands -------------------------------------------------------------------------

    async def attach(self, *, resume_recovered: bool = False) -> list[str]:
        recovered: list[str] = await self.call("attach", resume_recovered=resume_recovered)
        about = (await self.request("GET", "/v1/corral/server")).json()
        after = about.get("recovered_after") if isinstance(about, dict) else None
        if isinstance(after, dict):
            self.recovered_after = {
                str(k): v for k, v in after.items() if isinstance(v, int) and v >= 0
            }
        return recovered

    async def create(self, spec: SessionSpec) -> str:
        return await self.call("create", spec=spec)  # type: ignore[no-any-return]

    async def send(self, session_id: str, text: str) -> None:
        await self.call("send", session_id=session_id, text=text)

    async def confirm(
        self, session_id: str, tool_use_id: str, allow: bool, message: str | None = None
    ) -> None:
        await self.call(
            "confirm", session_id=session_id, tool_use_id=tool_use_id, allow=allow, message=message
        )

    async def control(self, session_id: str, kind: str, *, accept: bool = False) -> None:
        await self.call("control", session_id=session_id, kind=kind, accept=accept)

    async def set_budget(
        self, session_id: str, max_list_cost: Decimal | None, max_active_hours: Decimal | None
    ) -> bool:
        went_on: bool = await self.call(
            "set_budget",
            session_id=session_id,
            max_list_cost=max_list_cost,
            max_active_hours=max_active_hours,
        )
        return went_on

    async def set_policy(self, session_id: str, policy: Policy) -> str:
        return await self.call("set_policy", session_id=session_id, policy=policy)  # type: ignore[no-any-return]

    async def checkpoint(self, session_id: str, label: str = "") -> CheckpointRecord:
        return await self.call("checkpoint", session_id=session_id, label=label)  # type: ignore[no-any-return]

    async def rewind_preview(self, session_id: str, checkpoint: str) -> RewindPreview:
        preview: RewindPreview = await self.call(
            "rewind_preview", session_id=session_id, checkpoint=checkpoint
        )
        return preview

    async def rewind(self, session_id: str, checkpoint: str) -> Rewound:
        return await self.call("rewind", session_id=session_id, checkpoint=checkpoint)  # type: ignore[no-any-return]

    async def fork(self, session_id: str, checkpoint: str) -> str:
        return await self.call("fork", session_id=session_id, checkpoint=checkpoint)  # type: ignore[no-any-return]

    async def gc(self, *, dry_run: bool) -> GcResult:
        return await self.call("gc", dry_run=dry_run)  # type: ignore[no-any-return]

    # -- files, streamed ---------------------------------------------------------------

    async def export(self, session_id: str, target: Path) -> ExportSummary:
        """The server streams the file; it is written here, beside ``target`` first and
        moved into place whole (never replacing anything but a regular file)."""
        record = await self.session(session_id)
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise UsageError(f"{target}: exists and is not a regular file; not replacing it")
        partial = target.with_name(f".{target.name}.partial")
        size = 0
        try:
            async with self.http.stream("GET", f"/v1/corral/sessions/{record.id}/export") as got:
                if got.status_code >= 400:
                    await got.aread()
                    raise _refusal(got)
                with open(partial, "wb") as out:
                    async for chunk in got.aiter_bytes():
                        out.write(chunk)
                        size += len(chunk)
                redacted = _redacted(got.headers.get("x-corral-redacted", ""))
            partial.replace(target)
        except httpx.HTTPError as exc:
            raise ServerError(f"{self.where}: the export broke off: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        events = len(await self.events(record.id))
        checkpoints = len(await self.checkpoints(record.id))
        return ExportSummary(target, events, checkpoints, 0, size, redacted)

    async def import_file(self, source: Path) -> ImportSummary:
        if not source.is_file():  # a FIFO or a device would block or never end
            raise UsageError(f"{source}: not a regular file")
        if source.stat().st_size > MAX_UPLOAD:
            raise UsageError(f"{source}: over {MAX_UPLOAD} bytes")

        async def chunks() -> AsyncIterator[bytes]:
            with open(source, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        response = await self.request("POST", "/v1/corral/import", content=chunks())
        body = response.json()
        try:
            return ImportSummary(
                str(body["session_id"]),
                int(body["events"]),
                int(body["checkpoints"]),
                [str(w) for w in body["warnings"]],
            )
        except (KeyError, TypeError, ValueError):
            raise ServerError(f"{self.where} answered the import with something else") from None

    async def close(self) -> None:
        for feed in self._feeds:
            feed.close()
        for feed in self._feeds:
            await feed.closed()
        await self.http.aclose()


class RemoteFeed:
    """A subscription over SSE. It reconnects whenever the stream ends (the server was
    restarted, or dropped us for falling behind) and reads back from the log what it
    missed, before anything newer."""

    def __init__(self, client: RemoteClient, session_id: str | None, deltas: bool) -> None:
        self.client = client
        self.session_id = session_id
        self.deltas = deltas
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self._last: dict[str, int] = {}  # session -> the last seq handed out
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._held: list[dict[str, Any]] | None = None  # frames read during a catch-up

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="corral-feed")
        # Subscribed on the server before the caller acts: nothing it causes is missed.
        waiter = asyncio.create_task(self._connected.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # its error, if it could not connect at all

    async def _run(self) -> None:
        params = {"deltas": "true" if self.deltas else "false"}
        if self.session_id:
            params["session_id"] = self.session_id
        attempt = failed_catch_ups = 0
        first = True
        try:
            while not self._closing:
                try:
                    async with self.client.http.stream(
                        "GET", "/v1/corral/stream", params=params, timeout=None
                    ) as response:
                        if response.status_code >= 400:
                            await response.aread()
                            raise _refusal(response)
                        attempt = 0
                        self._connected.set()
                        if first:
                            first = False
                            await self._read(response)
                        elif await self._resume(response):
                            failed_catch_ups = 0
                        else:  # back off as from a refusal, not reconnect at once
                            failed_catch_ups += 1
                            attempt = failed_catch_ups
                except httpx.HTTPError:
                    if first and self.client.reconnect is None:
                        raise ServerError(f"{self.client.where} does not answer") from None
                    if first and attempt == 0 and self.client.reconnect is not None:
                        await self.client.reconnect()
                if self._closing:
                    break
                await asyncio.sleep(RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)])
                attempt += 1
        finally:
            self._queue.put_nowait(None)  # whatever ended it, every reader's get ends

    async def _resume(self, response: httpx.Response) -> bool:
        """Read back what was missed while the new stream is read too, its frames held
        until the catch-up is in. A catch-up that kept the stream unread for longer than
        the server buffers got the client dropped again, every time: at 64 streaming
        sessions on a busy server it never caught up (bench/ui.py). False if the
        catch-up failed (the stream is then let go, and read back on the next one)."""
        self._held = []
        reader = asyncio.create_task(self._read(response))
        try:
            if not await self._catch_up():
                return False  # held frames dropped: the next connection's catch-up has them
            held, self._held = self._held, None
            for frame in held:
                # After the catch-up: the events it gave are skipped. Deltas are not
                # replayed: one may preview a message the catch-up already delivered.
                if frame.get("kind") == "event":
                    self._take(frame)
            await reader
            return True
        finally:
            self._held = None
            reader.cancel()
            await asyncio.wait({reader})
            if not reader.cancelled():
                reader.exception()  # retrieved: it ended the stream, and we reconnect

    async def _read(self, response: httpx.Response) -> None:
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:
                try:
                    frame = json.loads("\n".join(data))
                except (ValueError, RecursionError):
                    frame = None  # not a frame of ours; the log has the event
                data = []
                if not isinstance(frame, dict):
                    continue
                if self._held is None:
                    self._take(frame)
                elif len(self._held) < HELD_MAX:
                    self._held.append(frame)
                else:
                    return  # too far behind: stop reading; the catch-up after this one

    def _take(self, frame: dict[str, Any]) -> None:
        try:
            item = decode(Event if frame["kind"] == "event" else Delta, frame["item"], "feed")
        except (WireError, KeyError, TypeError):
            return  # not ours to guess at; the log has the event
        self._hand_out(item)

    def _hand_out(self, item: Item) -> None:
        if isinstance(item, Event):
            if item.seq <= self._last.get(item.session_id, 0):
                return
            self._last[item.session_id] = item.seq
        self._queue.put_nowait(item)

    async def _catch_up(self) -> bool:
        """What was logged while we were away: every session's events after the last
        one handed out (all of a session we had not heard of). False if it could not."""
        try:
            if self.session_id is not None:
                ids = [self.session_id]
            else:
                ids = [r.id for r in await self.client.sessions()]
            for sid in ids:
                for event in await self.client.events(sid, after_seq=self._last.get(sid, 0)):
                    self._hand_out(event)  # the client decoded it already
        except CorralError:
            return False
        return True

    async def get(self) -> Item:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # every later get ends too
            raise StopAsyncIteration
        return item

    def __aiter__(self) -> RemoteFeed:
        return self

    async def __anext__(self) -> Item:
        return await self.get()

    def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
        self._queue.put_nowait(None)

    async def closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def __enter__(self) -> RemoteFeed:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@cache
def _hints(method: str) -> dict[str, Any]:
    return typing.get_type_hints(getattr(CorralClient, method))


def _refusal(response: httpx.Response) -> ServerError:
    try:
        error = response.json()["error"]
        message, exit_code = str(error["message"]), error.get("corral", {}).get("exit_code", 1)
    except (ValueError, KeyError, TypeError, AttributeError):
        message, exit_code = f"HTTP {response.status_code}", 1
    if not isinstance(exit_code, int) or not 1 <= exit_code <= 125:
        exit_code = 1
    return ServerError(message, exit_code)


def _redacted(header: str) -> dict[str, int]:
    return {name: 1 for name in header.split(",") if name}
