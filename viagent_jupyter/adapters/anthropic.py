"""Anthropic Messages API (``POST {base}/v1/messages``, SSE).

Stream facts relied on: events ``message_start`` (input usage, model) →
``content_block_*`` → ``message_delta`` (stop_reason, *cumulative* usage) →
``message_stop`` (the terminal marker; there is no ``[DONE]``). ``ping`` and unknown
events are ignored; JSON may be padded with spaces — we only ever parse it.
Text = ``text_delta`` only; ``thinking_delta`` is reasoning, kept apart (not
``signature_delta`` or ``input_json_delta``). Anthropic reports no separate count of
thinking tokens (they are in ``output_tokens``): ``reasoning_tokens`` stays unset.
``event: error`` (e.g. ``overloaded_error``) raises; an
``overloaded_error`` maps to :class:`RateLimitError` (it "would normally correspond to an
HTTP 529", which is retryable), ``rate_limit_error`` too.

Usage: ``prompt_tokens`` = ``input_tokens + cache_creation_input_tokens +
cache_read_input_tokens`` (Anthropic reports cached input apart; the sum is what the model
read, like OpenAI's ``prompt_tokens``), taken from ``message_start`` and replaced by the
values ``message_delta`` repeats on recent servers; ``completion_tokens`` = the last
``message_delta`` ``output_tokens``. Anthropic reports no total, so none is set.

Request rules (https://platform.claude.com/docs/en/build-with-claude/extended-thinking,
https://platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4):
``max_tokens`` is required — the user's, else the model's output limit from the model list,
else :data:`DEFAULT_MAX_TOKENS`. Reasoning → ``thinking: {type: enabled, budget_tokens}``
(budget ≥ 1024 and < ``max_tokens``; temperature must be unset or 1), or ``{type:
adaptive}`` + ``output_config.effort`` for models the list marks adaptive-only when no
budget was given. Claude Opus 4.1, the 4.5 family and later refuse ``temperature`` and
``top_p`` together: :meth:`AnthropicAdapter.check_request` refuses that up front.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..errors import ConfigValidationError
from ..schema import ModelInfo
from ._common import (
    REASONING_BUDGETS,
    AdapterBase,
    SSEParser,
    build_headers,
    count,
    endpoint,
    entries,
    load_json_body,
    model_info,
    opt_str,
    parse_json,
    reasoning_of,
    set_finish,
    settings_of,
    split_system,
    stream_error,
)
from ._sse import SSEEvent
from .base import ChatRequest, HTTPRequest, ModelPage

__all__ = ["ADAPTER", "API_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicAdapter", "Parser"]

API_VERSION = "2023-06-01"
#: Anthropic requires max_tokens; used when the settings do not set it.
DEFAULT_MAX_TOKENS = 4096
MODELS_PAGE_SIZE = "100"

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}
_INPUT_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
#: Claude models that refuse temperature and top_p together: Opus 4.1, every 4.5+ model
#: and the generations after 4 (model ids ``claude-<family>-<major>[-<minor>]``).
_ONE_SAMPLER = re.compile(
    r"^claude-(?:opus-4-[1-9]|(?:sonnet|haiku|opus)-4-[5-9]|[a-z]+-(?:[5-9]|\d\d))(?!\d)")


_DEFAULTS = {"anthropic-version": API_VERSION}


def _auth(api_key: str | None) -> dict[str, str]:
    return {"x-api-key": api_key} if api_key else {}


class Parser(SSEParser):
    """Incremental parser of an Anthropic Messages SSE body."""

    protocol = "Anthropic Messages"
    marker = "'message_stop' event"

    def __init__(self, req: ChatRequest) -> None:
        super().__init__(req)
        self._input: dict[str, int] = {}

    def _handle(self, events: list[SSEEvent], out: list[str]) -> None:
        parse = parse_json
        append = out.append
        state = self.state
        try:
            for event, payload in events:
                try:
                    obj = parse(payload)
                except ValueError as exc:
                    if event == b"error":
                        raise stream_error(payload.decode("utf-8", "replace"),
                                           self.provider, self.model) from None
                    raise self.bad_json(payload, exc) from None
                if type(obj) is not dict:
                    raise self.bad_json(payload, None)
                kind = obj.get("type")
                if kind == "content_block_delta":
                    delta = obj.get("delta")
                    if delta:
                        kind = delta.get("type")
                        if kind == "text_delta":
                            text = delta.get("text")
                            if text:
                                append(text)
                        elif kind == "thinking_delta":
                            text = delta.get("thinking")
                            if text:
                                state.reasoning.append(text)
                elif kind == "message_delta":
                    delta = obj.get("delta")
                    if delta:
                        reason = delta.get("stop_reason")
                        if reason:
                            set_finish(state, reason, _FINISH)
                    usage = obj.get("usage")
                    if usage:
                        self._usage(usage)
                elif kind == "message_start":
                    message = obj.get("message")
                    if message:
                        state.model = opt_str(message.get("model")) or state.model
                        usage = message.get("usage")
                        if usage:
                            self._usage(usage)
                elif kind == "message_stop":
                    state.done = True
                elif kind == "error" or event == b"error":
                    raise stream_error(obj.get("error") or obj, self.provider, self.model)
                # ping, content_block_start/stop and unknown events: nothing to do
        except (AttributeError, TypeError, IndexError, KeyError) as exc:
            raise self.bad_shape(exc) from None

    def _whole(self, obj: dict[str, Any], out: list[str]) -> bool:
        """A non-streamed ``message``: its ``content`` blocks, ``stop_reason``, ``usage``."""
        content = obj.get("content")
        if obj.get("type") != "message" or not isinstance(content, list):
            return False
        state = self.state
        for block in content:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                out.append(block["text"])
            elif block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
                state.reasoning.append(block["thinking"])
        reason = obj.get("stop_reason")
        if reason:
            set_finish(state, reason, _FINISH)
        usage = obj.get("usage")
        if isinstance(usage, Mapping):
            self._usage(usage)
        state.model = opt_str(obj.get("model")) or state.model
        return True

    def _usage(self, usage: Mapping[str, Any]) -> None:
        got = self._input
        for key in _INPUT_KEYS:
            value = count(usage.get(key))
            if value is not None:
                got[key] = value
        target = self.state.usage
        if "input_tokens" in got:
            target["prompt_tokens"] = sum(got.values())
            for ours, theirs in (("cached_input_tokens", "cache_read_input_tokens"),
                                 ("cache_write_tokens", "cache_creation_input_tokens")):
                if got.get(theirs):
                    target[ours] = got[theirs]
        output = count(usage.get("output_tokens"))
        if output is not None:
            target["completion_tokens"] = output


def _created(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _supported(caps: Mapping[str, Any], key: str) -> bool:
    entry = caps.get(key)
    return isinstance(entry, Mapping) and entry.get("supported") is True


def _model(entry: Mapping[str, Any]) -> ModelInfo | None:
    mid = opt_str(entry.get("id"))
    if mid is None:
        return None
    caps: tuple[str, ...] = ()
    raw = entry.get("capabilities")
    if isinstance(raw, Mapping):  # 2026+ listings
        caps = tuple(name for name, key in (("vision", "image_input"), ("reasoning", "thinking"))
                     if _supported(raw, key))
        thinking = raw.get("thinking")
        types = thinking.get("types") if isinstance(thinking, Mapping) else None
        if isinstance(types, Mapping) and _supported(types, "adaptive") \
                and not _supported(types, "enabled"):
            caps += ("adaptive_thinking",)
    return model_info(
        mid,
        name=opt_str(entry.get("display_name")),
        context_length=count(entry.get("max_input_tokens")),
        max_output_tokens=count(entry.get("max_tokens")),
        capabilities=caps,
        created=_created(entry.get("created_at")),
    )


class AnthropicAdapter(AdapterBase):
    """Messages over SSE; models from ``GET {base}/v1/models`` (cursor pagination)."""

    name = "anthropic"
    parser_class = Parser

    def check_request(self, req: ChatRequest) -> None:
        """Refuse up front what Anthropic would refuse with a 400 (see the module doc)."""
        settings = settings_of(req)
        pid = req.provider_id
        if "temperature" in settings and "top_p" in settings and _ONE_SAMPLER.match(req.model):
            raise ConfigValidationError(
                f"Model '{req.model}' takes temperature or top_p, not both: unset one "
                f"(ws.providers.update('{pid}', settings={{'top_p': None}}), or leave -t out).",
                [{"field": "settings.top_p", "message": "not with temperature on this model"}])
        thinking, budget = self._thinking(req)
        if thinking is None:
            return
        temperature = settings.get("temperature")
        if temperature is not None and temperature != 1:
            raise ConfigValidationError(
                f"Reasoning on '{req.model}' needs temperature unset (or 1): unset it "
                f"(ws.providers.update('{pid}', settings={{'temperature': None}}), or leave "
                "-t out), or turn reasoning off.",
                [{"field": "settings.temperature", "message": "must be unset with reasoning"}])
        max_tokens = settings.get("max_tokens")
        if budget is not None and max_tokens is not None and budget >= max_tokens:
            raise ConfigValidationError(
                f"The reasoning budget ({budget} tokens) must be below max_tokens "
                f"({max_tokens}) on '{req.model}': raise max_tokens or lower reasoning_budget.",
                [{"field": "settings.reasoning_budget", "message": "must be below max_tokens"}])

    @staticmethod
    def _thinking(req: ChatRequest) -> tuple[dict[str, Any] | None, int | None]:
        level, budget = reasoning_of(req)
        if level is None or level == "none":
            return None, None
        if budget is None and "adaptive_thinking" in req.capabilities:
            return {"type": "adaptive"}, None
        budget = budget or REASONING_BUDGETS[level]
        return {"type": "enabled", "budget_tokens": budget}, budget

    def chat_request(self, req: ChatRequest) -> HTTPRequest:
        system, messages = split_system(req)
        settings = settings_of(req)
        thinking, budget = self._thinking(req)
        max_tokens = settings.get("max_tokens")
        if max_tokens is None:
            max_tokens = req.max_output_tokens or DEFAULT_MAX_TOKENS
            if budget is not None and max_tokens <= budget:
                max_tokens = budget + DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {
            "model": req.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_tokens,
            "stream": True,
        }
        if system:
            body["system"] = system
        if thinking is not None:
            body["thinking"] = thinking
            if thinking["type"] == "adaptive":
                body["output_config"] = {"effort": _EFFORT[reasoning_of(req)[0] or "medium"]}
        if "temperature" in settings:  # Anthropic accepts 0..1
            body["temperature"] = min(float(settings["temperature"]), 1.0)
        if "top_p" in settings:
            body["top_p"] = settings["top_p"]
        # frequency/presence penalties do not exist in the Messages API: dropped.
        url, params = endpoint(req.base_url, "/v1/messages")
        headers = build_headers(_auth(req.api_key), req.headers, "text/event-stream", _DEFAULTS)
        return HTTPRequest("POST", url, headers, json=body, params=params)


    def models_request(self, base_url: str, api_key: str | None,
                       headers: Mapping[str, str]) -> HTTPRequest:
        url, params = endpoint(base_url, "/v1/models", {"limit": MODELS_PAGE_SIZE})
        return HTTPRequest("GET", url, build_headers(_auth(api_key), headers, "application/json",
                                                     _DEFAULTS), params=params)

    def parse_models(self, body: bytes, request: HTTPRequest) -> ModelPage:
        obj = load_json_body(body, request)
        models = [m for m in map(_model, entries(obj, "data")) if m is not None]
        next_request = None
        if isinstance(obj, Mapping) and obj.get("has_more") is True:
            last = opt_str(obj.get("last_id"))
            params = dict(request.params or {})
            if last and params.get("after_id") != last:
                params["after_id"] = last
                next_request = replace(request, params=params, headers=dict(request.headers))
        return ModelPage(models, next_request)



ADAPTER = AnthropicAdapter()
