"""Fault injection (issue 8): storage, lock, keyring and corruption faults are reported as one
readable line, bounded in time, and never lose or replace what was there.

Every fault is real where it can be, and root-proof (the tests run as root, where ``chmod``
stops nothing):

* a full disk: SQLite's own ``SQLITE_FULL`` path, via ``PRAGMA max_page_count``;
* a read-only database: ``PRAGMA query_only`` on the workspace's connection, and a
  connection opened with SQLite's ``mode=ro`` URI;
* a database held locked by another process (``BEGIN EXCLUSIVE``) past the busy timeout;
* an OS keyring that never answers (in a child process, which must still exit);
* a filesystem without WAL: SQLite's ``unix-dotfile`` VFS has no shared memory and refuses
  WAL exactly as NFS-like filesystems do;
* truncated databases; empty and wrongly sized key files; provider, model-cache and usage
  rows holding invalid data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import viagent_jupyter as vj
from viagent_jupyter import db as db_module
from viagent_jupyter.db import DB_NAME
from viagent_jupyter.errors import CredentialError, StorageError, ViagentError
from viagent_jupyter.testing import FakeProviderServer

FAULTS: list[str] = []  # every fault injected and survived, for the summary line


def survived(name: str) -> None:
    FAULTS.append(name)


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    print(f"\nfaults injected and survived: {len(FAULTS)}: {sorted(set(FAULTS))}")


@pytest.fixture
def srv() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as server:
        yield server


def snapshot(home: Path) -> str:
    """Every row of every table, read through a separate connection."""
    conn = sqlite3.connect(f"file:{home / DB_NAME}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        dump = {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall()))
                for t in tables}
    finally:
        conn.close()
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and len(text) <= 400, text
    assert isinstance(exc, ViagentError)
    return text


def populate(ws: Any, srv: FakeProviderServer) -> None:
    ws.providers.create(id="oa", provider_type="openai", base_url=srv.url_for("openai"),
                        api_key="sk-fault-key-000000000001", default_model="demo-small",
                        max_retries=0)
    ws.providers.create(id="local", provider_type="ollama", base_url=srv.url_for("ollama"),
                        default_model="demo-small", max_retries=0)
    ws.providers.select("oa")
    assert ws.chat("hi", provider="oa").wait().text
    ws.models("oa")


def writes(ws: Any) -> dict[str, Callable[[], Any]]:
    """One of each kind of save the package makes."""
    return {
        "create": lambda: ws.providers.create(id="new", provider_type="ollama",
                                              headers={"X-Pad": "p" * 3900}),
        "update": lambda: ws.providers.update("oa", name="Renamed",
                                              headers={"X-Pad": "q" * 3900}),
        "set key": lambda: ws.providers.set_key("oa", "sk-fault-key-000000000002"),
        "delete": lambda: ws.providers.delete("local"),
        "select": lambda: ws.providers.select("local"),
        "usage": lambda: ws.stats.record("oa", "demo-small", None),
        "model cache": lambda: ws.models("oa", refresh=True),
    }


# --------------------------------------------------------------------------- full / read-only


@pytest.mark.parametrize("fault", ["disk full", "query_only"])
def test_a_save_that_cannot_be_written_is_one_line_and_changes_nothing(
        fault: str, ws: Any, home: Path, srv: FakeProviderServer,
        caplog: pytest.LogCaptureFixture) -> None:
    populate(ws, srv)
    conn = ws.db._conn
    if fault == "disk full":
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        expect = "full"
    else:
        conn.execute("PRAGMA query_only = ON")
        expect = "read-only"
    before = snapshot(home)
    for name, call in writes(ws).items():
        if fault == "disk full" and name not in ("create", "update"):
            continue  # small edits fit in the pages already there: a full disk allows them
        with pytest.raises(StorageError) as info:
            call()
        assert expect in one_line(info.value), (name, str(info.value))
        assert snapshot(home) == before, name
        survived(f"{fault}: {name}")
    # reading still works, and a chat still answers (its usage cannot be saved: logged)
    assert [c.id for c in ws.providers.list()] == ["oa", "local"]
    caplog.set_level(logging.WARNING, "viagent_jupyter.chat")
    if fault == "query_only":
        assert ws.chat("hi", provider="oa").wait().text.startswith("You said")
        assert "could not record usage" in caplog.text
        survived(f"{fault}: chat")
    with vj.Workspace(home=home) as other:  # another kernel sees the old state, intact
        assert other.providers.get("oa").name == "oa"
        assert other.db.integrity_check() == "ok"
    # space freed / writable again: the same saves go through
    conn.execute("PRAGMA max_page_count = 1073741823")
    conn.execute("PRAGMA query_only = OFF")
    ws.providers.update("oa", name="Renamed")
    ws.providers.create(id="new", provider_type="ollama")
    assert ws.db.integrity_check() == "ok"


def test_a_database_opened_read_only_reads_and_refuses_writes(
        home: Path, srv: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with vj.Workspace(home=home) as ws:
        populate(ws, srv)
    before, file_before = snapshot(home), sha(home / DB_NAME)
    real_connect = sqlite3.connect

    def connect_ro(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if str(database).endswith(DB_NAME):
            return real_connect(f"file:{database}?mode=ro", *args, uri=True, **kwargs)
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(db_module.sqlite3, "connect", connect_ro)
    with vj.Workspace(home=home) as ws:
        assert [c.id for c in ws.providers.list()] == ["oa", "local"]
        assert ws.providers.resolve_key("oa")[0] == "sk-fault-key-000000000001"
        assert ws.stats.get("oa", "demo-small").requests == 1
        for name, call in writes(ws).items():
            with pytest.raises(StorageError) as info:
                call()
            assert "read-only" in one_line(info.value), name
            survived(f"mode=ro: {name}")
    monkeypatch.undo()
    assert snapshot(home) == before and sha(home / DB_NAME) == file_before


# --------------------------------------------------------------------------- locked


LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("ROLLBACK")
""")


def hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_database_locked_by_another_process_fails_within_the_timeout(
        journal: str, home: Path, srv: FakeProviderServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_S", 0.5)  # read when a Database opens
    monkeypatch.setenv("VIAGENT_JOURNAL_MODE", journal)
    ws = vj.Workspace(home=home)
    try:
        populate(ws, srv)
        before = snapshot(home)
        locker = hold_lock(home / DB_NAME, 60)
        try:
            for name, call in writes(ws).items():
                started = time.monotonic()
                with pytest.raises(StorageError) as info:
                    call()
                elapsed = time.monotonic() - started
                assert "locked" in one_line(info.value), (name, str(info.value))
                assert 0.4 <= elapsed < 20, (name, elapsed)  # busy timeout, not the 60 s lock
                survived(f"locked ({journal}): {name}")
            caplog.set_level(logging.WARNING, "viagent_jupyter.chat")
            if journal == "wal":  # WAL readers are not blocked by a writer
                assert [c.id for c in ws.providers.list()] == ["oa", "local"]
                s = ws.chat("hi", provider="oa")
                assert s.wait().text.startswith("You said")  # answered; usage not saved
                assert "could not record usage" in caplog.text
                survived("locked (wal): chat")
            else:  # a rollback journal's EXCLUSIVE lock blocks readers and openers too
                started = time.monotonic()
                with pytest.raises(StorageError, match="locked"):
                    vj.Workspace(home=home)
                assert time.monotonic() - started < 20  # not the 60 s lock
                survived("locked (delete): open")
        finally:
            locker.kill()
            locker.wait(10)
            assert locker.stdout is not None
            locker.stdout.close()
        assert snapshot(home) == before
        ws.providers.update("oa", name="After")  # the lock is gone: writes go through
        assert ws.providers.get("oa").name == "After"
    finally:
        ws.close()


# --------------------------------------------------------------------------- keyring


KEYRING_CHILD = textwrap.dedent("""
    import json, os, sys, threading, time, types
    mode, store_path, home = sys.argv[1], sys.argv[2], sys.argv[3]
    keyring = types.ModuleType("keyring")

    def _load():
        return json.load(open(store_path)) if os.path.exists(store_path) else {}

    def get_password(service, user):
        if mode == "hang":
            threading.Event().wait()  # never answers
        return _load().get(service + "|" + user)

    def set_password(service, user, value):
        if mode == "hang":
            threading.Event().wait()
        data = _load(); data[service + "|" + user] = value
        json.dump(data, open(store_path, "w"))

    keyring.get_password, keyring.set_password = get_password, set_password
    sys.modules["keyring"] = keyring
    os.environ["VIAGENT_KEYRING"] = "1"
    import viagent_jupyter as vj
    out = {}
    ws = vj.Workspace(home=home)
    started = time.monotonic()
    try:
        if "a" not in ws.providers:
            ws.providers.create(id="a", provider_type="openai", api_key="sk-keyring-key-00000001")
        out["key"] = ws.providers.resolve_key("a")[0]
    except vj.CredentialError as exc:
        out["error"] = str(exc)
    out["elapsed"] = time.monotonic() - started
    out["source"] = ws.vault.source
    print(json.dumps(out), flush=True)
    # no close(): the interpreter must exit although a keyring thread is still blocked
""")


def run_keyring_child(mode: str, store: Path, home: Path) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", KEYRING_CHILD, mode, str(store), str(home)],
                          capture_output=True, text=True, timeout=30)
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    return out


