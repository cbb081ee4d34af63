"""The database: corrupt files are reported and kept, journal fallback, migrations."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import viagent_jupyter as vj
from viagent_jupyter.db import DB_NAME, MIGRATIONS, Database
from viagent_jupyter.errors import StorageError


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_not_a_database_is_reported_and_left_exactly_as_it_was(home: Path) -> None:
    home.mkdir(mode=0o700)
    path = home / DB_NAME
    path.write_bytes(b"this is not SQLite, but it is the user's file\n" * 100)
    path.chmod(0o600)
    before = digest(path)
    with pytest.raises(StorageError) as info:
        vj.Workspace(home=home)
    assert info.value.code == "STORAGE_ERROR"
    assert str(path) in str(info.value) and "left as it is" in str(info.value)
    assert digest(path) == before
    assert sorted(p.name for p in home.iterdir()) == [DB_NAME]


def test_damaged_pages_are_reported_and_kept(ws: Any, home: Path) -> None:
    for i in range(40):
        ws.providers.create(id=f"p{i}", provider_type="openai", name="n" * 150)
    ws.close()
    path = home / DB_NAME
    with sqlite3.connect(path) as conn:  # fold the WAL into the main file first
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    raw = bytearray(path.read_bytes())
    for offset in range(4096 * 2 + 100, min(len(raw), 4096 * 4), 7):
        raw[offset] = 0xFF
    path.write_bytes(bytes(raw))
    before = digest(path)
    with pytest.raises(StorageError):
        w = vj.Workspace(home=home)
        try:
            w.providers.list()
            assert w.db.integrity_check() == "ok"  # if it opened, the check must fail
        finally:
            w.close()
    assert digest(path) == before


def test_newer_schema_is_refused(home: Path) -> None:
    vj.Workspace(home=home).close()
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        vj.Workspace(home=home)


def test_unopenable_database_is_reported(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / DB_NAME).mkdir()  # something that is not a file stands where the db should be
    with pytest.raises(StorageError) as info:
        vj.Workspace(home=home)
    assert str(home / DB_NAME) in str(info.value)
    assert (home / DB_NAME).is_dir()


def test_rollback_journal_fallback(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIAGENT_JOURNAL_MODE", "delete")
    with vj.Workspace(home=home) as ws:
        assert ws.db.journal_mode == "delete"
        ws.providers.create(id="a", provider_type="openai")
    with vj.Workspace(home=home) as ws:
        assert [p.id for p in ws.providers.list()] == ["a"]


def test_wal_by_default_and_migrations_are_idempotent(home: Path) -> None:
    db = Database(home)
    assert db.journal_mode == "wal"
    with db.read() as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    with db.write() as conn:
        for migration in MIGRATIONS:
            migration(conn)
    db.close()
    again = Database(home)
    assert again.integrity_check() == "ok"
    again.close()


def test_failed_write_rolls_back(ws: Any) -> None:
    ws.providers.create(id="a", provider_type="openai")
    with pytest.raises(RuntimeError), ws.db.write() as conn:
        conn.execute("DELETE FROM providers")
        raise RuntimeError("boom")
    assert [p.id for p in ws.providers.list()] == ["a"]


def test_generation_moves_only_for_other_connections(home: Path) -> None:
    a, b = Database(home), Database(home)
    g = a.generation()
    with a.write() as conn:
        a.bump(conn, "x")
    assert a.generation() == g
    with b.write() as conn:
        b.bump(conn, "x")
    assert a.generation() == g + 1
    a.close()
    b.close()
