"""The ConfigPanel's Budgets section: the synced rows and the two requests.

``budget_rows`` is what the ``budgets`` trait holds (plain JSON, no secret): one row per budget
in force (``ws.budgets.status()``), amounts as strings of USD so no float drift reaches the
front end. ``budget_request`` answers ``budget_set`` / ``budget_remove`` with the rules of
:mod:`viagent_jupyter.budgets` itself (a bad amount is its ``ConfigValidationError``, an amount
above the administrator's limit its ``PolicyError``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ConfigValidationError

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["BUDGET_OPS", "budget_request", "budget_rows"]

BUDGET_OPS = ("budget_set", "budget_remove")


def _usd(value: Decimal) -> str:
    """``"5.00"``; a spend under a cent keeps four places (``"0.0012"``)."""
    return f"{value:.4f}" if Decimal(0) < value < Decimal("0.01") else f"{value:.2f}"


def budget_rows(ws: Workspace) -> list[dict[str, Any]]:
    return [{"period": s["period"], "provider": s["provider"], "usd": _usd(s["usd"]),
             "spent": _usd(s["spent"]), "soft": s["soft"], "strict": s["strict"],
             "source": s["source"], "since": s["since"],
             "fraction": float(s["spent"] / s["usd"]) if s["usd"] else 1.0}
            for s in ws.budgets.status()]


def _provider(ws: Workspace, raw: Any) -> str | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ConfigValidationError("Invalid budget: provider must be a provider id.",
                                    [{"field": "provider", "message": "must be a provider id"}])
    return ws.providers.get(raw).id  # PROVIDER_NOT_FOUND, one line


def budget_request(ws: Workspace, op: str, content: dict[str, Any]) -> dict[str, Any]:
    """Run ``op``; returns the reply's result (errors raise, typed)."""
    provider = _provider(ws, content.get("provider"))
    period = content.get("period")
    if op == "budget_set":
        b = ws.budgets.set(content.get("usd", ""), period=str(period), provider=provider,
                           soft=content.get("soft", 0.8))
        return {"period": b.period, "provider": b.provider, "usd": _usd(b.usd)}
    if not ws.budgets.remove(str(period), provider):
        scope = f"provider '{provider}'" if provider else "all providers"
        raise ConfigValidationError(
            f"Invalid budget: there is no {period} budget for {scope} that you set "
            "(one from your config or your administrator is removed there).",
            [{"field": "period", "message": "no such budget of yours"}])
    return {"removed": True, "period": period, "provider": provider}