def test_a_keyring_that_never_answers_is_bounded_and_the_process_exits(
        tmp_path: Path, home: Path) -> None:
    store = tmp_path / "keyring.json"
    # a fresh home: the hanging keyring is given up on, the key file is used
    out = run_keyring_child("hang", store, tmp_path / "fresh")
    assert out["key"] == "sk-keyring-key-00000001" and out["source"] == "file"
    assert out["elapsed"] < 20.0, out  # two probes of about a second; the keyring never answers
    assert out["wall"] < 29.0, out  # and the process exited despite the blocked thread
    assert (tmp_path / "fresh" / "keys" / "master.key").is_file()
    survived("keyring hangs: fresh home")
    # a home whose master key lives in the keyring: it hangs -> a clear error, nothing new
    out = run_keyring_child("ok", store, home)
    assert out["source"] == "keyring" and out["key"] == "sk-keyring-key-00000001"
    before = snapshot(home)
    out = run_keyring_child("hang", store, home)
    assert "keyring" in out["error"] and "key" not in out, out
    assert out["elapsed"] < 20.0 and out["wall"] < 29.0, out
    assert not (home / "keys").exists()  # no key file was made over the keyring's rows
    assert snapshot(home) == before
    survived("keyring hangs: key kept in the keyring")
    out = run_keyring_child("ok", store, home)  # the keyring is back: the key is too
    assert out["key"] == "sk-keyring-key-00000001"


# --------------------------------------------------------------------------- no WAL


