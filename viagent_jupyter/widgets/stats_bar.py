"""StatsBar: one line of usage — active provider · model · requests · tokens · cost · last used.

It observes the workspace's ``UsageStats`` and ``ProviderStore`` traits, so every chat (from
``%%llm``, the Python API, a panel's Test button, or another kernel) shows at once. Clicking
the line (or Enter/Space) expands a table per provider:model; that is view state, not synced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from traitlets import Dict, List

from ._base import ViewWidget, asset

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["StatsBar"]


class StatsBar(ViewWidget):
    """A compact, live usage line (``vj.stats_bar()``)."""

    _esm = asset("stats_bar.js")
    _css = asset("widgets.css")

    records = List(Dict(), help="One dict per provider:model, most recent first.").tag(sync=True)
    totals = Dict(help="requests, prompt_tokens, completion_tokens, cost, errors, last_used, "
                       "today_cost, today_requests, budget ({usd, spent, period} or None)"
                  ).tag(sync=True)
    active = Dict(help="The selected provider: {id, label (display label), model}; or empty."
                  ).tag(sync=True)

    def __init__(self, ws: Workspace | None = None, **kwargs: Any) -> None:
        super().__init__(ws, **kwargs)
        stats = self._ws.stats
        self._sync_stats()
        self._sync_active()
        self._subscribe(stats, ["records", "totals"], self._sync_stats)
        self._subscribe(self._ws.providers, ["providers", "selected"], self._sync_active)

    def _sync_stats(self) -> None:
        stats = self._ws.stats
        totals = dict(stats.totals)
        totals["budget"] = self._ws.budgets.tightest()  # spent today vs the nearest limit
        with self.hold_sync():
            self.records = list(stats.records)
            self.totals = totals

    def _sync_active(self) -> None:
        store = self._ws.providers
        sel = store.selected
        found = next((p for p in store.providers if p["id"] == sel), None)
        if found is None:
            self.active = {}
        else:
            from ..schema import display_label

            self.active = {"id": found["id"],
                           "label": display_label(found["name"], found["provider_type"]),
                           "model": found.get("default_model")}
