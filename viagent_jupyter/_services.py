"""The narrow interfaces the parts of a workspace depend on.

``ModelRegistry`` and the chat streams are given exactly what they use (a provider lookup,
an HTTP client, a usage recorder, a price lookup) instead of the whole ``Workspace``, so
each can be built and tested alone and no module imports the workspace it serves.
"""

from __future__ import annotations

from typing import Protocol

from .schema import ProviderConfig

__all__ = ["ProviderLookup"]


class ProviderLookup(Protocol):
    """What the registry and a chat read from the provider store (``ProviderStore`` fits)."""

    def get(self, id: str) -> ProviderConfig: ...

    def list(self) -> list[ProviderConfig]: ...

    def resolve_key(self, id: str) -> tuple[str | None, str]: ...
