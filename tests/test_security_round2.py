"""Security round 2 (issue 11): each README promise, tried the way an attacker or a careless
user would. One test (or a few) per item of the issue, named ``test_itemNN_...``; the items
that need a real kernel (6, 8, 9, 11, 12, 13) are in ``test_security_round2_kernel.py``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from _util import PLANTED_KEY

import viagent_jupyter as vj
from viagent_jupyter.db import DB_NAME
from viagent_jupyter.errors import CredentialError, StorageError
from viagent_jupyter.testing import FakeProviderServer, Scripted

KEY = PLANTED_KEY


def saw_key(srv: FakeProviderServer, key: str = KEY) -> bool:
    return any(key in json.dumps(r.headers) or key.encode() in r.body or key in r.path
               for r in srv.requests)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 1. a stored key never follows an origin or type change ---------------------------------

def test_item01_stored_key_is_not_sent_to_a_new_origin(ws: Any) -> None:
    with FakeProviderServer(delay=0) as first, FakeProviderServer(delay=0) as second:
        ws.providers.create(id="oa", provider_type="openai_compatible",
                            base_url=first.url_for("openai"), api_key=KEY,
                            default_model="demo-small")
        ws.chat("hi", provider="oa").wait()
        assert saw_key(first)
        cfg = ws.providers.update("oa", base_url=second.url_for("openai"))
        assert not cfg.has_api_key and "origin changed" in (cfg.key_notice or "")
        public = next(p for p in ws.providers.providers if p["id"] == "oa")
        assert "origin changed" in public["key_notice"]  # the panel shows it
        ws.chat("hi", provider="oa").wait()  # openai_compatible may go without a key
        assert second.requests and not saw_key(second)
        # the key given again is bound to the new origin, and the notice goes
        cfg = ws.providers.update("oa", api_key=KEY)
        assert cfg.key_notice is None
        ws.chat("hi", provider="oa").wait()
        assert saw_key(second)


def test_item01_type_change_and_session_key_are_cleared_too(ws: Any) -> None:
    with FakeProviderServer(delay=0) as srv:
        ws.providers.create(id="oa", provider_type="openai", base_url=srv.url_for("openai"),
                            api_key=KEY, default_model="demo-small")
        cfg = ws.providers.update("oa", provider_type="openai_compatible")
        assert "type changed" in (cfg.key_notice or "") and not cfg.has_api_key
        ws.providers.set_key("oa", KEY, persist=False)  # a session key, then a move
        with FakeProviderServer(delay=0) as other:
            ws.providers.update("oa", base_url=other.url_for("openai"))
            ws.chat("hi", provider="oa").wait()
            assert not saw_key(other)


def test_item01_explicit_rebind_moves_the_key(ws: Any) -> None:
    with FakeProviderServer(delay=0) as first, FakeProviderServer(delay=0) as second:
        ws.providers.create(id="oa", provider_type="openai", base_url=first.url_for("openai"),
                            api_key=KEY, default_model="demo-small")
        cfg = ws.providers.update("oa", base_url=second.url_for("openai"), rebind_key=True)
        assert cfg.has_api_key and cfg.key_notice is None
        ws.chat("hi", provider="oa").wait()
        assert saw_key(second)


# -- 2. one master key per home, also with a keyring and 8 processes at once ----------------

_BACKEND = '''
import json, os, time
from keyring.backend import KeyringBackend

class FileKeyring(KeyringBackend):
    """A keyring whose set_password overwrites (as real ones do), ~10 ms per call."""
    priority = 1

    def __init__(self, path):
        super().__init__()
        self.path = path

    def _load(self):
        try:
            with open(self.path) as fh:
                return json.load(fh)
        except (FileNotFoundError, ValueError):
            return {}

    def get_password(self, service, username):
        time.sleep(0.01)
        return self._load().get(service + "|" + username)

    def set_password(self, service, username, password):
        time.sleep(0.01)
        data = self._load()
        data[service + "|" + username] = password
        tmp = self.path + ".%d.tmp" % os.getpid()
        with open(tmp, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)

    def delete_password(self, service, username):
        pass
'''

_CHILD = '''
import os, sys, time
sys.path.insert(0, sys.argv[1])
import keyring
from fake_keyring import FileKeyring
keyring.set_keyring(FileKeyring(sys.argv[2]))
import viagent_jupyter as vj
home, mode, trial = sys.argv[3], sys.argv[4], sys.argv[5]
if mode == "write":
    i = int(sys.argv[6])
    with vj.Workspace(home=home) as ws:  # opened; then all store their first key at once
        open(os.path.join(sys.argv[1], "ready-%s-%d" % (trial, i)), "w").close()
        while not os.path.exists(os.path.join(sys.argv[1], "go-" + trial)):
            time.sleep(0.0005)
        time.sleep(0.006 * i)  # staggered by less than a keyring round trip: they overlap
        ws.providers.create(id="p%d" % i, provider_type="openai", api_key="sk-proc-key-%04d" % i)
    print("stored")
else:
    with vj.Workspace(home=home) as ws:
        for p in ws.providers.list():
            try:
                key = ws.providers.resolve_key(p.id)[0]
                print(p.id, "ok" if key == "sk-proc-key-%04d" % int(p.id[1:]) else "wrong")
            except vj.CredentialError as exc:
                print(p.id, "lost", exc)
'''


def test_item02_concurrent_first_writes_with_a_keyring_keep_every_key(tmp_path: Path) -> None:
    (tmp_path / "fake_keyring.py").write_text(_BACKEND)
    child = tmp_path / "child.py"
    child.write_text(_CHILD)
    env = {**os.environ, "VIAGENT_KEYRING": "1"}
    for trial in range(3):
        home = tmp_path / f"home{trial}"
        store = str(tmp_path / f"keyring{trial}.json")
        procs = [subprocess.Popen([sys.executable, str(child), str(tmp_path), store, str(home),
                                   "write", str(trial), str(i)], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for i in range(8)]
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob(f"ready-{trial}-*"))) < 8 and time.monotonic() < deadline \
                and all(p.poll() is None for p in procs):
            time.sleep(0.01)
        (tmp_path / f"go-{trial}").touch()  # every process is waiting: go
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 and o[0].strip() == "stored" for p, o in
                   zip(procs, outs, strict=True)), outs
        check = subprocess.run([sys.executable, str(child), str(tmp_path), store, str(home),
                                "read", str(trial)], env=env, text=True, capture_output=True,
                               timeout=120, check=True)
        lines = sorted(check.stdout.split("\n"))[1:]
        assert lines == sorted(f"p{i} ok" for i in range(8)), (trial, check.stdout)
        assert not (home / "keys" / "master.key").exists()  # the keyring held it: one key
        assert len(json.loads(Path(store).read_text())) == 1


# -- 3. OpenSSH's rule for the home, keys/, the database and the key file -------------------

def test_item03_world_writable_home_is_refused(home: Path) -> None:
    vj.Workspace(home=home).close()
    os.chmod(home, 0o777)
    with pytest.raises(StorageError) as info:
        vj.Workspace(home=home)
    assert str(home) in str(info.value) and f"chmod 700 '{home}'" in str(info.value)


def test_item03_database_or_keys_owned_by_someone_else_is_refused(home: Path) -> None:
    with vj.Workspace(home=home) as ws:
        ws.providers.create(id="oa", provider_type="openai", api_key=KEY)
    db = home / DB_NAME
    os.chown(db, 65534, 65534)
    with pytest.raises(StorageError) as info:
        vj.Workspace(home=home)
    assert str(db) in str(info.value) and "chown" in str(info.value)
    os.chown(db, os.getuid(), os.getgid())
    os.chown(home / "keys", 65534, 65534)
    with vj.Workspace(home=home) as ws, pytest.raises(CredentialError) as cred:
        ws.providers.resolve_key("oa")
    assert str(home / "keys") in str(cred.value) and "chown" in str(cred.value)
    os.chown(home / "keys", os.getuid(), os.getgid())
    os.chmod(db, 0o666)
    with pytest.raises(StorageError, match="chmod 600"):
        vj.Workspace(home=home)


def test_item03_symlinks_are_refused(home: Path, tmp_path: Path) -> None:
    with vj.Workspace(home=home) as ws:
        ws.providers.create(id="oa", provider_type="openai", api_key=KEY)
    db = home / DB_NAME
    elsewhere = tmp_path / "theirs.sqlite3"
    db.rename(elsewhere)
    db.symlink_to(elsewhere)
    with pytest.raises(StorageError, match="symbolic link"):
        vj.Workspace(home=home)
    db.unlink()
    elsewhere.rename(db)
    key_file = home / "keys" / "master.key"
    moved = tmp_path / "master.key"
    key_file.rename(moved)
    key_file.symlink_to(moved)
    with vj.Workspace(home=home) as ws, pytest.raises(CredentialError, match="symbolic link"):
        ws.providers.resolve_key("oa")


def test_item03_missing_parents_are_made_0700_under_umask_000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for name in ("VIAGENT_HOME", "JUPYTER_DATA_DIR", "XDG_DATA_HOME", "JUPYTER_PLATFORM_DIRS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "user").mkdir(mode=0o700)
    old = os.umask(0)
    try:
        with vj.Workspace() as ws:  # the default home: ~/.local/share/jupyter/viagent
            ws.providers.create(id="oa", provider_type="openai", api_key=KEY)
            default = ws.home
        with vj.Workspace(home=tmp_path / "a" / "b" / "c") as ws:
            ws.providers.create(id="oa", provider_type="openai", api_key=KEY)
    finally:
        os.umask(old)
    assert default == tmp_path / "user" / ".local" / "share" / "jupyter" / "viagent"
    made = [tmp_path / "user" / ".local", tmp_path / "user" / ".local" / "share",
            tmp_path / "user" / ".local" / "share" / "jupyter", default, default / "keys",
            tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"]
    assert {str(p): oct(p.stat().st_mode & 0o777) for p in made} == \
        {str(p): "0o700" for p in made}
    for f in (default / DB_NAME, default / "keys" / "master.key", default / "vault.lock"):
        assert f.stat().st_mode & 0o777 == 0o600, f


# -- 4. loopback never goes through an environment proxy -----------------------------------

class _Proxy(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def _any(self) -> None:
        type(self).hits.append(f"{self.command} {self.path} {dict(self.headers)}")
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_CONNECT = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    _Proxy.hits = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield _Proxy.hits
    httpd.shutdown()
    httpd.server_close()


def test_item04_loopback_key_never_goes_through_a_proxy(home: Path, proxy: list[str]) -> None:
    with FakeProviderServer(delay=0) as srv, vj.Workspace(home=home) as ws:
        ws.providers.create(id="oa", provider_type="openai", base_url=srv.url_for("openai"),
                            api_key=KEY, default_model="demo-small")
        assert ws.chat("hi", provider="oa").wait().text.startswith("You said")
        ws.providers.update("oa", base_url=srv.url_for("openai").replace("127.0.0.1",
                                                                         "localhost"),
                            api_key=KEY)
        assert ws.models("oa", refresh=True)
        assert saw_key(srv)
    assert proxy == []


def test_item04_other_hosts_still_use_the_proxy(proxy: list[str]) -> None:
    from viagent_jupyter.adapters._http import make_async_client, make_client

    with make_client() as client:
        for url in ("http://127.0.0.1:9/", "http://127.8.9.10/", "http://localhost:1/",
                    "http://[::1]:1/", "https://localhost/"):
            assert client._transport_for_url(httpx.URL(url)) is client._transport, url
        for url in ("http://example.com/", "https://api.openai.com/v1"):
            assert client._transport_for_url(httpx.URL(url)) is not client._transport, url
    aclient = make_async_client()
    assert aclient._transport_for_url(httpx.URL("http://localhost:1/")) is aclient._transport
    assert aclient._transport_for_url(httpx.URL("http://example.com/")) is not \
        aclient._transport


# -- 5. the master key never switches silently -----------------------------------------------

def _b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_item05_another_env_master_key_is_refused_on_write(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIAGENT_VAULT_KEY", _b64key())
    with vj.Workspace(home=home) as ws:
        ws.providers.create(id="a", provider_type="openai", api_key=KEY)
        kid = ws.db.get_meta("vault_key_id")
        monkeypatch.setenv("VIAGENT_VAULT_KEY", _b64key())  # the same kernel, a new key
        with pytest.raises(CredentialError, match="VIAGENT_VAULT_KEY") as info:
            ws.providers.create(id="b", provider_type="openai", api_key=KEY + "b")
        assert "recorded" in str(info.value)
    assert kid and len(kid) == 16  # a fingerprint, never the key
    with vj.Workspace(home=home) as ws:
        assert [p.id for p in ws.providers.list()] == ["a"]
        with ws.db.read() as conn:
            assert conn.execute("SELECT COUNT(DISTINCT key_id) FROM credentials").fetchone() \
                == (1,)


def test_item05_key_file_regenerated_under_a_running_kernel_is_refused(ws: Any,
                                                                       home: Path) -> None:
    ws.providers.create(id="a", provider_type="openai", api_key=KEY)
    key_file = home / "keys" / "master.key"
    key_file.unlink()  # another process regenerates it
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    with pytest.raises(CredentialError, match="key file") as info:
        ws.providers.update("a", api_key=KEY + "x")
    assert str(key_file) in str(info.value)


# -- 7. VIAGENT_VAULT_KEY: exactly 32 random bytes in base64 -------------------------------

@pytest.mark.parametrize("value", [
    "correct horse battery staple!!",  # a passphrase
    "a-long-enough-passphrase-of-32ch",
    "00" * 32,  # hex
    base64.b64encode(os.urandom(31)).decode(),
    base64.b64encode(os.urandom(33)).decode(),
])
def test_item07_weak_vault_keys_are_refused(home: Path, monkeypatch: pytest.MonkeyPatch,
                                            value: str) -> None:
    monkeypatch.setenv("VIAGENT_VAULT_KEY", value)
    with pytest.raises(CredentialError) as info:
        vj.Workspace(home=home)
    assert "secrets.token_bytes(32)" in str(info.value) and value not in str(info.value)


def test_item07_base64_keys_are_accepted(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(32)
    for value in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
                  base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        monkeypatch.setenv("VIAGENT_VAULT_KEY", value)
        with vj.Workspace(home=home) as ws:
            if not ws.providers.list():
                ws.providers.create(id="a", provider_type="openai", api_key=KEY)
            assert ws.providers.resolve_key("a") == (KEY, "stored")


# -- 10. only a missing file is a new workspace ---------------------------------------------

def test_item10_empty_database_file_is_refused_untouched(home: Path) -> None:
    home.mkdir(mode=0o700)
    db = home / DB_NAME
    db.touch(mode=0o600)
    with pytest.raises(StorageError, match="empty"):
        vj.Workspace(home=home)
    assert db.stat().st_size == 0
    assert sorted(p.name for p in home.iterdir()) == [DB_NAME]


def test_item10_foreign_sqlite_file_is_refused_untouched(home: Path) -> None:
    home.mkdir(mode=0o700)
    db = home / DB_NAME
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('the user''s data')")
    conn.commit()
    conn.close()
    os.chmod(db, 0o600)
    before = digest(db)
    with pytest.raises(StorageError, match="another application"):
        vj.Workspace(home=home)
    assert digest(db) == before
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert names == {"notes"}
    finally:
        conn.close()
    assert sorted(p.name for p in home.iterdir()) == [DB_NAME]


# -- 14. partial echoes of a key are redacted ------------------------------------------------

def test_item14_partial_key_echoes_are_redacted(ws: Any) -> None:
    echo = (f"Incorrect API key provided: ...{KEY[-12:]}; prefix {KEY[:20]}; "
            f"shown as {KEY[:10]}...{KEY[-10:]}")
    with FakeProviderServer(delay=0) as srv:
        ws.providers.create(id="oa", provider_type="openai", base_url=srv.url_for("openai"),
                            api_key=KEY, default_model="demo-small")
        srv.script("chat", Scripted(status=401, message=echo))
        with pytest.raises(vj.AuthenticationError) as info:
            ws.chat("hi", provider="oa").wait()
    err = info.value
    texts = [str(err), repr(err), str(err.provider_message), repr(vars(err))]
    windows = {KEY[i:i + 8] for i in range(len(KEY) - 7)}
    leaked = {w for w in windows for t in texts if w in t}
    assert leaked == set(), leaked
    assert "[REDACTED]" in str(err.provider_message)


# -- 15. extra headers: no transport or credential headers; bound to the key ----------------

@pytest.mark.parametrize("name", [
    "Host", "Content-Length", "Transfer-Encoding", "Connection", "Authorization",
    "Proxy-Authorization", "X-Auth-Token", "X-API-Key", "api-key", "Cookie", "X-Session-Token",
    "Client-Secret", "X-Goog-Api-Key", "x-custom-key",
])
def test_item15_transport_and_credential_headers_are_refused(ws: Any, name: str) -> None:
    with pytest.raises(vj.ConfigValidationError) as info:
        ws.providers.create(id="oa", provider_type="openai", headers={name: "v"})
    assert info.value.errors[0]["field"].startswith("headers")
    ws.providers.create(id="ok", provider_type="openrouter",
                        headers={"HTTP-Referer": "https://example.test", "X-Title": "Mine"})


def _edit_row(ws: Any, pid: str, **changes: Any) -> None:
    with ws.db.write() as conn:
        data = json.loads(conn.execute("SELECT data FROM providers WHERE id = ?",
                                       (pid,)).fetchone()[0])
        data.update(changes)
        conn.execute("UPDATE providers SET data = ? WHERE id = ?", (json.dumps(data), pid))
        ws.db.bump(conn, "providers_rev")
    ws.providers._reload(force=True)


def test_item15_headers_edited_in_the_db_fail_the_integrity_check(ws: Any) -> None:
    with FakeProviderServer(delay=0) as srv:
        ws.providers.create(id="oa", provider_type="openai", base_url=srv.url_for("openai"),
                            api_key=KEY, default_model="demo-small", headers={"X-Title": "a"})
        _edit_row(ws, "oa", headers={"X-Title": "a", "X-Extra": "added behind our back"})
        with pytest.raises(CredentialError, match="integrity"):
            ws.chat("hi", provider="oa").wait()
        _edit_row(ws, "oa", headers={"X-Title": "a", "Host": "evil.example"})
        with pytest.raises(vj.ViagentError):
            ws.chat("hi", provider="oa").wait()
        assert srv.requests == []
        # through the API the headers may change: the key is re-bound to them
        _edit_row(ws, "oa", headers={"X-Title": "a"})
        ws.providers.update("oa", headers={"X-Title": "b"})
        assert ws.providers.resolve_key("oa") == (KEY, "stored")


def test_item15_rows_from_before_v2_decrypt_once_and_are_rebound(ws: Any) -> None:
    from viagent_jupyter.vault import KeyBinding

    ws.providers.create(id="oa", provider_type="openai", api_key=KEY, headers={"X-Title": "a"})
    cfg = ws.providers.get("oa")
    binding = KeyBinding.of(cfg.provider_type, cfg.endpoint, cfg.headers)
    nonce = os.urandom(12)
    assert ws.vault._aead is not None
    ct = ws.vault._aead.encrypt(nonce, KEY.encode(), binding.legacy_aad("oa"))
    with ws.db.write() as conn:  # a row as the previous version wrote it
        conn.execute("UPDATE credentials SET nonce = ?, ciphertext = ? WHERE provider_id = 'oa'",
                     (nonce, ct))
    assert ws.providers.resolve_key("oa") == (KEY, "stored")
    with ws.db.read() as conn:
        assert conn.execute("SELECT nonce FROM credentials").fetchone()[0] != nonce
    _edit_row(ws, "oa", headers={"X-Title": "a", "X-Extra": "later"})
    with pytest.raises(CredentialError, match="integrity"):
        ws.providers.resolve_key("oa")


# -- 16. typed errors for damaged rows and key files -----------------------------------------

def test_item16_ciphertext_or_nonce_stored_as_text_is_a_credential_error(ws: Any) -> None:
    ws.providers.create(id="a", provider_type="openai", api_key=KEY)
    ws.providers.create(id="b", provider_type="openai", api_key=KEY + "b")
    with ws.db.write() as conn:
        conn.execute("UPDATE credentials SET ciphertext = 'not bytes' WHERE provider_id = 'a'")
        conn.execute("UPDATE credentials SET nonce = 'abcdefghijkl' WHERE provider_id = 'b'")
    for pid in ("a", "b"):
        with pytest.raises(CredentialError, match="integrity") as info:
            ws.providers.resolve_key(pid)
        assert info.value.provider == pid


def test_item16_dangling_symlinked_key_file_is_a_credential_error(home: Path,
                                                                  tmp_path: Path) -> None:
    (home / "keys").mkdir(parents=True, mode=0o700)
    os.chmod(home, 0o700)
    (home / "keys" / "master.key").symlink_to(tmp_path / "nowhere")
    with vj.Workspace(home=home) as ws, pytest.raises(CredentialError, match="symbolic link"):
        ws.providers.create(id="a", provider_type="openai", api_key=KEY)
    assert not (tmp_path / "nowhere").exists()


# -- also: environment settings checked once; one keyring probe per process ------------------

@pytest.mark.parametrize(("var", "value"), [
    ("VIAGENT_CHAT_DEADLINE", "0"), ("VIAGENT_CHAT_DEADLINE", "15m"),
    ("VIAGENT_MODELS_TTL", "1h"), ("VIAGENT_MODELS_TTL", "-5"),
    ("VIAGENT_JOURNAL_MODE", "fast"), ("VIAGENT_KEYRING", "maybe"), ("VIAGENT_LOG", "2"),
    ("OLLAMA_HOST", "ftp://x"), ("OLLAMA_HOST", "localhost:99999"),
    ("VIAGENT_PRICES_URL", "prices.example/list"),
])
def test_also_environment_settings_are_checked_when_the_workspace_is_built(
    home: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(vj.ConfigValidationError) as info:
        vj.Workspace(home=home)
    message = str(info.value)
    assert var in message and "expected" in message and "\n" not in message


def test_also_good_environment_settings_are_used(home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIAGENT_CHAT_DEADLINE", "2.5")
    monkeypatch.setenv("VIAGENT_MODELS_TTL", "0")
    monkeypatch.setenv("VIAGENT_JOURNAL_MODE", "DELETE")
    with vj.Workspace(home=home) as ws:
        assert (ws.settings.chat_deadline, ws.registry.ttl, ws.db.journal_mode) == \
            (2.5, 0.0, "delete")


def test_also_a_hanging_keyring_is_probed_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    class Hanging(types.ModuleType):
        calls = 0

        def get_password(self, service: str, user: str) -> str | None:
            type(self).calls += 1
            release.wait(30)
            return None

        def set_password(self, service: str, user: str, value: str) -> None:
            release.wait(30)

    monkeypatch.setitem(sys.modules, "keyring", Hanging("keyring"))
    monkeypatch.setenv("VIAGENT_KEYRING", "1")
    try:
        for i in range(4):
            with vj.Workspace(home=tmp_path / f"h{i}") as ws:
                ws.providers.create(id="a", provider_type="openai", api_key=KEY)
                assert ws.vault.source == "file"
        alive = [t for t in threading.enumerate() if t.name == "viagent-keyring"]
        assert len(alive) <= 1 and Hanging.calls == 1
    finally:
        release.set()
