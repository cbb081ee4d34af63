"""OpenAI Chat Completions (``POST {base}/chat/completions``, SSE), used for the provider
types ``openai``, ``openrouter`` and ``openai_compatible`` (vLLM, LM Studio, Ollama ``/v1``,
Azure-style URLs with ``?api-version=``...).

Stream facts relied on (see the wire fact sheet): one ``data: <json>`` per event, ``data:
[DONE]`` ends the stream (also sent by Ollama ``/v1`` and OpenRouter — every recorded
OpenAI-style stream has it, so it is the only terminal marker we accept); the usage chunk
has ``choices: []``; OpenRouter sends its usage chunk *after* the finish chunk with
``finish_reason: null``, so the last non-null finish reason wins; ``usage`` may be
``null`` or absent on ordinary chunks; comments (``: OPENROUTER PROCESSING``) are
keep-alives; a data object with an ``error`` member is an in-stream error.
Text = ``delta.content`` plus ``delta.refusal`` (a refusal is what the model said);
``delta.reasoning`` (OpenRouter, Ollama ``/v1``) / ``delta.reasoning_content`` (DeepSeek,
vLLM, LiteLLM) are reasoning, kept apart; tool-call fragments are not text. Reasoning tokens:
``usage.completion_tokens_details.reasoning_tokens`` (part of ``completion_tokens``).

Request rules: ``max_tokens`` goes out as ``max_completion_tokens`` only to OpenAI's own
origin or to a reasoning model (o-series, gpt-5 except ``*-chat*``), which refuse
``max_tokens``; every other server gets ``max_tokens`` (many compatible servers ignore the
newer name, so the cap would be lost). Reasoning: ``reasoning_effort`` (OpenAI and
compatible servers), OpenRouter's ``reasoning`` object (``effort`` or ``max_tokens``).
A complete JSON ``chat.completion`` where a stream was expected is read as the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..schema import ModelInfo
from ._common import (
    AdapterBase,
    SSEParser,
    build_headers,
    count,
    endpoint,
    entries,
    function_tools,
    load_json_body,
    model_info,
    opt_str,
    parse_json,
    price,
    reasoning_of,
    set_finish,
    settings_of,
    stream_error,
    with_system,
)
from ._sse import SSEEvent
from .base import ChatRequest, HTTPRequest, ModelPage, StreamState

__all__ = ["ADAPTER", "OpenAIAdapter", "Parser"]

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
#: OpenAI's reasoning models: o1/o3/o4-mini..., gpt-5* except the ``*-chat*`` variants.
_REASONING_MODEL = re.compile(r"^(?:openai/)?(?:o\d|gpt-5(?!.*chat))", re.IGNORECASE)


def is_reasoning_model(model: str) -> bool:
    """OpenAI's reasoning-model rules apply (no temperature but 1, no top_p/penalties,
    ``max_completion_tokens`` instead of ``max_tokens``)."""
    return _REASONING_MODEL.match(model) is not None


def is_openai_origin(base_url: str) -> bool:
    return (urlsplit(base_url).hostname or "").lower() == "api.openai.com"


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Parser(SSEParser):
    """Incremental parser of an OpenAI-style chat-completions SSE body."""

    protocol = "OpenAI chat-completions"
    marker = "'data: [DONE]'"

    def _handle(self, events: list[SSEEvent], out: list[str]) -> None:
        parse = parse_json
        append = out.append
        state = self.state
        try:
            for event, payload in events:
                try:
                    obj = parse(payload)
                except ValueError as exc:
                    if payload.strip() == b"[DONE]":
                        state.done = True
                        continue
                    raise self.bad_json(payload, exc) from None
                if type(obj) is not dict:
                    raise self.bad_json(payload, None)
                choices = obj.get("choices")
                if choices:
                    choice = choices[0]
                    delta = choice.get("delta")
                    if delta:
                        text = delta.get("content")
                        if text:
                            if type(text) is str:
                                append(text)
                            else:
                                _content_parts(text, out)
                        text = delta.get("refusal")
                        if text and type(text) is str:
                            append(text)
                        text = delta.get("reasoning") or delta.get("reasoning_content")
                        if text and type(text) is str:
                            state.reasoning.append(text)
                        calls = delta.get("tool_calls")
                        if calls:
                            _tool_deltas(state, calls)
                    reason = choice.get("finish_reason")
                    if reason:
                        set_finish(state, reason, _FINISH)
                usage = obj.get("usage")
                if usage:
                    self._usage(usage)
                if state.model is None:
                    state.model = opt_str(obj.get("model"))
                if event or "error" in obj:
                    self._error_event(event, obj)
        except (AttributeError, TypeError, IndexError, KeyError) as exc:
            raise self.bad_shape(exc) from None

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            return
        state = self.state
        for key in _USAGE_KEYS:
            value = count(usage.get(key))
            if value is not None:
                state.usage[key] = value
        details = usage.get("completion_tokens_details")
        if isinstance(details, Mapping):
            value = count(details.get("reasoning_tokens"))
            if value is not None:
                state.usage["reasoning_tokens"] = value
        details = usage.get("prompt_tokens_details")  # cached input (OpenAI, OpenRouter)
        cached = count(details.get("cached_tokens")) if isinstance(details, Mapping) else None
        if cached:
            state.usage["cached_input_tokens"] = cached
        cost = usage.get("cost")  # OpenRouter: USD, provider-reported
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            state.cost = float(cost)

    def _whole(self, obj: dict[str, Any], out: list[str]) -> bool:
        """A non-streamed ``chat.completion``: ``choices[0].message``."""
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            return False
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, Mapping):
            return False
        state = self.state
        for key in ("reasoning", "reasoning_content"):
            text = message.get(key)
            if isinstance(text, str) and text:
                state.reasoning.append(text)
                break
        for key in ("content", "refusal"):
            text = message.get(key)
            if isinstance(text, str) and text:
                out.append(text)
            elif isinstance(text, list):
                _content_parts(text, out)
        reason = choice.get("finish_reason")
        set_finish(state, reason or "stop", _FINISH)
        self._usage(obj.get("usage"))
        state.model = opt_str(obj.get("model")) or state.model
        return True

    def _error_event(self, event: bytes, obj: dict[str, Any]) -> None:
        err = obj.get("error")
        if err:
            raise stream_error(err, self.provider, self.model)
        if event == b"error":
            raise stream_error(obj, self.provider, self.model)


# --------------------------------------------------------------------------- tools


def _tool_deltas(state: StreamState, calls: Any) -> None:
    """``delta.tool_calls[]``: a call's first fragment (by ``index``) has ``id`` and
    ``function.name``, later ones pieces of ``function.arguments`` text. A fresh ``id`` at a
    used index is a new call (some compatible servers reuse index 0 for parallel calls)."""
    slots = state.tool_calls
    for c in calls if isinstance(calls, list) else ():
        if not isinstance(c, Mapping):
            continue
        index = c.get("index")
        fn = c.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        cid = opt_str(c.get("id"))
        slot = next((s for s in reversed(slots) if s["index"] == index), None)
        if slot is None or (cid and slot["id"] and cid != slot["id"]):
            slot = {"index": index, "id": cid or "", "name": "", "arguments": ""}
            slots.append(slot)
        slot["id"] = slot["id"] or cid or ""
        name = opt_str(fn.get("name"))
        if name and not slot["name"]:
            slot["name"] = name
        args = fn.get("arguments")
        if isinstance(args, str):
            slot["arguments"] += args
        elif isinstance(args, Mapping):  # some compatible servers send an object
            slot["arguments"] += json.dumps(args)


def _tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The neutral transcript in Chat Completions shape: an assistant message with
    ``tool_calls`` (arguments as JSON text), one ``tool`` message per result."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "assistant" and "tool_calls" in m:
            out.append({"role": "assistant", "content": m.get("content") or None,
                        "tool_calls": [{"id": c["id"], "type": "function", "function": {
                            "name": c["name"], "arguments": json.dumps(c["arguments"])}}
                            for c in m["tool_calls"]]})
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"],
                        "content": m["content"]})
        else:
            out.append(m)
    return out


def _content_parts(parts: Any, out: list[str]) -> None:
    """Some compatible servers send ``content`` as a list of typed parts."""
    if isinstance(parts, list):
        for part in parts:
            if isinstance(part, Mapping) and part.get("type") in ("text", None):
                text = part.get("text")
                if isinstance(text, str) and text:
                    out.append(text)


def _with_images(req: ChatRequest, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Images go with the last user message as ``image_url`` parts holding ``data:`` URLs
    (``content`` becomes a list: the text part first)."""
    if not req.images:
        return messages
    for msg in reversed(messages):
        if msg.get("role") == "user":
            msg["content"] = [{"type": "text", "text": msg["content"]}] + [
                {"type": "image_url", "image_url": {"url": img.data_url}} for img in req.images]
            break
    return messages


