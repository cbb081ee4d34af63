"""Prices: catalogue lookup, and the cost bookkeeping of one chat.

Run: ``python -m bench.pricing [--quick]``. In process, no network (the live list is off).

* lookup: ``ws.pricing.lookup(type, model)`` for a bundled model (dated id, so both
  candidates are tried) — p50 over 20,000 calls. Target ≤ 0.05 ms.
* miss: the same for an unknown model (every source is consulted). For information.
* cost: ``Price.cost(usage)`` with cached tokens (exact ``Decimal``). For information.
* chat bookkeeping: what the cost part adds to one chat: price lookup + cost + the budget
  check with one budget (one ``BEGIN IMMEDIATE`` holding the estimate) + recording usage
  (which releases the hold) — p50 over 300 calls; the baseline row is the same recording
  without prices or budgets (what a chat paid before), and the ratio compares them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from decimal import Decimal
from typing import Any

from bench._util import p50, timings_ms
from bench.run import INFO, Row, print_rows, verdict

__all__ = ["rows"]

LOOKUP_TARGET_MS = 0.05


def rows(quick: bool = False) -> list[Row]:
    import viagent_jupyter as vj
    from viagent_jupyter.adapters.base import ChatRequest

    os.environ["VIAGENT_PRICES_URL"] = "off"
    out: list[Row] = []
    n = 3000 if quick else 20000
    with tempfile.TemporaryDirectory() as home, vj.Workspace(home=home) as ws:
        pricing = ws.pricing
        assert pricing.lookup("openai", "gpt-4o-2024-08-06") is not None
        hit = p50(timings_ms(lambda _i: pricing.lookup("openai", "gpt-4o-2024-08-06"), n))
        out.append(Row("pricing", "lookup p50 (bundled, dated id)", hit, "ms",
                       f"≤ {LOOKUP_TARGET_MS} ms", verdict=verdict(hit, LOOKUP_TARGET_MS)))
        miss = p50(timings_ms(lambda _i: pricing.lookup("openai", "gpt-none-2024-01-01"), n))
        out.append(Row("pricing", "lookup p50 (unknown model)", miss, "ms", verdict=INFO))
        price = pricing.lookup("openai", "gpt-4o")
        assert price is not None
        usage = vj.Usage(prompt_tokens=1200, completion_tokens=345, cached_input_tokens=1024)
        cost = p50(timings_ms(lambda _i: price.cost(usage), n))
        out.append(Row("pricing", "Price.cost p50 (cached tokens)", cost, "ms", verdict=INFO))

        ws.providers.create(id="oa", provider_type="openai", name="OA", api_key="sk-bench-0001",
                            default_model="gpt-4o")
        ws.budgets.set(1_000_000)
        req = ChatRequest(provider_id="oa", provider_type="openai", base_url="http://x",
                          model="gpt-4o", messages=[{"role": "user", "content": "hello " * 50}],
                          settings={"max_tokens": 256})
        calls = 100 if quick else 300

        def bookkeeping(_i: int) -> Any:
            p = pricing.lookup("openai", "gpt-4o", provider_id="oa", base_url="http://x")
            hold = ws.budgets.admit(req, p)
            c = p.cost(usage) if p is not None else None
            return ws.stats.record("oa", "gpt-4o", usage, c, hold=hold)

        def baseline(_i: int) -> Any:
            return ws.stats.record("oa", "plain", usage, None)

        base, ours = [], []
        for _ in range(3):  # interleaved: the machine's speed moves between runs
            base += timings_ms(baseline, calls // 3)
            ours += timings_ms(bookkeeping, calls // 3)
        b, o = p50(base), p50(ours)
        out.append(Row("pricing", "per-chat cost + budget + record p50", o, "ms",
                       ratio=o / b if b else None, verdict=INFO,
                       note="ratio: / recording usage alone (the baseline row)"))
        out.append(Row("pricing", "baseline: record usage only p50", b, "ms", verdict=INFO))
        assert ws.budgets.status()[0]["spent"] > Decimal(0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pricing")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print_rows(rows(args.quick))


if __name__ == "__main__":
    main()
