"""The provider interface: a request in, streamed deltas out, one finished response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# on_delta(kind, text): kind is "text", "thinking" or "tool_input".
DeltaSink = Callable[[str, str], None]


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ModelRequest:
    system: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    max_tokens: int = 8192


@dataclass(frozen=True)
class ModelResponse:
    """A finished model turn. ``usage`` has the four token counts of the Messages API."""

    text: str
    tool_calls: list[ToolCall]
    stop_reason: str
    usage: dict[str, int]
    thinking: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ModelProvider(Protocol):
    """One model behind a uniform call. ``price_model`` names the row of the pricing table."""

    model_id: str
    price_model: str

    async def complete(self, request: ModelRequest, on_delta: DeltaSink) -> ModelResponse:
        """Run one request, reporting deltas as they stream; raise ModelError on failure.
        The answer's output tokens never exceed ``request.max_tokens``."""
        ...

    async def count_tokens(self, request: ModelRequest) -> int | None:
        """The prompt tokens the request would be billed for, or None when this provider
        cannot tell (corral then bounds them from above: ``ceiling.prompt_bound``)."""
        ...
