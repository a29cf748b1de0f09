"""Claude through the real ``anthropic`` SDK: streamed, cached, and every failure typed.

The SDK's own retries are off (``max_retries=0``): the runner retries, so each wait
shows as ``session.status_rescheduled`` in the log and a partial stream is dropped,
never billed or stored twice. A stream that ends without ``message_stop`` is a failed
request, not a short answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anthropic
import httpx2  # the HTTP client this anthropic SDK is built on

from tui.core.errors import ModelError, ModelNotAvailableError
from tui.core.providers.base import DeltaSink, ModelRequest, ModelResponse, ToolCall

DEFAULT_TIMEOUT_S = 600.0
MAX_RETRY_AFTER_S = 120.0
_SPEND_LIMIT = (
    anthropic.EnforcedSpendLimitReachedError,
    anthropic.ContractSpendLimitReachedError,
    anthropic.PaymentRequiredError,
)
# The HTTP status each error type of the Messages API comes with.
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def find_api_key(key_file: str | None = None) -> str:
    """``ANTHROPIC_API_KEY``, else the first line of ``key_file``; never logged or stored."""
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if key:
        return key
    if key_file:
        try:
            key = Path(key_file).expanduser().read_text("utf-8").strip().splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise ModelNotAvailableError(
                f"api_key_file {key_file}: cannot read a key ({exc})"
            ) from None
        if key:
            return key
    raise ModelNotAvailableError(
        "no Anthropic API key: set ANTHROPIC_API_KEY where the corral server starts"
        " (`corral server stop` restarts it with yours), or api_key_file in settings.json"
    )


class ClaudeProvider:
    def __init__(
        self,
        model_id: str,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.model_id = model_id
        self.price_model = model_id
        self._key = api_key
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
            max_retries=0,
            timeout=timeout,
        )

    async def complete(self, request: ModelRequest, on_delta: DeltaSink) -> ModelResponse:
        saw_start = saw_stop = False
        try:
            async with self.client.messages.stream(
                **request_params(self.model_id, request)
            ) as stream:
                async for event in stream:
                    match event.type:
                        case "text":
                            on_delta("text", event.text)
                        case "thinking":
                            on_delta("thinking", event.thinking)
                        case "input_json":
                            on_delta("tool_input", event.partial_json)
                        case "message_start":
                            saw_start = True
                        case "message_stop":
                            saw_stop = True
                # Without message_start there is no message at all (a 200 with an empty
                # body): the SDK would assert, so it is a cut stream like any other.
                message = await stream.get_final_message() if saw_start else None
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from None
        except (anthropic.APIConnectionError, httpx2.HTTPError) as exc:
            why = self._clean(str(exc)) or type(exc).__name__
            raise ModelError(
                f"connection to the Messages API failed: {why}",
                retryable=True,
                kind="connection_error",
            ) from None
        except (anthropic.AnthropicError, ValueError, RuntimeError) as exc:
            # A malformed or out-of-order stream: treat like a cut one.
            raise ModelError(
                f"the response stream was malformed: {self._clean(str(exc))}",
                retryable=True,
                kind="stream_error",
            ) from None
        if message is None or not saw_stop or message.stop_reason is None:
            raise ModelError(
                "the response stream ended before message_stop; the partial answer was dropped",
                retryable=True,
                kind="stream_cut",
            )
        return _response(message)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        """The API's own count of the prompt (free; asked only when a cap is set). Any
        failure falls back to corral's upper bound rather than stopping the session."""
        params = request_params(self.model_id, request)
        del params["max_tokens"]
        try:
            counted = await self.client.messages.count_tokens(**params)
        except (anthropic.AnthropicError, httpx2.HTTPError, ValueError):
            return None
        tokens = getattr(counted, "input_tokens", None)
        return tokens if isinstance(tokens, int) and tokens >= 0 else None

    def _clean(self, text: str) -> str:
        # An error text should never carry the key, whatever the server echoes.
        return text.replace(self._key, "[redacted]") if self._key else text

    def _status_error(self, exc: anthropic.APIStatusError) -> ModelError:
        status = exc.status_code
        if status < 400:
            # An `event: error` inside a stream that began with 200: its error type is
            # the only status there is (an overloaded_error there is a 529, retried).
            status = _STATUS_OF_ERROR_TYPE.get(_error_type(exc), 500)
        detail = self._clean(_error_message(exc))
        if isinstance(exc, _SPEND_LIMIT) or "spend limit" in detail.lower():
            return ModelError(
                f"the API refused: a spend limit was reached ({detail}); not retried",
                retryable=False,
                kind="billing_error",
            )
        if status == 401:
            return ModelError(
                "the API key was refused (401): check ANTHROPIC_API_KEY",
                retryable=False,
                kind="authentication_error",
            )
        if status == 403:
            return ModelError(
                f"the API key may not use this (403): {detail}",
                retryable=False,
                kind="permission_error",
            )
        if status == 404:
            return ModelError(
                f"model {self.model_id!r} was not found (404): {detail}",
                retryable=False,
                kind="not_found_error",
            )
        if status == 429:
            return ModelError(
                f"rate limited (429): {detail}",
                retryable=True,
                kind="rate_limit_error",
                retry_after=_retry_after(exc.response),
            )
        if status == 529 or status >= 500:
            return ModelError(
                f"the API is {'overloaded' if status == 529 else 'failing'} ({status}): {detail}",
                retryable=True,
                kind="overloaded_error" if status == 529 else "api_error",
                retry_after=_retry_after(exc.response),
            )
        return ModelError(
            f"the API refused the request ({status}): {detail}",
            retryable=False,
            kind="invalid_request_error",
        )


