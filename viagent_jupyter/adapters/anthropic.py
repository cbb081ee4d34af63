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

import json
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
from .base import ChatRequest, HTTPRequest, ModelPage, StreamState

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
#: With structured output the forced tool's call *is* the answer: it ends the turn.
_STRUCTURED_FINISH = {**_FINISH, "tool_use": "stop"}
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
        # structured output: the forced tool's input JSON is the answer's text
        self._structured = req.output is not None
        self._finish = _STRUCTURED_FINISH if self._structured else _FINISH
        self._thinking: list[dict[str, Any]] = []  # blocks a tool turn must send back

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
                                _thinking_add(self._thinking, obj.get("index"), "thinking", text)
                        elif kind == "signature_delta":
                            _thinking_add(self._thinking, obj.get("index"), "signature",
                                          delta.get("signature"))
                        elif kind == "input_json_delta" and self._structured:
                            text = delta.get("partial_json")  # the forced schema tool's input
                            if text:
                                append(text)
                        elif kind == "input_json_delta":
                            _tool_input(state, obj.get("index"), delta.get("partial_json"))
                elif kind == "message_delta":
                    delta = obj.get("delta")
                    if delta:
                        reason = delta.get("stop_reason")
                        if reason:
                            set_finish(state, reason, self._finish)
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
                elif kind == "content_block_start":
                    _tool_start(state, obj.get("index"), obj.get("content_block"),
                                self._thinking)
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
            elif block.get("type") == "tool_use" and self._structured:
                out.append(json.dumps(block.get("input"), ensure_ascii=False))
        reason = obj.get("stop_reason")
        if reason:
            set_finish(state, reason, self._finish)
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


# --------------------------------------------------------------------------- tools


def _tool_start(state: StreamState, index: Any, block: Any,
                thinking: list[dict[str, Any]]) -> None:
    """``content_block_start``: a ``tool_use`` block (id and name; input follows), or a
    (redacted) thinking block, kept because with thinking on, a turn with tool calls must be
    sent back starting with its thinking blocks, signatures included."""
    if not isinstance(block, Mapping):
        return
    kind = block.get("type")
    if kind == "tool_use":
        extra = {"thinking": [{k: v for k, v in b.items() if k != "index"} for b in thinking]
                 } if thinking and not state.tool_calls else {}
        state.tool_calls.append({"index": index, "id": opt_str(block.get("id")) or "",
                                 "name": opt_str(block.get("name")) or "", "arguments": "",
                                 "extra": extra})
    elif kind == "thinking":
        thinking.append({"index": index, "type": "thinking", "thinking": "", "signature": ""})
    elif kind == "redacted_thinking":
        thinking.append({"index": index, **block})


def _thinking_add(thinking: list[dict[str, Any]], index: Any, key: str, text: Any) -> None:
    if isinstance(text, str):
        for block in reversed(thinking):
            if block["index"] == index and block["type"] == "thinking":
                block[key] += text
                return


def _tool_input(state: StreamState, index: Any, partial: Any) -> None:
    """``input_json_delta.partial_json``: a piece of the block's input (JSON text; the
    first piece is often empty)."""
    if not isinstance(partial, str):
        return
    for call in reversed(state.tool_calls):
        if call["index"] == index:
            call["arguments"] += partial
            return


def _tool_defs(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": t["name"], "description": t["description"],
             "input_schema": t["parameters"]} for t in tools]


def _tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The neutral transcript in Messages shape: the assistant's ``tool_use`` blocks, then
    ONE user message holding every ``tool_result`` block of that turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "assistant" and "tool_calls" in m:
            calls = m["tool_calls"]
            blocks: list[dict[str, Any]] = list(
                (calls[0].get("extra") or {}).get("thinking", ())) if calls else []
            if m.get("content"):
                blocks.append({"type": "text", "text": m["content"]})
            blocks += [{"type": "tool_use", "id": c["id"], "name": c["name"],
                        "input": c["arguments"]} for c in m["tool_calls"]]
            out.append({"role": "assistant", "content": blocks})
        elif m["role"] == "tool":
            block = {"type": "tool_result", "tool_use_id": m["tool_call_id"],
                     "content": m["content"]}
            if m.get("is_error"):
                block["is_error"] = True
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


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


def _with_images(req: ChatRequest, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Images go with the last user message as ``image`` blocks with a base64 ``source``,
    before its text (Anthropic's advice: images first)."""
    if req.images:
        for msg in reversed(messages):
            if msg["role"] == "user":
                msg["content"] = [
                    {"type": "image", "source": {"type": "base64", "media_type": img.mime,
                                                 "data": img.b64}} for img in req.images
                ] + [{"type": "text", "text": msg["content"]}]
                break
    return messages


def _force_schema_tool(body: dict[str, Any], output: Any) -> None:
    """Structured output: one tool whose ``input_schema`` is the schema, forced with
    ``tool_choice {type: tool, name}``; its input arrives as ``input_json_delta``."""
    body.setdefault("tools", []).append({
        "name": output.name,
        "description": "Give the answer as this tool's input, following its schema exactly.",
        "input_schema": output.schema})
    body["tool_choice"] = {"type": "tool", "name": output.name}


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
        if thinking is not None and req.output is not None:
            raise ConfigValidationError(
                f"Structured output on '{req.model}' forces a tool call, which Anthropic does "
                "not allow with extended thinking: turn reasoning off (-r none) or drop the "
                "schema.", [{"field": "settings.reasoning", "message": "not with a schema"}])
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
            "messages": _with_images(req, [{"role": m["role"], "content": m["content"]}
                                           for m in messages]),
            "max_tokens": max_tokens,
            "stream": True,
        }
        if system:
            body["system"] = system
        if req.tools or any(m["role"] == "tool" for m in messages):
            # images join the prompt before the transcript becomes tool_use/tool_result blocks
            body["messages"] = _tool_messages(_with_images(req, [dict(m) for m in messages]))
            if req.tools:
                body["tools"] = _tool_defs(req.tools)
        if req.output is not None:
            _force_schema_tool(body, req.output)
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
