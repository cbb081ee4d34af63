"""What the notebook-as-context and tool-calling features cost.

Run: ``python -m bench.features [--quick]``.

* context: ``context.describe`` of a 10-million-row pandas DataFrame (4 numeric columns and
  one text column, ~400 MB): wall time and the tracemalloc peak of the description, which
  must not materialise the frame (it reads a bounded, evenly spaced sample). Targets:
  ≤ 1 s and ≤ 40 MB. Skipped with a note when pandas/numpy are missing.
* tools: decorating a typed function (``@vj.tool``: JSON Schema via pydantic), p50; and a
  tool chat (the model asks for one call, the kernel runs it, the model answers: two HTTP
  requests) against a plain chat on the same loopback fake provider, medians. The fake
  provider paces its demo words like a real stream, so the absolute times are its pacing; the
  ratio is what matters: a tool chat is two round trips plus the call.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from typing import Any

from bench._util import p50
from bench.run import INFO, SKIPPED, Row, median, print_rows, verdict

__all__ = ["rows"]

DESCRIBE_TARGET_S = 1.0
DESCRIBE_PEAK_TARGET_MB = 40.0


def _context_rows(quick: bool) -> list[Row]:
    try:
        import numpy as np
        import pandas as pd
    except ImportError:
        return [Row("features", "describe a 10M-row DataFrame", None, "s", verdict=SKIPPED,
                    note="pandas/numpy not installed")]
    from viagent_jupyter.context import describe

    n = 2_000_000 if quick else 10_000_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.random(n) for i in range(4)})
    frame["region"] = pd.Categorical(rng.choice(["north", "south", "east", "west"], n))
    times, peaks = [], []
    for _ in range(3):
        tracemalloc.start()
        t0 = time.perf_counter()
        item = describe(frame)
        times.append(time.perf_counter() - t0)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    label = f"{n // 1_000_000}M"
    return [
        Row("features", f"describe a {label}-row DataFrame, wall", median(times), "s",
            target=f"≤ {DESCRIBE_TARGET_S:g} s", verdict=verdict(median(times),
                                                                DESCRIBE_TARGET_S),
            note=f"{len(item.text)} characters of description"),
        Row("features", f"describe a {label}-row DataFrame, peak memory", max(peaks), "MB",
            target=f"≤ {DESCRIBE_PEAK_TARGET_MB:g} MB",
            verdict=verdict(max(peaks), DESCRIBE_PEAK_TARGET_MB),
            note=f"the frame itself: {frame.memory_usage(deep=True).sum() / 2**20:.0f} MB"),
    ]


def _tool_rows(quick: bool) -> list[Row]:
    import viagent_jupyter as vj
    from viagent_jupyter.testing import FakeProviderServer

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    decorate_ms = []
    for _ in range(20 if quick else 100):
        t0 = time.perf_counter()
        vj.tool(add)
        decorate_ms.append((time.perf_counter() - t0) * 1000)
    tool = vj.tool(add)

    n = 20 if quick else 100
    plain_ms: list[float] = []
    tooled_ms: list[float] = []
    with tempfile.TemporaryDirectory() as home, FakeProviderServer() as server:
        ws = vj.Workspace(home=home)
        try:
            ws.providers.create(id="b", provider_type="openai_compatible",
                                base_url=server.url_for("openai_compatible"),
                                default_model="demo-small", api_key="sk-bench")
            for _ in range(n):  # interleaved: the same noise on both sides
                t0 = time.perf_counter()
                ws.chat("use add please", provider="b").wait()
                plain_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                s: Any = ws.chat("use add please", provider="b", tools=[tool],
                                 approve="all").wait()
                tooled_ms.append((time.perf_counter() - t0) * 1000)
                assert len(s.steps) == 2, s.steps
        finally:
            ws.close()
    ratio = median(tooled_ms) / median(plain_ms)
    return [
        Row("features", "@vj.tool on a typed function, p50", p50(decorate_ms), "ms",
            verdict=INFO),
        Row("features", "plain chat over loopback, median", median(plain_ms), "ms",
            verdict=INFO),
        Row("features", "tool chat (1 call, 2 requests) over loopback, median",
            median(tooled_ms), "ms", ratio=ratio, verdict=INFO,
            note="ratio: tool chat / plain chat"),
    ]


def rows(quick: bool = False) -> list[Row]:
    os.environ.setdefault("VIAGENT_KEYRING", "0")
    return _context_rows(quick) + _tool_rows(quick)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.features")
    parser.add_argument("--quick", action="store_true")
    print_rows(rows(quick=parser.parse_args().quick))


if __name__ == "__main__":
    main()
