"""PriceCatalog: what a model costs, from the best source that knows it.

Sources, first match wins:

1. ``user``: ``ws.pricing.set(provider, model, input_per_mtok=..., output_per_mtok=...)``
   (kept in the database, shared by every kernel of the home), then
   ``c.PriceCatalog.overrides`` in ``ipython_config.py``.
2. ``provider``: the prices a provider lists with its models (OpenRouter), from the model
   cache of :class:`~viagent_jupyter.registry.ModelRegistry` (never a request).
3. ``catalogue``: a public price list fetched without any key (OpenRouter's
   ``/api/v1/models``, which prices ``openai/…``, ``anthropic/…`` and ``google/…`` models at
   the vendors' list prices), cached in the database; refreshed by :meth:`PriceCatalog.refresh`
   and by :meth:`PriceCatalog.get` when older than ``ttl``.
4. ``bundled``: ``data/prices.json`` shipped in the wheel, with its source and date
   (``scripts/update_prices.py``). A local Ollama (loopback ``base_url``) costs 0 by rule.

Model ids match exactly after this normalisation, applied to both sides: lower case,
surrounding blanks and a ``models/`` prefix removed, a dot between two digits written as a
dash (``claude-3.5-sonnet`` = ``claude-3-5-sonnet``). A dated id (``-2024-08-06``,
``-20241022``) first matches itself, then the undated id. OpenRouter ids ``vendor/model``
are looked up under the vendor (``google`` = Gemini). Anything else is unknown (``None``):
never a guess from a similar name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from traitlets import Dict, Float, Unicode
from traitlets.config import Configurable

from .db import ChangeWatch
from .errors import ConfigValidationError, StorageError

if TYPE_CHECKING:
    from .db import Database
    from .registry import ModelRegistry
    from .schema import Usage
    from .store import ProviderStore


class PricingHost(Protocol):
    """What the price catalogue reads from its workspace (``Workspace`` fits): the database,
    the model lists (provider-listed prices) and the providers (type and URL of an id)."""

    @property
    def db(self) -> Database: ...

    @property
    def registry(self) -> ModelRegistry: ...

    @property
    def providers(self) -> ProviderStore: ...

__all__ = [
    "Price",
    "PriceCatalog",
    "RefreshResult",
    "StalePricesWarning",
    "from_pusd",
    "normalise",
    "to_pusd",
]

log = logging.getLogger("viagent_jupyter.pricing")

DEFAULT_URL = "https://openrouter.ai/api/v1/models"
DEFAULT_TTL_S = 86_400.0
RETRY_AFTER_FAILURE_S = 600.0
FETCH_TIMEOUT_S = 10.0
MAX_CATALOGUE_BYTES = 32 * 1024 * 1024
SOURCES = ("user", "provider", "catalogue", "bundled")
_MILLION_EXP = -6
_PUSD = Decimal(10) ** 12  # database unit: 1e-12 USD ("picodollars"), exact integers
_FAMILIES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
_VENDORS = {"openai": "openai", "anthropic": "anthropic", "google": "gemini"}
_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_DIGIT_DOT = re.compile(r"(?<=\d)\.(?=\d)")


class StalePricesWarning(UserWarning):
    """The price catalogue could not be refreshed; the cached (older) prices are used."""


def to_pusd(usd: Decimal) -> int:
    """USD → whole 1e-12 USD (half-even), the exact unit sums are kept in."""
    return int((usd * _PUSD).to_integral_value(ROUND_HALF_EVEN))


def from_pusd(pusd: int) -> Decimal:
    return Decimal(pusd).scaleb(-12)


@lru_cache(maxsize=4096)
def normalise(model: str) -> str:
    """The documented normalisation of a model id (see the module docstring)."""
    m = model.strip().lower().removeprefix("models/")
    return _DIGIT_DOT.sub("-", m)


@lru_cache(maxsize=4096)
def _candidates(model: str) -> tuple[str, ...]:
    n = normalise(model)
    undated = _DATED.sub("", n)
    return (n,) if undated == n or not undated else (n, undated)


def _decimal(value: Any, what: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} is not a number")
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what} must be a finite number >= 0, not {value!r}")
    return d


@dataclass(frozen=True)
class Price:
    """USD **per token** (``Decimal``; ``None`` where unknown) and where it came from."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    source: str = "bundled"  # user | provider | catalogue | bundled
    as_of: date | None = None
    context_length: int | None = None
    max_output_tokens: int | None = None
    origin: str = field(default="", compare=False)  # the list it came from (shown by %llm prices)

    @classmethod
    def from_mtok(cls, entry: dict[str, Any], **kw: Any) -> Price:
        """From a ``{"in", "out", "cache_read", "cache_write", "reasoning", "ctx",
        "max_out"}`` entry in USD per million tokens (the snapshot's format)."""
        def per_token(key: str) -> Decimal | None:
            d = _decimal(entry.get(key), key)
            return None if d is None else d.scaleb(_MILLION_EXP)

        inp, out = per_token("in"), per_token("out")
        if inp is None or out is None:
            raise ValueError("an input and an output price are needed")
        ctx, max_out = entry.get("ctx"), entry.get("max_out")
        return cls(inp, out, per_token("cache_read"), per_token("cache_write"),
                   per_token("reasoning"),
                   context_length=ctx if type(ctx) is int else None,
                   max_output_tokens=max_out if type(max_out) is int else None, **kw)

    def per_mtok(self) -> dict[str, Decimal | None]:
        """The prices in USD per million tokens, as price pages state them."""
        def m(d: Decimal | None) -> Decimal | None:
            return None if d is None else d.scaleb(6).normalize()
        return {"input": m(self.input), "output": m(self.output),
                "cached_input": m(self.cached_input), "cache_write": m(self.cache_write),
                "reasoning": m(self.reasoning)}

    def cost(self, usage: Usage) -> Decimal | None:
        """The exact cost of one call's reported usage, or ``None`` when nothing was reported.

        Cached input tokens (part of ``prompt_tokens``) at the cached price and cache writes
        at the cache-write price — each at the input price when no separate price is known
        (an upper bound for cache reads); reasoning tokens (part of ``completion_tokens``) at
        the reasoning price when one is listed, else as output."""
        if usage.prompt_tokens is None and usage.completion_tokens is None:
            return None
        prompt = usage.prompt_tokens or 0
        completion = usage.completion_tokens or 0
        cached = min(usage.cached_input_tokens or 0, prompt)
        written = min(usage.cache_write_tokens or 0, prompt - cached)
        total = (prompt - cached - written) * self.input
        if cached:
            total += cached * (self.input if self.cached_input is None else self.cached_input)
        if written:
            total += written * (self.input if self.cache_write is None else self.cache_write)
        reasoning = getattr(usage, "reasoning_tokens", None) or 0
        if self.reasoning is not None and reasoning:
            reasoning = min(reasoning, completion)
            total += reasoning * self.reasoning + (completion - reasoning) * self.output
        else:
            total += completion * self.output
        return total


