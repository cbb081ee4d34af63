"""Prices (pricing.py) and the cost of every chat, over real loopback HTTP and real SQLite."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

import viagent_jupyter as vj
from viagent_jupyter.pricing import Price, PriceCatalog, StalePricesWarning, normalise
from viagent_jupyter.testing import FakeProviderServer, Scripted

WIRE = Path(os.environ.get("VIAGENT_WIRE_FIXTURES", "/work/shared/fixtures/wire"))
M = Decimal(10) ** -6  # per million tokens -> per token


def catalogue(prices: dict[str, tuple[str, str, str | None]]) -> bytes:
    """A public model list in OpenRouter's /api/v1/models shape (USD per token, strings)."""
    data: list[dict[str, Any]] = []
    for mid, (prompt, completion, cache_read) in prices.items():
        pricing = {"prompt": prompt, "completion": completion, "request": "0", "image": "0"}
        if cache_read is not None:
            pricing["input_cache_read"] = cache_read
        data.append({"id": mid, "name": mid, "context_length": 128000,
                     "pricing": pricing, "top_provider": {"max_completion_tokens": 16384}})
    data.append({"id": "openai/gpt-4o:extended", "pricing": {"prompt": "1", "completion": "1"}})
    data.append({"id": "openai/auto", "pricing": {"prompt": "-1", "completion": "-1"}})
    return json.dumps({"data": data}).encode()


CATALOGUE = catalogue({
    "openai/gpt-4o": ("0.0000025", "0.00001", "0.00000125"),
    "anthropic/claude-sonnet-4": ("0.000003", "0.000015", "0.0000003"),
    "google/gemini-2.0-flash-exp": ("0.0000001", "0.0000004", "0.000000025"),
})


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as srv:
        yield srv


