"""The sidebar: a StatsBar and a ConfigPanel in JupyterLab's right sidebar (via ``sidecar``).

``sidecar`` is in the ``lab`` extra; this module is imported only when ``vj.sidebar()`` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    from sidecar import Sidecar
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "vj.sidebar() needs the 'sidecar' package: pip install 'viagent_jupyter[lab]' "
        "(or pip install sidecar), then restart the kernel."
    ) from exc

from ipywidgets import VBox

from .config_panel import ConfigPanel
from .stats_bar import StatsBar

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["LLMSidebar", "sidebar"]

_current: LLMSidebar | None = None


class LLMSidebar(Sidecar):  # type: ignore[misc]  # sidecar ships no type information
    """A Sidecar holding one StatsBar and one ConfigPanel; closing it closes both."""

    def __init__(self, ws: Workspace | None = None, *, title: str = "LLM") -> None:
        super().__init__(title=title, anchor="right")
        self.stats_bar = StatsBar(ws)
        self.panel = ConfigPanel(self.stats_bar.workspace)
        self.box = VBox([self.stats_bar, self.panel])
        self.box.add_class("vj-sidebar")
        # Put the view straight into the output's state: no capture context needed, so it also
        # works from a magic, a callback or a thread.
        self.append_display_data(self.box)

    def _repr_mimebundle_(self, **kwargs: object) -> dict[str, str]:
        # the sidecar shows itself on the right; an inline copy would be a hidden duplicate
        return {"text/plain": f"{self.title} sidebar: open on the right."}

    def close(self) -> None:
        for child in (getattr(self, "stats_bar", None), getattr(self, "panel", None),
                      getattr(self, "box", None)):
            if child is not None:
                child.close()
        super().close()


def sidebar(ws: Workspace | None = None, *, title: str = "LLM") -> LLMSidebar:
    """Open the LLM sidebar on the right (one per kernel: a second call replaces the first)."""
    global _current
    if _current is not None:
        _current.close()
    _current = LLMSidebar(ws, title=title)
    return _current

