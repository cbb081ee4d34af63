"""Ollama native chat (``POST {base}/api/chat``, NDJSON).

Stream facts relied on: one compact JSON object per ``\\n``-terminated line (split on
bytes, so raw U+0085 inside a string is safe); ``"stream": true`` is always sent
(``/api/chat`` streams by default); text = ``message.content`` (``message.thinking`` is
reasoning, kept apart); the final line has
``"done": true`` (the terminal marker), ``done_reason`` (``stop``, ``length``; ``load``/
``unload`` → ``other``; absent on old servers → ``stop``), ``prompt_eval_count`` and
``eval_count``. A line with ``error`` is an in-stream error (status stays 200) whatever
else it carries — real servers end a failed stream with ``{"done": true, "done_reason":
"error", "error": "..."}``. A line without ``message`` (an ``/api/generate`` body has
``response`` instead) is a :class:`ProviderResponseError` naming what came back.
Reasoning: ``think`` — ``false`` for ``none``, the level for gpt-oss models (which take
``low``/``medium``/``high``), else ``true`` (https://docs.ollama.com/capabilities/thinking).
When the answer called tools and ended with ``stop`` we report ``tool_calls`` (as Ollama's
own OpenAI layer does); the raw value stays ``stop``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..schema import ModelInfo
from ._common import (
    AdapterBase,
    BaseParser,
    UnexpectedBody,
    build_headers,
    count,
    endpoint,
    entries,
    function_tools,
    load_json_body,
    model_info,
    opt_str,
    parse_json,
    reasoning_of,
    set_finish,
    settings_of,
    stream_error,
    with_system,
)
from ._sse import NDJSONDecoder
from .base import ChatRequest, HTTPRequest, ModelPage, StreamState

__all__ = ["ADAPTER", "OllamaAdapter", "Parser"]

_FINISH = {"stop": "stop", "length": "length"}
_OPTIONS = {
    "temperature": "temperature",
    "max_tokens": "num_predict",
    "top_p": "top_p",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}  # ollama.com needs one


class Parser(BaseParser):
    """Incremental parser of an Ollama ``/api/chat`` NDJSON body."""

    protocol = "Ollama /api/chat"
    marker = "line with \"done\": true"

    def __init__(self, req: ChatRequest) -> None:
        super().__init__(req)
        self._lines = NDJSONDecoder(self.provider)
        self._lines_feed = self._lines.feed
        self._tool_calls = False

    def _feed(self, data: bytes, out: list[str]) -> None:
        lines = self._lines_feed(data)
        if lines:
            self._handle(lines, out)

    def _close(self, out: list[str]) -> None:
        self._handle(self._lines.close(), out)

    def _handle(self, lines: list[bytes], out: list[str]) -> None:
        parse = parse_json
        append = out.append
        try:
            for line in lines:
                try:
                    obj = parse(line)
                except ValueError as exc:
                    raise self.bad_json(line, exc) from None
                if type(obj) is not dict:
                    raise self.bad_json(line, None)
                if "error" in obj:  # before "done": a failed stream ends with both
                    raise stream_error(obj["error"], self.provider, self.model)
                message = obj.get("message")
                if message is None:
                    raise self._no_message(obj)
                if message:
                    text = message.get("content")
                    if text:
                        append(text)
                    calls = message.get("tool_calls")
                    if calls:
                        self._tool_calls = True
                        _tool_calls(self.state, calls)
                    text = message.get("thinking")
                    if text and type(text) is str:
                        self.state.reasoning.append(text)
                if obj.get("done"):
                    self._done(obj)
        except (AttributeError, TypeError, IndexError, KeyError) as exc:
            raise self.bad_shape(exc) from None

    def _no_message(self, obj: Mapping[str, Any]) -> UnexpectedBody:
        keys = ", ".join(sorted(map(str, obj))[:8])
        what = ("an /api/generate answer (\"response\" instead of \"message\")"
                if "response" in obj else f"a line without \"message\" (keys: {keys})")
        return UnexpectedBody(
            f"Provider '{self.provider}' sent {what} where {self.protocol} lines were "
            "expected. Check that the base_url is the Ollama server itself (it appends "
            "/api/chat).", self.provider, self.model)

    def _done(self, obj: Mapping[str, Any]) -> None:
        state = self.state
        state.done = True
        reason = obj.get("done_reason")
        if reason:
            set_finish(state, reason, _FINISH)
        else:
            state.finish_reason, state.raw_finish_reason = "stop", None
        if self._tool_calls and state.finish_reason == "stop":
            state.finish_reason = "tool_calls"
        prompt, completion = count(obj.get("prompt_eval_count")), count(obj.get("eval_count"))
        if prompt is not None:
            state.usage["prompt_tokens"] = prompt
        if completion is not None:
            state.usage["completion_tokens"] = completion
        state.model = opt_str(obj.get("model")) or state.model


def _model(entry: Mapping[str, Any]) -> ModelInfo | None:
    mid = opt_str(entry.get("name")) or opt_str(entry.get("model"))
    if mid is None:
        return None
    details = entry.get("details")
    description = None
    if isinstance(details, Mapping):
        bits = [details.get(k) for k in ("family", "parameter_size", "quantization_level")]
        description = " ".join(b for b in bits if isinstance(b, str) and b) or None
    return model_info(mid, description=description)


def _with_images(req: ChatRequest, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Images go on the last user message as ``images``: a list of base64 strings."""
    if req.images:
        for msg in reversed(messages):
            if msg.get("role") == "user":
                msg["images"] = [img.b64 for img in req.images]
                break
    return messages