def test_a_filesystem_without_wal_falls_back_to_the_rollback_journal(
        home: Path, srv: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = sqlite3.connect

    def connect_dotfile(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if str(database).endswith(DB_NAME):  # no shared memory: SQLite refuses WAL
            return real_connect(f"file:{database}?vfs=unix-dotfile", *args, uri=True, **kwargs)
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(db_module.sqlite3, "connect", connect_dotfile)
    with vj.Workspace(home=home) as a, vj.Workspace(home=home) as b:
        assert a.db.journal_mode == b.db.journal_mode == "delete"
        populate(a, srv)
        assert b.providers.refresh() and [c.id for c in b.providers.list()] == ["oa", "local"]
        b.providers.update("oa", name="From b")
        a.providers.refresh()
        assert a.providers.get("oa").name == "From b"
        assert b.chat("hi", provider="oa").wait().text
        a.stats.refresh()
        assert a.stats.get("oa", "demo-small").requests == 2
        assert a.db.integrity_check() == "ok"
    assert not (home / (DB_NAME + "-wal")).exists()
    survived("no WAL (unix-dotfile VFS)")


# --------------------------------------------------------------------------- corruption


def big_home(home: Path) -> Path:
    with vj.Workspace(home=home) as ws:
        for i in range(40):
            ws.providers.create(id=f"p{i}", provider_type="openai", name="n" * 150,
                                api_key=f"sk-corrupt-key-{i:08d}")
    path = home / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


@pytest.mark.parametrize("size", [100, 4096, 4096 + 10, "half"])
def test_a_truncated_database_is_reported_and_kept(home: Path, size: int | str) -> None:
    path = big_home(home)
    data = path.read_bytes()
    cut = len(data) // 2 if size == "half" else int(size)
    path.write_bytes(data[:cut])
    before = sha(path)
    with pytest.raises(StorageError) as info:
        ws = vj.Workspace(home=home)
        try:  # if it opened, the damage shows on first use: never another exception
            [ws.providers.resolve_key(c.id) for c in ws.providers.list()]
            assert ws.db.integrity_check() == "ok"
        finally:
            ws.close()
    one_line(info.value)
    assert sha(path) == before  # left exactly as it was, never reset
    assert sorted(p.name for p in home.iterdir() if p.name.startswith(DB_NAME)) in (
        [DB_NAME], [DB_NAME, DB_NAME + "-shm", DB_NAME + "-wal"])
    survived(f"truncated database ({size})")


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_damaged_key_file_is_reported_kept_and_not_replaced(
        home: Path, srv: FakeProviderServer, size: int) -> None:
    with vj.Workspace(home=home) as ws:
        populate(ws, srv)
    key_file = home / "keys" / "master.key"
    key_file.write_bytes(os.urandom(size))
    before = sha(key_file)
    with vj.Workspace(home=home) as ws:
        with pytest.raises(CredentialError, match=f"damaged \\({size} bytes") as info:
            ws.providers.resolve_key("oa")
        one_line(info.value)
        with pytest.raises(CredentialError):
            ws.chat("hi", provider="oa")
        with pytest.raises(CredentialError):  # no new key is made over it
            ws.providers.create(id="other", provider_type="openai",
                                api_key="sk-another-key-000000001")
        assert "other" not in ws.providers
        assert ws.chat("hi", provider="local").wait().text  # providers without a key still work
        assert ws.providers.get("oa").has_api_key  # the row is kept, just unreadable
    assert sha(key_file) == before and [p.name for p in key_file.parent.iterdir()] == [
        "master.key"]
    survived(f"key file of {size} bytes")


BAD_ROWS = ["{not json", "[]", "null", "123", '"text"', "[" * 50_000,
            '{"id": "bad", "provider_type": "grpc", "name": "x"}',
            '{"id": "bad", "provider_type": "openai", "name": "x", "timeout": -1}']


@pytest.mark.parametrize("data", BAD_ROWS, ids=[f"row{i}" for i in range(len(BAD_ROWS))])
def test_a_damaged_provider_row_is_skipped_and_the_others_work(
        home: Path, srv: FakeProviderServer, data: str,
        caplog: pytest.LogCaptureFixture) -> None:
    with vj.Workspace(home=home) as ws:
        populate(ws, srv)
        ws.providers.create(id="bad", provider_type="ollama")
        ws.providers.select("bad")
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute("UPDATE providers SET data = ? WHERE id = 'bad'", (data,))
    conn.close()
    with vj.Workspace(home=home) as ws:
        store = ws.providers
        assert [c.id for c in store.list()] == ["oa", "local"]
        assert set(store.load_errors) == {"bad"}
        assert "damaged" in caplog.text
        with pytest.raises(vj.ProviderNotFoundError, match="damaged") as info:
            store.get("bad")
        one_line(info.value)
        with pytest.raises(vj.ProviderNotFoundError, match="damaged"):  # selected, damaged
            ws.chat("hi")
        with pytest.raises((StorageError, vj.ConfigValidationError)) as err:
            store.update("bad", name="still bad")
        one_line(err.value)
        assert ws.chat("hi", provider="oa").wait().text  # the others work
        store.update("oa", name="Fine")
        with sqlite3.connect(home / DB_NAME) as conn:  # the damaged row is kept as it was
            assert conn.execute("SELECT data FROM providers WHERE id = 'bad'"
                                ).fetchone()[0] == data
        conn.close()
        if data.startswith('{"') and "grpc" not in data:
            store.update("bad", timeout=30)  # a JSON object can be repaired in place
            assert store.get("bad").timeout == 30 and store.load_errors == {}
        else:
            store.select("oa")
            store.delete("bad")  # the way out the message names
        assert "bad" not in store.load_errors
        assert ws.db.integrity_check() == "ok"
    survived(f"provider row {data[:20]!r}")


BAD_CACHES = [("{bad", 1.0), ("{}", 1.0), ("[1]", 1.0), ('[{"id": 5}]', 1.0),
              ('[{"id": "demo-small", "pricing": "x"}]', 1.0),
              ('[{"id": "demo-small", "pricing": {"prompt": "abc", "completion": "1"}}]', 1.0),
              ("[" * 50_000, 1.0), ("[]", "not a time")]


@pytest.mark.parametrize("data,fetched_at", BAD_CACHES,
                         ids=[f"cache{i}" for i in range(len(BAD_CACHES))])
def test_a_damaged_model_cache_row_is_refetched(home: Path, srv: FakeProviderServer,
                                                data: str, fetched_at: Any) -> None:
    with vj.Workspace(home=home) as ws:
        ws.providers.create(id="or", provider_type="openrouter", base_url=srv.url_for(
            "openrouter"), api_key="sk-or-fault-00000001", default_model="demo-small",
                            max_retries=0)
        assert ws.models("or").ids
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute("UPDATE model_cache SET data = ?, fetched_at = ?", (data, fetched_at))
    conn.close()
    with vj.Workspace(home=home) as ws:
        assert ws.registry.cached("or") is None
        assert ws.registry.pricing("or", "demo-small") is None
        s = ws.chat("hi", provider="or")
        assert s.wait().text and s.cost is not None  # OpenRouter reports its cost itself
        models = ws.models("or")  # refetched (and the cache row replaced with a good one)
        assert "demo-small" in models.ids and not models.from_cache
        assert ws.registry.cached("or") is not None
    survived(f"model cache row {data[:16]!r}")


def test_a_damaged_usage_row_is_skipped_and_healed_by_the_next_request(
        ws: Any, home: Path) -> None:
    ws.stats.record("p", "ok-model", None)
    with ws.db.write() as conn:
        conn.execute("INSERT INTO usage (provider, model, requests, prompt_tokens, "
                     "completion_tokens, cost_pusd, errors, last_used) "
                     "VALUES ('p', 'm', 'many', 1, 2, 'x', 0, 'yesterday')")
        ws.db.bump(conn, "usage_rev")
    with vj.Workspace(home=home) as other:
        assert [r.model for r in other.stats.all()] == ["ok-model"]
        assert other.stats.totals["requests"] == 1
        rec = other.stats.record("p", "m", None)  # SQLite's arithmetic repairs the counters
        assert rec.model == "m"
    survived("usage row with text in its counters")
