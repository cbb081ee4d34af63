"""ProviderStore at scale: p50/p95 latencies with 1,000 providers.

Run: ``python -m bench.store``. Expected on a 2-core machine: get/update ≤ 2 ms, list ≤ 10 ms.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from bench._util import p50, p95, timings_ms

N = 1000


def run() -> dict[str, Any]:
    os.environ.setdefault("VIAGENT_KEYRING", "0")
    import viagent_jupyter as vj

    with tempfile.TemporaryDirectory() as tmp, vj.Workspace(home=tmp) as ws:
        create = timings_ms(
            lambda i: ws.providers.create(id=f"p{i:04d}", provider_type="openai",
                                          name=f"Provider {i}", default_model="gpt-4o-mini",
                                          api_key=f"sk-bench-{i:08d}" if i % 2 else None),
            N,
        )
        get = timings_ms(lambda i: ws.providers.get(f"p{(i * 7) % N:04d}"), 2000)
        update = timings_ms(
            lambda i: ws.providers.update(f"p{(i * 13) % N:04d}", settings={"max_tokens": i + 1}),
            1000,
        )
        list_ = timings_ms(lambda i: ws.providers.list(), 200)
        # list right after another process changed something (a full reload)
        with vj.Workspace(home=tmp) as other:
            def list_after_external(i: int) -> None:
                other.providers.update("p0001", name=f"x{i}")
                ws.providers.list()
            reload = timings_ms(list_after_external, 50)
    rows = {
        "create": create, "get": get, "update": update, "list": list_,
        "list after another process's change (incl. its update)": reload,
    }
    return {name: {"p50_ms": round(p50(v), 3), "p95_ms": round(p95(v), 3), "n": len(v)}
            for name, v in rows.items()}


def main() -> None:
    result = run()
    print(f"ProviderStore with {N} providers (python {sys.version.split()[0]})")
    print(f"{'operation':58} {'p50 ms':>8} {'p95 ms':>8}")
    for name, row in result.items():
        print(f"{name:58} {row['p50_ms']:8.3f} {row['p95_ms']:8.3f}")
    if "--json" in sys.argv:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
