"""Strict mode of the fake provider: today's parameter rules of real models, enforced with the
providers' own 400 bodies, so a client that sends what the user never asked for fails here
the way it fails against the real API.

OpenAI reasoning models (o-series, gpt-5 except ``*-chat*``;
https://platform.openai.com/docs/guides/reasoning): ``temperature`` other than 1 →
``unsupported_value``; ``top_p``, ``frequency_penalty``, ``presence_penalty``, ``max_tokens``
→ ``unsupported_parameter`` (``max_tokens``: "Use 'max_completion_tokens' instead.").

Anthropic (https://platform.claude.com/docs/en/build-with-claude/extended-thinking,
https://platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4):
``max_tokens`` is required; Claude Opus 4.1 / 4.5+ refuse ``temperature`` with ``top_p``;
with ``thinking`` enabled, temperature must be 1 (or unset), ``budget_tokens`` ≥ 1024 and
below ``max_tokens``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ._wire import Reply, error_reply

__all__ = ["strict_problem"]

_OPENAI_REASONING = re.compile(r"^(?:openai/)?(?:o\d|gpt-5(?!.*chat))", re.IGNORECASE)
_ONE_SAMPLER = re.compile(
    r"^claude-(?:opus-4-[1-9]|(?:sonnet|haiku|opus)-4-[5-9]|[a-z]+-(?:[5-9]|\d\d))(?!\d)")


def _openai_error(message: str, param: str, code: str) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}
    return Reply(400, "application/json", [json.dumps(body, indent=2).encode() + b"\n"])


def _openai(body: Mapping[str, Any]) -> Reply | None:
    model = str(body.get("model") or "")
    if not _OPENAI_REASONING.match(model):
        return None
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        return _openai_error(
            f"Unsupported value: 'temperature' does not support {temperature} with this "
            "model. Only the default (1) value is supported.", "temperature",
            "unsupported_value")
    for param in ("top_p", "frequency_penalty", "presence_penalty"):
        if param in body:
            return _openai_error(f"Unsupported parameter: '{param}' is not supported with "
                                 "this model.", param, "unsupported_parameter")
    if "max_tokens" in body:
        return _openai_error("Unsupported parameter: 'max_tokens' is not supported with this "
                             "model. Use 'max_completion_tokens' instead.", "max_tokens",
                             "unsupported_parameter")
    return None


def _anthropic(body: Mapping[str, Any]) -> Reply | None:
    model = str(body.get("model") or "")

    def bad(msg: str) -> Reply:
        return error_reply("anthropic", 400, msg)

    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int):
        return bad("max_tokens: Field required")
    if "temperature" in body and "top_p" in body and _ONE_SAMPLER.match(model):
        return bad("`temperature` and `top_p` cannot both be specified for this model. "
                   "Please use only one.")
    thinking = body.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return bad("`temperature` may only be set to 1 when thinking is enabled. Please "
                       "consult our documentation at https://docs.claude.com/en/docs/"
                       "build-with-claude/extended-thinking#important-considerations-when-"
                       "using-extended-thinking")
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return bad("thinking.enabled.budget_tokens: Input should be greater than or "
                       "equal to 1024")
        if budget >= max_tokens:
            return bad("`max_tokens` must be greater than `thinking.budget_tokens`. Please "
                       "consult our documentation at https://docs.claude.com/en/docs/"
                       "build-with-claude/extended-thinking#max-tokens-and-context-window-"
                       "size")
    return None


def strict_problem(protocol: str, body: Any) -> Reply | None:
    """The 400 a real provider would answer to this chat body, or ``None``."""
    if not isinstance(body, Mapping):
        return None
    if protocol == "openai":
        return _openai(body)
    if protocol == "anthropic":
        return _anthropic(body)
    return None
