"""UsageStats: requests, tokens and cost per provider:model, persisted and observable."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from traitlets import Dict, HasTraits, Tuple

from .db import ChangeWatch, Database
from .schema import Usage, UsageRecord

__all__ = ["UsageStats"]

log = logging.getLogger("viagent_jupyter.usage")


def _record(row: tuple[Any, ...]) -> UsageRecord:
    provider, model, requests, prompt, completion, cost, errors, last_used, unreported = row
    return UsageRecord(
        unreported=unreported or 0,
        provider=provider,
        model=model,
        requests=requests,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=cost,
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
    totals = Dict(help="requests, prompt_tokens, completion_tokens, cost, last_used, errors")

    def __init__(self, db: Database) -> None:
        super().__init__()
        self._db = db
        self._lock = threading.RLock()
        self._watch = ChangeWatch(db, "usage_rev")
        self._records: dict[tuple[str, str], UsageRecord] = {}
        self._reload(force=True)

    def _reload(self, force: bool = False) -> bool:
        with self._lock:
            if not self._watch.changed(force):
                return False
            with self._db.read() as conn:
                rows = conn.execute(
                    "SELECT provider, model, requests, prompt_tokens, completion_tokens, cost, "
                    "errors, last_used, unreported FROM usage ORDER BY last_used DESC"
                ).fetchall()
            records = {}
            for r in rows:
                rec = _checked_record(r)
                if rec is not None:
                    records[(rec.provider, rec.model)] = rec
            self._records = records
            self._publish()
            return True

    def _publish(self) -> None:
        recs = sorted(self._records.values(),
                      key=lambda r: r.last_used.timestamp() if r.last_used else 0.0, reverse=True)
        records = tuple(_public(r) for r in recs)
        costs = [r.cost for r in recs if r.cost is not None]
        last = max((r.last_used for r in recs if r.last_used), default=None)
        totals = {
            "requests": sum(r.requests for r in recs),
            "prompt_tokens": sum(r.prompt_tokens for r in recs),
            "completion_tokens": sum(r.completion_tokens for r in recs),
            "cost": round(sum(costs), 10) if costs else None,
            "errors": sum(r.errors for r in recs),
            "last_used": last.isoformat() if last else None,
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

    def record(self, provider: str, model: str, usage: Usage | None, cost: float | None = None,
               error: bool = False) -> UsageRecord:
        """Add one request (completed, failed after it started, or cancelled) atomically:
        one write, increments done by SQLite so concurrent kernels lose nothing. A request
        whose usage the provider did not report counts in ``unreported`` (its tokens are
        unknown, not 0)."""
        unreported = int(usage is None or not usage.reported)
        prompt = (usage.prompt_tokens if usage else None) or 0
        completion = (usage.completion_tokens if usage else None) or 0
        now = time.time()
        with self._lock:
            with self._db.write() as conn:
                conn.execute(
                    "INSERT INTO usage (provider, model, requests, prompt_tokens, "
                    "completion_tokens, cost, errors, last_used, unreported) "
                    "VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(provider, model) DO UPDATE SET requests = requests + 1, "
                    "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                    "completion_tokens = completion_tokens + excluded.completion_tokens, "
                    "cost = CASE WHEN excluded.cost IS NULL THEN cost "
                    "ELSE COALESCE(cost, 0) + excluded.cost END, "
                    "errors = errors + excluded.errors, last_used = excluded.last_used, "
                    "unreported = unreported + excluded.unreported",
                    (provider, model, prompt, completion, cost, int(error), now, unreported),
                )
                row = conn.execute(
                    "SELECT provider, model, requests, prompt_tokens, completion_tokens, cost, "
                    "errors, last_used, unreported FROM usage WHERE provider = ? AND model = ?",
                    (provider, model),
                ).fetchone()
                self._db.bump(conn, "usage_rev")
            rec = _checked_record(row) or UsageRecord(provider=provider, model=model)
            if not self._reload():
                self._watch.saw_own_write()
                records = dict(self._records)
                records[(provider, model)] = rec
                self._records = records
                self._publish()
            return rec

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
                if provider is None:
                    conn.execute("DELETE FROM usage")
                else:
                    conn.execute("DELETE FROM usage WHERE provider = ?", (provider,))
                self._db.bump(conn, "usage_rev")
            self._reload(force=True)
