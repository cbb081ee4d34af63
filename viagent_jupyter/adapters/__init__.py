"""Wire-protocol adapters. Import is deferred: nothing here loads until a chat starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Adapter

__all__ = ["get_adapter"]

_PROTOCOLS = {
    "openai": "openai",
    "openrouter": "openai",
    "openai_compatible": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "ollama": "ollama",
}


def get_adapter(provider_type: str) -> Adapter:
    """The adapter for a provider type (``openai``, ``anthropic``, ...)."""
    import importlib

    module = importlib.import_module(f".{_PROTOCOLS[provider_type]}", __name__)
    adapter: Adapter = module.ADAPTER
    return adapter
