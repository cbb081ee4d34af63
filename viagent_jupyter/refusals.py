"""Parameters a provider refused for a model: read a 400, decide, remember.

A chat sends only what the user set (``ModelSettings`` fields left ``None`` are never sent),
plus what the protocol needs (Anthropic ``max_tokens``) or what the adapter adds on its own
(OpenAI ``stream_options``). When a provider answers HTTP 400 naming one parameter it does
not support for the model (OpenAI ``param``/``code: unsupported_parameter`` and its
message; Anthropic's and Gemini's messages), :func:`refused_parameter` finds that wire name
and :func:`decide` says what to do:

* ``retry`` without it (``omit``) when the *user did not set it* — a parameter the adapter
  added. Settings the user stored on the provider (``ws.providers.update(..., settings=…)``,
  the panel) or passed per call (``ws.chat(temperature=…)``, ``-t``) are explicit, always:
  they are the user's words, so they are never dropped behind the user's back;
* ``rename`` when the provider names the replacement of an explicit setting
  (``max_tokens`` → ``max_completion_tokens`` and back): the user's cap is kept;
* else a one-line error naming the setting and how to unset it.

What was omitted or renamed is remembered per provider:model in the database (table
``param_refusals``), so the next call does not pay the round trip. ``forget`` clears it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .db import Database
from .errors import ProviderAPIError

__all__ = ["Decision", "decide", "forget", "load", "refused_parameter", "remember"]

# wire parameter -> the ModelSettings field it carries (None: added by the adapter)
_SETTING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "topP": "top_p",
    "frequency_penalty": "frequency_penalty",
    "frequencyPenalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "presencePenalty": "presence_penalty",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "maxOutputTokens": "max_tokens",
    "num_predict": "max_tokens",
    "reasoning_effort": "reasoning",
    "reasoning": "reasoning",
    "thinking": "reasoning",
    "thinkingConfig": "reasoning",
    "think": "reasoning",
    "output_config": "reasoning",
    "stream_options": None,
}
_RENAMES = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}
# OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model. Use
# 'max_completion_tokens' instead." / "Unsupported value: 'temperature' does not support 0.7
# with this model. Only the default (1) value is supported."
_OPENAI = re.compile(r"Unsupported (?:parameter|value):\s*'([A-Za-z_.]+)'")
# Gemini: 'Invalid JSON payload received. Unknown name "frequencyPenalty" at ...'
_UNKNOWN_NAME = re.compile(r'Unknown name "([A-Za-z_]+)"')
# LiteLLM: "openai does not support parameters: ['top_p'], for model=o3-mini" /
# "O-series models don't support temperature=0.7. Only temperature=1 is supported."
_LITELLM = re.compile(r"(?:does not|doesn't|don't|do not) support (?:parameters?:\s*\[\s*'"
                      r"([A-Za-z_]+)'|([A-Za-z_]+)=)")
# Anthropic / others: "`temperature` may only be set to 1 when thinking is enabled",
# "top_p: Extra inputs are not permitted", "thinking.type.enabled is not supported..."
_GENERIC = re.compile(
    r"\b(temperature|top_p|topP|frequency_penalty|frequencyPenalty|presence_penalty|"
    r"presencePenalty|max_completion_tokens|max_tokens|reasoning_effort|thinking|"
    r"thinkingConfig|stream_options)\b[`'\"]?(?:[.\w]*)[`'\"]?:?\s+(?:is not supported|"
    r"is not permitted|isn't supported|are not permitted|not supported|may only|"
    r"is unsupported|unsupported|Extra inputs)", re.IGNORECASE)


def refused_parameter(exc: ProviderAPIError) -> str | None:
    """The wire name of the one parameter a 400 refused, or ``None``."""
    if exc.status_code not in (400, 422):
        return None
    message = exc.provider_message or ""
    for pattern in (_OPENAI, _UNKNOWN_NAME, _LITELLM, _GENERIC):
        m = pattern.search(message)
        if m:
            name = next(g for g in m.groups() if g).split(".")[0]
            for known in _SETTING:
                if known.lower() == name.lower():
                    return known
    return None


@dataclass(frozen=True)
class Decision:
    action: str  # "omit" | "rename" | "refuse"
    wire: str
    setting: str | None
    target: str | None = None  # for rename


def decide(wire: str, explicit: frozenset[str], provider_type: str,
           message: str | None) -> Decision:
    setting = _SETTING.get(wire)
    if setting is None:
        return Decision("omit", wire, None)
    target = _RENAMES.get(wire)
    if target is not None and provider_type in ("openai", "openrouter", "openai_compatible") \
            and target in (message or ""):
        return Decision("rename", wire, setting, target)
    if setting not in explicit:
        return Decision("omit", wire, setting)
    return Decision("refuse", wire, setting)


def refusal_error(exc: ProviderAPIError, decision: Decision, provider: str, model: str,
                  per_call: frozenset[str]) -> ProviderAPIError:
    """One line: which setting the model refused, and how to unset it."""
    setting = decision.setting or decision.wire
    how = (f"leave {setting}= out of the call" if setting in per_call else
           f"unset it with ws.providers.update('{provider}', settings={{'{setting}': None}}) "
           "or in the panel")
    said = exc.provider_message or ""
    said = f": {said[:157]}…" if len(said) > 160 else (f": {said}" if said else "")
    return ProviderAPIError(
        f"Model '{model}' on provider '{provider}' does not accept the setting {setting}: to "
        f"use the provider's default, {how} (HTTP {exc.status_code}{said}).",
        provider, model, status_code=exc.status_code, error_type=exc.error_type,
        provider_message=exc.provider_message)


def load(db: Database, provider: str, model: str) -> dict[str, str]:
    """``{wire parameter: "omit" | "rename:<new name>"}`` learnt for provider:model."""
    with db.read() as conn:
        rows = conn.execute("SELECT param, action FROM param_refusals WHERE provider = ? AND "
                            "model = ?", (provider, model)).fetchall()
    return {str(p): str(a) for p, a in rows}


def remember(db: Database, provider: str, model: str, decision: Decision) -> None:
    action = "omit" if decision.action == "omit" else f"rename:{decision.target}"
    with db.write() as conn:
        conn.execute("INSERT OR REPLACE INTO param_refusals (provider, model, param, action, "
                     "at) VALUES (?, ?, ?, ?, ?)",
                     (provider, model, decision.wire, action, time.time()))


def forget(db: Database, provider: str, model: str | None = None) -> None:
    with db.write() as conn:
        if model is None:
            conn.execute("DELETE FROM param_refusals WHERE provider = ?", (provider,))
        else:
            conn.execute("DELETE FROM param_refusals WHERE provider = ? AND model = ?",
                         (provider, model))