@dataclass(frozen=True)
class RefreshResult:
    ok: bool
    models: int = 0
    as_of: date | None = None
    error: str | None = None
    url: str = ""


Tables = dict[str, dict[str, Price]]


def _tables(models: Any, source: str, as_of: date | None, origin: str) -> Tables:
    """``{"family": {"model": entry}}`` → Price tables keyed by normalised id; a bad entry
    is skipped (logged), a bad document raises ``ValueError``."""
    if not isinstance(models, dict):
        raise ValueError("'models' is not an object")
    out: Tables = {}
    for family, table in models.items():
        if not isinstance(table, dict):
            raise ValueError(f"'models.{family}' is not an object")
        prices: dict[str, Price] = {}
        for model, entry in table.items():
            try:
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                price = Price.from_mtok(entry, source=source, as_of=as_of, origin=origin)
            except ValueError as exc:
                log.debug("price of %s/%s skipped: %s", family, model, exc)
                continue
            prices.setdefault(normalise(str(model)), price)
        out[str(family)] = prices
    return out


def _as_of(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def _snapshot() -> tuple[Tables, dict[str, Any]]:
    raw = resources.files("viagent_jupyter").joinpath("data/prices.json").read_text("utf-8")
    doc = json.loads(raw)
    as_of = _as_of(doc.get("as_of"))
    meta = {k: doc.get(k) for k in ("as_of", "source", "source_url")}
    return _tables(doc.get("models"), "bundled", as_of, str(doc.get("source") or "")), meta


def parse_openrouter(body: bytes) -> dict[str, dict[str, dict[str, Any]]]:
    """OpenRouter's public model list → ``{"family": {"model": mtok entry}}``: the vendors'
    models under ``openai``/``anthropic``/``gemini`` and every model, full id, under
    ``openrouter``. Variants (``model:free``…) are left out."""
    doc = json.loads(body)
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise ValueError("no 'data' list: not a model list")
    out: dict[str, dict[str, dict[str, Any]]] = {f: {} for f in ("openai", "anthropic", "gemini",
                                                                 "openrouter")}
    for item in data:
        if not isinstance(item, dict):
            continue
        mid = item.get("id")
        p = item.get("pricing")
        if not isinstance(mid, str) or not isinstance(p, dict) or ":" in mid:
            continue
        entry: dict[str, Any] = {}
        for key, src in (("in", "prompt"), ("out", "completion"),
                         ("cache_read", "input_cache_read"),
                         ("cache_write", "input_cache_write"), ("reasoning", "internal_reasoning")):
            try:
                d = _decimal(p.get(src), src)
            except ValueError:
                d = None
            if d is not None and not (key == "reasoning" and d == 0):
                entry[key] = format(d.scaleb(6).normalize(), "f")
        if "in" not in entry or "out" not in entry:
            continue
        ctx = item.get("context_length")
        if type(ctx) is int:
            entry["ctx"] = ctx
        top = item.get("top_provider")
        if isinstance(top, dict) and type(top.get("max_completion_tokens")) is int:
            entry["max_out"] = top["max_completion_tokens"]
        out["openrouter"][mid] = entry
        vendor, _, model = mid.partition("/")
        family = _VENDORS.get(vendor)
        if family is not None and model:
            out[family][model] = entry
    return out


class PriceCatalog(Configurable):
    """``ws.pricing``: the price of a model, from the best source that knows it."""

    overrides = Dict(
        config=True,
        help="Your own prices: {'PROVIDER:MODEL': {'input_per_mtok': 2.5, 'output_per_mtok': "
             "10, 'cached_input_per_mtok': 1.25, 'cache_write_per_mtok': None}} (PROVIDER: a "
             "provider id or type). ws.pricing.set(...) overrides these.",
    )
    url = Unicode(
        None, allow_none=True, config=True,
        help="The public price list (OpenRouter's /api/v1/models shape), fetched without a "
             "key. Default $VIAGENT_PRICES_URL, else OpenRouter's; '' or 'off': never fetch.",
    )
    ttl = Float(
        DEFAULT_TTL_S, config=True,
        help="Seconds the fetched price list is used before ws.pricing.get refreshes it.",
    )

    def __init__(self, ws: PricingHost, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ws = ws
        self._lock = threading.RLock()
        self._watch = ChangeWatch(ws.db, "prices_rev")
        self._user: dict[tuple[str, str], Price] = {}
        self._live: Tables = {}
        self._live_fetched: float | None = None
        self._bundled: Tables | None = None
        self._bundled_meta: dict[str, Any] = {}
        self._failed_at: float | None = None
        self._warned = False
        self._config_user = self._parse_config(self.overrides)
        self.observe(lambda change: setattr(self, "_config_user",
                                            self._parse_config(change["new"])), "overrides")

    # -- configuration ------------------------------------------------------------------------
    @property
    def source_url(self) -> str | None:
        url = self.url if self.url is not None else os.environ.get("VIAGENT_PRICES_URL",
                                                                   DEFAULT_URL)
        return None if url.strip().lower() in ("", "off", "none") else url.strip()

    def _parse_config(self, overrides: dict[str, Any]) -> dict[tuple[str, str], Price]:
        out: dict[tuple[str, str], Price] = {}
        for key, value in overrides.items():
            provider, sep, model = str(key).partition(":")
            try:
                if not sep or not model or not isinstance(value, dict):
                    raise ValueError("use {'PROVIDER:MODEL': {'input_per_mtok': …, …}}")
                out[(provider, normalise(model))] = _user_price(**value)
            except (ValueError, TypeError) as exc:
                log.warning("c.PriceCatalog.overrides[%r] is ignored: %s", key, exc)
        return out

    # -- loading -------------------------------------------------------------------------------
    def _reload(self, force: bool = False) -> None:
        if not self._watch.changed(force):
            return
        with self._ws.db.read() as conn:
            users = conn.execute("SELECT provider, model, data, updated_at "
                                 "FROM price_overrides").fetchall()
            row = conn.execute("SELECT url, fetched_at, data FROM price_catalogue "
                               "ORDER BY fetched_at DESC LIMIT 1").fetchone()
        user: dict[tuple[str, str], Price] = {}
        for provider, model, data, updated_at in users:
            try:
                when = datetime.fromtimestamp(float(updated_at), timezone.utc).date()
                user[(provider, model)] = Price.from_mtok(json.loads(data), source="user",
                                                          as_of=when, origin="ws.pricing.set")
            except (ValueError, TypeError, OverflowError):
                log.warning("the price you set for %s:%s is damaged; set it again", provider,
                            model)
        live: Tables = {}
        fetched: float | None = None
        if row is not None:
            try:
                fetched = float(row[1])
                when = datetime.fromtimestamp(fetched, timezone.utc).date()
                live = _tables(json.loads(row[2]), "catalogue", when, str(row[0]))
            except (ValueError, TypeError, OverflowError):
                log.warning("the cached price list is damaged; it will be fetched again")
                live, fetched = {}, None
        self._user, self._live, self._live_fetched = user, live, fetched

    def _bundle(self) -> Tables:
        if self._bundled is None:
            try:
                self._bundled, self._bundled_meta = _snapshot()
            except (OSError, ValueError) as exc:  # a broken install: say so, price nothing
                log.warning("the bundled price snapshot is unreadable (%s)", exc)
                self._bundled = {}
        return self._bundled

    # -- lookup --------------------------------------------------------------------------------
    def lookup(self, provider_type: str, model: str, *, provider_id: str | None = None,
               base_url: str | None = None) -> Price | None:
        """The price of ``model`` on a provider of ``provider_type`` (no request, ever)."""
        with self._lock:
            self._reload()
            cands = _candidates(model)
            for key in ((provider_id, provider_type) if provider_id else (provider_type,)):
                for c in cands:
                    hit = self._user.get((key, c)) or self._config_user.get((key, c))
                    if hit is not None:
                        return hit
            if provider_id is not None:
                listed = self._listed(provider_id, model)
                if listed is not None:
                    return listed
            family, name = _family(provider_type, model)
            if provider_type == "openrouter":
                table = self._live.get("openrouter")
                hit = table.get(normalise(model)) if table else None
                if hit is not None:
                    return hit
            if family is None:
                if provider_type == "ollama" and _is_local(base_url) and \
                        not normalise(model).endswith("cloud"):
                    self._bundle()
                    return Price(Decimal(0), Decimal(0), source="bundled",
                                 as_of=_as_of(self._bundled_meta.get("as_of")),
                                 origin="local Ollama: free")
                return None
            cands = _candidates(name)
            for tables in (self._live, self._bundle()):
                table = tables.get(family)
                if table:
                    for c in cands:
                        hit = table.get(c)
                        if hit is not None:
                            return hit
            return None

    def _listed(self, provider_id: str, model: str) -> Price | None:
        registry = self._ws.registry
        try:
            pricing = registry.pricing(provider_id, model)
        except StorageError:
            return None
        if not pricing or "prompt" not in pricing or "completion" not in pricing:
            return None
        cached = registry.cached(provider_id)
        when = (datetime.fromtimestamp(cached.fetched_at, timezone.utc).date()
                if cached is not None and cached.fetched_at else None)
        return Price(pricing["prompt"], pricing["completion"], source="provider", as_of=when,
                     origin=f"{provider_id}'s model list")

    def for_provider(self, provider: str, model: str) -> Price | None:
        """The price for a provider *id* (its type and URL decide), or a provider type."""
        store = self._ws.providers
        if provider in store:
            cfg = store.get(provider)
            return self.lookup(cfg.provider_type, model, provider_id=cfg.id,
                               base_url=cfg.endpoint)
        return self.lookup(provider, model)

    def get(self, provider: str, model: str) -> Price | None:
        """``None`` or the :class:`Price` of ``model`` on ``provider`` (an id or a type).
        Refreshes the public list first when it is older than ``ttl``."""
        if self._due():
            self.refresh()
        return self.for_provider(provider, model)

    # -- user prices ---------------------------------------------------------------------------
    def set(self, provider: str, model: str, *, input_per_mtok: float | str | Decimal,
            output_per_mtok: float | str | Decimal,
            cached_input_per_mtok: float | str | Decimal | None = None,
            cache_write_per_mtok: float | str | Decimal | None = None) -> Price:
        """Your own price for ``model`` on ``provider`` (a provider id or type), in USD per
        million tokens as price pages state them. It wins over every other source."""
        if not provider or not model:
            raise ConfigValidationError(
                "ws.pricing.set needs a provider (id or type) and a model.",
                [{"field": "provider" if not provider else "model", "message": "is required"}])
        try:
            price = _user_price(input_per_mtok, output_per_mtok, cached_input_per_mtok,
                                cache_write_per_mtok)
        except ValueError as exc:
            raise ConfigValidationError(
                f"Invalid price for {provider}:{model}: {exc}. Give USD per million tokens.",
                [{"field": "price", "message": str(exc)}]) from None
        entry = {k: format(v, "f") for k, v in price.per_mtok().items() if v is not None}
        entry = {{"input": "in", "output": "out", "cached_input": "cache_read",
                  "cache_write": "cache_write", "reasoning": "reasoning"}[k]: v
                 for k, v in entry.items()}
        with self._lock, self._ws.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO price_overrides VALUES (?, ?, ?, ?)",
                         (provider, normalise(model), json.dumps(entry), time.time()))
            self._ws.db.bump(conn, "prices_rev")
            self._reload(force=True)
        result = self.for_provider(provider, model)
        assert result is not None
        return result

    def unset(self, provider: str, model: str) -> bool:
        """Forget your own price for ``model``; True when there was one."""
        with self._lock, self._ws.db.write() as conn:
            cur = conn.execute("DELETE FROM price_overrides WHERE provider = ? AND model = ?",
                               (provider, normalise(model)))
            self._ws.db.bump(conn, "prices_rev")
            self._reload(force=True)
        return bool(cur.rowcount > 0)

    # -- the public catalogue ------------------------------------------------------------------
    def _due(self) -> bool:
        if self.source_url is None:
            return False
        with self._lock:
            self._reload()
            now = time.time()
            if self._failed_at is not None and now - self._failed_at < RETRY_AFTER_FAILURE_S:
                return False
            return self._live_fetched is None or now - self._live_fetched >= self.ttl

    def refresh(self) -> RefreshResult:
        """Fetch the public price list now and cache it. On failure the cached prices stay
        (a :class:`StalePricesWarning` says so, once per session) and ``ok`` is False."""
        url = self.source_url
        if url is None:
            return RefreshResult(False, error="fetching prices is turned off", url="")
        try:
            body = _fetch(url)
            parsed = parse_openrouter(body)
        except (OSError, ValueError, RecursionError) as exc:
            return self._failed(url, exc)
        except Exception as exc:  # httpx errors: never let a price list break a chat
            import httpx

            if isinstance(exc, httpx.HTTPError):
                return self._failed(url, exc)
            raise
        count = sum(len(t) for f, t in parsed.items() if f != "openrouter")
        now = time.time()
        with self._lock:
            with self._ws.db.write() as conn:
                conn.execute("DELETE FROM price_catalogue")
                conn.execute("INSERT INTO price_catalogue VALUES (?, ?, ?)",
                             (url, now, json.dumps(parsed, separators=(",", ":"))))
                self._ws.db.bump(conn, "prices_rev")
            self._failed_at = None
            self._reload(force=True)
        log.info("prices refreshed from %s (%d models)", url, count)
        return RefreshResult(True, count, datetime.fromtimestamp(now, timezone.utc).date(),
                             url=url)

    def _failed(self, url: str, exc: BaseException) -> RefreshResult:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with self._lock:
            self._failed_at = time.time()
            self._reload()
            have = "the cached prices" if self._live_fetched else "the bundled prices"
            message = (f"Could not refresh prices from {url} ({reason}); using {have}. "
                       "Retry with ws.pricing.refresh().")
            if not self._warned:
                self._warned = True
                warnings.warn(message, StalePricesWarning, stacklevel=3)
            log.info("%s", message)
        return RefreshResult(False, error=reason, url=url)

    def info(self) -> dict[str, Any]:
        """Where the prices come from: the cached list's URL and age, the bundled snapshot."""
        with self._lock:
            self._reload()
            self._bundle()
            return {"catalogue_url": self.source_url,
                    "catalogue_fetched_at": self._live_fetched,
                    "bundled": dict(self._bundled_meta),
                    "user": sorted(f"{p}:{m}" for p, m in self._user)}


def _user_price(input_per_mtok: Any = None, output_per_mtok: Any = None,
                cached_input_per_mtok: Any = None, cache_write_per_mtok: Any = None) -> Price:
    inp = _decimal(input_per_mtok, "input_per_mtok")
    out = _decimal(output_per_mtok, "output_per_mtok")
    if inp is None or out is None:
        raise ValueError("input_per_mtok and output_per_mtok are required")
    return Price.from_mtok({"in": inp, "out": out, "cache_read": _decimal(
        cached_input_per_mtok, "cached_input_per_mtok"), "cache_write": _decimal(
        cache_write_per_mtok, "cache_write_per_mtok")}, source="user",
        as_of=datetime.now(timezone.utc).date(), origin="c.PriceCatalog.overrides")


def _family(provider_type: str, model: str) -> tuple[str | None, str]:
    if provider_type == "openrouter":
        vendor, _, name = model.strip().partition("/")
        return _VENDORS.get(vendor.lower()), name
    return _FAMILIES.get(provider_type), model


def _is_local(base_url: str | None) -> bool:
    if not base_url:
        return False
    from urllib.parse import urlsplit

    from .adapters._http import is_loopback

    return is_loopback(urlsplit(base_url).hostname or "")


def _fetch(url: str) -> bytes:
    """GET the public list: no key, no cookies, no redirects, bounded size and time."""
    import httpx

    from .adapters._http import user_agent

    with httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=False,
                      headers={"user-agent": user_agent()}) as client, \
            client.stream("GET", url) as resp:
        if resp.status_code != 200:
            raise ValueError(f"HTTP {resp.status_code}")
        buf = bytearray()
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > MAX_CATALOGUE_BYTES:
                raise ValueError("the list is larger than 32 MB")
        return bytes(buf)
