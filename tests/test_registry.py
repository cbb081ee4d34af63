"""ModelRegistry over loopback: cache-first, refresh diff, stale fallback, pagination."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import viagent_jupyter as vj
from viagent_jupyter.registry import StaleModelListWarning
from viagent_jupyter.testing import DEMO_MODELS, DemoModel, FakeProviderServer, Scripted


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as srv:
        yield srv


def model_gets(srv: FakeProviderServer) -> int:
    return sum(1 for r in srv.requests if r.method == "GET")


def add(ws: Any, srv: FakeProviderServer, ptype: str, pid: str | None = None) -> str:
    pid = pid or ptype.replace("_", "-")
    ws.providers.create(id=pid, provider_type=ptype, base_url=srv.url_for(ptype),
                        api_key=None if ptype == "ollama" else "sk-test-registry-01")
    return pid


@pytest.mark.parametrize("ptype", ["openai", "openrouter", "anthropic", "gemini", "ollama"])
def test_list_cache_hit_makes_no_request(ws: Any, server: FakeProviderServer, ptype: str) -> None:
    pid = add(ws, server, ptype)
    first = ws.models(pid)
    assert {m.id.removesuffix(":latest") for m in first} >= {"demo-small", "demo-large"}
    assert not first.from_cache
    n = model_gets(server)
    again = ws.models(pid)
    assert again.from_cache and again.ids == first.ids and model_gets(server) == n
    # another workspace on the same home shares the persisted cache
    with vj.Workspace(home=ws.home) as other:
        assert other.models(pid).ids == first.ids
    assert model_gets(server) == n


def test_openrouter_prices_and_context(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "openrouter")
    small = {m.id: m for m in ws.models(pid)}["demo-small"]
    assert small.pricing == {"prompt": Decimal("0.0000005"), "completion": Decimal("0.0000015")}
    assert small.context_length == 32_768
    # Decimal survives the database round trip
    with vj.Workspace(home=ws.home) as other:
        cached = {m.id: m for m in other.models(pid)}["demo-small"]
    assert cached.pricing == small.pricing and isinstance(cached.pricing["prompt"], Decimal)


def test_refresh_reports_added_and_removed(ws: Any, home: Any) -> None:
    with FakeProviderServer(delay=0) as srv:
        pid = add(ws, srv, "openai")
        assert sorted(ws.models(pid).ids) == sorted(m.id for m in DEMO_MODELS)
    new_models = (DEMO_MODELS[0], DemoModel("demo-new", "Demo New", 1000, 100, "0", "0"))
    with FakeProviderServer(delay=0, models=new_models) as srv2:
        ws.providers.update(pid, base_url=srv2.url_for("openai"), rebind_key=True)
        fresh = ws.models(pid, refresh=True)
        assert fresh.added == ["demo-new"] and fresh.removed == ["demo-large"]
        assert not fresh.stale


def test_failed_refresh_returns_stale_cache_with_warning(ws: Any, server: FakeProviderServer
                                                         ) -> None:
    pid = add(ws, server, "anthropic")
    ws.providers.update(pid, max_retries=0)
    ids = ws.models(pid).ids
    server.script("models", Scripted(status=500))
    with pytest.warns(StaleModelListWarning, match=pid):
        stale = ws.models(pid, refresh=True)
    assert stale.stale and stale.ids == ids
    assert stale.warning and pid in stale.warning  # the same text, as data


def test_staleness_comes_back_as_data_from_threads(ws: Any, server: FakeProviderServer
                                                   ) -> None:
    """``warn=False`` (the REST server's pool, the panel's thread): the stale list carries
    its reason in ``.warning`` and nothing is warned, so no thread needs the non-thread-safe
    ``warnings.catch_warnings`` (with filterwarnings=error a warning would raise here)."""
    from concurrent.futures import ThreadPoolExecutor

    pid = add(ws, server, "anthropic")
    ws.providers.update(pid, max_retries=0)
    ids = ws.models(pid).ids
    assert ws.models(pid).warning is None
    server.script("models", *[Scripted(status=500) for _ in range(4)])
    with ThreadPoolExecutor(4) as pool:
        lists = list(pool.map(lambda _: ws.registry.models(pid, refresh=True, warn=False),
                              range(4)))
    for stale in lists:
        assert stale.stale and stale.ids == ids
        assert stale.warning and pid in stale.warning and "cached list" in stale.warning


def test_failed_fetch_without_cache_raises(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "gemini")
    ws.providers.update(pid, max_retries=0)
    server.script("models", Scripted(status=403, message="denied"))
    with pytest.raises(vj.AuthenticationError):
        ws.models(pid)


def test_ttl_expiry_refetches(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "ollama")
    ws.models(pid)
    n = model_gets(server)
    ws.registry.ttl = 0.0
    ws.models(pid)
    assert model_gets(server) == n + 1


def test_pagination_anthropic_and_gemini(ws: Any, server: FakeProviderServer) -> None:
    many = tuple(DemoModel(f"m-{i:03d}", f"M {i}", 1000 + i, 100, "0", "0") for i in range(130))
    with FakeProviderServer(delay=0, models=many) as srv:
        an = add(ws, srv, "anthropic")
        ge = add(ws, srv, "gemini")
        assert len(ws.models(an)) == 130
        assert len(ws.models(ge)) == 130
        anth_pages = [r for r in srv.requests if r.method == "GET" and r.path == "/v1/models"]
        gem_pages = [r for r in srv.requests if r.method == "GET" and "v1beta" in r.path]
        assert len(anth_pages) >= 2 and any("after_id" in r.query for r in anth_pages)
        assert len(gem_pages) >= 1
    assert ws.models(ge)[0].id.startswith("m-")  # "models/" prefix stripped


def test_gemini_pagination_with_scripted_pages(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "gemini")
    page1 = {"models": [{"name": "models/a", "supportedGenerationMethods": ["generateContent"]},
                        {"name": "models/embed", "supportedGenerationMethods": ["embedContent"]}],
             "nextPageToken": "tok2"}
    page2 = {"models": [{"name": "models/b", "supportedGenerationMethods": ["generateContent"]}]}
    server.script("models", Scripted(body=json.dumps(page1), content_type="application/json"),
                  Scripted(body=json.dumps(page2), content_type="application/json"))
    assert ws.models(pid).ids == ["a", "b"]
    gets = [r for r in server.requests if r.method == "GET"]
    assert gets[-1].query.get("pageToken") == "tok2"


def test_refresh_all_runs_concurrently(ws: Any, server: FakeProviderServer) -> None:
    ids = [add(ws, server, "openai", f"p{i}") for i in range(5)]
    server.script("models", *[Scripted(headers_delay=3.0) for _ in ids])
    t0 = time.monotonic()
    results = ws.registry.refresh_all()
    elapsed = time.monotonic() - t0
    assert set(results) == set(ids)
    assert all(isinstance(v, list) and len(v) == len(DEMO_MODELS) for v in results.values())
    # One after another would take 15 s; together about 3 s (a loaded machine adds seconds,
    # not the 12 s that would make this ambiguous).
    assert elapsed < 11.0, elapsed


def test_refresh_all_reports_each_error(ws: Any, server: FakeProviderServer) -> None:
    ok = add(ws, server, "ollama")
    ws.providers.create(id="dead", provider_type="openai_compatible", max_retries=0,
                        base_url="http://127.0.0.1:9/v1")
    results = ws.registry.refresh_all()
    assert isinstance(results[ok], list)
    assert isinstance(results["dead"], vj.ProviderConnectionError)


def test_deleting_a_provider_drops_its_cache(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "ollama")
    ws.models(pid)
    ws.providers.delete(pid)
    assert ws.registry.cached(pid) is None
