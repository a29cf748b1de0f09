"""The scripted provider: replays a TOML script of turns, deterministic and offline.

The turn played is chosen by how many assistant turns the conversation already
has, so a resumed or rewound session replays from the right place without any
state of its own. When the last tool results say a call was cut off (an interrupt,
a crash) and the user has said nothing since, the model calls the same tools again
first, as a real model would; such retry turns do not count as script turns.

    price_as = "claude-sonnet-4-5"      # priced as this model
    [[turns]]
    latency_ms = 1200                   # simulated time to stream the turn
    thinking = "..."                    # optional
    text = "Let me run the tests."
    usage = { input_tokens = 1800, output_tokens = 60, cache_read_input_tokens = 0 }
    [[turns.tool_uses]]
    name = "bash"
    input = { command = "python -m unittest" }
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.core.errors import SpecError
from tui.core.money.pricing import prompt_tokens
from tui.core.providers.base import DeltaSink, ModelRequest, ModelResponse, ToolCall
from tui.core.session.events import INTERRUPTED_RESULT
from tui.core.session.state import USAGE_FIELDS
from tui.core.small_files import read_small_file

DEFAULT_PRICE_AS = "claude-sonnet-4-5"
MAX_SCRIPT_BYTES = 4 << 20
CHUNK = 12  # characters per streamed delta


@dataclass(frozen=True)
class ScriptTurn:
    text: str
    thinking: str
    tool_calls: tuple[ToolCall, ...]
    latency_ms: int
    usage: dict[str, int]


class ScriptedProvider:
    def __init__(self, path: Path, turns: list[ScriptTurn], price_as: str, speed: float) -> None:
        self.path = path
        self.turns = turns
        self.model_id = f"scripted:{path}"
        self.price_model = price_as
        self.speed = speed

    @classmethod
    def load(cls, path: str | Path, *, speed: float = 1.0) -> ScriptedProvider:
        path = Path(path)
        source = str(path)
        try:
            data = tomllib.loads(read_small_file(path, MAX_SCRIPT_BYTES).decode("utf-8"))
        except OSError as exc:
            raise SpecError(source, "", f"cannot read script: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(source, "", f"invalid script TOML: {exc}") from None
        unknown = set(data) - {"price_as", "turns", "title"}
        if unknown:
            raise SpecError(source, sorted(unknown)[0], "unknown key (expected price_as, turns)")
        turns_data = data.get("turns")
        if not isinstance(turns_data, list) or not turns_data:
            raise SpecError(source, "turns", "a script needs at least one [[turns]] table")
        turns = [_parse_turn(source, i, t) for i, t in enumerate(turns_data)]
        price_as = data.get("price_as", DEFAULT_PRICE_AS)
        if not isinstance(price_as, str):
            raise SpecError(source, "price_as", "must be a model id string")
        return cls(path, turns, price_as, speed)

    async def complete(self, request: ModelRequest, on_delta: DeltaSink) -> ModelResponse:
        return await self._play(self._turn_for(request), request, on_delta)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        # The script says what the next turn's prompt counts, as the API's count would.
        return prompt_tokens(_usage(self._turn_for(request), request))

    def _turn_for(self, request: ModelRequest) -> ScriptTurn:
        retry = _interrupted_calls(request.messages)
        if retry:
            # Like a real model would: call again what was cut off, then go on.
            return ScriptTurn("Re-running what was interrupted.", "", tuple(retry), 0, {})
        # One pass (a session replays every turn, so this runs per turn): an assistant
        # message that answered cut-off results was a retry, not a script turn.
        msgs = request.messages
        index = sum(
            1
            for i, m in enumerate(msgs)
            if m["role"] == "assistant" and not (i >= 2 and _cut_calls(msgs[i - 2], msgs[i - 1]))
        )
        if index >= len(self.turns):
            return ScriptTurn("(the script has no more turns)", "", (), 0, {})
        return self.turns[index]

    async def _play(
        self, turn: ScriptTurn, request: ModelRequest, on_delta: DeltaSink
    ) -> ModelResponse:
        pieces = [
            ("thinking", turn.thinking[i : i + CHUNK]) for i in range(0, len(turn.thinking), CHUNK)
        ]
        pieces += [("text", turn.text[i : i + CHUNK]) for i in range(0, len(turn.text), CHUNK)]
        delay = turn.latency_ms / 1000 * self.speed / max(1, len(pieces))
        for kind, piece in pieces:
            on_delta(kind, piece)
            if delay > 0:
                await asyncio.sleep(delay)
        if not pieces and turn.latency_ms and self.speed:
            await asyncio.sleep(turn.latency_ms / 1000 * self.speed)
        usage = _usage(turn, request)
        text, tool_calls, stop = turn.text, list(turn.tool_calls), "end_turn"
        if tool_calls:
            stop = "tool_use"
        if usage["output_tokens"] > request.max_tokens:
            # Cut where the API would: at max_tokens, the answer unfinished, no tool call.
            kept = len(text) * request.max_tokens // usage["output_tokens"]
            text, tool_calls, stop = text[:kept], [], "max_tokens"
            usage["output_tokens"] = request.max_tokens
        return ModelResponse(
            text=text,
            thinking=turn.thinking,
            tool_calls=tool_calls,
            stop_reason=stop,
            usage=usage,
        )


def _usage(turn: ScriptTurn, request: ModelRequest) -> dict[str, int]:
    usage = {name: int(turn.usage.get(name, 0)) for name in USAGE_FIELDS}
    if not turn.usage:
        # A script without counts still costs something plausible and deterministic.
        usage["input_tokens"] = 200 + sum(len(str(m["content"])) for m in request.messages) // 4
        usage["output_tokens"] = max(1, (len(turn.text) + len(turn.thinking)) // 4)
    return usage


def _interrupted_calls(messages: list[dict[str, Any]]) -> list[ToolCall]:
    """The tool calls whose results in the last message say they were cut off."""
    if len(messages) < 2:
        return []
    return _cut_calls(messages[-2], messages[-1])


def _cut_calls(assistant: dict[str, Any], user: dict[str, Any]) -> list[ToolCall]:
    """The calls of ``assistant`` that ``user`` (its results, and nothing the user said
    besides) reports as cut off."""
    if assistant["role"] != "assistant" or user["role"] != "user":
        return []
    if any(block.get("type") != "tool_result" for block in user["content"]):
        return []  # the user has said something since: follow that, not the retry
    cut = {
        block["tool_use_id"]
        for block in user["content"]
        if any(
            str(part.get("text", "")).startswith(INTERRUPTED_RESULT)
            for part in block.get("content", [])
        )
    }
    return [
        ToolCall(block["name"], dict(block["input"]))
        for block in assistant["content"]
        if block.get("type") == "tool_use" and block["id"] in cut
    ]


def _parse_turn(source: str, index: int, data: Any) -> ScriptTurn:
    key = f"turns[{index}]"
    if not isinstance(data, dict):
        raise SpecError(source, key, "must be a table")
    unknown = set(data) - {"text", "thinking", "tool_uses", "latency_ms", "usage"}
    if unknown:
        raise SpecError(source, f"{key}.{sorted(unknown)[0]}", "unknown key")
    calls = []
    for j, call in enumerate(data.get("tool_uses", [])):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise SpecError(source, f"{key}.tool_uses[{j}]", "needs a `name` string")
        if not isinstance(call.get("input", {}), dict):
            raise SpecError(source, f"{key}.tool_uses[{j}].input", "must be a table")
        calls.append(ToolCall(call["name"], dict(call.get("input", {}))))
    usage = data.get("usage", {})
    if not isinstance(usage, dict) or any(
        k not in USAGE_FIELDS or not isinstance(v, int) or v < 0 for k, v in usage.items()
    ):
        raise SpecError(
            source, f"{key}.usage", f"token counts must be integers ≥ 0 for {USAGE_FIELDS}"
        )
    latency = data.get("latency_ms", 0)
    if not isinstance(latency, int) or latency < 0:
        raise SpecError(source, f"{key}.latency_ms", "must be an integer ≥ 0")
    text, thinking = data.get("text", ""), data.get("thinking", "")
    if not isinstance(text, str) or not isinstance(thinking, str):
        raise SpecError(source, key, "text and thinking must be strings")
    return ScriptTurn(text, thinking, tuple(calls), latency, dict(usage))
