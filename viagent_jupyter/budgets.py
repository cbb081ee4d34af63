"""Budgets: spending limits per workspace home (and per provider), checked before a request.

``ws.budgets.set(5, period="day")`` caps the spend of every kernel using the home at $5 per
UTC day (``"month"``: per UTC calendar month, ``"total"``: ever); ``provider="oa"`` caps one
provider. Spend is the cost recorded in the usage stats (``usage_daily``) plus the *holds* of
the calls in flight.

How a call is admitted (:meth:`Budgets.admit`), in one ``BEGIN IMMEDIATE`` transaction, so
kernels queue instead of racing:

1. for each budget that applies: ``spent = settled + held``; ``spent >= limit`` refuses the
   call with :class:`~viagent_jupyter.errors.BudgetExceededError` — before any request;
2. a ``strict`` budget also refuses a call whose worst case (its prompt bound + ``max_tokens``
   × the output price) does not fit in what is left;
3. otherwise the call *holds* its estimate (prompt bound + ``max_tokens``, else
   :attr:`Budgets.default_output_tokens`, × the output price) until it ends; recording its
   usage releases the hold in the same transaction.

So the spend passes a limit by at most the cost of the one call admitted last, plus whatever
a call spent beyond its hold (an answer longer than ``default_output_tokens`` when no
``max_tokens`` was set). A call whose price is unknown holds nothing, counts nothing, and is
refused by a strict budget. Holds of a kernel that died expire after :attr:`Budgets.hold_ttl`.

The soft threshold (``soft=0.8``: 80 %) warns once per budget and period, per kernel, with a
:class:`BudgetWarning`.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from traitlets import Float, Int, List, default
from traitlets.config import Configurable

from .db import ChangeWatch
from .errors import BudgetExceededError, ConfigValidationError, ViagentError
from .pricing import from_pusd, to_pusd

if TYPE_CHECKING:
    import sqlite3

    from .adapters.base import ChatRequest
    from .pricing import Price

__all__ = ["Budget", "BudgetWarning", "Budgets", "prompt_bound"]

log = logging.getLogger("viagent_jupyter.budgets")

PERIODS = ("day", "month", "total")
_PERIOD_WORDS = {"day": "daily", "month": "monthly", "total": "total"}


class BudgetWarning(UserWarning):
    """Spending reached a budget's soft threshold."""


@dataclass(frozen=True)
class Budget:
    """One limit: ``usd`` per ``period`` (``day``/``month``/``total``, UTC) for ``provider``
    (``None``: every provider of the home)."""

    usd: Decimal
    period: str = "day"
    provider: str | None = None
    soft: float = 0.8
    strict: bool = False
    source: str = "user"  # user (ws.budgets.set / %llm budget) | config | admin (viagent.toml)

    def window(self, now: float) -> str | None:
        """The first UTC day counted (``YYYY-MM-DD``), or ``None`` for ``total``."""
        day = datetime.fromtimestamp(now, timezone.utc).date()
        if self.period == "day":
            return day.isoformat()
        if self.period == "month":
            return day.replace(day=1).isoformat()
        return None

    @property
    def label(self) -> str:
        who = f" for provider '{self.provider}'" if self.provider else ""
        return f"{_PERIOD_WORDS[self.period]} limit of ${self.usd:.2f}{who}"

    def how_to_raise(self) -> str:
        if self.source == "admin":
            return "it is your administrator's limit (viagent.toml [budgets]): ask them to raise it"
        prov = f", provider='{self.provider}'" if self.provider else ""
        cli = f" --provider {self.provider}" if self.provider else ""
        return (f"raise it with ws.budgets.set(USD, period='{self.period}'{prov}) or "
                f"%llm budget set USD --period {self.period}{cli}")


