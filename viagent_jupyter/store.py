"""ProviderStore: validated CRUD over provider configs, with traits every view observes.

Writes go validate → ``BEGIN IMMEDIATE`` write → reassign the traits (a new tuple, never an
in-place edit), so one change fires each observer once. Another process's change is seen
through :meth:`Database.generation` and reloaded by :meth:`ProviderStore.refresh` (called
automatically on a running kernel's event loop; see ``Workspace``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError
from traitlets import HasTraits, Tuple, Unicode

from .db import ChangeWatch, Database
from .errors import (
    ConfigValidationError,
    CredentialError,
    ProviderConflictError,
    ProviderInUseError,
    ProviderNotFoundError,
    Secret,
    StorageError,
    conceal,
    register_secret,
)
from .schema import ENV_KEYS, ModelSettings, ProviderConfig, validation_error
from .vault import CredentialVault, KeyBinding, key_hint

__all__ = ["ProviderStore"]

log = logging.getLogger("viagent_jupyter.store")

_UNSET: Any = object()
# Fields the store computes; a caller cannot set them.
_COMPUTED = frozenset({"created_at", "updated_at", "version", "has_api_key", "api_key_hint",
                       "key_source", "key_notice", "managed", "managed_by"})
# computed per load, never written to a row (managed*: the administrator's layer, admin.py)
_KEY_FIELDS = ("has_api_key", "api_key_hint", "key_source", "managed", "managed_by")
_NEEDS_KEY = frozenset({"openai", "anthropic", "gemini", "openrouter"})
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _name_from_id(pid: Any) -> str:
    """The default name: the id. An id that cannot be a name (empty, too long) is invalid
    itself, so its error alone is reported, not a second one about a name nobody typed (the
    stand-in never reaches a row: the id fails validation first)."""
    return pid if isinstance(pid, str) and 1 <= len(pid.strip()) <= 200 else "-"


def _binding(cfg: ProviderConfig) -> KeyBinding:
    """What a stored key of ``cfg`` is bound to (its AES-GCM associated data)."""
    return KeyBinding.of(cfg.provider_type, cfg.endpoint, cfg.headers)


class ProviderStore(HasTraits):
    """CRUD, selection and live traits for the providers of one workspace home."""

    providers = Tuple(help="One plain dict per provider (no secrets), in creation order.")
    selected = Unicode(None, allow_none=True, help="The selected provider id, or None.")

    def __init__(self, db: Database, vault: CredentialVault) -> None:
        super().__init__()
        self._db = db
        self._vault = vault
        self._lock = threading.RLock()
        self._configs: dict[str, ProviderConfig] = {}
        # Parsed rows and their public dicts, reused while (data, version, key status) hold:
        # a reload after another process's edit re-parses only what changed.
        self._parsed: dict[str, tuple[tuple[str, int, Any], ProviderConfig]] = {}
        self._public: dict[int, dict[str, Any]] = {}
        self._watch = ChangeWatch(db, "providers_rev")
        self.load_errors: dict[str, str] = {}
        self._reload(force=True)

    # -- reading ------------------------------------------------------------------------------
    def _key_status(self, cfg: ProviderConfig, stored: Mapping[str, str]) -> dict[str, Any]:
        session = self._vault.session_key(cfg.id)
        if session is not None:
            return {"has_api_key": True, "api_key_hint": key_hint(session), "key_source": "session"}
        if cfg.id in stored:
            return {"has_api_key": True, "api_key_hint": stored[cfg.id], "key_source": "stored"}
        for var in ENV_KEYS.get(cfg.provider_type, ()):
            value = os.environ.get(var)
            if value:
                return {"has_api_key": True, "api_key_hint": key_hint(value),
                        "key_source": "environment"}
        return {"has_api_key": False, "api_key_hint": None, "key_source": "none"}

    def _parse_row(self, pid: str, data: str, version: int, stored: Mapping[str, str]
                   ) -> ProviderConfig:
        fields = json.loads(data)
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        fields["version"] = version
        cfg = ProviderConfig.model_validate(fields)
        return cfg.model_copy(update=self._key_status(cfg, stored))

    def _reload(self, force: bool = False) -> bool:
        """Reload from the database when another connection changed it; assign traits."""
        with self._lock:
            if not self._watch.changed(force):
                return False
            with self._db.read() as conn:
                rows = conn.execute(
                    "SELECT id, data, version FROM providers ORDER BY position"
                ).fetchall()
                sel = conn.execute("SELECT value FROM meta WHERE key = 'selected'").fetchone()
            stored = self._vault.hints()
            configs: dict[str, ProviderConfig] = {}
            parsed: dict[str, tuple[tuple[str, int, Any], ProviderConfig]] = {}
            errors: dict[str, str] = {}
            for pid, data, version in rows:
                token = (data, version, self._key_token(pid, stored))
                cached = self._parsed.get(pid)
                if cached is not None and cached[0] == token:
                    configs[pid] = cached[1]
                    parsed[pid] = cached
                    continue
                try:
                    configs[pid] = self._parse_row(pid, data, version, stored)
                    parsed[pid] = (token, configs[pid])
                except (ValueError, TypeError, RecursionError, ValidationError) as exc:
                    errors[pid] = type(exc).__name__
                    log.warning("provider %r in %s is damaged and was skipped", pid, self._db.path)
            self._configs, self._parsed, self.load_errors = configs, parsed, errors
            self._publish(sel[0] if sel else None)
            return True

    def _key_token(self, pid: str, stored: Mapping[str, str]) -> Any:
        session = self._vault.session_key(pid)
        return (session is not None and key_hint(session), stored.get(pid))

    def _public_dict(self, cfg: ProviderConfig) -> dict[str, Any]:
        # keyed by identity: configs are frozen and replaced, never edited
        found = self._public.get(id(cfg))
        if found is None or found["__cfg"] is not cfg:
            found = {"__cfg": cfg, "dict": cfg.to_public_dict()}
            self._public[id(cfg)] = found
        result: dict[str, Any] = found["dict"]
        return result

    def _publish(self, selected: str | None = _UNSET) -> None:
        new = tuple(self._public_dict(c) for c in self._configs.values())
        live = {id(c) for c in self._configs.values()}
        if len(self._public) > 2 * len(live) + 16:
            self._public = {k: v for k, v in self._public.items() if k in live}
        with self.hold_trait_notifications():
            if new != self.providers:
                self.providers = new
            if selected is not _UNSET and selected != self.selected:
                self.selected = selected

    def refresh(self) -> bool:
        """Pick up changes from other processes (and environment keys) now.

        Returns True when something changed. Inside a kernel this runs by itself."""
        with self._lock:
            changed = self._reload()
            if not changed:  # environment variables may have changed
                stored = self._vault.hints()
                updated = {pid: c.model_copy(update=self._key_status(c, stored))
                           for pid, c in self._configs.items()}
                if any(updated[p] != self._configs[p] for p in updated):
                    self._configs = updated
                    self._publish()
                    changed = True
            return changed

    def get(self, id: str) -> ProviderConfig:
        """The provider ``id``; :class:`ProviderNotFoundError` when there is none."""
        with self._lock:
            self._reload()
            try:
                return self._configs[id]
            except KeyError:
                raise self._not_found(id) from None

    def list(self) -> list[ProviderConfig]:
        with self._lock:
            self._reload()
            return list(self._configs.values())

    def __contains__(self, id: object) -> bool:
        self._reload()
        return id in self._configs

    def _not_found(self, id: str) -> ProviderNotFoundError:
        if id in self.load_errors:
            return ProviderNotFoundError(
                f"Provider '{id}' is stored but damaged in {self._db.path}; delete it and "
                "create it again."
            )
        known = ", ".join(list(self._configs)[:10]) or "none yet"
        return ProviderNotFoundError(
            f"No provider '{id}' (known: {known}). Create it with "
            f"ws.providers.create(id='{id}', provider_type=...)."
        )

    # -- validation ---------------------------------------------------------------------------
    @staticmethod
    def _row_data(cfg: ProviderConfig) -> str:
        return json.dumps(cfg.model_dump(mode="json", exclude={"version", *_KEY_FIELDS}))

    # -- writing ------------------------------------------------------------------------------
    def create(
        self,
        id: str,
        provider_type: str,
        name: str | None = None,
        *,
        api_key: str | Secret | None = None,
        persist_key: bool = True,
        **fields: Any,
    ) -> ProviderConfig:
        """Add a provider. ``api_key`` goes to the vault (or, with ``persist_key=False``, to
        memory for this session only) and never into the config."""
        api_key = conceal(api_key)  # masked in this frame's locals (tracebacks) from here on
        self._validate_partial(fields)
        data = {"id": id, "provider_type": provider_type,
                "name": _name_from_id(id) if name is None else name, **fields}
        if "settings" in data and data["settings"] is None:
            data.pop("settings")
        cfg = self._validate_loaded({**data, "created_at": _now(), "updated_at": _now()})
        key = None if api_key is None else self._vault.check_key(api_key)
        if key is not None and persist_key:
            self._vault.ready()  # find or make the master key before the transaction
        with self._lock:
            with self._db.write() as conn:
                if conn.execute("SELECT 1 FROM providers WHERE id = ?", (cfg.id,)).fetchone():
                    raise ProviderConflictError(
                        f"A provider '{cfg.id}' already exists; choose another id or update it "
                        f"with ws.providers.update('{cfg.id}', ...)."
                    )
                position = conn.execute(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM providers"
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO providers (id, data, version, position) VALUES (?, ?, 1, ?)",
                    (cfg.id, self._row_data(cfg), position),
                )
                conn.execute("DELETE FROM credentials WHERE provider_id = ?", (cfg.id,))
                conn.execute("DELETE FROM model_cache WHERE provider_id = ?", (cfg.id,))
                if key is not None and persist_key:
                    row = self._vault.encrypt_row(cfg.id, _binding(cfg), key)
                    self._vault.write_row(conn, cfg.id, row)
                self._db.bump(conn, "providers_rev")
            self._vault.forget_session(cfg.id)
            if key is not None and not persist_key:
                self._vault.set_session(cfg.id, key)
            return self._after_write(cfg)

    def _after_write(self, cfg: ProviderConfig) -> ProviderConfig:
        """Refresh the snapshot after our own write (and anything others wrote meanwhile)."""
        stored = self._vault.hints()
        cfg = cfg.model_copy(update=self._key_status(cfg, stored))
        # (a damaged row this write repaired: reload, so it takes its place and leaves
        # load_errors)
        if self._reload(force=cfg.id in self.load_errors):
            return self._configs.get(cfg.id, cfg)
        self._watch.saw_own_write()
        configs = dict(self._configs)
        configs[cfg.id] = cfg
        self._configs = configs
        self._publish()
        return cfg

    def update(
        self,
        id: str,
        /,
        *,
        expected_version: int | None = None,
        api_key: str | Secret | None = _UNSET,
        persist_key: bool = True,
        rebind_key: bool = False,
        **fields: Any,
    ) -> ProviderConfig:
        """Change some fields. ``settings`` merges (a ``None`` value resets that setting);
        ``api_key=None`` removes the key; ``expected_version`` guards against stale writes.

        A key goes only to the origin it was entered for: when the base URL's origin or the
        provider type changes, the stored (and session) key is cleared, and ``key_notice``
        says so, unless the key is given again (``api_key=...``) or ``rebind_key=True``
        explicitly re-binds the stored key to the new origin."""
        api_key = conceal(api_key)  # masked in this frame's locals (tracebacks) from here on
        if "id" in fields and fields["id"] != id:
            raise ConfigValidationError(
                "Invalid provider config: id cannot be changed; create a new provider instead.",
                [{"field": "id", "message": "cannot be changed"}],
            )
        fields.pop("id", None)
        key = None if api_key is _UNSET or api_key is None else self._vault.check_key(api_key)
        self._validate_partial(fields)
        if key is not None and persist_key:
            self._vault.ready()  # find or make the master key before the transaction
        with self._lock:
            with self._db.write() as conn:
                row = conn.execute(
                    "SELECT data, version FROM providers WHERE id = ?", (id,)
                ).fetchone()
                if row is None:
                    raise self._not_found(id)
                try:
                    current = json.loads(row[0])
                except (ValueError, TypeError, RecursionError):
                    current = None
                if not isinstance(current, dict):
                    raise StorageError(
                        f"Provider '{id}' is stored but damaged in {self._db.path} (its data is "
                        f"not a JSON object); delete it (ws.providers.delete('{id}')) and "
                        "create it again."
                    )
                version = int(row[1])
                if expected_version is not None and expected_version != version:
                    raise ProviderConflictError(
                        f"Provider '{id}' was changed elsewhere (now version {version}, you had "
                        f"{expected_version}); reload it and apply your edit again."
                    )
                merged = {**current, **fields}
                if "settings" in fields:
                    settings = dict(current.get("settings") or {})
                    given = fields["settings"]
                    if isinstance(given, ModelSettings):  # the fields it was given, merged
                        given = given.model_dump(exclude_unset=True)
                    for k, v in (given or {}).items():
                        if v is None:
                            settings.pop(k, None)
                        else:
                            settings[k] = v
                    merged["settings"] = settings
                merged["version"] = version + 1
                merged["updated_at"] = _now()
                if api_key is not _UNSET:
                    merged.pop("key_notice", None)  # a key given (or removed) answers it
                cfg = self._validate_loaded(merged)
                try:
                    old: KeyBinding | None = _binding(ProviderConfig.model_validate(
                        {**current, "version": version}))
                except (ValueError, ValidationError):  # a damaged row this update repairs
                    old = None
                new = _binding(cfg)
                moved = old is not None and (old.origin, old.provider_type) != \
                    (new.origin, new.provider_type)
                has_row = conn.execute("SELECT 1 FROM credentials WHERE provider_id = ?",
                                       (id,)).fetchone() is not None
                held = has_row or self._vault.session_key(id) is not None
                if moved and key is None and api_key is _UNSET and held and not rebind_key:
                    assert old is not None
                    what = (f"its type changed ({old.provider_type} → {new.provider_type})"
                            if old.provider_type != new.provider_type else
                            f"its origin changed ({old.origin} → {new.origin})")
                    cfg = self._validate_loaded({**merged, "key_notice": (
                        f"The key was cleared because {what}; enter it again for the new "
                        "server (a key is only sent where it was entered).")})
                conn.execute(
                    "UPDATE providers SET data = ?, version = ? WHERE id = ?",
                    (self._row_data(cfg), version + 1, id),
                )
                forget = api_key is None or (key is not None and persist_key)
                if api_key is None:
                    conn.execute("DELETE FROM credentials WHERE provider_id = ?", (id,))
                elif key is not None and persist_key:
                    self._vault.write_row(conn, id, self._vault.encrypt_row(id, new, key))
                elif has_row and old is not None and old != new and (rebind_key or not moved):
                    self._rebind_key(conn, id, old, new, strict=rebind_key)
                elif has_row and moved:
                    conn.execute("DELETE FROM credentials WHERE provider_id = ?", (id,))
                if moved and key is None and not rebind_key:
                    forget = True  # a session key was entered for the old origin too
                if cfg.provider_type != current.get("provider_type"):
                    conn.execute("DELETE FROM model_cache WHERE provider_id = ?", (id,))
                self._db.bump(conn, "providers_rev")
            if forget:
                self._vault.forget_session(id)
            if key is not None and not persist_key:
                self._vault.set_session(id, key)
            return self._after_write(cfg)

    def _rebind_key(self, conn: Any, id: str, old: KeyBinding, new: KeyBinding, *,
                    strict: bool) -> None:
        """Re-encrypt the stored key for its new binding: extra headers changed through the
        API, or the caller asked for it explicitly (``rebind_key=True``) when the origin or
        type changed. Something edited outside the API still fails to decrypt."""
        try:
            key = conceal(self._vault.decrypt(id, old))
        except CredentialError:
            if strict:
                raise
            return
        if key is not None:
            self._vault.write_row(conn, id, self._vault.encrypt_row(id, new, key))

    @staticmethod
    def _validate_partial(fields: Mapping[str, Any]) -> None:
        bad = sorted(_COMPUTED.intersection(fields))
        if bad:
            raise ConfigValidationError(
                f"Invalid provider config: {', '.join(bad)} cannot be set; they are computed.",
                [{"field": b, "message": "is computed and cannot be set"} for b in bad],
            )
        headers = fields.get("headers")
        if isinstance(headers, Mapping):
            bad = [str(name)[:40] for name, value in headers.items()
                   if isinstance(value, str) and not _HEADER_VALUE.match(value)]
            if bad:
                raise ConfigValidationError(
                    f"Invalid provider config: headers: the value of {bad[0]!r} must be "
                    "printable ASCII (an HTTP header cannot carry other characters).",
                    [{"field": f"headers.{b}", "message": "must be printable ASCII"}
                     for b in bad],
                )
        settings = fields.get("settings")
        if settings is not None and not isinstance(settings, Mapping):
            if isinstance(settings, ModelSettings):
                return
            raise ConfigValidationError(
                "Invalid provider config: settings: must be a dict of model settings.",
                [{"field": "settings", "message": "must be a dict"}],
            )

    @staticmethod
    def _validate_loaded(data: Mapping[str, Any]) -> ProviderConfig:
        data = dict(data)
        if isinstance(data.get("settings"), ModelSettings):
            data["settings"] = data["settings"].model_dump(exclude_unset=True)
        try:
            cfg = ProviderConfig.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc) from None
        if cfg.provider_type == "openai_compatible" and not cfg.base_url:
            raise ConfigValidationError(
                "Invalid provider config: base_url: is required for an openai_compatible "
                "provider.",
                [{"field": "base_url", "message": "is required for openai_compatible"}],
            )
        return cfg

    def delete(self, id: str) -> None:
        """Remove a provider, its stored key and its cached model list (usage history stays).
        Deleting the selected provider raises :class:`ProviderInUseError`."""
        with self._lock:
            with self._db.write() as conn:
                if not conn.execute("SELECT 1 FROM providers WHERE id = ?", (id,)).fetchone():
                    raise self._not_found(id)
                sel = conn.execute("SELECT value FROM meta WHERE key = 'selected'").fetchone()
                if sel and sel[0] == id:
                    raise ProviderInUseError(
                        f"Provider '{id}' is selected; select another one first "
                        f"(ws.providers.select(...) or %llm use ID), then delete it."
                    )
                conn.execute("DELETE FROM providers WHERE id = ?", (id,))
                conn.execute("DELETE FROM credentials WHERE provider_id = ?", (id,))
                conn.execute("DELETE FROM model_cache WHERE provider_id = ?", (id,))
                self._db.bump(conn, "providers_rev")
            self._vault.forget_session(id)
            if not self._reload():
                self._watch.saw_own_write()
                configs = dict(self._configs)
                configs.pop(id, None)
                self._configs = configs
                self.load_errors = {k: v for k, v in self.load_errors.items() if k != id}
                self._publish()

    def select(self, id: str | None) -> None:
        """Make ``id`` the default provider of the workspace (``None`` clears it)."""
        with self._lock:
            with self._db.write() as conn:
                if id is not None and not conn.execute(
                    "SELECT 1 FROM providers WHERE id = ?", (id,)
                ).fetchone():
                    raise self._not_found(id)
                if id is None:
                    conn.execute("DELETE FROM meta WHERE key = 'selected'")
                else:
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('selected', ?)", (id,))
                self._db.bump(conn, "providers_rev")
            if not self._reload():
                self._watch.saw_own_write()
                self.selected = id

    # -- keys ---------------------------------------------------------------------------------
    def set_key(self, id: str, api_key: str | Secret, *, persist: bool = True
                ) -> ProviderConfig:
        """Store (or hold for this session) the key of ``id``."""
        api_key = conceal(api_key)
        return self.update(id, api_key=api_key, persist_key=persist)

    def resolve_key(self, id: str) -> tuple[str | None, str]:
        """``(key, source)`` for a request: session → stored (vault) → environment.

        Ollama and OpenAI-compatible servers may need no key: ``(None, "none")``. A provider
        that needs one and has none raises :class:`CredentialError` saying how to set it.
        Keys read from the environment are never copied anywhere."""
        cfg = self.get(id)
        session = self._vault.session_key(id)
        if session is not None:
            return session, "session"
        stored = self._vault.decrypt(id, _binding(cfg))
        if stored is not None:
            return stored, "stored"
        for var in ENV_KEYS.get(cfg.provider_type, ()):
            value = os.environ.get(var)
            if value:
                register_secret(value)
                return value, "environment"
        if cfg.provider_type in _NEEDS_KEY:
            env = " or ".join(f"${v}" for v in ENV_KEYS[cfg.provider_type])
            raise CredentialError(
                f"Provider '{id}' has no API key. Set one with %llm key {id}, or "
                f"ws.providers.update('{id}', api_key=...), or export {env}.",
                id,
            )
        return None, "none"
