#!/usr/bin/env python3
"""Regenerate ``viagent_jupyter/data/prices.json``, the dated price snapshot in the wheel.

Two sources, each recorded in the file with its date:

* ``--litellm FILE`` — LiteLLM's ``model_prices_and_context_window_backup.json`` (MIT).
  Get it without network access to GitHub from the package registry::

      pip download litellm --no-deps -d /tmp/litellm
      unzip -p /tmp/litellm/litellm-*.whl litellm/model_prices_and_context_window_backup.json \
          > /tmp/litellm/prices.json
      python scripts/update_prices.py --litellm /tmp/litellm/prices.json \
          --source-label "litellm 1.110.2 (PyPI)"

* ``--openrouter URL`` — OpenRouter's public model list (no key needed), e.g.
  ``https://openrouter.ai/api/v1/models``; it prices ``openai/…``, ``anthropic/…`` and
  ``google/…`` models at the vendors' list prices.

Only chat models of OpenAI, Anthropic and Gemini are kept (the snapshot stays small);
OpenRouter ids ``vendor/model`` are looked up in these tables, and a local Ollama is free by
rule (see ``viagent_jupyter/pricing.py``). Prices are stored as decimal strings in USD per
million tokens, exactly as converted from the source (no float arithmetic).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "viagent_jupyter" / "data" / "prices.json"
FAMILIES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
OPENROUTER_VENDORS = {"openai": "openai", "anthropic": "anthropic", "google": "gemini"}
MILLION = Decimal(1_000_000)


def per_mtok(value: Any) -> str | None:
    """USD per token (number or string) → USD per million tokens, as a plain decimal string."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except ArithmeticError:
        return None
    if d < 0:
        return None
    out = format((d * MILLION).normalize(), "f")
    return out


def entry(inp: Any, out: Any, cache_read: Any = None, cache_write: Any = None,
          reasoning: Any = None, ctx: Any = None, max_out: Any = None) -> dict[str, Any] | None:
    e: dict[str, Any] = {"in": per_mtok(inp), "out": per_mtok(out)}
    if e["in"] is None or e["out"] is None:
        return None
    for key, value in (("cache_read", cache_read), ("cache_write", cache_write),
                       ("reasoning", reasoning)):
        v = per_mtok(value)
        if v is not None:
            e[key] = v
    for key, value in (("ctx", ctx), ("max_out", max_out)):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            e[key] = value
    return e


def from_litellm(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {f: {} for f in FAMILIES.values()}
    for key, v in data.items():
        if not isinstance(v, dict) or v.get("mode") != "chat":
            continue
        family = FAMILIES.get(str(v.get("litellm_provider")))
        if family is None or key.startswith("ft:") or "/" in key.removeprefix("gemini/"):
            continue
        model = key.removeprefix("gemini/")
        if family == "gemini" and not key.startswith("gemini/"):
            continue  # the gemini/ entries are the Gemini API's own prices
        e = entry(v.get("input_cost_per_token"), v.get("output_cost_per_token"),
                  v.get("cache_read_input_token_cost"), v.get("cache_creation_input_token_cost"),
                  v.get("output_cost_per_reasoning_token"), v.get("max_input_tokens"),
                  v.get("max_output_tokens"))
        if e is not None:
            tables[family][model] = e
    return tables


def from_openrouter(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {f: {} for f in FAMILIES.values()}
    for item in data.get("data") or []:
        mid = str(item.get("id") or "")
        vendor, _, model = mid.partition("/")
        family = OPENROUTER_VENDORS.get(vendor)
        if family is None or not model or ":" in model:
            continue
        p = item.get("pricing") or {}
        top = item.get("top_provider") or {}
        e = entry(p.get("prompt"), p.get("completion"), p.get("input_cache_read"),
                  p.get("input_cache_write"), p.get("internal_reasoning") or None,
                  item.get("context_length"), top.get("max_completion_tokens"))
        if e is not None:
            tables[family][model] = e
    return tables


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--litellm", type=Path, help="LiteLLM's price JSON file")
    src.add_argument("--openrouter", help="OpenRouter's public /api/v1/models URL or a file")
    ap.add_argument("--source-label", help="what the file is (e.g. 'litellm 1.110.2 (PyPI)')")
    ap.add_argument("--as-of", help="the date the prices were taken (default: today, UTC)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.litellm is not None:
        tables = from_litellm(json.loads(args.litellm.read_text(encoding="utf-8")))
        source = args.source_label or f"litellm {args.litellm.name}"
        source_url = ("https://github.com/BerriAI/litellm/blob/main/"
                      "model_prices_and_context_window.json (MIT)")
    else:
        where = args.openrouter
        if where.startswith(("http://", "https://")):
            with urllib.request.urlopen(where, timeout=30) as resp:
                raw = resp.read()
        else:
            raw = Path(where).read_bytes()
        tables = from_openrouter(json.loads(raw))
        source = args.source_label or f"OpenRouter public model list {where}"
        source_url = where
    as_of = args.as_of or dt.datetime.now(dt.timezone.utc).date().isoformat()
    doc = {
        "format": 1,
        "as_of": as_of,
        "source": source,
        "source_url": source_url,
        "generated_by": "scripts/update_prices.py",
        "units": "USD per million tokens",
        "models": {f: dict(sorted(t.items())) for f, t in sorted(tables.items())},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=0, separators=(",", ":")) + "\n",
                        encoding="utf-8")
    counts = ", ".join(f"{f}: {len(t)}" for f, t in sorted(tables.items()))
    print(f"wrote {args.out} ({counts}; as of {as_of})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
