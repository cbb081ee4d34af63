"""Anthropic Messages API (``POST {base}/v1/messages``, SSE).

Stream facts relied on: events ``message_start`` (input usage, model) →
``content_block_*`` → ``message_delta`` (stop_reason, *cumulative* usage) →
``message_stop`` (the terminal marker; there is no ``[DONE]``). ``ping`` and unknown
events are ignored; JSON may be padded with spaces — we only ever parse it.
Text = ``text_delta`` only (not ``thinking_delta``, ``signature_delta`` or
``input_json_delta``). ``event: error`` (e.g. ``overloaded_error``) raises; an
``overloaded_error`` maps to :class:`RateLimitError` (it "would normally correspond to an
HTTP 529", which is retryable), ``rate_limit_error`` too.

Usage: ``prompt_tokens`` = ``input_tokens + cache_creation_input_tokens +
cache_read_input_tokens`` (Anthropic reports cached input apart; the sum is what the model
read, like OpenAI's ``prompt_tokens``), taken from ``message_start`` and replaced by the
values ``message_delta`` repeats on recent servers; ``completion_tokens`` = the last
``message_delta`` ``output_tokens``. Anthropic reports no total, so none is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..schema import ModelInfo
from ._common import (
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
                    if delta and delta.get("type") == "text_delta":
                        text = delta.get("text")
                        if text:
                            append(text)
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
    return model_info(
        mid,
        name=opt_str(entry.get("display_name")),
        context_length=count(entry.get("max_input_tokens")),
        capabilities=caps,
        created=_created(entry.get("created_at")),
    )


class AnthropicAdapter(AdapterBase):
    """Messages over SSE; models from ``GET {base}/v1/models`` (cursor pagination)."""

    name = "anthropic"
    parser_class = Parser

    def chat_request(self, req: ChatRequest) -> HTTPRequest:
        system, messages = split_system(req)
        settings = settings_of(req)
        body: dict[str, Any] = {
            "model": req.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": settings.get("max_tokens", DEFAULT_MAX_TOKENS),
            "stream": True,
        }
        if system:
            body["system"] = system
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
