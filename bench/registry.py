"""ModelRegistry: cache hits on a 400-model list, and refreshing five providers at once.

Run: ``python -m bench.registry [--quick]``.

A fake OpenRouter (``FakeProviderServer(openrouter=True)`` with 400 models, in a child
process) serves the lists.

* cache hit: ``ws.models(id)`` once the list is cached — p50 over 2,000 calls. Target ≤ 1 ms.
* refresh_all: five OpenRouter-style providers (400 models each) whose servers answer after
  200 ms (a scripted ``headers_delay``): ``ws.registry.refresh_all()`` should take about the
  time of one (≤ 300 ms), since the five requests run at once. The "one provider" row is the
  same refresh for a single provider, interleaved with the refresh_all runs; the ratio
  column is refresh_all / one.
* For information: a cold fetch (request + parse + store of the 400 models, no delay) and
  the first ``ws.models(id)`` of a new Workspace on the same home (the cached list is parsed
  from the database once).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from typing import Any

from bench._util import p50, p95, timings_ms
from bench.run import ERROR, INFO, Row, median, print_rows, verdict
from bench.stream import ChildServer

__all__ = ["rows"]

N_MODELS = 400
N_PROVIDERS = 5
DELAY_S = 0.2
CACHE_HIT_TARGET_MS = 1.0
REFRESH_ALL_TARGET_MS = 300.0


def serve() -> None:
    """Child process: a 400-model fake OpenRouter; stdin ``delay SECONDS COUNT`` queues
    COUNT model-list answers delayed by SECONDS."""
    from viagent_jupyter.testing import DemoModel, FakeProviderServer, Scripted

    vendors = ("openai", "anthropic", "google", "meta-llama", "mistralai", "qwen", "deepseek")
    models = [DemoModel(f"{vendors[i % len(vendors)]}/model-{i:03d}",
                        f"{vendors[i % len(vendors)].title()}: Model {i}",
                        context_length=8192 * (1 + i % 16), max_output_tokens=4096,
                        prompt_price=f"0.000000{1 + i % 9}",
                        completion_price=f"0.00000{1 + i % 9}") for i in range(N_MODELS)]
    with FakeProviderServer(delay=0, models=models, openrouter=True) as srv:
        print(srv.port, flush=True)
        for line in sys.stdin:
            _, seconds, count = line.split()
            srv.script("models", *[Scripted(headers_delay=float(seconds))] * int(count))
            if len(srv.requests) > 1000:
                srv.clear()
            print("ok", flush=True)


def rows(quick: bool = False) -> list[Row]:
    os.environ.setdefault("VIAGENT_KEYRING", "0")
    import viagent_jupyter as vj

    reps = 3 if quick else 7
    out: list[Row] = []
    with ChildServer(["bench.registry", "--serve"]) as srv, \
            tempfile.TemporaryDirectory() as home, vj.Workspace(home=home) as ws:
        base = f"http://127.0.0.1:{srv.ports[0]}/api/v1"
        ids = [f"or{i}" for i in range(N_PROVIDERS)]
        for pid in ids:
            ws.providers.create(id=pid, provider_type="openrouter", name=f"Router {pid}",
                                base_url=base, api_key="sk-or-bench-0123456789", max_retries=0)
        # cold fetch: request + parse + store, no delay
        cold = timings_ms(lambda _i: ws.models(ids[0], refresh=True), reps)
        n = len(ws.models(ids[0]))
        out.append(Row("registry", f"cold fetch of {n} models (request + parse + store)",
                       median(cold), "ms", verdict=INFO))
        hits = timings_ms(lambda _i: ws.models(ids[0]), 300 if quick else 2000)
        out.append(Row("registry", f"cache-hit ws.models(id), {n} models, p50", p50(hits),
                       "ms", target=f"≤ {CACHE_HIT_TARGET_MS:g} ms",
                       verdict=verdict(p50(hits), CACHE_HIT_TARGET_MS),
                       note=f"p95 {p95(hits):.3f} ms", extra={"p95_ms": p95(hits)}))
        with vj.Workspace(home=home) as other:  # a new kernel on the same home
            t0 = time.perf_counter()
            first = other.models(ids[0])
            first_ms = (time.perf_counter() - t0) * 1000
        out.append(Row("registry", f"first ws.models(id) of a new Workspace ({len(first)} "
                       "cached models parsed)", first_ms, "ms", verdict=INFO))

        all_ms: list[float] = []
        one_ms: list[float] = []
        errors: list[str] = []
        for i in range(reps):
            for what in (("all", "one") if i % 2 == 0 else ("one", "all")):
                count = N_PROVIDERS if what == "all" else 1
                srv.command(f"delay {DELAY_S} {count}")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    if what == "all":
                        result: Any = ws.registry.refresh_all(ids)
                    else:
                        result = {ids[0]: ws.models(ids[0], refresh=True)}
                    ms = (time.perf_counter() - t0) * 1000
                bad = [f"{k}: {v}" for k, v in result.items()
                       if not isinstance(v, list) or len(v) != N_MODELS
                       or getattr(v, "stale", False)]
                if bad:
                    errors.append(bad[0])
                (all_ms if what == "all" else one_ms).append(ms)
        if errors:
            out.append(Row("registry", "refresh_all", None, "", verdict=ERROR,
                           note=str(errors[0])[:160]))
            return out
        ratio = median(a / b for a, b in zip(all_ms, one_ms, strict=True))
        out.append(Row("registry", f"refresh_all, {N_PROVIDERS} providers × {N_MODELS} "
                       f"models, each answering after {DELAY_S * 1000:.0f} ms",
                       median(all_ms), "ms", target=f"≤ {REFRESH_ALL_TARGET_MS:g} ms",
                       ratio=ratio, verdict=verdict(median(all_ms), REFRESH_ALL_TARGET_MS),
                       note="ratio: refresh_all / one provider's refresh",
                       extra={"values_ms": all_ms}))
        out.append(Row("registry", f"one provider's refresh, same delay ({N_MODELS} models)",
                       median(one_ms), "ms", verdict=INFO, extra={"values_ms": one_ms}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.registry")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    print_rows(rows(args.quick))


if __name__ == "__main__":
    main()
