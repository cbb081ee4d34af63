"""The sidecar fallback of ``vj.sidebar()``: a StatsBar and a ConfigPanel in JupyterLab's
right-hand area through the ``sidecar`` package (the ``sidecar`` extra). Importing this module
raises ImportError when sidecar is not installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipywidgets import VBox
from sidecar import Sidecar

from ._shown import _Shown
from .config_panel import ConfigPanel
from .stats_bar import StatsBar

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["LLMSidecar"]


class LLMSidecar(_Shown, Sidecar):  # type: ignore[misc]  # sidecar ships no type information
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

    def _render(self, first: bool) -> None:
        # the sidecar shows itself on the right; an inline copy would be a hidden duplicate
        print(f"{self.title} sidebar: open on the right (sidecar).")

    def close(self) -> None:
        for child in (getattr(self, "stats_bar", None), getattr(self, "panel", None),
                      getattr(self, "box", None)):
            if child is not None:
                child.close()
        super().close()
