"""The widgets: ``panel()``, ``stats_bar()``, ``sidebar()`` (views of one Workspace).

Every widget observes the same store and stats traits of its workspace (the kernel default
unless one is given), so an edit from any panel, the Python API or the magic shows in every
open widget at once, and another kernel's edit within the workspace's poll interval.
The front end is bundled from ``js/`` into ``viagent_jupyter/static/`` at install time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config_panel import ConfigPanel
from .stats_bar import StatsBar

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["ConfigPanel", "StatsBar", "panel", "sidebar", "stats_bar"]


def panel(ws: Workspace | None = None) -> ConfigPanel:
    """The provider configuration panel of ``ws`` (default: the kernel's workspace)."""
    return ConfigPanel(ws)


def stats_bar(ws: Workspace | None = None) -> StatsBar:
    """A live one-line usage summary; click it for the per provider:model table."""
    return StatsBar(ws)


def sidebar(ws: Workspace | None = None, *, title: str = "LLM", mode: str | None = None
            ) -> Any:
    """Open the LLM providers sidebar: the lab extension's (JupyterLab 4, Notebook 7), else a
    ``sidecar``, else the panel inline with a one-line note. Never raises."""
    from .llm_sidebar import sidebar as open_sidebar

    return open_sidebar(ws, title=title, mode=mode)  # type: ignore[arg-type]
