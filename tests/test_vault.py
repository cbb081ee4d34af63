"""CredentialVault: AES-GCM rows bound to provider and origin; master-key sourcing."""

from __future__ import annotations

import base64
import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

import viagent_jupyter as vj
from viagent_jupyter.errors import CredentialError
from viagent_jupyter.vault import key_hint


def two_providers(ws: Any) -> None:
    ws.providers.create(id="a", provider_type="openai", name="A", api_key="sk-key-of-a-000001")
    ws.providers.create(id="b", provider_type="anthropic", name="B", api_key="sk-key-of-b-000002")


def test_rows_are_encrypted_with_fresh_nonces(ws: Any, home: Path) -> None:
    two_providers(ws)
    ws.providers.update("a", api_key="sk-key-of-a-000001")  # same key again
    with ws.db.read() as conn:
        rows = conn.execute("SELECT provider_id, nonce, ciphertext FROM credentials").fetchall()
    nonces = {bytes(r[1]) for r in rows}
    assert len(nonces) == 2 and all(len(n) == 12 for n in nonces)
    for _pid, _nonce, ct in rows:
        assert b"sk-key-of" not in bytes(ct)
    key_file = home / "keys" / "master.key"
    assert key_file.stat().st_size == 32
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert (key_file.parent.stat().st_mode & 0o777) == 0o700


def test_flipped_byte_breaks_only_that_provider(ws: Any) -> None:
    two_providers(ws)
    with ws.db.write() as conn:
        ct = bytearray(conn.execute(
            "SELECT ciphertext FROM credentials WHERE provider_id = 'a'").fetchone()[0])
        ct[3] ^= 0x01
        conn.execute("UPDATE credentials SET ciphertext = ? WHERE provider_id = 'a'", (bytes(ct),))
    with pytest.raises(CredentialError) as info:
        ws.providers.resolve_key("a")
    assert info.value.code == "CREDENTIAL_ERROR" and info.value.provider == "a"
    assert "%llm key a" in str(info.value)
    assert ws.providers.resolve_key("b") == ("sk-key-of-b-000002", "stored")


def test_ciphertext_swapped_between_providers_fails(ws: Any) -> None:
    two_providers(ws)
    ws.providers.create(id="c", provider_type="openai", name="C", api_key="sk-key-of-c-000003")
    with ws.db.write() as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT provider_id, nonce, ciphertext FROM credentials")}
        conn.execute("UPDATE credentials SET nonce = ?, ciphertext = ? WHERE provider_id = 'a'",
                     rows["c"])
    with pytest.raises(CredentialError, match="'a'"):
        ws.providers.resolve_key("a")
    assert ws.providers.resolve_key("b")[0] == "sk-key-of-b-000002"
    assert ws.providers.resolve_key("c")[0] == "sk-key-of-c-000003"


def test_base_url_edited_behind_our_back_does_not_release_the_key(ws: Any) -> None:
    two_providers(ws)
    with ws.db.write() as conn:
        data = conn.execute("SELECT data FROM providers WHERE id = 'a'").fetchone()[0]
        data = data.replace('"base_url": null', '"base_url": "https://attacker.example"')
        conn.execute("UPDATE providers SET data = ? WHERE id = 'a'", (data,))
        ws.db.bump(conn, "providers_rev")
    ws.providers._reload(force=True)
    assert ws.providers.get("a").base_url == "https://attacker.example"
    with pytest.raises(CredentialError):
        ws.providers.resolve_key("a")


def test_group_readable_key_file_is_refused(ws: Any, home: Path) -> None:
    two_providers(ws)
    key_file = home / "keys" / "master.key"
    os.chmod(key_file, 0o644)
    with vj.Workspace(home=home) as fresh, pytest.raises(CredentialError) as info:
        fresh.providers.resolve_key("a")
    msg = str(info.value)
    assert "chmod 600" in msg and str(key_file) in msg and "644" in msg
    assert key_file.stat().st_size == 32  # reported, not replaced


def test_damaged_key_file_is_reported_and_kept(ws: Any, home: Path) -> None:
    two_providers(ws)
    key_file = home / "keys" / "master.key"
    key_file.write_bytes(b"short")
    with vj.Workspace(home=home) as fresh, pytest.raises(CredentialError, match="damaged"):
        fresh.providers.resolve_key("a")
    assert key_file.read_bytes() == b"short"


