"""UsageStats: requests, tokens and cost per provider:model, persisted and observable.

Money is kept as whole 1e-12 USD (``cost_pusd``) so that sums are exact whatever the number
of calls; ``UsageRecord.cost`` is that sum in USD as a ``float`` (a number to format), and
:meth:`UsageStats.total` adds per-day rows (UTC days) for "today", "this month", "all time".
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from traitlets import Dict, HasTraits, Tuple

from .db import ChangeWatch, Database
from .schema import Usage, UsageRecord

__all__ = ["UsageStats"]

log = logging.getLogger("viagent_jupyter.usage")


_COLUMNS = ("provider, model, requests, prompt_tokens, completion_tokens, cost_pusd, errors, "
            "last_used, unreported")


def utc_day(ts: float | None = None) -> str:
    """The UTC calendar day of ``ts`` (default: now), as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).date() \
        .isoformat()


def _usd(pusd: int | None) -> float | None:
    return None if pusd is None else float(Decimal(pusd).scaleb(-12))


def _pusd(cost: float | Decimal | None) -> int | None:
    """USD → whole 1e-12 USD; a float goes through its shortest repr (no binary noise)."""
    if cost is None:
        return None
    from .pricing import to_pusd

    return to_pusd(cost if isinstance(cost, Decimal) else Decimal(repr(float(cost))))


def _record(row: tuple[Any, ...]) -> UsageRecord:
    provider, model, requests, prompt, completion, cost, errors, last_used, unreported = row
    if cost is not None and type(cost) is not int:
        raise TypeError("cost is not an integer")
    return UsageRecord(
        unreported=unreported or 0,
        provider=provider,
        model=model,
        requests=requests,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=_usd(cost),
        errors=errors,
        last_used=None if last_used is None else datetime.fromtimestamp(last_used, timezone.utc),
    )


def _checked_record(row: tuple[Any, ...]) -> UsageRecord | None:
    """The record of a row, or ``None`` (logged) when the row is damaged."""
    try:
        return _record(row)
    except (ValueError, TypeError, OverflowError, OSError):  # incl. pydantic's errors
        log.warning("a usage row (%r, %r) is damaged and was skipped", row[0], row[1])
        return None


def _public(rec: UsageRecord) -> dict[str, Any]:
    return rec.model_dump(mode="json")


