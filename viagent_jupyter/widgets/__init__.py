"""The widgets: ``panel()``, ``stats_bar()``, ``sidebar()`` (views of one Workspace).

Every widget observes the same store and stats traits of its workspace (the kernel default
unless one is given), so an edit from any panel, the Python API or the magic shows in every
open widget at once, and another kernel's edit within the workspace's poll interval.
The front end is bundled from ``js/`` into ``viagent_jupyter/static/`` at install time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config_panel import ConfigPanel
from .stats_bar import StatsBar

if TYPE_CHECKING:
    from .._workspace import Workspace
    from .llm_sidebar import LLMSidebar

__all__ = ["ConfigPanel", "StatsBar", "panel", "sidebar", "stats_bar"]


def panel(ws: Workspace | None = None) -> ConfigPanel:
    """The provider configuration panel of ``ws`` (default: the kernel's workspace)."""
    return ConfigPanel(ws)


def stats_bar(ws: Workspace | None = None) -> StatsBar:
    """A live one-line usage summary; click it for the per provider:model table."""
    return StatsBar(ws)


def sidebar(ws: Workspace | None = None, *, title: str = "LLM") -> LLMSidebar:
    """Show a stats bar and a panel in JupyterLab's right sidebar (needs ``sidecar``)."""
    from .llm_sidebar import sidebar as open_sidebar

    return open_sidebar(ws, title=title)