# --------------------------------------------------------------------------- tools


def _tool_calls(state: StreamState, calls: Any) -> None:
    """``message.tool_calls[]``: whole calls, ``function.arguments`` an object."""
    for c in calls if isinstance(calls, list) else ():
        fn = c.get("function") if isinstance(c, Mapping) else None
        if isinstance(fn, Mapping):
            state.tool_calls.append({"id": opt_str(c.get("id")) or "",
                                     "name": opt_str(fn.get("name")) or "",
                                     "arguments": fn.get("arguments") or {}})


def _tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The neutral transcript in /api/chat shape: assistant ``tool_calls`` with object
    arguments, and ``{"role": "tool", "content", "tool_name"}`` per result."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "assistant" and "tool_calls" in m:
            out.append({"role": "assistant", "content": m.get("content") or "",
                        "tool_calls": [{"function": {"name": c["name"],
                                                     "arguments": c["arguments"]}}
                                       for c in m["tool_calls"]]})
        elif m["role"] == "tool":
            out.append({"role": "tool", "content": m["content"], "tool_name": m["name"]})
        else:
            out.append(m)
    return out

class OllamaAdapter(AdapterBase):
    """Native ``/api/chat`` (NDJSON); models from ``GET {base}/api/tags``."""

    name = "ollama"
    parser_class = Parser

    def chat_request(self, req: ChatRequest) -> HTTPRequest:
        body: dict[str, Any] = {
            "model": req.model,
            "messages": _with_images(req, with_system(req)),
            "stream": True,  # /api/chat streams by default; say so anyway
        }
        if req.tools or any(m["role"] == "tool" for m in req.messages):
            body["messages"] = _tool_messages(body["messages"])
            if req.tools:
                body["tools"] = function_tools(req.tools)
        if req.output is not None:  # structured output: the schema itself as ``format``
            body["format"] = req.output.schema
        options = {_OPTIONS[k]: v for k, v in settings_of(req).items()}
        if options:
            body["options"] = options
        level, _budget = reasoning_of(req)
        if level is not None:
            if level == "none":
                body["think"] = False
            elif req.model.startswith("gpt-oss"):
                body["think"] = "low" if level == "minimal" else level
            else:
                body["think"] = True
        url, params = endpoint(req.base_url, "/api/chat")
        headers = build_headers(_auth(req.api_key), req.headers, "application/x-ndjson")
        return HTTPRequest("POST", url, headers, json=body, params=params)


    def models_request(self, base_url: str, api_key: str | None,
                       headers: Mapping[str, str]) -> HTTPRequest:
        url, params = endpoint(base_url, "/api/tags")
        return HTTPRequest("GET", url, build_headers(_auth(api_key), headers, "application/json"),
                           params=params)

    def parse_models(self, body: bytes, request: HTTPRequest) -> ModelPage:
        obj = load_json_body(body, request)
        return ModelPage([m for m in map(_model, entries(obj, "models")) if m is not None])



ADAPTER = OllamaAdapter()
