"""ManagedProviderStore: the user's ProviderStore with the administrator's layer merged in.

The user's own providers stay in their database exactly as before; the managed ones are
added at publish time (never written anywhere), the ones the policy hides are left out, and
every write is checked first. The seams it relies on in :class:`ProviderStore`: ``_publish``
(every snapshot goes through it) and ``_key_status`` (every key status does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .admin import AdminConfig
from .db import Database
from .errors import PolicyError, ProviderNotFoundError, Secret, conceal
from .schema import ProviderConfig
from .store import _UNSET, ProviderStore
from .vault import CredentialVault

__all__ = ["ManagedProviderStore"]


class ManagedProviderStore(ProviderStore):
    """A :class:`ProviderStore` under an :class:`AdminConfig`: managed providers first,
    read-only; the user's own after them unless the policy hides them."""

    def __init__(self, db: Database, vault: CredentialVault, admin: AdminConfig) -> None:
        self.admin = admin
        self._hidden: dict[str, str] = {}  # user provider id -> why the policy hides it
        super().__init__(db, vault)

    # -- the merge (every snapshot passes here) --------------------------------------------
    def _merge(self, configs: Mapping[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        merged = {pid: mp.config.model_copy(update=self.admin.key_status(pid))
                  for pid, mp in self.admin.providers.items()}
        hidden: dict[str, str] = {}
        for pid, cfg in configs.items():
            if cfg.managed or pid in merged:
                continue
            reason = self.admin.hidden_reason(cfg)
            if reason is None:
                merged[pid] = cfg
            else:
                hidden[pid] = reason
        self._hidden = hidden
        return merged

    def _publish(self, selected: str | None = _UNSET) -> None:
        self._configs = self._merge(self._configs)
        user = self.selected if selected is _UNSET else selected
        # a damaged row keeps its selection (so the error names it); a provider the policy
        # hides, or none, falls back to the administrator's default
        if user is None or (user not in self._configs and user not in self.load_errors):
            default = self.admin.default_provider
            user = default if default in self._configs else None
        super()._publish(user)

    def _key_status(self, cfg: ProviderConfig, stored: Mapping[str, str]) -> dict[str, Any]:
        if cfg.managed:
            return self.admin.key_status(cfg.id)
        return super()._key_status(cfg, stored)

    # -- reading -------------------------------------------------------------------------
    def refresh(self) -> bool:
        with self._lock:
            if self.admin.reload_if_changed():
                self._reload(force=True)
                return True
            return super().refresh()

    def get(self, id: str) -> ProviderConfig:
        try:
            return super().get(id)
        except ProviderNotFoundError:
            self._refuse_hidden(id)
            raise

    def _refuse_hidden(self, id: str) -> None:
        reason = self._hidden.get(id)
        if reason is not None:
            raise PolicyError(reason + " Use one of: "
                              + (", ".join(self._configs) or "none") + ".", "providers")

    def resolve_key(self, id: str) -> tuple[str | None, str]:
        cfg = self.get(id)
        if cfg.managed:
            return self.admin.resolve_key(id), "managed"
        return super().resolve_key(id)

    # -- writing: refused for managed providers -------------------------------------------
    def create(self, id: str, provider_type: str, name: str | None = None, *,
               api_key: str | Secret | None = None, persist_key: bool = True,
               **fields: Any) -> ProviderConfig:
        api_key = conceal(api_key)
        self.admin.check_create(id, provider_type)
        return super().create(id, provider_type, name, api_key=api_key,
                              persist_key=persist_key, **fields)

    def update(self, id: str, /, *, expected_version: int | None = None,
               api_key: str | Secret | None = _UNSET, persist_key: bool = True,
               **fields: Any) -> ProviderConfig:
        api_key = conceal(api_key)
        self.admin.check_write(id, "changed")
        self._refuse_hidden(id)
        return super().update(id, expected_version=expected_version, api_key=api_key,
                              persist_key=persist_key, **fields)

    def delete(self, id: str) -> None:
        self.admin.check_write(id, "deleted")
        if id in self._hidden:  # a hidden provider of your own may still be deleted, even
            with self._db.write() as conn:  # when it was selected before the policy hid it
                conn.execute("DELETE FROM meta WHERE key = 'selected' AND value = ?", (id,))
        super().delete(id)

    def select(self, id: str | None) -> None:
        if id is None or not self.admin.is_managed(id):
            self._refuse_hidden(id or "")
            super().select(id)
            return
        with self._lock:
            with self._db.write() as conn:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('selected', ?)", (id,))
                self._db.bump(conn, "providers_rev")
            self._reload(force=True)

