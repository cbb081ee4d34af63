"""The provider forms' server-neutral helpers: schema, field parsing, model entries, errors.

Used by the anywidget panel (widgets/config_panel.py) and the Jupyter server extension
(server/), so the server never imports anywidget. No widget or HTTP code here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .errors import ConfigValidationError, ViagentError, one_line, scrub

__all__ = ["MAX_MODELS", "TEST_MAX_TOKENS", "TEST_PROMPT", "config_fields", "error_payload",
           "form_schema", "iso", "model_entry", "model_list_status", "parse_headers"]

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
    from .schema import ENV_KEYS, PROVIDER_TYPES, TYPE_NAMES, ModelSettings, default_base_url

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
            from .schema import REASONING_LEVELS

            spec["choices"] = list(REASONING_LEVELS)
        label, step = _SETTING_UI.get(name, (name, 0.01))
        spec.update(label=label, step=step)
        settings.append(spec)
    return {"provider_types": types, "settings": settings}


def parse_headers(text: str) -> dict[str, str]:
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


def config_fields(raw: Any, *, creating: bool) -> dict[str, Any]:
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
        fields["headers"] = parse_headers(fields["headers"])
    for name in _OPTIONAL_NUMBERS:  # an empty number box means "leave as is / default"
        if fields.get(name) in ("", None):
            fields.pop(name, None)
    if creating and not fields.get("name"):
        fields.pop("name", None)  # the store names it after its id
    return fields


def model_entry(m: Any) -> dict[str, Any]:
    pricing = None
    if m.pricing:
        pricing = {k: float(v) for k, v in m.pricing.items()}
    return {"id": m.id, "name": m.name, "context_length": m.context_length, "pricing": pricing}


def model_list_status(pid: str, result: Any, refresh: bool) -> dict[str, Any]:
    """What the panel and the REST API say about a fetched model list (a ``ModelList``)."""
    return {
        "provider": pid,
        "fetched_at": iso(result.fetched_at),
        "from_cache": result.from_cache,
        "stale": result.stale,
        "refreshed": refresh and not result.stale,
        "added": list(result.added),
        "removed": list(result.removed),
        "count": len(result),
    }


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()



def error_payload(exc: BaseException, secrets: Sequence[str | None] = ()) -> dict[str, Any]:
    """``{code, message, errors?}`` for a reply: one line, never carrying a secret."""
    if isinstance(exc, ViagentError):
        payload: dict[str, Any] = {"code": exc.code, "message": scrub(exc.message, secrets)}
        if isinstance(exc, ConfigValidationError):
            payload["errors"] = [{"field": e["field"], "message": scrub(e["message"], secrets)}
                                 for e in exc.errors]
        managed_by = getattr(exc, "managed_by", None)  # PROVIDER_MANAGED: the admin's file
        if isinstance(managed_by, str):
            payload["managed_by"] = managed_by
        return payload
    message = one_line(scrub(f"{type(exc).__name__}: {exc}", secrets))
    return {"code": "INTERNAL_ERROR", "message": f"Unexpected error: {message}"}
