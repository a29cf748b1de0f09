"""Maps a model id to its provider: ``scripted:PATH`` or a Claude model id."""

from __future__ import annotations

from tui.core.errors import ModelNotAvailableError
from tui.core.providers.base import ModelProvider


def resolve_provider(
    model_id: str, *, script_speed: float = 1.0, key_file: str | None = None
) -> ModelProvider:
    """The provider for ``model_id``; a Claude model needs an API key (never stored)."""
    if model_id.startswith("scripted:"):
        from tui.core.providers.scripted import ScriptedProvider

        return ScriptedProvider.load(model_id.removeprefix("scripted:"), speed=script_speed)
    if model_id.startswith("claude"):
        from tui.core.providers.claude import ClaudeProvider, find_api_key

        return ClaudeProvider(model_id, api_key=find_api_key(key_file))
    raise ModelNotAvailableError(
        f"model {model_id!r}: unknown model id (expected scripted:PATH or a claude-… id)"
    )


def priced_as(model_id: str) -> str:
    """The model whose prices a session on ``model_id`` pays: a script names its own."""
    if model_id.startswith("scripted:"):
        from tui.core.providers.scripted import ScriptedProvider

        return ScriptedProvider.load(model_id.removeprefix("scripted:"), speed=0).price_model
    return model_id
