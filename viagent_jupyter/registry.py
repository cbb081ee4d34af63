"""ModelRegistry: cache-first model lists per provider, persisted in the workspace database.

* ``models(id)`` answers from the cache while it is younger than the TTL (one hour by default,
  ``$VIAGENT_MODELS_TTL`` seconds or ``ModelRegistry.ttl``), else fetches.
* ``models(id, refresh=True)`` fetches now; the returned :class:`ModelList` says what was
  ``added`` and ``removed`` since the cached list.
* A failed fetch with a cache returns the stale list (``.stale`` is True) with a
  :class:`StaleModelListWarning`; without a cache it raises the provider error.
* ``refresh_all()`` fetches every provider at once (one thread each).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from ._settings import MODELS_TTL_S
from .errors import ProviderError, StorageError, ViagentError
from .schema import ModelInfo

if TYPE_CHECKING:
    import httpx

    from ._services import ProviderLookup
    from .db import Database

__all__ = ["ModelList", "ModelRegistry", "StaleModelListWarning"]

log = logging.getLogger("viagent_jupyter.registry")

MAX_PAGES = 100
MODELS_DEADLINE_S = 120.0  # one page of a model list, retries included


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package."""
    import sys

    package = __name__.rsplit(".", 1)[0] + "."
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(package):
        level += 1
        frame = frame.f_back  # type: ignore[assignment]
    return level


class ModelPolicy(Protocol):
    """What the registry asks of the administrator's policy (``AdminConfig`` fits)."""

    def is_managed(self, pid: str) -> bool: ...

    def filter_models(self, pid: str, models: ModelList) -> ModelList: ...

    def pricing(self, pid: str, model: str) -> dict[str, Decimal] | None: ...


class StaleModelListWarning(UserWarning):
    """A model list could not be refreshed; the cached (older) one is returned."""


class ModelList(list[ModelInfo]):
    """A list of :class:`ModelInfo` that also tells where it came from."""

    def __init__(self, models: Iterable[ModelInfo] = (), *, provider: str = "",
                 fetched_at: float | None = None, from_cache: bool = False,
                 stale: bool = False, added: Iterable[str] = (),
                 removed: Iterable[str] = ()) -> None:
        super().__init__(models)
        self.provider = provider
        self.fetched_at = fetched_at
        self.from_cache = from_cache
        self.stale = stale
        self.added = sorted(added)
        self.removed = sorted(removed)
        self.warning: str | None = None  # why it is stale (the StaleModelListWarning's text)

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self]


def _dump(models: list[ModelInfo]) -> str:
    return json.dumps([m.model_dump(mode="json", exclude_none=True) for m in models])


def _load(data: str) -> list[ModelInfo]:
    out = []
    items = json.loads(data)
    if not isinstance(items, list):
        raise ValueError("not a JSON list")
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("not a JSON object")
        pricing = item.get("pricing")
        if pricing:
            if not isinstance(pricing, dict):
                raise ValueError("pricing is not a JSON object")
            item["pricing"] = {k: Decimal(str(v)) for k, v in pricing.items()}
        out.append(ModelInfo.model_validate(item))
    return out


