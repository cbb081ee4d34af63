"""viagent_jupyter: LLM providers as a first-class, trustworthy part of the notebook.

``import viagent_jupyter as vj`` is cheap: every public name loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._workspace import Workspace, workspace
    from .chat import ChatStream
    from .errors import (
        AuthenticationError,
        BudgetExceededError,
        ConfigValidationError,
        CredentialError,
        PolicyError,
        ProviderAPIError,
        ProviderConflictError,
        ProviderConnectionError,
        ProviderError,
        ProviderInUseError,
        ProviderManagedError,
        ProviderNotFoundError,
        ProviderResponseError,
        RateLimitError,
        StorageError,
        ViagentError,
    )
    from .schema import (
        Message,
        ModelInfo,
        ModelSettings,
        ProviderConfig,
        Usage,
        UsageRecord,
    )
    from .store import ProviderStore

_LAZY = {
    "Workspace": "_workspace",
    "workspace": "_workspace",
    "ProviderStore": "store",
    "ChatStream": "chat",
    "ProviderConfig": "schema",
    "ModelSettings": "schema",
    "ModelInfo": "schema",
    "Usage": "schema",
    "UsageRecord": "schema",
    "Message": "schema",
    "panel": "widgets",
    "stats_bar": "widgets",
    "sidebar": "widgets",
    **{
        name: "errors"
        for name in (
            "ViagentError",
            "ConfigValidationError",
            "ProviderNotFoundError",
            "ProviderConflictError",
            "ProviderInUseError",
            "CredentialError",
            "StorageError",
            "BudgetExceededError",
            "ProviderError",
            "ProviderConnectionError",
            "ProviderAPIError",
            "AuthenticationError",
            "RateLimitError",
            "ProviderResponseError",
            "ProviderManagedError",
            "PolicyError",
        )
    },
}

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ChatStream",
    "ConfigValidationError",
    "CredentialError",
    "Message",
    "ModelInfo",
    "ModelSettings",
    "PolicyError",
    "ProviderAPIError",
    "ProviderConfig",
    "ProviderConflictError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderInUseError",
    "ProviderManagedError",
    "ProviderNotFoundError",
    "ProviderResponseError",
    "ProviderStore",
    "RateLimitError",
    "StorageError",
    "Usage",
    "UsageRecord",
    "ViagentError",
    "Workspace",
    "__version__",
    "load_ipython_extension",
    "panel",
    "sidebar",
    "stats_bar",
    "unload_ipython_extension",
    "workspace",
]


# Submodules reachable as attributes without an explicit import (``vj.demo.ensure_demo()``).
_SUBMODULES = frozenset({"demo", "testing", "widgets"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'viagent_jupyter' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext viagent_jupyter``: register ``%%llm``/``%llm`` (nothing heavy loads)."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (REST for the lab sidebar); loads nothing until used."""
    return [{"module": "viagent_jupyter.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt lab extension sits (for ``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "viagent-jupyter"}]
