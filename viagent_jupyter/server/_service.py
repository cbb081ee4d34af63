"""The server extension's view of one workspace: operations, snapshots and change notification.

Nothing here knows about HTTP: the handlers (``handlers.py``) parse requests and call these
methods; everything blocking (SQLite writes, model lists, the Test chat) runs on a small thread
pool so the server's event loop stays free. There is no second store: this is the same
``Workspace`` (db, vault, registry, stats) a kernel uses on the same home.

Change notification: a poll on the server's loop (every ``POLL_INTERVAL_S``) asks the database
whether anything changed (``PRAGMA data_version`` through the store's and the stats'
``ChangeWatch``); the store's and the stats' traits then change, and their observers advance
:attr:`ChangeHub.version` and wake every waiting long-poll request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigValidationError, ViagentError, scrub

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["POLL_INTERVAL_S", "ChangeHub", "Service"]

log = logging.getLogger("viagent_jupyter.server")

POLL_INTERVAL_S = 0.2
T = TypeVar("T")


class ChangeHub:
    """A version counter and the waiters of the next change (lives on one event loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.version = 1
        self._event = asyncio.Event()

    def bump(self) -> None:
        """Advance the version and wake the waiters (call on the hub's loop)."""
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def bump_threadsafe(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.bump()
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.bump)

    async def wait(self, since: int, timeout: float) -> int:
        """The version once it differs from ``since`` (or after ``timeout`` seconds)."""
        if self.version == since:
            event = self._event
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        return self.version


def _today_utc() -> date:
    """Per-day usage is kept by UTC day (usage.py), so "today" is the UTC day."""
    return datetime.now(timezone.utc).date()


def _as_dict(value: Any) -> dict[str, Any]:
    if hasattr(value, "model_dump"):
        return dict(value.model_dump(mode="json"))
    return dict(value)


class Service:
    """Operations over the workspace of the server's home, for the REST handlers."""

    def __init__(self, ws_factory: Callable[[], Workspace] | None = None) -> None:
        self._factory = ws_factory
        self._ws: Workspace | None = None
        self._hub: ChangeHub | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="viagent-rest")
        self._poll: asyncio.TimerHandle | None = None
        self._closed = False

    # -- lifetime -------------------------------------------------------------------------------
    @property
    def ws(self) -> Workspace:
        """The workspace, opened on first use (a damaged db fails a request, not the server)."""
        if self._ws is None:
            if self._factory is not None:
                ws = self._factory()
            else:
                from .._workspace import Workspace

                ws = Workspace()
            self._ws = ws
            if self._hub is not None:
                self._observe(ws)
        return self._ws

    def hub(self) -> ChangeHub:
        """The change hub of the running loop (started on first use, with the poll)."""
        if self._hub is None:
            loop = asyncio.get_running_loop()
            self._hub = ChangeHub(loop)
            if self._ws is not None:
                self._observe(self._ws)
            self._poll = loop.call_later(POLL_INTERVAL_S, self._tick)
        return self._hub

    def _observe(self, ws: Workspace) -> None:
        def changed(_change: Any) -> None:
            if self._hub is not None:
                self._hub.bump_threadsafe()

        ws.providers.observe(changed, names=["providers", "selected"])
        ws.stats.observe(changed, names=["records", "totals"])

    def _tick(self) -> None:
        if self._closed or self._hub is None:
            return
        try:
            if self._ws is not None:
                self._ws.poll()  # traits change → observers bump the hub
        except Exception:  # a poll never kills the loop; the next tick retries
            log.debug("viagent: background refresh failed", exc_info=True)
        self._poll = self._hub.loop.call_later(POLL_INTERVAL_S, self._tick)

    def close(self) -> None:
        self._closed = True
        if self._poll is not None:
            self._poll.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._ws is not None:
            self._ws.close()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a blocking call on the pool."""
        self.hub()
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    # -- reading --------------------------------------------------------------------------------
    def usage(self) -> dict[str, Any]:
        """The usage summary. ``period`` says what the totals cover: ``today`` (the UTC day)
        where the stats can total a period (``UsageStats.total(since=...)``), else ``all``;
        ``budget`` is the all-provider budget nearest its limit (or None)."""
        stats = self.ws.stats
        stats.refresh()
        total = getattr(stats, "total", None)  # per-day stats (absent in older homes' code)
        period, totals = "all", dict(stats.totals)
        if callable(total):
            try:
                totals = _as_dict(total(since=_today_utc()))
                period = "today"
            except (TypeError, ValueError):
                log.debug("viagent: stats.total(since=...) unusable", exc_info=True)
        budget = None
        budgets = getattr(self.ws, "budgets", None)
        if budgets is not None and hasattr(budgets, "tightest"):
            budget = budgets.tightest()
        return {"period": period, "totals": totals, "records": list(stats.records),
                "budget": budget}

    def snapshot(self) -> dict[str, Any]:
        ws = self.ws
        ws.providers.refresh()
        version = self._hub.version if self._hub is not None else 0
        return {
            "version": version,
            "home": str(ws.home),
            "providers": list(ws.providers.providers),
            "selected": ws.providers.selected,
            "damaged": sorted(ws.providers.load_errors),
            "usage": self.usage(),
            "features": self.features(),
        }

    def features(self) -> dict[str, bool]:
        """What optional parts this workspace has (``pricing`` and ``budgets`` arrive later)."""
        ws = self.ws
        return {"pricing": hasattr(ws, "pricing"), "budgets": hasattr(ws, "budgets"),
                "usage_today": callable(getattr(ws.stats, "total", None))}

    def schema(self) -> dict[str, Any]:
        from .._forms import form_schema

        return form_schema()

    def provider(self, pid: str) -> dict[str, Any]:
        return self.ws.providers.get(pid).to_public_dict()

    # -- writing --------------------------------------------------------------------------------
    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        from .._forms import config_fields

        fields = config_fields(body.get("fields"), creating=True)
        api_key = _key_of(body, required=False)
        cfg = self.ws.providers.create(**fields, api_key=api_key,
                                       persist_key=body.get("persist_key", True) is not False)
        return cfg.to_public_dict()

    def update(self, pid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        from .._forms import config_fields

        fields = config_fields(body.get("fields", {}), creating=False)
        expected = body.get("expected_version")
        if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
            raise ConfigValidationError(
                "Invalid request: expected_version must be an integer.",
                [{"field": "expected_version", "message": "must be an integer"}])
        cfg = self.ws.providers.update(pid, expected_version=expected, **fields)
        return cfg.to_public_dict()

    def set_key(self, pid: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = _key_of(body, required=True)
        assert key is not None
        cfg = self.ws.providers.set_key(pid, key,
                                        persist=body.get("persist_key", True) is not False)
        return cfg.to_public_dict()

    def remove_key(self, pid: str) -> dict[str, Any]:
        return self.ws.providers.update(pid, api_key=None).to_public_dict()

    def delete(self, pid: str) -> dict[str, Any]:
        self.ws.providers.delete(pid)
        return {"deleted": pid}

    def select(self, body: Mapping[str, Any]) -> dict[str, Any]:
        pid = body.get("provider")
        if pid is not None and not isinstance(pid, str):
            raise ConfigValidationError("Invalid request: provider must be an id or null.",
                                        [{"field": "provider", "message": "must be a string"}])
        self.ws.providers.select(pid)
        return {"selected": self.ws.providers.selected}

    # -- the network (run on the pool) ----------------------------------------------------------
    def models(self, pid: str, refresh: bool) -> dict[str, Any]:
        from .._forms import MAX_MODELS, model_entry, model_list_status

        self.ws.providers.get(pid)  # a clear PROVIDER_NOT_FOUND before any work
        # staleness comes back as data (.warning): warnings.catch_warnings is not thread-safe
        result = self.ws.registry.models(pid, refresh=refresh, warn=False)
        return {**model_list_status(pid, result, refresh),
                "models": [model_entry(m) for m in result[:MAX_MODELS]],
                "warning": result.warning}

    def test(self, pid: str) -> dict[str, Any]:
        from .._forms import TEST_MAX_TOKENS, TEST_PROMPT

        self.ws.providers.get(pid)
        started = time.monotonic()
        stream = self.ws.chat(TEST_PROMPT, provider=pid, max_tokens=TEST_MAX_TOKENS)
        text = stream.text
        elapsed = stream.elapsed if stream.elapsed is not None else time.monotonic() - started
        return {"provider": pid, "latency_ms": round(elapsed * 1000),
                "text": scrub(text.strip())[:200], "model": stream.model,
                "finish_reason": stream.finish_reason}

    # -- optional parts (pricing, budgets): a seam until they exist ------------------------------
    def optional(self, part: str) -> Any:
        """``ws.pricing`` / ``ws.budgets``, or a typed NOT_AVAILABLE error when not built."""
        found = getattr(self.ws, part, None)
        if found is None:
            raise NotAvailableError(
                f"This viagent_jupyter has no {part} yet; update the package to use it.")
        return found

    def price(self, pid: str, model: str | None) -> dict[str, Any]:
        """The price of ``model`` (default: the provider's default model) in USD per million
        tokens, as exact decimal strings, with its source and date; ``price`` None when unknown."""
        cfg = self.ws.providers.get(pid)  # PROVIDER_NOT_FOUND / POLICY_REFUSED first
        model = model or cfg.default_model
        if not model:
            raise ConfigValidationError(
                f"Invalid request: provider '{pid}' has no default model; give ?model=.",
                [{"field": "model", "message": "is required (no default model)"}])
        found = self.optional("pricing").get(pid, model)
        if found is None:
            return {"provider": pid, "model": model, "price": None}
        per = {k: None if v is None else format(v, "f") for k, v in found.per_mtok().items()}
        return {"provider": pid, "model": model, "price": {
            **per, "unit": "USD per million tokens", "source": found.source,
            "as_of": found.as_of.isoformat() if found.as_of else None}}

    def budgets(self) -> dict[str, Any]:
        """Each budget with its spend in the current period (amounts as JSON numbers)."""
        budgets = self.optional("budgets")
        rows = [{k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
                for row in budgets.status()]
        return {"budgets": rows, "tightest": budgets.tightest()}


class NotAvailableError(ViagentError):
    code = "NOT_AVAILABLE"


def _key_of(body: Mapping[str, Any], *, required: bool) -> str | None:
    key = body.get("api_key")
    if key in (None, "") and not required:
        return None
    if not isinstance(key, str) or not key.strip():
        raise ConfigValidationError("Invalid api_key: type a key first.",
                                    [{"field": "api_key", "message": "is required"}])
    return key