def _validated(usd: Any, period: str, provider: str | None, soft: Any, strict: Any,
               source: str = "user") -> Budget:
    errors = []
    try:
        amount = Decimal(repr(usd)) if isinstance(usd, float) else Decimal(str(usd))
        if isinstance(usd, bool) or not amount.is_finite() or amount < 0:
            raise ValueError
    except (ValueError, ArithmeticError):
        errors.append({"field": "usd", "message": "must be a number of USD >= 0"})
        amount = Decimal(0)
    if period not in PERIODS:
        errors.append({"field": "period", "message": "must be day, month or total"})
    try:
        softness = float(soft)
        if not 0 < softness <= 1:
            raise ValueError
    except (TypeError, ValueError):
        errors.append({"field": "soft", "message": "must be a fraction in (0, 1]"})
        softness = 0.8
    if provider is not None and (not isinstance(provider, str) or not provider):
        errors.append({"field": "provider", "message": "must be a provider id or None"})
    if errors:
        summary = "; ".join(f"{e['field']} {e['message']}" for e in errors)
        raise ConfigValidationError(f"Invalid budget: {summary}.", errors)
    return Budget(amount, period, provider, softness, bool(strict), source)


def prompt_bound(request: ChatRequest) -> int:
    """An upper bound on the prompt's tokens: its UTF-8 bytes (a BPE/SentencePiece token
    covers at least one byte) plus 16 per message and 16 for the request's framing."""
    size = len((request.system or "").encode("utf-8"))
    for m in request.messages:
        content = m.get("content")
        size += len(content.encode("utf-8")) if isinstance(content, str) else len(str(content))
    return size + 16 * (len(request.messages) + 1) + 16