def request_params(model: str, request: ModelRequest) -> dict[str, Any]:
    """The Messages API call, with cache breakpoints on the stable prefix (tools and
    system) and on the newest message, so each turn reads the conversation so far from
    the cache and writes only what is new."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": _cached_messages(request.messages),
    }
    if request.system:
        params["system"] = [
            {"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}
        ]
    if request.tools:
        tools = [dict(t) for t in request.tools]
        tools[-1]["cache_control"] = {"type": "ephemeral"}
        params["tools"] = tools
    return params


def _cached_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [{"role": m["role"], "content": [dict(b) for b in m["content"]]} for m in messages]
    if out and out[-1]["content"]:
        out[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return out


def _response(message: Any) -> ModelResponse:
    text = "".join(b.text for b in message.content if b.type == "text")
    thinking = "".join(b.thinking for b in message.content if b.type == "thinking")
    calls = [
        ToolCall(b.name, dict(b.input) if isinstance(b.input, dict) else {})
        for b in message.content
        if b.type == "tool_use"
    ]
    u = message.usage
    usage = {
        "input_tokens": u.input_tokens or 0,
        "output_tokens": u.output_tokens or 0,
        "cache_read_input_tokens": u.cache_read_input_tokens or 0,
        "cache_creation_input_tokens": u.cache_creation_input_tokens or 0,
    }
    creation = getattr(u, "cache_creation", None)
    if creation is not None and getattr(creation, "ephemeral_1h_input_tokens", 0):
        usage["ephemeral_1h_input_tokens"] = creation.ephemeral_1h_input_tokens
    return ModelResponse(
        text=text,
        thinking=thinking,
        tool_calls=calls,
        stop_reason=message.stop_reason,
        usage=usage,
        extra={"message_id": message.id},
    )


def _error_message(exc: anthropic.APIStatusError) -> str:
    message = _error_field(exc, "message")
    return message if message is not None else exc.message


def _error_type(exc: anthropic.APIStatusError) -> str:
    return _error_field(exc, "type") or ""


def _error_field(exc: anthropic.APIStatusError, name: str) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get(name), str):
            return error[name]
    return None


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return None if seconds is None or seconds < 0 else min(seconds, MAX_RETRY_AFTER_S)
