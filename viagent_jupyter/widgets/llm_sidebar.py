"""``vj.sidebar()`` / ``%llm sidebar``: open the LLM providers sidebar, wherever that is.

1. JupyterLab 4 / Notebook 7 with the viagent lab extension (shipped in the wheel): display a
   small ``application/vnd.viagent.sidebar+json`` output; the lab extension renders it as a
   line with an "Open" button and opens its sidebar (no kernel needed by the sidebar itself).
2. Else, with ``sidecar`` installed (the ``sidecar`` extra): a StatsBar and a ConfigPanel in
   JupyterLab's right-hand area.
3. Else: the same StatsBar and ConfigPanel inline, under a one-line note.

It never raises: whatever fails, the cell shows something that says what to do. Every path
displays its output at once, so ``%llm sidebar`` (whose result is not displayed) shows it too.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._shown import _Shown

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["SIDEBAR_MIME", "InlineSidebar", "LabSidebar", "lab_extension_installed", "sidebar"]

log = logging.getLogger("viagent_jupyter.widgets")

SIDEBAR_MIME = "application/vnd.viagent.sidebar+json"
LAB_EXTENSION = "viagent-jupyter"
Mode = Literal["lab", "sidecar", "inline"]

_current: Any = None


def lab_extension_installed() -> bool:
    """True when the viagent lab extension is installed where JupyterLab looks for it."""
    from jupyter_core.paths import jupyter_path

    return any((Path(d) / LAB_EXTENSION / "package.json").is_file()
               for d in jupyter_path("labextensions"))


def _under_jupyter_server() -> bool:
    """True in a kernel started by a Jupyter server for a notebook (JupyterLab, Notebook 7):
    the server names the session in ``JPY_SESSION_NAME``. VS Code, Colab and plain IPython
    do not, and get the panel instead."""
    return bool(os.environ.get("JPY_SESSION_NAME"))


def _display(obj: Any, raw: bool = False) -> None:
    from IPython.display import display

    display(obj, raw=raw)  # type: ignore[no-untyped-call, unused-ignore]


class LabSidebar(_Shown):
    """The lab extension's sidebar: displaying this opens it (once per display, when fresh)."""

    NOTE = ("LLM providers are in the right sidebar (the LLM icon); in JupyterLab also "
            "\"LLM: Open providers\" in the command palette.")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # a new id and time on every display: the front end opens the sidebar for new ones
        # only, so reopening a saved notebook does not pop it open again
        return {SIDEBAR_MIME: {"id": uuid.uuid4().hex, "created": round(time.time() * 1000)},
                "text/plain": self.NOTE}

    def _render(self, first: bool) -> None:
        _display(self._repr_mimebundle_(), raw=True)

    def __repr__(self) -> str:
        return "LabSidebar(opens the LLM providers sidebar of JupyterLab / Notebook 7)"


class InlineSidebar(_Shown):
    """The fallback: a StatsBar and a ConfigPanel in the output, under a one-line note."""

    def __init__(self, ws: Workspace | None, note: str) -> None:
        from ipywidgets import VBox

        from .config_panel import ConfigPanel
        from .stats_bar import StatsBar

        self.note = note
        self.stats_bar = StatsBar(ws)
        self.panel = ConfigPanel(self.stats_bar.workspace)
        self.box = VBox([self.stats_bar, self.panel])
        self.box.add_class("vj-sidebar")

    def _render(self, first: bool) -> None:
        if first:
            print(self.note)
        _display(self.box)

    def close(self) -> None:
        for child in (self.stats_bar, self.panel, self.box):
            child.close()

    def __repr__(self) -> str:
        return f"InlineSidebar({self.note!r})"


def _sidecar(ws: Workspace | None, title: str) -> Any:
    from ._sidecar import LLMSidecar

    side = LLMSidecar(ws, title=title)
    side._show()
    return side


def sidebar(ws: Workspace | None = None, *, title: str = "LLM", mode: Mode | None = None
            ) -> Any:
    """Open the LLM providers sidebar (see the module doc for where); never raises.

    ``mode`` forces one way: ``"lab"``, ``"sidecar"`` or ``"inline"``."""
    global _current
    if _current is not None and hasattr(_current, "close"):
        try:
            _current.close()
        except Exception:  # a closed kernel comm, a gone sidecar: nothing left to close
            log.debug("closing the previous sidebar failed", exc_info=True)
        _current = None
    reason = ""
    if mode in (None, "lab"):
        if mode == "lab" or (_under_jupyter_server() and lab_extension_installed()):
            lab = LabSidebar()
            lab._show()
            return lab
        reason = "the viagent lab extension is not active here"
    if mode in (None, "sidecar"):
        try:
            _current = _sidecar(ws, title)
            return _current
        except ImportError:
            reason = (f"{reason}; " if reason else "") + "sidecar is not installed"
        except Exception as exc:  # sidecar present but broken: fall through to inline
            reason = f"sidecar failed ({type(exc).__name__})"
    note = (f"{title} providers (shown here: {reason or 'inline'}; in JupyterLab or Notebook 7 "
            "the sidebar is the LLM icon on the right).")
    try:
        inline = InlineSidebar(ws, note)
    except Exception as exc:  # widgets cannot load: say what to use instead
        print(f"{title} sidebar unavailable ({type(exc).__name__}); use the Python API "
              "(ws.providers...) or install viagent_jupyter[lab].")
        return None
    inline._show()
    _current = inline
    return inline
