"""How fast a provider change reaches every view: in one kernel, and from another process.

Run: ``python -m bench.propagation [--quick]``.

(a) One kernel, 50 panels: 50 ``viagent_jupyter.widgets.ConfigPanel`` on one Workspace
    holding 20 providers (outside a kernel anywidget uses a dummy comm, so the state is still
    serialised for sending, but nothing goes over ZeroMQ). Measured: from the call to
    ``ws.providers.update(...)`` to the moment the last of the 50 panels' synced
    ``providers`` trait changed (median of repeated updates). Target ≤ 20 ms. The note gives
    the part after the store's own trait changed (the fan-out to the panels). When the
    widgets cannot be imported, 50 plain traitlets observers on ``ws.providers`` stand in,
    and the row says so.
(b) Across processes: process A (this one) runs an asyncio loop with
    ``ws.start_autorefresh(loop)`` (default poll interval, 0.25 s) and observes the trait
    (a ConfigPanel's when available, else the store's); process B (a fresh
    ``python -c``) updates the provider at random intervals (0.30-0.55 s apart, so the phase
    against the poll is uniform) and records ``time.time()`` right after each update
    committed. Latency = A's ``time.time()`` in the observer − B's. Median over ≥ 20 changes.
    Target median ≤ 0.6 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._util import p95
from bench.run import ERROR, Row, median, print_rows, verdict

__all__ = ["rows"]

REPO = Path(__file__).resolve().parent.parent
N_PANELS = 50
N_PROVIDERS = 20
LOCAL_TARGET_MS = 20.0
REMOTE_TARGET_S = 0.6

WRITER = r"""
import json, os, random, sys, time
import viagent_jupyter as vj
home, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
stamps = []
with vj.Workspace(home=home) as ws:
    ws.providers.get("shared")
    time.sleep(0.5)
    for i in range(n):
        time.sleep(0.30 + 0.25 * rng.random())
        ws.providers.update("shared", name=f"change {i}")
        stamps.append(time.time())
