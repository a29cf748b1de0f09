"""Model providers: one small async interface, one module per provider."""

from tui.core.providers.base import ModelProvider, ModelRequest, ModelResponse, ToolCall
from tui.core.providers.registry import resolve_provider

__all__ = ["ModelProvider", "ModelRequest", "ModelResponse", "ToolCall", "resolve_provider"]
