"""CredentialVault: API keys encrypted at rest with AES-256-GCM.

Each stored key is one row ``(provider_id, nonce, ciphertext, key_id, hint)``:

* a fresh 96-bit nonce per write;
* associated data ``viagent/v1|<provider id>|<origin of its base URL>`` binds the ciphertext to
  its provider and to the origin it may be sent to, so a row copied to another provider, or a
  base URL edited behind our back, fails to decrypt instead of sending the key elsewhere;
* ``key_id`` fingerprints the master key, so a lost or changed master key is named as such.

The master key comes from ``$VIAGENT_VAULT_KEY``, else the OS keyring when it answers within
about a second (asked off the main thread), else a 32-byte key file created with ``O_EXCL`` and
mode 0600 in a 0700 directory. Where the master key came from is recorded, so a workspace
never silently switches to a new key over existing rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import sqlite3
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from .db import Database, make_private_dir
from .errors import CredentialError, Secret, register_secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CredentialVault", "key_hint", "origin_of"]

log = logging.getLogger("viagent_jupyter.vault")

KEY_FILE = "master.key"
KEYRING_SERVICE = "viagent_jupyter"
KEYRING_TIMEOUT_S = 1.0
MAX_KEY_LEN = 8192


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


def _key_id(master: bytes) -> str:
    return hmac.new(master, b"viagent key id v1", hashlib.sha256).hexdigest()[:16]


def _decode_env_key(value: str) -> bytes:
    value = value.strip()
    for decoder in (base64.urlsafe_b64decode, base64.b64decode, bytes.fromhex):
        try:
            raw = decoder(value + "=" * (-len(value) % 4)) if decoder is not bytes.fromhex \
                else bytes.fromhex(value)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    if len(value) < 16:
        raise CredentialError(
            "VIAGENT_VAULT_KEY is too short: use 32 random bytes in base64 "
            "(python -c \"import os,base64;print(base64.b64encode(os.urandom(32)).decode())\")."
        )
    # A long passphrase: stretch it deterministically (it must already be high-entropy).
    return hashlib.sha256(b"viagent vault key v1|" + value.encode()).digest()


class CredentialVault:
    """Encrypts keys into the workspace database; holds session-only keys in memory."""

    def __init__(self, db: Database, home: Path) -> None:
        self._db = db
        self._home = home
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
        return os.environ.get("VIAGENT_KEYRING", "1").lower() not in ("0", "false", "no", "off")

    def _keyring_call(self, fn_name: str, *args: str) -> str | None:
        """Ask the OS keyring off the main thread; give up after about a second."""

        def call() -> str | None:
            import keyring  # optional dependency

            result: str | None = getattr(keyring, fn_name)(KEYRING_SERVICE, *args)
            return result

        # A daemon thread: a keyring that never answers must not hold up interpreter exit.
        box: list[Any] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append(("ok", call()))
            except BaseException as exc:
                box.append(("err", exc))
            done.set()

        threading.Thread(target=run, name="viagent-keyring", daemon=True).start()
        if not done.wait(KEYRING_TIMEOUT_S):
            log.info("the OS keyring did not answer within %.1f s", KEYRING_TIMEOUT_S)
            raise TimeoutError("keyring timeout")
        kind, value = box[0]
        if kind == "err":
            raise value
        return cast("str | None", value)

    def _from_keyring(self, create: bool) -> bytes | None:
        if not self._keyring_enabled():
            return None
        user = self._keyring_user()
        try:
            value = self._keyring_call("get_password", user)
            if value is None and create:
                fresh = base64.b64encode(os.urandom(32)).decode()
                self._keyring_call("set_password", user, fresh)
                value = self._keyring_call("get_password", user)
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

    def _check_key_file(self, path: Path) -> None:
        st = path.stat()
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise CredentialError(
                f"The vault key file {path} belongs to another user; refusing to use it. "
                "Remove it only if you know it is not needed, or set VIAGENT_VAULT_KEY."
            )
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise CredentialError(
                f"The vault key file {path} is readable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 '{path}'."
            )

    def _read_key_file(self, path: Path) -> bytes:
        self._check_key_file(path)
        try:
            raw = path.read_bytes()
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
        if path.exists():
            return self._read_key_file(path)
        if not create:
            return None
        make_private_dir(path.parent)
        os.chmod(path.parent, 0o700)
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

    def _load_master(self, create: bool) -> bytes | None:
        """Find the master key. A new one is made only to encrypt (``create``), never to read;
        rows encrypted under a lost key stay and keep reporting it (their ``key_id``)."""
        if self._master is not None:
            return self._master
        recorded_source = self._db.get_meta("vault_source")
        recorded_id = self._db.get_meta("vault_key_id")
        env = os.environ.get("VIAGENT_VAULT_KEY")
        master: bytes | None = None
        source = "env"
        if env:
            master = _decode_env_key(env)
        else:
            if recorded_source in (None, "file", "env"):
                master, source = self._from_key_file(create=False), "file"
            if master is None and recorded_source in (None, "keyring"):
                master, source = self._from_keyring(create=False), "keyring"
            if master is None and recorded_source == "keyring":
                raise CredentialError(
                    "The vault's master key is kept in the OS keyring, which did not answer. "
                    "Unlock the keyring or set VIAGENT_VAULT_KEY, then retry."
                )
            if master is None and recorded_source == "env" and not create:
                raise CredentialError(
                    "The stored keys were encrypted with VIAGENT_VAULT_KEY, which is not set "
                    "now. Set it to the same value, or set the keys again."
                )
            if master is None:
                if not create:
                    return None
                master, source = self._from_keyring(create=True), "keyring"
                if master is None:
                    master, source = self._from_key_file(create=True), "file"
                if recorded_id is not None:
                    log.warning("the vault's previous master key is gone; new keys use a new one")
        assert master is not None
        if recorded_id != _key_id(master) or recorded_source != source:
            with self._db.write() as conn:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('vault_source', ?)", (source,))
                conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('vault_key_id', ?)", (_key_id(master),)
                )
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._master, self._source, self._aead = master, source, AESGCM(master)
        return master

    def ready(self) -> None:
        """Find (or create) the master key now, outside any database transaction."""
        with self._lock:
            self._load_master(create=True)

    @property
    def source(self) -> str | None:
        """Where the master key came from: ``env``, ``keyring`` or ``file`` (once loaded)."""
        return self._source

    # -- keys ---------------------------------------------------------------------------------
    @staticmethod
    def _aad(provider_id: str, origin: str) -> bytes:
        return f"viagent/v1|{provider_id}|{origin}".encode()

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
        self, provider_id: str, origin: str, api_key: Secret
    ) -> tuple[bytes, bytes, str, str]:
        """``(nonce, ciphertext, key_id, hint)`` for a row; the caller writes it."""
        with self._lock:
            self._load_master(create=True)
            assert self._aead is not None and self._master is not None
            nonce = os.urandom(12)
            ct = self._aead.encrypt(nonce, api_key.reveal().encode(),
                                    self._aad(provider_id, origin))
            return nonce, ct, _key_id(self._master), key_hint(api_key.reveal())

    def write_row(
        self, conn: sqlite3.Connection, provider_id: str, row: tuple[bytes, bytes, str, str]
    ) -> None:
        """Write a row from :meth:`encrypt_row` inside the caller's transaction (encrypt
        first: finding the master key may itself write)."""
        nonce, ct, kid, hint = row
        conn.execute(
            "INSERT OR REPLACE INTO credentials VALUES (?, ?, ?, ?, ?, ?)",
            (provider_id, nonce, ct, kid, hint, datetime.now(timezone.utc).isoformat()),
        )

    def decrypt(self, provider_id: str, origin: str) -> str | None:
        """The stored key of a provider, or ``None`` when none is stored."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT nonce, ciphertext, key_id FROM credentials WHERE provider_id = ?",
                (provider_id,),
            ).fetchone()
        if row is None:
            return None
        nonce, ct, kid = row
        with self._lock:
            master = self._load_master(create=False)
            if master is None:
                raise CredentialError(
                    f"The stored key of provider '{provider_id}' cannot be decrypted: the vault's "
                    f"master key is missing ({self.key_path}). Set the key again with "
                    f"%llm key {provider_id}.",
                    provider_id,
                )
            if kid != _key_id(master):
                raise CredentialError(
                    f"The stored key of provider '{provider_id}' was encrypted with another master "
                    f"key; set it again with %llm key {provider_id}.",
                    provider_id,
                )
            from cryptography.exceptions import InvalidTag

            assert self._aead is not None
            try:
                plain = self._aead.decrypt(bytes(nonce), bytes(ct), self._aad(provider_id, origin))
            except (InvalidTag, ValueError):
                raise CredentialError(
                    f"The stored key of provider '{provider_id}' failed its integrity check "
                    "(tampered, moved from another provider, or its base URL origin changed "
                    f"outside this package); set it again with %llm key {provider_id}.",
                    provider_id,
                ) from None
        key = plain.decode()
        register_secret(key)
        return key

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
