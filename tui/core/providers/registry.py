"""Maps a model id to its provider: ``scripted:PATH`` or a Claude model id."""

from __future__ import annotations

from tui.core.errors import ModelNotAvailableError
from tui.core.providers.base import ModelProvider


def resolve_provider(model_id: str, *, script_speed: float = 1.0) -> ModelProvider:
    if model_id.startswith("scripted:"):
        from tui.core.providers.scripted import ScriptedProvider

        return ScriptedProvider.load(model_id.removeprefix("scripted:"), speed=script_speed)
    if model_id.startswith("claude"):
        # UNFINISHED: the anthropic provider is issue 6; until it lands, say so plainly.
        raise ModelNotAvailableError(
            f"model {model_id!r}: the anthropic provider is not available yet in this corral;"
            " use a scripted model (--model scripted:PATH)"
        )
    raise ModelNotAvailableError(
        f"model {model_id!r}: unknown model id (expected scripted:PATH or a claude-… id)"
    )