def _response_format(output: Any) -> dict[str, Any]:
    """``response_format`` ``json_schema`` with ``strict: true``; strict mode needs every object
    closed (``additionalProperties: false``) and every property required — optional ones
    become nullable (``_structured.strict_schema``)."""
    from .._structured import strict_schema

    return {"type": "json_schema", "json_schema": {
        "name": output.name, "schema": strict_schema(output.schema), "strict": True}}


def _capabilities(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """OpenRouter: ``tools`` (supported_parameters has tools), ``vision`` (image input),
    ``reasoning`` (supported_parameters has reasoning/include_reasoning)."""
    caps: list[str] = []
    params = entry.get("supported_parameters")
    params = params if isinstance(params, list) else []
    arch = entry.get("architecture")
    inputs: Any = None
    if isinstance(arch, Mapping):
        inputs = arch.get("input_modalities")
        if not isinstance(inputs, list):
            modality = arch.get("modality")
            inputs = modality.split("->")[0].split("+") if isinstance(modality, str) else []
    if "tools" in params:
        caps.append("tools")
    if inputs and "image" in inputs:
        caps.append("vision")
    if "reasoning" in params or "include_reasoning" in params:
        caps.append("reasoning")
    return tuple(caps)


def _model(entry: Mapping[str, Any]) -> ModelInfo | None:
    mid = opt_str(entry.get("id"))
    if mid is None:
        return None
    created = count(entry.get("created"))
    if "pricing" not in entry and "context_length" not in entry and "architecture" not in entry:
        return model_info(mid, created=created)  # plain OpenAI / compatible listing
    # OpenRouter
    context = count(entry.get("context_length"))
    top = entry.get("top_provider")
    if context is None and isinstance(top, Mapping):
        context = count(top.get("context_length"))
    pricing = None
    prices = entry.get("pricing")
    if isinstance(prices, Mapping):
        prompt, completion = price(prices.get("prompt")), price(prices.get("completion"))
        if prompt is not None and completion is not None:
            pricing = {"prompt": prompt, "completion": completion}
    return model_info(
        mid,
        name=opt_str(entry.get("name")),
        context_length=context,
        pricing=pricing,
        capabilities=_capabilities(entry),
        created=created,
        description=opt_str(entry.get("description")),
    )


class OpenAIAdapter(AdapterBase):
    """Chat Completions over SSE; models from ``GET {base}/models``."""

    name = "openai"
    parser_class = Parser

    def chat_request(self, req: ChatRequest) -> HTTPRequest:
        body: dict[str, Any] = {
            "model": req.model,
            "messages": _with_images(req, with_system(req)),
            "stream": True,
        }
        if "stream_options" not in req.omit:
            body["stream_options"] = {"include_usage": True}
        # OpenAI deprecated max_tokens (its reasoning models refuse it); compatible servers
        # and OpenRouter know max_tokens, and many ignore max_completion_tokens.
        new_name = req.provider_type == "openai" and (
            is_openai_origin(req.base_url) or is_reasoning_model(req.model))
        for key, value in settings_of(req).items():
            if key == "max_tokens" and new_name:
                key = "max_completion_tokens"
            body[req.rename.get(key, key)] = value
        level, budget = reasoning_of(req)
        if level is not None:
            if req.provider_type == "openrouter":
                body["reasoning"] = ({"max_tokens": budget} if budget is not None and
                                     level != "none" else {"effort": level})
            else:
                body["reasoning_effort"] = level
        if req.tools or any(m["role"] == "tool" for m in req.messages):
            body["messages"] = _tool_messages(body["messages"])
            if req.tools:
                body["tools"] = function_tools(req.tools)
        if req.output is not None:
            body["response_format"] = _response_format(req.output)
        url, params = endpoint(req.base_url, "/chat/completions")
        headers = build_headers(_auth(req.api_key), req.headers, "text/event-stream")
        return HTTPRequest("POST", url, headers, json=body, params=params)


    def models_request(self, base_url: str, api_key: str | None,
                       headers: Mapping[str, str]) -> HTTPRequest:
        url, params = endpoint(base_url, "/models")
        return HTTPRequest("GET", url, build_headers(_auth(api_key), headers, "application/json"),
                           params=params)

    def parse_models(self, body: bytes, request: HTTPRequest) -> ModelPage:
        obj = load_json_body(body, request)
        items = entries({"data": obj}, "data") if isinstance(obj, list) else entries(obj, "data")
        models = [m for m in map(_model, items) if m is not None]
        return ModelPage(models)



ADAPTER = OpenAIAdapter()
