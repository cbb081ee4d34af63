"""Several OS processes on one home: no lost update, no lock error, one conflict winner,
and a writer killed mid-write leaves the old or the new state."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import viagent_jupyter as vj
from viagent_jupyter.db import DB_NAME

pytestmark = pytest.mark.slow

CTX = mp.get_context("spawn")


def _updater(home: str, pid: str, count: int, queue: Any) -> None:
    os.environ["VIAGENT_KEYRING"] = "0"
    try:
        with vj.Workspace(home=home) as ws:
            for i in range(count):
                cfg = ws.providers.get(pid)
                ws.providers.update(pid, settings={"max_tokens": i + 1},
                                    expected_version=cfg.version)
        queue.put(("ok", pid))
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_processes_updating_different_providers_lose_nothing(home: Path) -> None:
    procs, per = 4, 60
    with vj.Workspace(home=home) as ws:
        for n in range(procs):
            ws.providers.create(id=f"p{n}", provider_type="openai")
    queue = CTX.Queue()
    workers = [CTX.Process(target=_updater, args=(str(home), f"p{n}", per, queue))
               for n in range(procs)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    assert all(kind == "ok" for kind, _ in results), results
    with vj.Workspace(home=home) as ws:
        for n in range(procs):
            cfg = ws.providers.get(f"p{n}")
            assert cfg.version == per + 1  # every one of the 240 updates landed
            assert cfg.settings.max_tokens == per
        assert ws.db.integrity_check() == "ok"


def _racer(home: str, version: int, start_at: float, queue: Any) -> None:
    os.environ["VIAGENT_KEYRING"] = "0"
    with vj.Workspace(home=home) as ws:
        while time.time() < start_at:
            time.sleep(0.001)
        try:
            ws.providers.update("same", name=f"by-{os.getpid()}", expected_version=version)
            queue.put("won")
        except vj.ProviderConflictError:
            queue.put("conflict")
        except BaseException as exc:
            queue.put(f"error {type(exc).__name__}: {exc}")


def test_two_processes_same_version_exactly_one_wins(home: Path) -> None:
    with vj.Workspace(home=home) as ws:
        version = ws.providers.create(id="same", provider_type="openai").version
    for _round in range(3):
        queue = CTX.Queue()
        start_at = time.time() + 1.5
        workers = [CTX.Process(target=_racer, args=(str(home), version, start_at, queue))
                   for _ in range(2)]
        for w in workers:
            w.start()
        results = sorted(queue.get(timeout=60) for _ in workers)
        for w in workers:
            w.join(timeout=30)
        assert results == ["conflict", "won"]
        version += 1


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["VIAGENT_KEYRING"] = "0"
    import viagent_jupyter as vj
    ws = vj.Workspace(home=sys.argv[1])
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        ws.providers.update("victim", name=f"name-{i}", settings={"max_tokens": i},
                            headers={"X-Pad": "p" * (i % 3000)})
    """
)


def test_writer_killed_mid_write_leaves_a_consistent_database(home: Path) -> None:
    with vj.Workspace(home=home) as ws:
        v0 = ws.providers.create(id="victim", provider_type="openai", name="name-0").version
    for delay in (0.3, 0.55, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(home)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        conn = sqlite3.connect(home / DB_NAME)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        with vj.Workspace(home=home) as ws:
            cfg = ws.providers.get("victim")
            n = int(cfg.name.split("-")[1])
            # name, settings and version were written together: old or new, never a mix
            assert cfg.settings.max_tokens == (n or None)
            assert cfg.version == v0 + n
            assert cfg.headers.get("X-Pad", "") == "p" * (n % 3000)
            assert n > 0, "the writer made no update before it was killed"
            v0 = ws.providers.update("victim", name="name-0", settings={"max_tokens": None},
                                     headers={}).version


def _first_open(home: str, n: int, start_at: float, queue: Any) -> None:
    os.environ["VIAGENT_KEYRING"] = "0"
    while time.time() < start_at:
        time.sleep(0.0005)
    try:
        with vj.Workspace(home=home) as ws:
            ws.providers.create(id=f"p{n}", provider_type="openai", api_key=f"sk-first-{n:06d}")
        queue.put("ok")
    except BaseException as exc:
        queue.put(f"{type(exc).__name__}: {exc}")


def test_many_processes_opening_a_fresh_home_at_once(home: Path) -> None:
    queue = CTX.Queue()
    start_at = time.time() + 2.0
    workers = [CTX.Process(target=_first_open, args=(str(home), n, start_at, queue))
               for n in range(6)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    assert results == ["ok"] * 6
    with vj.Workspace(home=home) as ws:
        assert sorted(p.id for p in ws.providers.list()) == [f"p{n}" for n in range(6)]
        for n in range(6):
            assert ws.providers.resolve_key(f"p{n}")[0] == f"sk-first-{n:06d}"