class Budgets(Configurable):
    """``ws.budgets``: spending limits shared by every kernel of the workspace home."""

    limits: List[dict[str, Any]] = List(
        config=True,
        help="Budgets from ipython_config.py: [{'usd': 5, 'period': 'day', 'provider': None, "
             "'soft': 0.8, 'strict': False}, ...]. ws.budgets.set(...) overrides the same "
             "period+provider.",
    )
    default_output_tokens = Int(
        4096, config=True,
        help="Output tokens a call without max_tokens holds against a budget while in flight.",
    )
    hold_ttl = Float(
        config=True,
        help="Seconds after which the hold of a call that never ended (its kernel died) "
             "stops counting (default: 1800, or the chat deadline + 60 s when longer).",
    )

    revision = Int(0, help="Advances whenever the list of budgets changed (here or in "
                           "another kernel, seen on refresh): widgets observe it.")

    @default("hold_ttl")
    def _hold_ttl_default(self) -> float:
        from .chat import chat_deadline

        return max(1800.0, chat_deadline() + 60.0)

    def __init__(self, ws: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ws = ws
        self._db = ws.db
        self._lock = threading.RLock()
        self._watch = ChangeWatch(self._db, "budgets_rev")
        self._stored: dict[tuple[str, str | None], Budget] = {}
        self._warned: set[tuple[str, str | None, str | None]] = set()

    # -- the list ----------------------------------------------------------------------------
    def _reload(self, force: bool = False) -> None:
        if not self._watch.changed(force):
            return
        with self._db.read() as conn:
            rows = conn.execute("SELECT period, provider, limit_pusd, soft, strict "
                                "FROM budgets").fetchall()
        stored = {}
        for period, provider, limit, soft, strict in rows:
            try:
                b = _validated(from_pusd(int(limit)), period, provider or None, soft, strict)
            except (ConfigValidationError, TypeError, ValueError):
                log.warning("a stored budget (%r, %r) is damaged and was skipped", period,
                            provider)
                continue
            stored[(b.period, b.provider)] = b
        self._stored = stored
        self.revision += 1

    def refresh(self) -> bool:
        """Reload the budgets when another process changed them; True when they changed."""
        before = self.revision
        with self._lock:
            self._reload()
        return self.revision != before

    def _configured(self) -> dict[tuple[str, str | None], Budget]:
        out = {}
        for item in self.limits:
            try:
                if not isinstance(item, dict):
                    raise ConfigValidationError("not a dict", [])
                b = _validated(item.get("usd"), item.get("period", "day"),
                               item.get("provider"), item.get("soft", 0.8),
                               item.get("strict", False), source="config")
            except ConfigValidationError as exc:
                log.warning("c.Budgets.limits entry %r is ignored: %s", item, exc)
                continue
            out[(b.period, b.provider)] = b
        return out

    def _admin(self) -> dict[tuple[str, str | None], Budget]:
        """The administrator's limits (``viagent.toml`` ``[budgets]``): they always apply."""
        admin = getattr(self._ws, "admin", None)
        if admin is None:
            return {}
        out = {}
        for (provider, period), usd in admin.budget_limits().items():
            try:
                b = _validated(usd, period, provider, 0.8, False, source="admin")
            except ConfigValidationError:
                continue
            out[(b.period, b.provider)] = b
        return out

    def list(self) -> list[Budget]:
        """Every budget in force: yours over the configured ones of the same key, and the
        administrator's where lower (every one is checked, so the lowest binds)."""
        with self._lock:
            self._reload()
            merged = {**self._configured(), **self._stored}
        for key, b in self._admin().items():
            if key not in merged or b.usd <= merged[key].usd:
                merged[key] = b
        return sorted(merged.values(), key=lambda b: (b.provider or "", PERIODS.index(b.period)))

    def set(self, usd: float | int | str | Decimal, period: str = "day",
            provider: str | None = None, soft: float = 0.8, strict: bool = False) -> Budget:
        """Cap spending at ``usd`` per ``period`` (``day``/``month``/``total``, UTC) for
        ``provider`` (``None``: all). ``soft``: the fraction that warns; ``strict``: also
        refuse a call whose worst case does not fit in what is left."""
        budget = _validated(usd, period, provider, soft, strict)
        admin = getattr(self._ws, "admin", None)
        if admin is not None and period in ("day", "month"):  # PolicyError above the admin's
            admin.check_user_budget(float(budget.usd), period, provider)
        with self._lock:
            with self._db.write() as conn:
                conn.execute("INSERT OR REPLACE INTO budgets VALUES (?, ?, ?, ?, ?, ?)",
                             (period, provider or "", to_pusd(budget.usd), budget.soft,
                              int(budget.strict), time.time()))
                self._db.bump(conn, "budgets_rev")
            self._warned = {w for w in self._warned if w[:2] != (period, provider)}
            self._reload(force=True)
        return budget

    def remove(self, period: str, provider: str | None = None) -> bool:
        """Remove a budget set with :meth:`set`; True when there was one."""
        with self._lock:
            with self._db.write() as conn:
                cur = conn.execute("DELETE FROM budgets WHERE period = ? AND provider = ?",
                                   (period, provider or ""))
                self._db.bump(conn, "budgets_rev")
            self._reload(force=True)
        return bool(cur.rowcount > 0)

    # -- spend -------------------------------------------------------------------------------
    def _spent(self, conn: sqlite3.Connection, b: Budget, now: float) -> int:
        where, args = ["1"], []
        start = b.window(now)
        if start is not None:
            where.append("day >= ?")
            args.append(start)
        if b.provider:
            where.append("provider = ?")
            args.append(b.provider)
        settled = conn.execute(f"SELECT COALESCE(SUM(cost_pusd), 0) FROM usage_daily "
                               f"WHERE {' AND '.join(where)}", args).fetchone()[0]
        if b.provider:
            held = conn.execute("SELECT COALESCE(SUM(amount_pusd), 0) FROM budget_holds "
                                "WHERE provider = ? AND created_at >= ?",
                                (b.provider, now - self.hold_ttl)).fetchone()[0]
        else:
            held = conn.execute("SELECT COALESCE(SUM(amount_pusd), 0) FROM budget_holds "
                                "WHERE created_at >= ?", (now - self.hold_ttl,)).fetchone()[0]
        return int(settled) + int(held)

    def status(self) -> builtins.list[dict[str, Any]]:
        """Each budget with what is spent (settled + held) in its current period."""
        now = time.time()
        budgets = self.list()
        out = []
        with self._db.read() as conn:
            for b in budgets:
                spent = from_pusd(self._spent(conn, b, now))
                out.append({"period": b.period, "provider": b.provider, "usd": b.usd,
                            "spent": spent, "remaining": max(b.usd - spent, Decimal(0)),
                            "soft": b.soft, "strict": b.strict, "source": b.source,
                            "since": b.window(now)})
        return out

    def tightest(self) -> dict[str, Any] | None:
        """The all-provider budget nearest its limit, as plain JSON numbers (for widgets):
        ``{"usd", "spent", "period"}``, or ``None`` without one."""
        try:
            rows = [s for s in self.status() if s["provider"] is None]
        except ViagentError:
            return None
        if not rows:
            return None
        best = max(rows, key=lambda s: s["spent"] / s["usd"] if s["usd"] else Decimal(1))
        return {"usd": float(best["usd"]), "spent": float(best["spent"]),
                "period": best["period"]}

    # -- the check before a request ----------------------------------------------------------
    def admit(self, request: ChatRequest, price: Price | None) -> int | None:
        """Refuse the call (:class:`BudgetExceededError`) or hold its estimate; returns the
        hold's id (``None`` when no budget applies or the price is unknown)."""
        budgets = [b for b in self.list() if b.provider in (None, request.provider_id)]
        if not budgets:
            return None
        hold = worst = None
        if price is not None:
            prompt = Decimal(prompt_bound(request)) * price.input
            max_tokens = request.settings.get("max_tokens")
            out_tokens = max_tokens if isinstance(max_tokens, int) else self.default_output_tokens
            hold = to_pusd(prompt + out_tokens * price.output)
            worst = hold if isinstance(max_tokens, int) else None
        now = time.time()
        crossed: builtins.list[tuple[Budget, int]] = []
        with self._lock, self._db.write() as conn:
            conn.execute("DELETE FROM budget_holds WHERE created_at < ?", (now - self.hold_ttl,))
            for b in budgets:
                limit = to_pusd(b.usd)
                spent = self._spent(conn, b, now)
                if spent >= limit:
                    raise BudgetExceededError(
                        f"Budget exceeded: the {b.label} is spent (${from_pusd(spent):.4f} "
                        f"since {b.window(now) or 'the start'}); {b.how_to_raise()}.",
                        budget=b, spent=from_pusd(spent))
                if b.strict:
                    if worst is None:
                        why = ("its price is unknown (set one with ws.pricing.set)"
                               if price is None else "it has no max_tokens")
                        raise BudgetExceededError(
                            f"Budget (strict) refuses the call: {why}, so its worst case "
                            f"cannot be checked against the {b.label}; {b.how_to_raise()}.",
                            budget=b, spent=from_pusd(spent))
                    if spent + worst > limit:
                        raise BudgetExceededError(
                            f"Budget (strict) refuses the call: its worst case "
                            f"${from_pusd(worst):.4f} exceeds what is left of the {b.label} "
                            f"(${from_pusd(limit - spent):.4f}); lower max_tokens or "
                            f"{b.how_to_raise()}.", budget=b, spent=from_pusd(spent))
                if spent >= limit * b.soft:
                    crossed.append((b, spent))
            hold_id = None
            if hold is not None:
                cur = conn.execute("INSERT INTO budget_holds (provider, amount_pusd, "
                                   "created_at) VALUES (?, ?, ?)",
                                   (request.provider_id, hold, now))
                hold_id = cur.lastrowid
        for b, spent in crossed:
            self._warn_once(b, spent, now)
        return hold_id

    def release(self, hold: int) -> None:
        """Drop a hold without recording spend (the call never reached the provider)."""
        with self._db.write() as conn:
            conn.execute("DELETE FROM budget_holds WHERE id = ?", (hold,))

    def _warn_once(self, b: Budget, spent: int, now: float) -> None:
        key = (b.period, b.provider, b.window(now))
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        pct = Decimal(spent) / Decimal(to_pusd(b.usd)) * 100 if b.usd else Decimal(100)
        message = (f"Budget: {pct:.0f}% of the {b.label} is spent (${from_pusd(spent):.4f}); "
                   f"calls stop at 100%. {b.how_to_raise().capitalize()}.")
        log.warning("%s", message)
        warnings.warn(message, BudgetWarning, stacklevel=4)