class ModelRegistry:
    """Model lists of a workspace's providers, fetched live and cached in its database.

    ``providers`` looks up configs and keys; ``http`` returns the pooled client to fetch with
    (called when a fetch needs it, so the client is made on first use); ``policy`` is the
    administrator's (admin.py): its providers, the models it allows, its prices. ``ttl``:
    seconds a cached list is used (the Workspace passes ``$VIAGENT_MODELS_TTL``, checked)."""

    def __init__(self, db: Database, providers: ProviderLookup,
                 http: Callable[[], httpx.Client], ttl: float | None = None,
                 policy: ModelPolicy | None = None) -> None:
        self._db = db
        self._providers = providers
        self._http = http
        self._policy = policy
        self.ttl = ttl if ttl is not None else MODELS_TTL_S
        # provider id -> (fetched_at, models, by id): parsed once per stored version
        self._memory: dict[str, tuple[float, list[ModelInfo], dict[str, ModelInfo]]] = {}

    # -- cache ----------------------------------------------------------------------------------
    def cached(self, provider: str) -> ModelList | None:
        """The cached list (any age), or None."""
        db = self._db
        with db.read() as conn:
            row = conn.execute("SELECT fetched_at FROM model_cache WHERE provider_id = ?",
                               (provider,)).fetchone()
        if row is None:
            self._memory.pop(provider, None)
            return None
        try:
            fetched_at = float(row[0])
        except (TypeError, ValueError):
            log.warning("the cached model list of %r is damaged; it will be refetched", provider)
            return None
        mem = self._memory.get(provider)
        if mem is None or mem[0] != fetched_at:
            with db.read() as conn:
                data = conn.execute("SELECT data FROM model_cache WHERE provider_id = ?",
                                    (provider,)).fetchone()
            if data is None:
                return None
            try:
                models = _load(data[0])
            except (ValueError, TypeError, ArithmeticError, RecursionError):
                log.warning("the cached model list of %r is damaged; it will be refetched",
                            provider)
                return None
            mem = (fetched_at, models, {m.id: m for m in models})
            self._memory[provider] = mem
        return ModelList(mem[1], provider=provider, fetched_at=fetched_at, from_cache=True)

    def _save(self, provider: str, models: list[ModelInfo]) -> float:
        now = time.time()
        managed = self._policy is not None and \
            self._policy.is_managed(provider)  # an administrator's provider has no row
        with self._db.write() as conn:
            if managed or conn.execute("SELECT 1 FROM providers WHERE id = ?",
                                       (provider,)).fetchone():
                conn.execute("INSERT OR REPLACE INTO model_cache VALUES (?, ?, ?)",
                             (provider, now, _dump(models)))
        self._memory[provider] = (now, models, {m.id: m for m in models})
        return now

    # -- fetching -------------------------------------------------------------------------------
    def fetch(self, provider: str) -> list[ModelInfo]:
        """Ask the provider for its models now (all pages), without touching the cache."""
        from .adapters import _http, get_adapter

        cfg = self._providers.get(provider)
        key, _source = self._providers.resolve_key(provider)
        adapter = get_adapter(cfg.provider_type)
        request = adapter.models_request(cfg.endpoint, key, cfg.headers)
        models: list[ModelInfo] = []
        seen: set[str] = set()
        for _page in range(MAX_PAGES):
            body = _http.request_json(
                self._http(), request, provider=cfg.id, timeout=cfg.timeout,
                deadline=MODELS_DEADLINE_S, max_retries=cfg.max_retries,
                allow_insecure_http=cfg.allow_insecure_http,
                error_from_response=adapter.error_from_response,
            )
            page = adapter.parse_models(body, request)
            for m in page.models:
                if m.id not in seen:
                    seen.add(m.id)
                    models.append(m)
            if page.next_request is None:
                break
            request = page.next_request
        return models

    def refresh(self, provider: str, *, warn: bool = True) -> ModelList:
        """Fetch now and store; the result carries ``added``/``removed`` against the cache.
        On failure: the stale cache with a warning, or the error when there is no cache.
        The warning's text is also the result's ``.warning``; ``warn=False`` only records it
        there (thread-safe, unlike ``warnings.catch_warnings``)."""
        old = self.cached(provider)
        try:
            models = self.fetch(provider)
        except (ProviderError, StorageError, ViagentError) as exc:
            if old is None or not isinstance(exc, ProviderError):
                raise
            old.warning = (
                f"Could not refresh the models of '{provider}' ({exc}); showing the cached list "
                "from " + time.strftime("%Y-%m-%d %H:%M", time.localtime(old.fetched_at or 0)))
            if warn:
                warnings.warn(old.warning, StaleModelListWarning, stacklevel=_user_stacklevel())
            old.stale = True
            return old
        fetched_at = self._save(provider, models)
        new_ids = {m.id for m in models}
        old_ids = set(old.ids) if old is not None else set()
        return ModelList(models, provider=provider, fetched_at=fetched_at,
                         added=new_ids - old_ids if old is not None else (),
                         removed=old_ids - new_ids)

    def models(self, provider: str, refresh: bool = False, *, warn: bool = True) -> ModelList:
        """The cached list while fresh, else fetched (see :meth:`refresh` for ``warn``)."""
        found = None
        if not refresh:
            cached = self.cached(provider)
            if cached is not None and time.time() - (cached.fetched_at or 0) < self.ttl:
                found = cached
        if found is None:
            found = self.refresh(provider, warn=warn)
        # without the models the administrator's policy refuses (admin.py)
        self._providers.get(provider)  # a provider the policy hides: PolicyError
        if not self._policy:
            return found
        allowed = self._policy.filter_models(provider, found)
        allowed.warning = found.warning
        return allowed

    def refresh_all(self, providers: Iterable[str] | None = None
                    ) -> dict[str, ModelList | ViagentError]:
        """Refresh every provider concurrently; each gets its list or its error."""
        ids = list(providers) if providers is not None else \
            [p.id for p in self._providers.list()]
        self._http()  # make the shared client before the threads need it
        results: dict[str, ModelList | ViagentError] = {}

        def one(pid: str) -> None:
            try:
                results[pid] = self.refresh(pid, warn=False)
            except ViagentError as exc:
                results[pid] = exc

        if ids:
            with ThreadPoolExecutor(max_workers=min(16, len(ids)),
                                    thread_name_prefix="viagent-models") as pool:
                list(pool.map(one, ids))
        return {pid: results[pid] for pid in ids}

    def pricing(self, provider: str, model: str) -> dict[str, Decimal] | None:
        """USD per token for a model: the administrator's price (admin.py), else from the
        cache only (never a request)."""
        price = self._policy.pricing(provider, model) if self._policy is not None else None
        if price is not None:
            return price
        cached = self.cached(provider)
        if cached is None:
            return None
        mem = self._memory.get(provider)
        info = mem[2].get(model) if mem else None
        return dict(info.pricing) if info is not None and info.pricing else None

    def info(self, provider: str, model: str) -> ModelInfo | None:
        """One model of the cached list (never a request), or None."""
        if self.cached(provider) is None:
            return None
        mem = self._memory.get(provider)
        return mem[2].get(model) if mem else None

    def forget(self, provider: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM model_cache WHERE provider_id = ?", (provider,))
        self._memory.pop(provider, None)
