"""ConfigPanel: list, add, edit, delete, select and test providers; pick models; tune settings.

Synced traits (all derived, none secret): ``providers`` and ``selected`` mirror the store,
``models``/``models_provider``/``models_status`` hold the model picker's list, ``busy`` the
requests in flight, ``last_error`` the last background failure, ``schema`` what the forms
need to know (provider types, setting ranges), taken from the pydantic schema itself.

Requests (custom messages from the front end, each answered with ``{type: "reply", id, ok,
result | error, errors?}``)::

    create    fields, api_key?, persist_key?      -> store.create
    update    provider, fields, expected_version?, api_key?, persist_key?, remove_key?
    settings  provider, settings {name: value | null}  (merged; saved as you go)
    set_key   provider, api_key, persist_key?
    select    provider | null
    delete    provider                            (PROVIDER_IN_USE when selected)
    models    provider, refresh?                  (off the kernel thread)
    test      provider                            (a tiny chat, off the kernel thread)
    budget_set     usd, period, provider | null, soft?   -> ws.budgets.set
    budget_remove  period, provider | null                -> ws.budgets.remove

A key arrives in exactly one message, goes straight to the store (the vault) and is never kept,
synced or echoed: replies are checked against it before they leave.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from traitlets import Dict, List, Unicode

from .._forms import (
    MAX_MODELS,
    TEST_MAX_TOKENS,
    TEST_PROMPT,
    config_fields,
    form_schema,
    model_entry,
    model_list_status,
)
from ..errors import ConfigValidationError, ViagentError, scrub
from ._base import ViewWidget, asset
from ._panel_budgets import BUDGET_OPS, budget_request, budget_rows

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["TEST_PROMPT", "ConfigPanel"]

class ConfigPanel(ViewWidget):
    """The provider configuration panel (``vj.panel()``, ``%llm panel``)."""

    _esm = asset("config_panel.js")
    _css = asset("widgets.css")

    providers = List(Dict(), help="The store's providers (no secrets).").tag(sync=True)
    selected = Unicode(None, allow_none=True, help="The selected provider id.").tag(sync=True)
    schema = Dict(help="Provider types and setting ranges, from the schema.").tag(sync=True)
    models = List(Dict(), help="The model picker's list.").tag(sync=True)
    models_provider = Unicode(None, allow_none=True).tag(sync=True)
    models_status = Dict(help="fetched_at, from_cache, stale, added, removed, error").tag(
        sync=True)
    busy = List(Unicode(), help="Requests in flight: 'models:ID', 'test:ID'.").tag(sync=True)
    last_error = Unicode("", help="The last background failure, one line.").tag(sync=True)
    vault_location = Unicode("", help="Where the vault's master key lives (no secret).").tag(
        sync=True)
    budgets = List(Dict(), help="The budgets in force with their spend (ws.budgets.status()).").tag(
        sync=True)

    def __init__(self, ws: Workspace | None = None, **kwargs: Any) -> None:
        super().__init__(ws, schema=form_schema(), **kwargs)
        store = self._ws.providers
        self._sync_store()
        self._subscribe(store, ["providers", "selected"], self._sync_store)
        # after every chat the spend moved: recompute on the stats' change; and on the list's
        self._subscribe(self._ws.stats, ["records", "totals"], self._sync_budgets)
        self._subscribe(self._ws.budgets, ["revision"], self._sync_budgets)

    def _sync_budgets(self) -> None:
        self.budgets = budget_rows(self._ws)

    def _sync_store(self) -> None:
        store = self._ws.providers
        with self.hold_sync():
            self.providers = list(store.providers)
            self.selected = store.selected
            self._sync_budgets()  # a provider's budget row names it
            self.vault_location = "Stored keys are encrypted; the master key is in " + \
                self._ws.vault.location() + "."
            if self.models_provider is not None and \
                    all(p["id"] != self.models_provider for p in store.providers):
                self.models, self.models_provider, self.models_status = [], None, {}

    # -- requests -------------------------------------------------------------------------------
    def _handle_request(self, op: str, rid: Any, content: dict[str, Any]) -> None:
        store = self._ws.providers
        pid = content.get("provider")
        api_key = content.get("api_key")
        secrets = [api_key if isinstance(api_key, str) else None]
        persist = content.get("persist_key", True) is not False
        if op == "create":
            fields = config_fields(content.get("fields"), creating=True)
            cfg = store.create(**fields, api_key=api_key or None, persist_key=persist)
            self._reply(rid, result={"provider": cfg.id, "version": cfg.version}, secrets=secrets)
        elif op == "update":
            fields = config_fields(content.get("fields"), creating=False)
            extra: dict[str, Any] = {}
            if content.get("remove_key"):
                extra["api_key"] = None
            elif api_key:
                extra.update(api_key=api_key, persist_key=persist)
            expected = content.get("expected_version")
            cfg = store.update(str(pid), expected_version=expected, **fields, **extra)
            self._reply(rid, result={"provider": cfg.id, "version": cfg.version}, secrets=secrets)
        elif op == "settings":
            settings = content.get("settings")
            cfg = store.update(str(pid), settings=settings)
            self._reply(rid, result={"provider": cfg.id, "version": cfg.version,
                                     "settings": cfg.settings.model_dump(mode="json")})
        elif op == "set_key":
            if not isinstance(api_key, str):
                raise ConfigValidationError("Invalid api_key: type a key first.",
                                            [{"field": "api_key", "message": "is required"}])
            cfg = store.set_key(str(pid), api_key, persist=persist)
            self._reply(rid, result={"provider": cfg.id, "version": cfg.version,
                                     "key_source": cfg.key_source}, secrets=secrets)
        elif op == "select":
            store.select(None if pid is None else str(pid))
            self._reply(rid, result={"selected": store.selected})
        elif op == "delete":
            store.delete(str(pid))
            self._reply(rid, result={"deleted": pid})
        elif op == "models":
            self._models(rid, str(pid), bool(content.get("refresh")))
        elif op == "test":
            self._test(rid, str(pid))
        elif op in BUDGET_OPS:
            result = budget_request(self._ws, op, content)
            self._sync_budgets()
            self._reply(rid, result=result)
        else:
            super()._handle_request(op, rid, content)

    def _set_busy(self, token: str, on: bool) -> None:
        busy = [b for b in self.busy if b != token]
        self.busy = [*busy, token] if on else busy

    def _models(self, rid: Any, pid: str, refresh: bool) -> None:
        from ..registry import ModelList

        self._ws.providers.get(pid)  # a clear PROVIDER_NOT_FOUND before any work
        token = f"models:{pid}"
        self._set_busy(token, True)

        def fetch() -> tuple[ModelList, str | None]:
            # a stale list is reported in models_status, not as a warning in some cell
            models = self._ws.registry.models(pid, refresh=refresh, warn=False)
            return models, models.warning

        def done(fetched: tuple[ModelList, str | None] | None,
                 error: BaseException | None) -> None:
            self._set_busy(token, False)
            if error is not None or fetched is None:
                message = str(error) if isinstance(error, ViagentError) else \
                    f"Could not list the models of '{pid}'."
                with self.hold_sync():
                    self.last_error = message
                    if self.models_provider != pid:
                        self.models, self.models_provider = [], pid
                    self.models_status = {**self.models_status, "provider": pid,
                                          "error": message}
                self._reply(rid, error=error or ViagentError(message))
                return
            result, stale_message = fetched
            status: dict[str, Any] = {**model_list_status(pid, result, refresh),
                                      "error": stale_message if result.stale else None}
            with self.hold_sync():
                self.models = [model_entry(m) for m in result[:MAX_MODELS]]
                self.models_provider = pid
                self.models_status = status
                if stale_message:
                    self.last_error = stale_message
            self._reply(rid, result={k: status[k] for k in
                                     ("count", "added", "removed", "stale", "from_cache")})

        self._spawn(fetch, done)

    def _test(self, rid: Any, pid: str) -> None:
        self._ws.providers.get(pid)
        token = f"test:{pid}"
        self._set_busy(token, True)

        def run() -> dict[str, Any]:
            started = time.monotonic()
            from ..history import not_recorded

            with not_recorded():  # a connection test is not a conversation
                stream = self._ws.chat(TEST_PROMPT, provider=pid, max_tokens=TEST_MAX_TOKENS)
            text = stream.wait().text
            elapsed = stream.elapsed if stream.elapsed is not None else \
                time.monotonic() - started
            return {"latency_ms": round(elapsed * 1000), "text": scrub(text.strip())[:200],
                    "model": stream.model, "finish_reason": stream.finish_reason}

        def done(result: dict[str, Any] | None, error: BaseException | None) -> None:
            self._set_busy(token, False)
            if error is not None:
                self._reply(rid, error=error)
            else:
                self._reply(rid, result=result)

        self._spawn(run, done)
