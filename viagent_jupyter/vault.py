"""CredentialVault: API keys encrypted at rest with AES-256-GCM.

Each stored key is one row ``(provider_id, nonce, ciphertext, key_id, hint)``:

* a fresh 96-bit nonce per write;
* associated data ``viagent/v2|<provider id>|<provider type>|<origin>|<extra headers digest>``
  binds the ciphertext to its provider, to the origin it may be sent to and to the extra
  headers sent with it, so a row copied to another provider, or a base URL or header edited
  behind our back, fails to decrypt instead of sending the key elsewhere. Rows written by
  older versions (``viagent/v1|<provider id>|<origin>``) still decrypt, once, and are re-bound
  under v2 at that moment;
* ``key_id`` fingerprints the master key (an HMAC, never the key), and the database records
  the fingerprint of the one master key of the home: a write under another master key is
  refused, naming which source changed, so the vault is never split between two keys.

The master key comes from ``$VIAGENT_VAULT_KEY`` (exactly 32 random bytes, base64), else the
OS keyring when it answers within about a second (asked off the main thread, probed once per
process), else a 32-byte key file created with ``O_EXCL`` and mode 0600 in a 0700 directory.
It is created under an exclusive lock on ``<home>/vault.lock``, whatever its source: one master
key per home, ever, also when several processes store their first key at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from ._private import check_private, home_lock, make_private_dir
from .db import Database
from .errors import CredentialError, Secret, register_secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CredentialVault", "KeyBinding", "decode_vault_key", "key_hint", "origin_of"]

log = logging.getLogger("viagent_jupyter.vault")

KEY_FILE = "master.key"
KEYRING_SERVICE = "viagent_jupyter"
KEYRING_TIMEOUT_S = 1.0
MAX_KEY_LEN = 8192
GENERATE_KEY = ('python -c "import secrets,base64;'
                'print(base64.b64encode(secrets.token_bytes(32)).decode())"')
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
_B64_URL = re.compile(r"[A-Za-z0-9_-]*={0,2}\Z")


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL (the part a key is bound to)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def key_hint(key: str) -> str:
    """A masked hint that cannot reveal the key: ``sk-…abcd``."""
    if len(key) < 12:
        return "…" + key[-2:] if len(key) >= 8 else "…"
    prefix = key[:3] if key[:3].isascii() else ""
    return f"{prefix}…{key[-4:]}"


@dataclass(frozen=True)
class KeyBinding:
    """What a stored key is bound to: its provider type, origin and extra headers."""

    provider_type: str
    origin: str
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, provider_type: str, endpoint: str,
           headers: Mapping[str, str] | None = None) -> KeyBinding:
        canon = tuple(sorted((str(k).lower(), str(v)) for k, v in (headers or {}).items()))
        return cls(provider_type, origin_of(endpoint), canon)

    def aad(self, provider_id: str) -> bytes:
        digest = hashlib.sha256(json.dumps(self.headers, separators=(",", ":")).encode())
        return (f"viagent/v2|{provider_id}|{self.provider_type}|{self.origin}|"
                f"{digest.hexdigest()}").encode()

    def legacy_aad(self, provider_id: str) -> bytes:
        """The associated data of rows written before v2 (provider id and origin only)."""
        return f"viagent/v1|{provider_id}|{self.origin}".encode()


def _key_id(master: bytes) -> str:
    return hmac.new(master, b"viagent key id v1", hashlib.sha256).hexdigest()[:16]


def decode_vault_key(value: str) -> bytes:
    """``VIAGENT_VAULT_KEY``: exactly 32 bytes in base64 (standard or URL-safe alphabet);
    anything else (a passphrase, hex, another length) is a :class:`CredentialError`."""
    text = value.strip()
    raw: bytes | None = None
    padded = text + "=" * (-len(text) % 4)
    for pattern, decode in ((_B64, base64.b64decode), (_B64_URL, base64.urlsafe_b64decode)):
        if pattern.match(text):
            try:
                raw = decode(padded)
            except (ValueError, binascii.Error):
                continue
            break
    if raw is None or len(raw) != 32:
        raise CredentialError(
            "VIAGENT_VAULT_KEY must be exactly 32 random bytes in base64 (a passphrase is not "
            f"accepted); generate one with: {GENERATE_KEY}"
        )
    return raw


# One keyring probe result per process: a keyring that hung or failed once is not asked again
# (no thread left behind per call). Keyed by the keyring module, so a test's stand-in is fresh.
_KEYRING_DOWN: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_KEYRING_LOCK = threading.Lock()


def _keyring_call(fn_name: str, *args: str) -> str | None:
    """Ask the OS keyring off the main thread; give up after about a second, for good."""
    import keyring  # optional dependency

    with _KEYRING_LOCK:
        down = _KEYRING_DOWN.get(keyring)
    if down is not None:
        raise TimeoutError(f"keyring unavailable ({down})")
    box: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(("ok", getattr(keyring, fn_name)(KEYRING_SERVICE, *args)))
        except BaseException as exc:
            box.append(("err", exc))
        done.set()

    # A daemon thread: a keyring that never answers must not hold up interpreter exit.
    threading.Thread(target=run, name="viagent-keyring", daemon=True).start()
    if not done.wait(KEYRING_TIMEOUT_S):
        with _KEYRING_LOCK:
            _KEYRING_DOWN[keyring] = "timeout"
        log.info("the OS keyring did not answer within %.1f s", KEYRING_TIMEOUT_S)
        raise TimeoutError("keyring timeout")
    kind, value = box[0]
    if kind == "err":
        if type(value).__name__ in ("NoKeyringError", "InitError"):
            with _KEYRING_LOCK:
                _KEYRING_DOWN[keyring] = type(value).__name__
        raise value
    return cast("str | None", value)


def describe_source(source: str | None, key_path: Path) -> str:
    """Where a master key of ``source`` lives, for people."""
    return {"env": "the environment variable VIAGENT_VAULT_KEY",
            "keyring": f"the OS keyring (service '{KEYRING_SERVICE}')",
            "file": f"the key file {key_path}"}.get(source or "", "nowhere yet")


class CredentialVault:
    """Encrypts keys into the workspace database; holds session-only keys in memory."""

    def __init__(self, db: Database, home: Path, *, keyring: bool | None = None) -> None:
        self._db = db
        self._home = home
        self._keyring = keyring
        self._lock = threading.RLock()
        self._master: bytes | None = None
        self._aead: AESGCM | None = None
        self._source: str | None = None
        self._session: dict[str, str] = {}

    # -- master key ---------------------------------------------------------------------------
    @property
    def key_path(self) -> Path:
        return self._home / "keys" / KEY_FILE

    def _keyring_user(self) -> str:
        return "master:" + hashlib.sha256(str(self._home.resolve()).encode()).hexdigest()[:24]

    def _keyring_enabled(self) -> bool:
        if self._keyring is not None:
            return self._keyring
        from ._settings import Settings

        return Settings.from_env().keyring

    def _from_keyring(self, create: bool) -> bytes | None:
        """The keyring's key; with ``create`` (called under the home lock), one is stored when
        none is, and what the keyring holds afterwards is read back (whoever won)."""
        if not self._keyring_enabled():
            return None
        user = self._keyring_user()
        try:
            value = _keyring_call("get_password", user)
            if value is None and create:
                _keyring_call("set_password", user, base64.b64encode(os.urandom(32)).decode())
                value = _keyring_call("get_password", user)
        except Exception as exc:  # no backend, locked, timed out: fall back
            log.info("OS keyring unavailable (%s); using the key file", type(exc).__name__)
            return None
        if not value:
            return None
        try:
            raw = base64.b64decode(value)
        except (ValueError, binascii.Error):
            return None
        return raw if len(raw) == 32 else None

    def _check_keys_dir(self) -> None:
        check_private(self._home, "workspace home", CredentialError)
        check_private(self.key_path.parent, "vault key directory", CredentialError)

    def _read_key_file(self, path: Path) -> bytes:
        self._check_keys_dir()
        check_private(path, "vault key file", CredentialError, secret=True)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as fh:
                raw = fh.read(64)
        except OSError as exc:
            raise CredentialError(f"Cannot read the vault key file {path} ({exc.strerror}).") \
                from None
        if len(raw) != 32:
            raise CredentialError(
                f"The vault key file {path} is damaged ({len(raw)} bytes, expected 32). It was "
                "kept as it is; restore it from a backup, or move it aside and set your keys again."
            )
        return raw

    def _from_key_file(self, create: bool) -> bytes | None:
        path = self.key_path
        if path.exists() or path.is_symlink():  # a dangling link is refused, not replaced
            return self._read_key_file(path)
        if not create:
            return None
        self._check_keys_dir()
        make_private_dir(path.parent)
        self._check_keys_dir()
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic: exactly one process creates the file
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return self._read_key_file(path)

    def _has_rows(self) -> bool:
        with self._db.read() as conn:
            return conn.execute("SELECT 1 FROM credentials LIMIT 1").fetchone() is not None

    def _find(self, create: bool) -> tuple[bytes | None, str]:
        """The master key its source gives now (read afresh each call: a source that changed
        under a running kernel is noticed). A new key is made only to encrypt (``create``),
        under the home lock, never over rows that need a lost one."""
        env = os.environ.get("VIAGENT_VAULT_KEY")
        if env:
            return decode_vault_key(env), "env"
        recorded = self._db.get_meta("vault_source")
        if recorded in (None, "file", "env"):
            master = self._from_key_file(create=False)
            if master is not None:
                return master, "file"
        if recorded in (None, "keyring"):
            master = self._from_keyring(create=False)
            if master is not None:
                return master, "keyring"
        if recorded == "keyring":
            raise CredentialError(
                "The vault's master key is kept in the OS keyring, which did not answer. "
                "Unlock the keyring or set VIAGENT_VAULT_KEY, then retry."
            )
        if recorded is not None and self._has_rows():
            if recorded == "env":
                raise CredentialError(
                    "The stored keys were encrypted with VIAGENT_VAULT_KEY, which is not set "
                    "now. Set it to the same value (or run ws.vault.reset() to delete the "
                    "stored keys and set them again)."
                )
            if not create:
                return None, recorded
            raise CredentialError(
                f"The vault's master key ({describe_source(recorded, self.key_path)}) is gone, "
                "and stored keys need it; refusing to make a second one. Restore it, or run "
                "ws.vault.reset() to delete the stored keys and set them again."
            )
        if not create:
            return None, recorded or "file"
        with home_lock(self._home):  # create-if-absent, then read back what won
            master = self._from_key_file(create=False)
            if master is not None:
                return master, "file"
            master = self._from_keyring(create=True)
            if master is not None:
                return master, "keyring"
            master = self._from_key_file(create=True)
            assert master is not None
            return master, "file"

    def _load(self, create: bool) -> bytes | None:
        with self._lock:
            master, source = self._find(create)
            if master is None:
                return None
            if master != self._master:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM

                if self._master is not None:
                    log.warning("the vault's master key (%s) changed while this process held "
                                "another one", source)
                self._master, self._aead = master, AESGCM(master)
            self._source = source
            return master

    def ready(self) -> None:
        """Find (or create) the master key now, outside any database transaction."""
        self._load(create=True)

    @property
    def source(self) -> str | None:
        """Where the master key came from: ``env``, ``keyring`` or ``file`` (once loaded)."""
        return self._source

    def location(self) -> str:
        """Where the master key lives (or will), for people: shown by ``%llm key`` and the
        panel. Asks no keyring: it reads what the database recorded."""
        if os.environ.get("VIAGENT_VAULT_KEY"):
            return describe_source("env", self.key_path)
        source = self._source or self._db.get_meta("vault_source")
        if source is None:
            where = f"the OS keyring if one answers, else the key file {self.key_path}" \
                if self._keyring_enabled() else f"the key file {self.key_path}"
            return f"not created yet (the first stored key creates it in {where})"
        return describe_source(source, self.key_path)

    def _check_recorded(self, conn: sqlite3.Connection, kid: str) -> None:
        """Inside the write transaction: the master key of this write must be the home's one
        (recorded in the database); the first write records it."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'vault_key_id'").fetchone()
        recorded = None if row is None else row[0]
        if recorded == kid:
            return
        others = conn.execute("SELECT COUNT(*) FROM credentials WHERE key_id != ?",
                              (kid,)).fetchone()[0]
        if recorded is not None and others:
            src = conn.execute("SELECT value FROM meta WHERE key = 'vault_source'").fetchone()
            was = describe_source(src[0] if src else None, self.key_path)
            now = describe_source(self._source, self.key_path)
            raise CredentialError(
                f"The master key from {now} is not the one this workspace's {others} stored "
                f"key(s) use (recorded: {was}); refusing to write under a second master key. "
                "Restore the original key source, or run ws.vault.reset() to delete the "
                "stored keys and set them again."
            )
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('vault_key_id', ?)", (kid,))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('vault_source', ?)", (self._source,))

    def reset(self) -> int:
        """Delete every stored key that the current master key cannot decrypt and forget the
        recorded master key (after a master key is lost for good). Providers stay; set their
        keys again. Returns how many keys were deleted."""
        with self._lock:
            try:
                master = self._load(create=False)
            except CredentialError:
                master = None
            with self._db.write() as conn:
                if master is None:
                    cur = conn.execute("DELETE FROM credentials")
                else:
                    cur = conn.execute("DELETE FROM credentials WHERE key_id != ?",
                                       (_key_id(master),))
                conn.execute("DELETE FROM meta WHERE key IN ('vault_key_id', 'vault_source')")
                self._db.bump(conn, "providers_rev")
            return int(cur.rowcount)

    @staticmethod
    def check_key(api_key: object) -> Secret:
        """Validate a key's shape without ever putting it into a message; the stripped key
        comes back as a :class:`Secret` (masked in any traceback)."""
        raw = api_key.reveal() if isinstance(api_key, Secret) else api_key
        if not isinstance(raw, str):
            from .errors import ConfigValidationError

            raise ConfigValidationError(
                "Invalid api_key: must be a string.",
                [{"field": "api_key", "message": "must be a string"}],
            )
        raw = raw.strip()
        problem = None
        if not raw:
            problem = "must not be empty"
        elif len(raw) > MAX_KEY_LEN:
            problem = f"must be at most {MAX_KEY_LEN} characters"
        elif any(c.isspace() or not c.isprintable() for c in raw):
            problem = "must not contain spaces or control characters"
        elif not raw.isascii():  # HTTP headers carry ASCII; no provider issues other keys
            problem = "must contain ASCII letters, digits and punctuation only"
        if problem:
            from .errors import ConfigValidationError

            raise ConfigValidationError(
                f"Invalid api_key: {problem}.", [{"field": "api_key", "message": problem}]
            )
        register_secret(raw)
        return Secret(raw)

    def encrypt_row(
        self, provider_id: str, binding: KeyBinding, api_key: Secret
    ) -> tuple[bytes, bytes, str, str]:
        """``(nonce, ciphertext, key_id, hint)`` for a row; the caller writes it. The master
        key is read afresh from its source (call :meth:`ready` first, outside a transaction)."""
        with self._lock:
            master = self._load(create=False)
            if master is None:
                master = self._load(create=True)
            assert self._aead is not None and master is not None
            nonce = os.urandom(12)
            ct = self._aead.encrypt(nonce, api_key.reveal().encode(), binding.aad(provider_id))
            return nonce, ct, _key_id(master), key_hint(api_key.reveal())

    def write_row(
        self, conn: sqlite3.Connection, provider_id: str, row: tuple[bytes, bytes, str, str]
    ) -> None:
        """Write a row from :meth:`encrypt_row` inside the caller's transaction (encrypt
        first: finding the master key may itself take a while). A row under a master key that
        is not the home's recorded one is refused (:class:`CredentialError`)."""
        nonce, ct, kid, hint = row
        self._check_recorded(conn, kid)
        conn.execute(
            "INSERT OR REPLACE INTO credentials VALUES (?, ?, ?, ?, ?, ?)",
            (provider_id, nonce, ct, kid, hint, datetime.now(timezone.utc).isoformat()),
        )

    def _damaged(self, provider_id: str) -> CredentialError:
        return CredentialError(
            f"The stored key of provider '{provider_id}' failed its integrity check "
            "(tampered, moved from another provider, or its base URL origin, type or extra "
            f"headers changed outside this package); set it again with %llm key {provider_id}.",
            provider_id,
        )

    def decrypt(self, provider_id: str, binding: KeyBinding) -> str | None:
        """The stored key of a provider, or ``None`` when none is stored."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT nonce, ciphertext, key_id FROM credentials WHERE provider_id = ?",
                (provider_id,),
            ).fetchone()
        if row is None:
            return None
        nonce, ct, kid = row
        if not isinstance(nonce, bytes) or not isinstance(ct, bytes) or len(nonce) != 12:
            raise self._damaged(provider_id)  # e.g. stored as TEXT by another program
        with self._lock:
            master = self._load(create=False)
            if master is None:
                where = describe_source(self._db.get_meta("vault_source"), self.key_path)
                raise CredentialError(
                    f"The stored key of provider '{provider_id}' cannot be decrypted: the vault's "
                    f"master key is missing ({where}). Restore it, or run ws.vault.reset() and "
                    f"set the key again with %llm key {provider_id}.",
                    provider_id,
                )
            if kid != _key_id(master):
                raise CredentialError(
                    f"The stored key of provider '{provider_id}' was encrypted with another master "
                    f"key than the one in {describe_source(self._source, self.key_path)}; "
                    f"restore that key, or set this one again with %llm key {provider_id}.",
                    provider_id,
                )
            from cryptography.exceptions import InvalidTag

            assert self._aead is not None
            try:
                plain = self._aead.decrypt(nonce, ct, binding.aad(provider_id))
            except (InvalidTag, ValueError):
                try:  # a row from before v2: decrypts once, then is re-bound under v2
                    plain = self._aead.decrypt(nonce, ct, binding.legacy_aad(provider_id))
                except (InvalidTag, ValueError):
                    raise self._damaged(provider_id) from None
                self._rebind_legacy(provider_id, nonce, binding, Secret(plain.decode()))
        try:
            key = plain.decode()
        except UnicodeDecodeError:
            raise self._damaged(provider_id) from None
        register_secret(key)
        return key

    def _rebind_legacy(self, provider_id: str, nonce: bytes, binding: KeyBinding,
                       key: Secret) -> None:
        new_nonce, ct, kid, hint = self.encrypt_row(provider_id, binding, key)
        sql = ("UPDATE credentials SET nonce = ?, ciphertext = ?, key_id = ?, hint = ? "
               "WHERE provider_id = ? AND nonce = ?")
        args = (new_nonce, ct, kid, hint, provider_id, nonce)
        with self._db.read() as conn:
            if conn.in_transaction:  # inside the caller's write (an update re-binding it)
                conn.execute(sql, args)
                return
        with self._db.write() as conn:
            conn.execute(sql, args)

    def hints(self) -> dict[str, str]:
        """Masked hints of every stored key, read without decrypting anything."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT provider_id, hint FROM credentials").fetchall()
        return {str(pid): str(hint or "…") for pid, hint in rows}

    # -- session-only keys ----------------------------------------------------------------------
    def set_session(self, provider_id: str, api_key: Secret) -> str:
        self._session[provider_id] = api_key.reveal()
        return key_hint(api_key.reveal())

    def session_key(self, provider_id: str) -> str | None:
        return self._session.get(provider_id)

    def forget_session(self, provider_id: str) -> None:
        self._session.pop(provider_id, None)

    def session_hints(self) -> dict[str, str]:
        return {pid: key_hint(k) for pid, k in self._session.items()}