print(json.dumps(stamps))
"""


def _panel_factory() -> tuple[Callable[[Any], Any] | None, str]:
    try:
        from viagent_jupyter.widgets import ConfigPanel
    except Exception as exc:  # widgets absent or broken: fall back to plain observers
        return None, f"{type(exc).__name__}: {exc}"
    return ConfigPanel, ""


def local_rows(quick: bool) -> list[Row]:
    import viagent_jupyter as vj

    factory, why = _panel_factory()
    reps = 30 if quick else 100
    with tempfile.TemporaryDirectory() as home, vj.Workspace(home=home) as ws:
        for i in range(N_PROVIDERS):
            ws.providers.create(id=f"p{i:02d}", provider_type="openai", name=f"Provider {i}",
                                api_key=f"sk-bench-{i:08d}", default_model="gpt-4o-mini")
        stamps: list[float] = []
        store_stamp: list[float] = []
        ws.providers.observe(lambda _c: store_stamp.append(time.perf_counter()), "providers")
        panels: list[Any] = []
        if factory is not None:
            panels = [factory(ws) for _ in range(N_PANELS)]
            for panel in panels:
                panel.observe(lambda _c: stamps.append(time.perf_counter()), "providers")
            what = f"{N_PANELS} ConfigPanels"
        else:
            def make_view() -> Callable[[Any], None]:  # a distinct handler per view
                def view(_change: Any) -> None:  # what a panel does: copy, note the time
                    list(ws.providers.providers)
                    stamps.append(time.perf_counter())

                return view

            for _ in range(N_PANELS):
                ws.providers.observe(make_view(), "providers")
            what = f"{N_PANELS} traitlets observers (fallback: widgets not importable)"
        total: list[float] = []
        fanout: list[float] = []
        counts: list[int] = []
        for i in range(reps):
            stamps.clear()
            store_stamp.clear()
            t0 = time.perf_counter()
            ws.providers.update(f"p{i % N_PROVIDERS:02d}", name=f"renamed {i}")
            if stamps and store_stamp:
                total.append((stamps[-1] - t0) * 1000)
                fanout.append((stamps[-1] - store_stamp[0]) * 1000)
            counts.append(len(stamps))
        for panel in panels:
            panel.close()
    if not total or min(counts) < N_PANELS:
        return [Row("propagation", f"{what}: update → last view", None, "", verdict=ERROR,
                    note=f"only {min(counts)} of {N_PANELS} views updated")]
    value = median(total)
    last = "panel" if factory is not None else "view"
    return [Row("propagation", f"{what}, {N_PROVIDERS} providers: update → last {last}",
                value, "ms", target=f"≤ {LOCAL_TARGET_MS:g} ms",
                verdict=verdict(value, LOCAL_TARGET_MS),
                note=f"fan-out after the store trait {median(fanout):.2f} ms; p95 "
                     f"{p95(total):.2f} ms; {len(total)} updates" + (f"; {why}" if why else ""),
                extra={"values_ms": total, "fanout_ms": fanout})]


def remote_rows(quick: bool) -> list[Row]:
    import viagent_jupyter as vj
    from viagent_jupyter._workspace import POLL_INTERVAL_S

    changes = 10 if quick else 24
    factory, why = _panel_factory()
    seen: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home, vj.Workspace(home=home) as ws:
        ws.providers.create(id="shared", provider_type="openai", name="start",
                            api_key="sk-bench-00000000")

        def note(change: Any) -> None:
            now = time.time()
            for p in change["new"]:
                if p["id"] == "shared" and p["name"] not in seen:
                    seen[p["name"]] = now

        panel = factory(ws) if factory is not None else None
        (panel or ws.providers).observe(note, "providers")
        observed = "a ConfigPanel's trait" if panel is not None else "the store trait"

        loop = asyncio.new_event_loop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.setdefault("VIAGENT_KEYRING", "0")
        try:
            ws.start_autorefresh(loop)  # the default interval
            proc = subprocess.Popen([sys.executable, "-c", WRITER, home, str(changes)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                    cwd=REPO)

            async def until_done() -> None:
                while proc.poll() is None:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(POLL_INTERVAL_S * 2 + 0.1)  # let the last one land

            loop.run_until_complete(asyncio.wait_for(until_done(), changes * 1.0 + 30))
            out, err = proc.communicate()
        finally:
            ws.stop_autorefresh()
            loop.close()
            if panel is not None:
                panel.close()
    if proc.returncode != 0:
        tail = (err.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        return [Row("propagation", "another process's change observed", None, "",
                    verdict=ERROR, note=f"writer failed: {tail}"[:160])]
    stamps = json.loads(out.decode().strip().splitlines()[-1])
    lat = [seen[f"change {i}"] - t for i, t in enumerate(stamps) if f"change {i}" in seen]
    missed = len(stamps) - len(lat)
    if not lat:
        return [Row("propagation", "another process's change observed", None, "",
                    verdict=ERROR, note="no change was observed")]
    value = median(lat)
    return [Row("propagation", f"another process's change → {observed} (poll "
                f"{POLL_INTERVAL_S:g} s)", value, "s", target=f"≤ {REMOTE_TARGET_S:g} s median",
                verdict=verdict(value, REMOTE_TARGET_S) if not missed else ERROR,
                note=f"p95 {p95(lat):.3f} s, max {max(lat):.3f} s; {len(lat)} changes"
                     + (f"; {missed} never observed" if missed else "")
                     + (f"; widgets: {why}" if why else ""),
                extra={"values_s": lat})]


def rows(quick: bool = False) -> list[Row]:
    os.environ.setdefault("VIAGENT_KEYRING", "0")
    return local_rows(quick) + remote_rows(quick)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.propagation")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print_rows(rows(args.quick))


if __name__ == "__main__":
    main()
