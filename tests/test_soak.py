"""Multi-process soak (issue 8): several kernels' worth of processes do random CRUD,
selections, model lists and chats on one home and one fake provider for a bounded time.

Invariants checked at the end:
* no lost update: every provider a worker owns has exactly the version and counter the
  worker expects (it is the only writer), deleted ones are gone; the shared providers, which
  every worker bumps with ``expected_version`` (retrying on conflict), end at
  ``1 + the number of successful bumps`` reported by all workers together;
* usage totals equal the requests made: requests, errors and tokens per provider:model equal
  what the workers saw (chats that completed, were cancelled, or failed after they started;
  chats refused before they started count nothing);
* ``PRAGMA integrity_check`` is ok, and no operation ever raised anything unexpected;
* convergence: after a barrier every worker refreshes and reports a digest of providers,
  selection and stats; all equal the parent's.

``VIAGENT_SOAK_SECONDS`` (default 7) sets how long each worker runs.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _hardening import digest

import viagent_jupyter as vj
from viagent_jupyter.testing import FakeProviderServer, Scripted

pytestmark = pytest.mark.slow

CTX = mp.get_context("spawn")
WORKERS = 4
SHARED = ("shared-oa", "shared-an", "shared-ol")


def _worker(n: int, home: str, seconds: float, barrier: Any, queue: Any) -> None:
    os.environ["VIAGENT_KEYRING"] = "0"
    rng = random.Random(1000 + n)
    ops: Counter[str] = Counter()
    usage: Counter[tuple[str, str, str]] = Counter()  # (provider, model, field)
    bumps = 0
    own: dict[str, tuple[int, int]] = {}  # id -> (version, counter)
    made = 0
    try:
        with vj.Workspace(home=home) as ws:
            store = ws.providers
            template = store.get("shared-oa")
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                op = rng.choice(["create", "update", "update", "update", "delete", "bump",
                                 "bump", "select", "chat", "chat", "chat", "cancel", "read",
                                 "models"])
                ops[op] += 1
                if op == "create" or (op in ("update", "delete") and not own):
                    made += 1
                    pid = f"w{n}-{made}"
                    store.create(id=pid, provider_type="openai_compatible", name=pid,
                                 base_url=template.base_url, default_model="demo-small",
                                 max_retries=0, settings={"max_tokens": 1})
                    own[pid] = (1, 0)
                elif op == "update":
                    pid = rng.choice(sorted(own))
                    version, counter = own[pid]
                    cfg = store.update(pid, expected_version=version, name=f"{pid}#{counter + 1}",
                                       settings={"max_tokens": counter + 2})
                    assert cfg.version == version + 1, (cfg.version, version)
                    own[pid] = (cfg.version, counter + 1)
                elif op == "delete":
                    pid = rng.choice(sorted(own))
                    try:
                        store.delete(pid)
                        del own[pid]
                    except vj.ProviderInUseError:
                        ops["delete-in-use"] += 1
                elif op == "bump":
                    pid = rng.choice(SHARED)
                    while True:  # optimistic concurrency: read, write if unchanged, retry
                        cfg = store.get(pid)
                        try:
                            store.update(pid, expected_version=cfg.version,
                                         settings={"max_tokens": cfg.version + 1})
                            bumps += 1
                            break
                        except vj.ProviderConflictError:
                            ops["bump-conflict"] += 1
                elif op == "select":
                    choices = [*SHARED, *own]
                    store.select(rng.choice(choices))
                elif op in ("chat", "cancel"):
                    pid = rng.choice([*SHARED, *own])
                    s = ws.chat(f"hello from {n}", provider=pid)
                    try:
                        if op == "cancel":
                            next(iter(s), None)
                            s.close()
                            outcome = "cancelled" if s.finish_reason == "cancelled" else "ok"
                        else:
                            s.wait()
                            outcome = "ok"
                    except vj.ProviderError:
                        outcome = "failed-after-start" if s._started else "failed-before-start"
                    ops[f"chat-{outcome}"] += 1
                    if s._started:  # a started request is counted, whatever its end
                        key = (pid, s.requested_model)
                        usage[(*key, "requests")] += 1
                        usage[(*key, "errors")] += int(s.error is not None)
                        usage[(*key, "prompt_tokens")] += s.usage.prompt_tokens or 0
                        usage[(*key, "completion_tokens")] += s.usage.completion_tokens or 0
                elif op == "read":
                    store.refresh()
                    for cfg in store.list():
                        assert cfg.version >= 1 and cfg.id
                    ws.stats.all()
                else:
                    ws.models(rng.choice(SHARED), refresh=rng.random() < 0.3)
            barrier.wait(timeout=120)  # everybody stopped writing
            ws.poll()
            queue.put(("ok", n, dict(ops), dict(usage), bumps, own, digest(ws)))
    except BaseException as exc:
        queue.put(("error", n, f"{type(exc).__name__}: {exc}", dict(ops)))
        barrier.abort()


def test_processes_doing_random_work_lose_nothing_and_converge(home: Path) -> None:
    seconds = float(os.environ.get("VIAGENT_SOAK_SECONDS", "7"))
    with FakeProviderServer(delay=0) as srv:
        with vj.Workspace(home=home) as ws:
            common = {"default_model": "demo-small", "max_retries": 0}
            ws.providers.create(id="shared-oa", provider_type="openai_compatible",
                                base_url=srv.url_for("openai_compatible"), **common)
            ws.providers.create(id="shared-an", provider_type="anthropic",
                                base_url=srv.url_for("anthropic"),
                                api_key="sk-soak-anthropic-000000001", **common)
            ws.providers.create(id="shared-ol", provider_type="ollama",
                                base_url=srv.url_for("ollama"), **common)
            ws.providers.select("shared-oa")
        barrier = CTX.Barrier(WORKERS + 1)
        queue = CTX.Queue()
        procs = [CTX.Process(target=_worker, args=(n, str(home), seconds, barrier, queue))
                 for n in range(WORKERS)]
        for p in procs:
            p.start()
        # while they run: provider failures before the stream starts (500) and after it
        # started (a body cut mid-way), interleaved with normal answers
        deadline = time.monotonic() + seconds + 60
        scripted = Counter[str]()
        try:
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                kind = random.Random(int((time.monotonic() - start) * 10)).choice(
                    ["500", "cut", "none", "none"])
                if kind == "500":
                    srv.script("chat", Scripted(status=500))
                elif kind == "cut":
                    srv.script("chat", Scripted(truncate_after=70))
                scripted[kind] += 1
                time.sleep(0.1)
            with contextlib.suppress(threading.BrokenBarrierError):  # a worker failed:
                barrier.wait(timeout=max(deadline - time.monotonic(), 1))  # (its report says why)
            results = [queue.get(timeout=60) for _ in procs]
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
        errors = [r for r in results if r[0] != "ok"]
        assert errors == []

        with vj.Workspace(home=home) as ws:
            assert ws.db.integrity_check() == "ok"
            parent_digest = digest(ws)
            assert {r[6] for r in results} == {parent_digest}  # every process converged
            # no lost update: each worker's own providers are exactly as it left them
            live = {c.id: c for c in ws.providers.list()}
            owned = {pid: state for r in results for pid, state in r[5].items()}
            assert {pid for pid in live if pid.startswith("w")} == set(owned)
            for pid, (version, counter) in owned.items():
                assert live[pid].version == version
                assert live[pid].name == (f"{pid}#{counter}" if counter else pid)
            bumps = sum(r[4] for r in results)
            assert sum(live[s].version - 1 for s in SHARED) == bumps
            # usage totals equal the requests the workers made
            seen: Counter[tuple[str, str, str]] = Counter()
            for r in results:
                seen.update(r[3])
            for rec in ws.stats.all():
                for field in ("requests", "errors", "prompt_tokens", "completion_tokens"):
                    assert getattr(rec, field) == seen.pop((rec.provider, rec.model, field),
                                                           0), (rec, field)
            assert +seen == Counter()
            ops = Counter[str]()
            for r in results:
                ops.update(r[2])
            total = sum(v for k, v in ops.items() if "-" not in k)
            print(f"\nsoak: {WORKERS} processes x {seconds:g} s, {total} operations "
                  f"({sum(r[4] for r in results)} shared bumps); {dict(sorted(ops.items()))}; "
                  f"requests recorded {ws.stats.totals['requests']}, "
                  f"errors {ws.stats.totals['errors']}; server requests {len(srv.requests)}; "
                  f"scripted {dict(scripted)}")
            assert ops["chat-ok"] > 10 and ops["chat-failed-after-start"] > 0
            assert ops["chat-failed-before-start"] > 0 and ops["bump-conflict"] >= 0
            assert total > 100