class UsageStats(HasTraits):
    """Counters shared by every kernel on the workspace home.

    ``records`` is a tuple of plain dicts (one per provider:model, most recent first) and
    ``totals`` a dict of the sums; both are reassigned on every change, never edited."""

    records = Tuple(help="One dict per provider:model, most recently used first.")
    totals = Dict(help="requests, prompt_tokens, completion_tokens, cost, last_used, errors, "
                       "today_cost, today_requests (UTC day)")

    def __init__(self, db: Database) -> None:
        super().__init__()
        self._db = db
        self._lock = threading.RLock()
        self._watch = ChangeWatch(db, "usage_rev")
        self._records: dict[tuple[str, str], UsageRecord] = {}
        self._money: tuple[int | None, int | None, int] = (None, None, 0)
        self._reload(force=True)

    def _reload(self, force: bool = False) -> bool:
        with self._lock:
            if not self._watch.changed(force):
                return False
            with self._db.read() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM usage ORDER BY last_used DESC"
                ).fetchall()
                self._money = self._sums(conn)
            records = {}
            for r in rows:
                rec = _checked_record(r)
                if rec is not None:
                    records[(rec.provider, rec.model)] = rec
            self._records = records
            self._publish()
            return True

    @staticmethod
    def _sums(conn: sqlite3.Connection) -> tuple[int | None, int | None, int]:
        """Exact money for the totals: all-time cost, today's cost and requests (UTC)."""
        total = conn.execute("SELECT SUM(cost_pusd), COUNT(cost_pusd) FROM usage").fetchone()
        today = conn.execute("SELECT SUM(cost_pusd), COUNT(cost_pusd), SUM(requests) "
                             "FROM usage_daily WHERE day = ?", (utc_day(),)).fetchone()
        return (total[0] if total[1] else None, today[0] if today[1] else None,
                int(today[2] or 0))

    def _publish(self) -> None:
        recs = sorted(self._records.values(),
                      key=lambda r: r.last_used.timestamp() if r.last_used else 0.0, reverse=True)
        records = tuple(_public(r) for r in recs)
        last = max((r.last_used for r in recs if r.last_used), default=None)
        cost, today_cost, today_requests = self._money
        totals = {
            "requests": sum(r.requests for r in recs),
            "prompt_tokens": sum(r.prompt_tokens for r in recs),
            "completion_tokens": sum(r.completion_tokens for r in recs),
            "cost": _usd(cost),
            "errors": sum(r.errors for r in recs),
            "last_used": last.isoformat() if last else None,
            "today_cost": _usd(today_cost),
            "today_requests": today_requests,
            "unreported": sum(r.unreported for r in recs),
        }
        with self.hold_trait_notifications():
            if records != self.records:
                self.records = records
            if totals != self.totals:
                self.totals = totals

    def refresh(self) -> bool:
        """Pick up other processes' usage now (automatic inside a kernel)."""
        return self._reload()

    def record(self, provider: str, model: str, usage: Usage | None,
               cost: float | Decimal | None = None, error: bool = False,
               hold: int | None = None) -> UsageRecord:
        """Add one request (completed, failed after it started, or cancelled) atomically:
        one write, increments done by SQLite so concurrent kernels lose nothing. ``hold``:
        the budget reservation this call settles (released in the same transaction). A
        request whose usage the provider did not report counts in ``unreported`` (its tokens
        are unknown, not 0)."""
        unreported = int(usage is None or not usage.reported)
        prompt = (usage.prompt_tokens if usage else None) or 0
        completion = (usage.completion_tokens if usage else None) or 0
        pusd = _pusd(cost)
        now = time.time()
        upsert = ("requests = requests + 1, "
                  "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                  "completion_tokens = completion_tokens + excluded.completion_tokens, "
                  "cost_pusd = CASE WHEN excluded.cost_pusd IS NULL THEN cost_pusd "
                  "ELSE COALESCE(cost_pusd, 0) + excluded.cost_pusd END, "
                  "errors = errors + excluded.errors, last_used = excluded.last_used")
        with self._lock:
            with self._db.write() as conn:
                conn.execute(
                    "INSERT INTO usage (provider, model, requests, prompt_tokens, "
                    "completion_tokens, cost_pusd, errors, last_used, unreported) "
                    "VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?) "
                    f"ON CONFLICT(provider, model) DO UPDATE SET {upsert}, "
                    "unreported = unreported + excluded.unreported",
                    (provider, model, prompt, completion, pusd, int(error), now, unreported),
                )
                conn.execute(
                    "INSERT INTO usage_daily (day, provider, model, requests, prompt_tokens, "
                    "completion_tokens, cost_pusd, errors, last_used) "
                    "VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?) "
                    f"ON CONFLICT(day, provider, model) DO UPDATE SET {upsert}",
                    (utc_day(now), provider, model, prompt, completion, pusd, int(error), now),
                )
                if hold is not None:
                    conn.execute("DELETE FROM budget_holds WHERE id = ?", (hold,))
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM usage WHERE provider = ? AND model = ?",
                    (provider, model),
                ).fetchone()
                money = self._sums(conn)
                self._db.bump(conn, "usage_rev")
            rec = _checked_record(row) or UsageRecord(provider=provider, model=model)
            if not self._reload():  # only this write since the last look: patch, not reload
                self._watch.saw_own_write()
                records = dict(self._records)
                records[(provider, model)] = rec
                self._records, self._money = records, money
                self._publish()
            return rec

    def total(self, since: date | datetime | str | None = None, provider: str | None = None,
              model: str | None = None) -> UsageRecord:
        """The sums since a UTC day (``date``, ``datetime`` or ``"YYYY-MM-DD"``; ``None``: all
        time), optionally of one provider and/or model. ``provider``/``model`` of the result
        are ``"*"`` where not narrowed."""
        if isinstance(since, datetime):
            since = since.astimezone(timezone.utc).date() if since.tzinfo else since.date()
        if isinstance(since, str):
            since = date.fromisoformat(since)
        where, args = ["1"], []
        if since is not None:
            where.append("day >= ?")
            args.append(since.isoformat())
        if provider is not None:
            where.append("provider = ?")
            args.append(provider)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), "
                "SUM(cost_pusd), COUNT(cost_pusd), SUM(errors), MAX(last_used) "
                f"FROM usage_daily WHERE {' AND '.join(where)}", args).fetchone()
        requests, prompt, completion, cost, costed, errors, last = row
        return UsageRecord(
            provider=provider or "*", model=model or "*", requests=requests or 0,
            prompt_tokens=prompt or 0, completion_tokens=completion or 0,
            cost=_usd(cost) if costed else None, errors=errors or 0,
            last_used=None if last is None else datetime.fromtimestamp(last, timezone.utc))

    def get(self, provider: str, model: str) -> UsageRecord:
        """Counters of one provider:model (zeros when never used)."""
        self._reload()
        return self._records.get((provider, model)) or UsageRecord(provider=provider, model=model)

    def all(self) -> list[UsageRecord]:
        self._reload()
        return sorted(self._records.values(), key=lambda r: (r.provider, r.model))

    def reset(self, provider: str | None = None) -> None:
        """Forget the counters (of one provider, or all)."""
        with self._lock:
            with self._db.write() as conn:
                for table in ("usage", "usage_daily"):
                    if provider is None:
                        conn.execute(f"DELETE FROM {table}")
                    else:
                        conn.execute(f"DELETE FROM {table} WHERE provider = ?", (provider,))
                self._db.bump(conn, "usage_rev")
            self._reload(force=True)