def test_lost_master_key_is_a_clear_error_and_not_regenerated_on_read(
    ws: Any, home: Path
) -> None:
    two_providers(ws)
    (home / "keys" / "master.key").unlink()
    with vj.Workspace(home=home) as fresh:
        with pytest.raises(CredentialError, match="master key"):
            fresh.providers.resolve_key("a")
        assert not (home / "keys" / "master.key").exists()
        # a write would split the vault between two master keys: refused, nothing made
        with pytest.raises(CredentialError, match="gone"):
            fresh.providers.update("a", api_key="sk-key-of-a-new-01")
        assert not (home / "keys" / "master.key").exists()
        # the explicit way out: forget the unreadable keys, then set them again
        assert fresh.vault.reset() == 2
        fresh.providers.update("a", api_key="sk-key-of-a-new-01")
        assert fresh.providers.resolve_key("a")[0] == "sk-key-of-a-new-01"
        fresh.providers.refresh()
        assert fresh.providers.get("b").has_api_key is False


def test_env_master_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("VIAGENT_VAULT_KEY", key)
    with vj.Workspace(home=home) as ws:
        two_providers(ws)
        assert ws.vault.source == "env"
    assert not (home / "keys" / "master.key").exists()
    with vj.Workspace(home=home) as ws:
        assert ws.providers.resolve_key("a")[0] == "sk-key-of-a-000001"
    monkeypatch.setenv("VIAGENT_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    with vj.Workspace(home=home) as ws, pytest.raises(CredentialError, match="another master"):
        ws.providers.resolve_key("a")
    monkeypatch.delenv("VIAGENT_VAULT_KEY")
    with vj.Workspace(home=home) as ws, pytest.raises(CredentialError, match="VIAGENT_VAULT"):
        ws.providers.resolve_key("a")


def test_too_short_env_master_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIAGENT_VAULT_KEY", "short")
    with pytest.raises(CredentialError, match="exactly 32 random bytes"):
        vj.Workspace(home=home)


class FakeKeyring(types.ModuleType):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__("keyring")
        self.delay = delay
        self.store: dict[tuple[str, str], str] = {}
        self.calls = 0

    def get_password(self, service: str, user: str) -> str | None:
        self.calls += 1
        time.sleep(self.delay)
        return self.store.get((service, user))

    def set_password(self, service: str, user: str, value: str) -> None:
        time.sleep(self.delay)
        self.store[(service, user)] = value


def test_keyring_is_used_when_it_answers(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKeyring()
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.setenv("VIAGENT_KEYRING", "1")
    with vj.Workspace(home=home) as ws:
        two_providers(ws)
        assert ws.vault.source == "keyring" and len(fake.store) == 1
    assert not (home / "keys" / "master.key").exists()
    with vj.Workspace(home=home) as ws:
        assert ws.providers.resolve_key("b")[0] == "sk-key-of-b-000002"
    # the keyring stops answering: a clear error, never a silently new key
    fake.store.clear()
    with vj.Workspace(home=home) as ws, pytest.raises(CredentialError, match="keyring"):
        ws.providers.resolve_key("b")


def test_hanging_keyring_falls_back_to_key_file_within_bounds(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKeyring(delay=5.0)
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.setenv("VIAGENT_KEYRING", "1")
    started = time.monotonic()
    with vj.Workspace(home=home) as ws:
        two_providers(ws)
        assert ws.vault.source == "file"
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, elapsed  # two probes of ~1 s each, not the keyring's 5 s
    assert (home / "keys" / "master.key").exists()


def test_concurrent_first_use_makes_one_key_file(home: Path) -> None:
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            with vj.Workspace(home=home) as ws:
                ws.providers.create(id=f"p{i}", provider_type="openai",
                                    api_key=f"sk-thread-key-{i:04d}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with vj.Workspace(home=home) as ws:
        for i in range(6):
            assert ws.providers.resolve_key(f"p{i}")[0] == f"sk-thread-key-{i:04d}"
    assert [p.name for p in (home / "keys").iterdir()] == ["master.key"]


@pytest.mark.parametrize("bad", ["", "   ", "has space", "tab\tkey", "x" * 9000, 123])
def test_bad_keys_are_rejected_without_echo(ws: Any, bad: Any) -> None:
    with pytest.raises(vj.ConfigValidationError) as info:
        ws.providers.create(id="a", provider_type="openai", api_key=bad)
    if isinstance(bad, str) and bad.strip():
        assert bad not in str(info.value) and bad not in repr(info.value.errors)
    assert ws.providers.list() == []


def test_key_hint_masks() -> None:
    assert key_hint("sk-proj-abcdefghijklmnop1234") == "sk-…1234"
    assert key_hint("short12345") == "…45"
    assert key_hint("abc") == "…"