@pytest.fixture
def prices_url(server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> str:
    url = server.url_for("openrouter") + "/models"
    monkeypatch.setenv("VIAGENT_PRICES_URL", url)
    return url


def serve_catalogue(server: FakeProviderServer, body: bytes = b"", status: int = 200) -> None:
    server.script("/api/v1/models", Scripted(status=status, body=body or CATALOGUE,
                                                content_type="application/json"))


def catalogue_requests(server: FakeProviderServer) -> int:
    return sum(1 for r in server.requests if r.method == "GET")


# -- the bundled snapshot and matching -------------------------------------------------------

def test_bundled_snapshot_is_dated_sourced_and_prices_known_models(
        ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIAGENT_PRICES_URL", "off")
    doc = json.loads((Path(vj.__file__).parent / "data" / "prices.json").read_text())
    assert doc["as_of"] and doc["source"] and doc["generated_by"] == "scripts/update_prices.py"
    p = ws.pricing.get("openai", "gpt-4o")
    assert p is not None and p.source == "bundled" and p.as_of == date.fromisoformat(doc["as_of"])
    assert (p.input, p.output) == (Decimal("2.5") * M, Decimal("10") * M)
    assert p.cached_input == Decimal("1.25") * M
    # a dated id matches itself first (gpt-4o-2024-05-13 had its own, higher price) ...
    dated = ws.pricing.get("openai", "gpt-4o-2024-05-13")
    assert dated is not None and dated.input == Decimal("5") * M
    # ... and the undated id when the dated one is not listed
    assert ws.pricing.get("openai", "gpt-4o-2099-01-01") == p
    gem = ws.pricing.get("gemini", "models/gemini-2.5-flash")
    assert gem is not None and gem.input == Decimal("0.3") * M
    claude = ws.pricing.get("anthropic", "claude-sonnet-4.5")  # dot written as dash
    assert claude is not None and claude.cache_write == Decimal("3.75") * M
    # a miss is unknown, never a guess from a similar name
    for provider, model in [("openai", "gpt-4o-ultra"), ("openai", "gpt4o"),
                            ("anthropic", "claude-sonnet"), ("openai_compatible", "gpt-4o"),
                            ("gemini", "gemini-2.5"), ("openrouter", "meta/llama-3")]:
        assert ws.pricing.get(provider, model) is None, (provider, model)
    # OpenRouter's vendor/model ids are the vendors' models
    assert ws.pricing.get("openrouter", "openai/gpt-4o") == p


def test_normalisation_is_the_documented_one() -> None:
    assert normalise(" Models/Gemini-2.5-Flash ") == "gemini-2-5-flash"
    assert normalise("claude-3.5-sonnet") == normalise("claude-3-5-sonnet")
    assert normalise("gpt-4o-mini") == "gpt-4o-mini"


def test_local_ollama_is_free_and_a_remote_one_is_unknown(ws: Any,
                                                          server: FakeProviderServer) -> None:
    ws.providers.create(id="local", provider_type="ollama", name="L",
                        base_url=server.url_for("ollama"), default_model="llama3.2")
    ws.providers.create(id="remote", provider_type="ollama", name="R",
                        base_url="https://ollama.example.com", default_model="llama3.2")
    free = ws.pricing.for_provider("local", "llama3.2")
    assert free is not None and free.input == free.output == 0
    assert ws.pricing.for_provider("local", "gpt-oss:120b-cloud") is None  # billed by ollama.com
    assert ws.pricing.for_provider("remote", "llama3.2") is None
    s = ws.chat("hi", provider="local")
    s.wait()
    assert s.cost == 0.0


# -- the public catalogue: refresh, cache hit, stale fallback, bundled fallback ----------------

def test_refresh_from_a_loopback_catalogue_then_cache_hit_across_workspaces(
        ws: Any, home: Path, server: FakeProviderServer, prices_url: str) -> None:
    serve_catalogue(server, catalogue({"openai/gpt-4o": ("0.000003", "0.000011", None)}))
    p = ws.pricing.get("openai", "gpt-4o")  # no cached list yet: fetched now
    assert catalogue_requests(server) == 1
    req = server.requests[-1]
    assert "authorization" not in req.headers and "x-api-key" not in req.headers
    assert p is not None and p.source == "catalogue"
    assert p.as_of == datetime.now(timezone.utc).date()
    assert (p.input, p.output, p.cached_input) == (Decimal(3) * M, Decimal(11) * M, None)
    # variants (model:extended) are left out; other vendors are unknown
    assert ws.pricing.get("openai", "gpt-4o:extended") is None
    assert ws.pricing.get("openai", "auto") is None  # "-1": a variable price is no price
    # cache hit: no second request, in this workspace or another one on the same home
    assert ws.pricing.get("openai", "gpt-4o") == p
    with vj.Workspace(home=home) as other:
        assert other.pricing.get("openai", "gpt-4o") == p
    assert catalogue_requests(server) == 1
    # a model the live list lacks still has its bundled price
    mini = ws.pricing.get("openai", "gpt-4o-mini")
    assert mini is not None and mini.source == "bundled"


def test_failed_refresh_keeps_the_cached_prices_and_says_so_once(
        ws: Any, server: FakeProviderServer, prices_url: str) -> None:
    serve_catalogue(server)
    assert ws.pricing.refresh().ok
    cached = ws.pricing.get("anthropic", "claude-sonnet-4-20250514")
    assert cached is not None and cached.source == "catalogue"
    server.script("/api/v1/models", Scripted(status=503), Scripted(status=503))
    with pytest.warns(StalePricesWarning, match="using the cached prices"):
        result = ws.pricing.refresh()
    assert not result.ok and "503" in (result.error or "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: the second failure is quiet
        assert not ws.pricing.refresh().ok
    assert ws.pricing.get("anthropic", "claude-sonnet-4-20250514") == cached


def test_bundled_fallback_with_no_network_at_all(ws: Any, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("VIAGENT_PRICES_URL", f"http://127.0.0.1:{port}/api/v1/models")
    with pytest.warns(StalePricesWarning, match="using the bundled prices"):
        p = ws.pricing.get("openai", "gpt-4o-mini")
    assert p is not None and p.source == "bundled"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ws.pricing.get("openai", "gpt-4o") is not None  # no retry storm, no 2nd warning


def test_a_malformed_catalogue_is_a_failed_refresh(ws: Any, server: FakeProviderServer,
                                                   prices_url: str) -> None:
    serve_catalogue(server, b'{"data": "nope"}')
    with pytest.warns(StalePricesWarning):
        assert not ws.pricing.refresh().ok
    assert ws.pricing.get("openai", "gpt-4o").source == "bundled"  # type: ignore[union-attr]


# -- user overrides and provider-listed prices --------------------------------------------------

def test_user_override_wins_and_is_shared_config_too(
        ws: Any, home: Path, server: FakeProviderServer, prices_url: str) -> None:
    serve_catalogue(server)
    ws.pricing.refresh()
    mine = ws.pricing.set("openai", "gpt-4o", input_per_mtok=1, output_per_mtok="2.5",
                          cached_input_per_mtok=0.5)
    assert mine.source == "user" and mine.input == Decimal(1) * M
    assert mine.output == Decimal("2.5") * M and mine.cached_input == Decimal("0.5") * M
    with vj.Workspace(home=home) as other:  # another kernel sees it
        assert other.pricing.get("openai", "gpt-4o-2024-08-06") == mine
    assert ws.pricing.unset("openai", "gpt-4o")
    assert ws.pricing.get("openai", "gpt-4o").source == "catalogue"  # type: ignore[union-attr]
    # c.PriceCatalog.overrides in ipython_config.py
    cfg = Config({"PriceCatalog": {"overrides": {
        "openai:gpt-4o": {"input_per_mtok": 7, "output_per_mtok": 8}}}})
    configured = PriceCatalog(ws, config=cfg)
    p = configured.get("openai", "gpt-4o")
    assert p is not None and p.source == "user" and p.input == Decimal(7) * M
    with pytest.raises(vj.ConfigValidationError, match="input_per_mtok"):
        ws.pricing.set("openai", "gpt-4o", input_per_mtok=-1, output_per_mtok=1)


def test_prices_the_provider_lists_come_before_the_catalogue(ws: Any,
                                                             server: FakeProviderServer) -> None:
    ws.providers.create(id="or", provider_type="openrouter", name="OR", api_key="sk-or-test-1",
                        base_url=server.url_for("openrouter"), default_model="demo-small")
    assert ws.pricing.for_provider("or", "demo-small") is None
    ws.models("or", refresh=True)
    listed = ws.pricing.for_provider("or", "demo-small")
    assert listed is not None and listed.source == "provider"
    assert listed.input == ws.registry.pricing("or", "demo-small")["prompt"]


# -- cost of recorded OpenAI, Anthropic and Gemini streams ----------------------------------------

def _recording(rel: str) -> bytes:
    path = WIRE / rel
    if not path.exists():
        pytest.skip(f"wire recordings not found at {WIRE}")
    return path.read_bytes()


CASES = {
    # provider type: (recording, requested model, patch giving cached tokens, usage expected)
    "openai": ("openai/chat_stream_text__mirascope.sse", "gpt-4o",
               [(b'"cached_tokens":0', b'"cached_tokens":8')],
               dict(prompt=16, cached=8, written=0, completion=10)),
    "anthropic": ("anthropic/messages_stream_text__mirascope.sse", "claude-sonnet-4-20250514",
                  [(b'"cache_read_input_tokens":0', b'"cache_read_input_tokens":5'),
                   (b'"cache_creation_input_tokens":0', b'"cache_creation_input_tokens":3')],
                  dict(prompt=25, cached=5, written=3, completion=15)),
    "gemini": ("gemini/stream_sse_text__pydantic_ai.sse", "gemini-2.0-flash-exp",
               [(b'"promptTokenCount": 13,',
                 b'"promptTokenCount": 13,"cachedContentTokenCount": 6,')],
               dict(prompt=13, cached=6, written=0, completion=8)),
}


@pytest.mark.wire
@pytest.mark.parametrize("ptype", sorted(CASES))
def test_cost_of_a_recorded_stream_is_usage_times_catalogue_price(
        ws: Any, server: FakeProviderServer, prices_url: str, ptype: str) -> None:
    """The recordings cached nothing, so a count of cached tokens is written into them.

    Cached tokens are part of the prompt count and cost less:
    OpenAI ``usage.prompt_tokens_details.cached_tokens`` (of ``prompt_tokens``;
    https://platform.openai.com/docs/guides/prompt-caching); Anthropic reports
    ``input_tokens`` *beside* ``cache_read_input_tokens``/``cache_creation_input_tokens``
    (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching: input and cache tokens
    arrive in message_start);
    Gemini's ``promptTokenCount`` includes ``cachedContentTokenCount``
    (https://docs.rs/crate/gemini-cost/0.1.0/source/src/usage.rs, after the Gemini API's
    UsageMetadata reference)."""
    rel, model, patches, want = CASES[ptype]
    body = _recording(rel)
    for old, new in patches:
        assert old in body
        body = body.replace(old, new)
    serve_catalogue(server)
    assert ws.pricing.refresh().ok
    ws.providers.create(id="p", provider_type=ptype, name="P", api_key="sk-test-cost-00000001",
                        base_url=server.url_for(ptype), default_model=model)
    server.script("chat", Scripted.from_recording(WIRE / rel, body=body, chunks=7))
    s = ws.chat("What is 4200 + 42?", provider="p")
    s.wait()
    u = s.usage
    assert (u.prompt_tokens, u.cached_input_tokens, u.completion_tokens) == (
        want["prompt"], want["cached"], want["completion"])
    assert (u.cache_write_tokens or 0) == want["written"]
    price = ws.pricing.get(ptype, model)
    assert price is not None and price.source == "catalogue"
    fresh = want["prompt"] - want["cached"] - want["written"]
    expected = (fresh * price.input + want["cached"] * price.cached_input
                + want["written"] * price.input  # no separate cache-write price listed
                + want["completion"] * price.output)
    assert s.cost_exact == expected
    assert s.cost == float(expected)
    uncached = (want["prompt"] * price.input + want["completion"] * price.output)
    assert s.cost_exact < uncached  # cached tokens really were priced as cached
    assert ws.stats.get("p", model).cost == float(expected)
    assert ws.stats.total(provider="p").cost == float(expected)


@pytest.mark.wire
def test_openrouter_reported_cost_is_kept_as_reported(ws: Any,
                                                      server: FakeProviderServer) -> None:
    rel = "openrouter/chat_stream__mirascope_gpt4o.sse"
    body = _recording(rel)
    reported = float(re.search(rb'"cost":([0-9.e-]+)', body).group(1))  # type: ignore[union-attr]
    ws.providers.create(id="or", provider_type="openrouter", name="OR", api_key="sk-or-test-1",
                        base_url=server.url_for("openrouter"), default_model="openai/gpt-4o")
    ws.pricing.set("or", "openai/gpt-4o", input_per_mtok=1000, output_per_mtok=1000)
    server.script("/api/v1/chat/completions", Scripted.from_recording(WIRE / rel))
    s = ws.chat("hi", provider="or")
    s.wait()
    assert s.cost == reported and s.cost_exact == Decimal(repr(reported))
    assert ws.stats.get("or", "openai/gpt-4o").cost == reported


def test_unknown_price_stays_none_and_totals_have_no_float_drift(
        ws: Any, server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIAGENT_PRICES_URL", "off")
    ws.providers.create(id="c", provider_type="openai_compatible", name="C",
                        base_url=server.url_for("openai_compatible"), default_model="demo-small")
    s = ws.chat("hi", provider="c")
    s.wait()
    assert s.usage.prompt_tokens and s.cost is None and ws.stats.get("c", "demo-small").cost is None
    # 0.1 USD ten times is 1 USD exactly, not 0.9999999999999999
    for _ in range(10):
        ws.stats.record("x", "m", vj.Usage(prompt_tokens=1), cost=0.1)
    assert ws.stats.get("x", "m").cost == 1.0
    assert ws.stats.total(provider="x").cost == 1.0


def test_price_cost_rules() -> None:
    p = Price(Decimal(2) * M, Decimal(8) * M, cached_input=Decimal(1) * M,
              cache_write=Decimal("2.5") * M, reasoning=Decimal(20) * M)
    u = vj.Usage(prompt_tokens=1000, completion_tokens=100, cached_input_tokens=600,
                 cache_write_tokens=100)
    assert p.cost(u) == (300 * 2 + 600 * 1 + 100 * Decimal("2.5") + 100 * 8) * M
    assert p.cost(vj.Usage()) is None
    # cached tokens are capped at the prompt; no cache price -> the input price
    plain = Price(Decimal(2) * M, Decimal(8) * M)
    assert plain.cost(vj.Usage(prompt_tokens=10, cached_input_tokens=50)) == 20 * M


def test_migration_keeps_old_costs_exact_and_per_day(home: Path) -> None:
    """A home written before costs were exact (REAL ``cost``) upgrades in place."""
    import sqlite3
    import time

    from viagent_jupyter.db import DB_NAME, MIGRATIONS

    home.mkdir(mode=0o700, parents=True)
    conn = sqlite3.connect(home / DB_NAME, isolation_level=None)
    for migration in MIGRATIONS[:2]:
        migration(conn)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO usage VALUES ('oa', 'gpt-4o', 3, 30, 20, ?, 0, ?)",
                 (0.1 + 0.2, time.time()))
    conn.close()
    with vj.Workspace(home=home) as ws:
        rec = ws.stats.get("oa", "gpt-4o")
        assert rec.requests == 3 and rec.cost == 0.3  # not 0.30000000000000004
        today = ws.stats.total(since=datetime.now(timezone.utc).date().isoformat())
        assert (today.requests, today.cost) == (3, 0.3)
        assert ws.stats.total().cost == 0.3


def test_update_prices_script_keeps_only_chat_models_of_the_three_vendors(tmp_path: Path
                                                                          ) -> None:
    import subprocess
    import sys

    src = tmp_path / "litellm.json"
    src.write_text(json.dumps({
        "sample_spec": {"mode": "chat", "litellm_provider": "one of ..."},
        "gpt-4o": {"mode": "chat", "litellm_provider": "openai", "input_cost_per_token": 2.5e-06,
                   "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
                   "max_input_tokens": 128000, "max_output_tokens": 16384},
        "ft:gpt-4o": {"mode": "chat", "litellm_provider": "openai",
                      "input_cost_per_token": 1, "output_cost_per_token": 1},
        "text-embedding-3-small": {"mode": "embedding", "litellm_provider": "openai",
                                   "input_cost_per_token": 2e-08, "output_cost_per_token": 0},
        "gemini/gemini-2.5-flash": {"mode": "chat", "litellm_provider": "gemini",
                                    "input_cost_per_token": 3e-07,
                                    "output_cost_per_token": 2.5e-06},
        "gemini-2.5-flash": {"mode": "chat", "litellm_provider": "vertex_ai-language-models",
                             "input_cost_per_token": 9, "output_cost_per_token": 9},
        "claude-sonnet-4-5": {"mode": "chat", "litellm_provider": "anthropic",
                              "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                              "cache_creation_input_token_cost": 3.75e-06},
        "mistral/large": {"mode": "chat", "litellm_provider": "mistral",
                          "input_cost_per_token": 1, "output_cost_per_token": 1},
    }))
    out = tmp_path / "prices.json"
    script = Path(__file__).resolve().parent.parent / "scripts" / "update_prices.py"
    subprocess.run([sys.executable, str(script), "--litellm", str(src), "--as-of",
                    "2026-01-02", "--source-label", "litellm test", "--out", str(out)],
                   check=True, capture_output=True)
    doc = json.loads(out.read_text())
    assert (doc["as_of"], doc["source"]) == ("2026-01-02", "litellm test")
    assert doc["models"] == {
        "openai": {"gpt-4o": {"in": "2.5", "out": "10", "cache_read": "1.25", "ctx": 128000,
                              "max_out": 16384}},
        "gemini": {"gemini-2.5-flash": {"in": "0.3", "out": "2.5"}},
        "anthropic": {"claude-sonnet-4-5": {"in": "3", "out": "15", "cache_write": "3.75"}},
    }
