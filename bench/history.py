"""The history's cost per chat, and a comparison's wall time vs its slowest answer.

Run: ``python -m bench.history [--quick]``.

* history write per chat: real chats against a local fake provider (loopback HTTP), on a
  real workspace database (WAL). What recording adds to a chat is timed directly: the
  ``watch`` at the start (reading the call's context and the notebook cell) plus the
  ``on_end`` hook at the end (cleaning, scrubbing, one ``INSERT`` with its FTS5 index
  update, commit). The prompt (~1 KB, 3 earlier turns) and answer (~1 KB) are ordinary.
  p50 over the chats. Target ≤ 1 ms.
* For information: the median paired difference of a whole chat with recording on vs off
  (interleaved), which also carries the HTTP round trip's noise.
* compare: three models whose answers take about 0.2, 0.4 and 0.6 s (paced words on three
  fake servers). Each is first streamed alone; then all three with the comparison
  (``_compare.Comparison``). Reported: the comparison's wall time, and its ratio to the
  slowest single answer measured in the same repetition (medians). Target ≤ 1.25×: wall
  time ≈ the slowest answer, not the sum (shown for reference).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import ExitStack
from typing import Any

from bench._util import p50, p95
from bench.run import INFO, Row, median, print_rows, verdict

__all__ = ["rows"]

WRITE_TARGET_MS = 1.0
COMPARE_RATIO_TARGET = 1.25
PACES = (0.01, 0.02, 0.03)  # seconds between the ~20 words of each fake answer


def _history_rows(quick: bool) -> list[Row]:
    import viagent_jupyter as vj
    from viagent_jupyter.history import History
    from viagent_jupyter.testing import FakeProviderServer

    n = 60 if quick else 300
    hook_ms: list[float] = []
    real_watch = History.watch

    def timed_watch(self: History, stream: Any) -> None:
        t0 = time.perf_counter()
        real_watch(self, stream)
        spent = time.perf_counter() - t0
        hook = stream.on_end
        if hook is None:
            return

        def on_end(s: Any) -> None:
            t1 = time.perf_counter()
            hook(s)
            hook_ms.append((spent + time.perf_counter() - t1) * 1000)

        stream.on_end = on_end

    turns = [{"role": r, "content": ("Earlier words about the data frame. " * 8)}
             for r in ("user", "assistant", "user", "assistant")]
    prompt = "Explain the columns of this table and what to plot next. " * 16
    with FakeProviderServer(delay=0) as srv, tempfile.TemporaryDirectory() as home, \
            vj.Workspace(home=home) as ws:
        ws.providers.create(id="fake", provider_type="openai_compatible", name="Fake",
                            base_url=srv.url_for("openai_compatible"),
                            default_model="demo-small", max_retries=0)
        messages = [*turns, {"role": "user", "content": prompt}]
        History.watch = timed_watch  # type: ignore[method-assign]
        try:
            on_ms: list[float] = []
            off_ms: list[float] = []
            for i in range(n):
                for on in ((True, False) if i % 2 == 0 else (False, True)):
                    ws.history.enabled = on
                    t0 = time.perf_counter()
                    ws.chat(messages, system="Be concise.").wait()
                    (on_ms if on else off_ms).append((time.perf_counter() - t0) * 1000)
                if len(srv.requests) > 500:
                    srv.clear()
        finally:
            History.watch = real_watch  # type: ignore[method-assign]
        recorded = len(ws.history)
    diffs = [a - b for a, b in zip(on_ms, off_ms, strict=True)]
    return [
        Row("history", "recording per chat (watch + write), p50", p50(hook_ms), "ms",
            target=f"≤ {WRITE_TARGET_MS:g} ms", verdict=verdict(p50(hook_ms), WRITE_TARGET_MS),
            note=f"p95 {p95(hook_ms):.3f} ms; {recorded} chats recorded, FTS5 indexed",
            extra={"p95_ms": p95(hook_ms)}),
        Row("history", "whole chat, recording on − off (paired median)", median(diffs), "ms",
            verdict=INFO, note=f"chat itself ≈ {median(off_ms):.2f} ms over loopback"),
    ]


def _compare_rows(quick: bool) -> list[Row]:
    import viagent_jupyter as vj
    from viagent_jupyter._compare import Comparison
    from viagent_jupyter.testing import FakeProviderServer

    reps = 3 if quick else 7
    walls: list[float] = []
    ratios: list[float] = []
    sums: list[float] = []
    with ExitStack() as stack:
        servers = [stack.enter_context(FakeProviderServer(delay=pace)) for pace in PACES]
        home = stack.enter_context(tempfile.TemporaryDirectory())
        ws = stack.enter_context(vj.Workspace(home=home))
        targets = []
        for i, srv in enumerate(servers):
            ws.providers.create(id=f"p{i}", provider_type="openai_compatible", name=f"P{i}",
                                base_url=srv.url_for("openai_compatible"),
                                default_model="demo-small", max_retries=0)
            targets.append((f"p{i}", "demo-small"))
        prompt = "Compare these answers please"
        for _ in range(reps):
            singles = []
            for pid, model in targets:
                t0 = time.perf_counter()
                ws.chat(prompt, provider=pid, model=model).wait()
                singles.append(time.perf_counter() - t0)
            comparison = Comparison(ws, prompt, targets)
            t0 = time.perf_counter()
            comparison.run()
            wall = time.perf_counter() - t0
            assert all(r.finish_reason == "stop" for r in comparison.results())
            walls.append(wall)
            ratios.append(wall / max(singles))
            sums.append(sum(singles))
    ratio = median(ratios)
    return [
        Row("history", "compare: 3 models (≈0.2/0.4/0.6 s) side by side, wall",
            median(walls) * 1000, "ms", target=f"≤ {COMPARE_RATIO_TARGET:g}× slowest",
            ratio=ratio, verdict=verdict(ratio, COMPARE_RATIO_TARGET),
            note="ratio: compare wall / slowest single answer", extra={"walls_s": walls}),
        Row("history", "compare: the three answers one after another (sum)",
            median(sums) * 1000, "ms", verdict=INFO),
    ]


def rows(quick: bool = False) -> list[Row]:
    os.environ.setdefault("VIAGENT_KEYRING", "0")
    return _history_rows(quick) + _compare_rows(quick)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history")
    parser.add_argument("--quick", action="store_true")
    print_rows(rows(quick=parser.parse_args().quick))


if __name__ == "__main__":
    main()
