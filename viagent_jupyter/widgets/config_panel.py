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
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from traitlets import Dict, List, Unicode

from ..errors import ConfigValidationError, ViagentError, scrub
from ._base import ViewWidget, asset
from ._panel_budgets import BUDGET_OPS, budget_request, budget_rows

if TYPE_CHECKING:
    from .._workspace import Workspace

__all__ = ["TEST_PROMPT", "ConfigPanel"]

TEST_PROMPT = "Say OK"
TEST_MAX_TOKENS = 8
MAX_MODELS = 5000

# The default-model box's example, per type (presentation only).
_MODEL_EXAMPLES = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "gemini": "gemini-2.0-flash",
    "openrouter": "openai/gpt-4o-mini",
    "ollama": "llama3.2",
    "openai_compatible": "the server's model id",
}
_SETTING_UI = {  # presentation only; the ranges come from ModelSettings
    "temperature": ("Temperature", 0.05),
    "max_tokens": ("Max tokens", 1),
    "top_p": ("Top p", 0.01),
    "frequency_penalty": ("Frequency penalty", 0.05),
    "presence_penalty": ("Presence penalty", 0.05),
    "reasoning": ("Reasoning", 1),
    "reasoning_budget": ("Reasoning budget (tokens)", 1),
}
# Parameters of store.create/update that must not arrive disguised as config fields.
_RESERVED = ("api_key", "persist_key", "expected_version")
_OPTIONAL_NUMBERS = ("timeout", "max_retries")


def form_schema() -> dict[str, Any]:
    """What the forms need, derived from the schema (so no rule is copied into JS)."""
    from ..schema import ENV_KEYS, PROVIDER_TYPES, TYPE_NAMES, ModelSettings, default_base_url

    needs_key = {"openai", "anthropic", "gemini", "openrouter"}
    # "label" is the readable type name: the one table (schema.TYPE_NAMES) the front end's
    # displayLabel() reads, so no name is copied into JS.
    types = [{"value": t, "label": TYPE_NAMES.get(t, t), "default_base_url": default_base_url(t),
              "needs_key": t in needs_key, "env": list(ENV_KEYS.get(t, ())),
              "model_example": _MODEL_EXAMPLES.get(t, "")}
             for t in PROVIDER_TYPES]
    settings = []
    for name, field in ModelSettings.model_fields.items():
        spec: dict[str, Any] = {"name": name, "default": field.default,
                                "integer": field.annotation in (int, int | None)}
        for meta in field.metadata:
            for attr, key in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusive_minimum")):
                if getattr(meta, attr, None) is not None:
                    spec[key] = getattr(meta, attr)
        if name == "reasoning":  # a choice, not a number: the panel shows a select
            from ..schema import REASONING_LEVELS

            spec["choices"] = list(REASONING_LEVELS)
        label, step = _SETTING_UI.get(name, (name, 0.01))
        spec.update(label=label, step=step)
        settings.append(spec)
    return {"provider_types": types, "settings": settings}


def _parse_headers(text: str) -> dict[str, str]:
    """``Name: value`` lines (the form's headers box) into a dict."""
    headers: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ConfigValidationError(
                f"Invalid provider config: headers: line {n} is not 'Name: value'.",
                [{"field": "headers", "message": f"line {n} is not 'Name: value'"}],
            )
        headers[name.strip()] = value.strip()
    return headers


def _config_fields(raw: Any, *, creating: bool) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigValidationError("Invalid request: fields must be an object.",
                                    [{"field": "(config)", "message": "must be an object"}])
    fields = {str(k): v for k, v in raw.items()}
    bad = [k for k in _RESERVED if k in fields]
    if bad:
        raise ConfigValidationError(
            f"Invalid request: {', '.join(bad)} cannot be sent as a config field.",
            [{"field": b, "message": "cannot be sent as a config field"} for b in bad],
        )
    if isinstance(fields.get("headers"), str):
        fields["headers"] = _parse_headers(fields["headers"])
    for name in _OPTIONAL_NUMBERS:  # an empty number box means "leave as is / default"
        if fields.get(name) in ("", None):
            fields.pop(name, None)
    if creating and not fields.get("name"):
        fields.pop("name", None)  # the store names it after its id
    return fields


def _model_entry(m: Any) -> dict[str, Any]:
    pricing = None
    if m.pricing:
        pricing = {k: float(v) for k, v in m.pricing.items()}
    return {"id": m.id, "name": m.name, "context_length": m.context_length, "pricing": pricing}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


class ConfigPanel(ViewWidget):
    """The provider configuration panel (``vj.panel()``, ``%llm panel``)."""

    _esm = asset("config_panel.js")
    _css = asset("config_panel.css")

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
            fields = _config_fields(content.get("fields"), creating=True)
            cfg = store.create(**fields, api_key=api_key or None, persist_key=persist)
            self._reply(rid, result={"provider": cfg.id, "version": cfg.version}, secrets=secrets)
        elif op == "update":
            fields = _config_fields(content.get("fields"), creating=False)
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
        import warnings

        from ..registry import ModelList, StaleModelListWarning

        self._ws.providers.get(pid)  # a clear PROVIDER_NOT_FOUND before any work
        token = f"models:{pid}"
        self._set_busy(token, True)

        def fetch() -> tuple[ModelList, str | None]:
            # a stale list is reported in models_status, not as a warning in some cell
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", StaleModelListWarning)
                models = self._ws.registry.models(pid, refresh=refresh)
            stale = [str(w.message) for w in caught
                     if issubclass(w.category, StaleModelListWarning)]
            return models, (stale[0] if stale else None)

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
            status: dict[str, Any] = {
                "provider": pid,
                "fetched_at": _iso(result.fetched_at),
                "from_cache": result.from_cache,
                "stale": result.stale,
                "refreshed": refresh and not result.stale,
                "added": list(result.added),
                "removed": list(result.removed),
                "count": len(result),
                "error": stale_message if result.stale else None,
            }
            with self.hold_sync():
                self.models = [_model_entry(m) for m in result[:MAX_MODELS]]
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
            text = stream.text
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
