"""Google Gemini (Generative Language API v1beta): ``POST
{base}/v1beta/models/{model}:streamGenerateContent?alt=sse``.

We always ask for ``alt=sse``: ``data: <GenerateContentResponse>`` events with CRLF
line ends, no ``event:`` and no ``[DONE]`` — the terminal marker is a candidate with a
``finishReason`` (or a prompt blocked via ``promptFeedback.blockReason``). Text =
``candidates[0].content.parts[].text`` except parts with ``"thought": true``.
``usageMetadata`` is cumulative on every chunk: the last one wins, never summed;
``completion_tokens = candidatesTokenCount + thoughtsTokenCount``.

Gemini writes an error that happens mid-stream as plain (pretty-printed) JSON without
``data:`` (google-genai parses it by brace counting): lines that are not SSE fields are
collected and, once they form a JSON object, an ``error`` in it raises
:class:`ProviderAPIError`. The same path reads a JSON-array body (the non-SSE mode, should
a proxy drop ``alt=sse``) at the end of the stream.

Reasoning: parts with ``"thought": true`` (sent when ``includeThoughts`` is asked for) are
reasoning, kept apart; ``thoughtsTokenCount`` is ``reasoning_tokens``. Request:
``generationConfig.thinkingConfig`` — ``thinkingBudget`` when a ``reasoning_budget`` is set
or for Gemini 2.x models (level → :data:`REASONING_BUDGETS`, ``none`` → 0), else
``thinkingLevel`` (Gemini 3+; ``none`` → ``minimal``, the lowest there is), and
``includeThoughts: true`` unless reasoning is ``none``.
(https://ai.google.dev/gemini-api/docs/thinking)

A whole ``GenerateContentResponse`` object where a stream was expected is read as the answer.

``STOP`` with ``functionCall`` parts is reported as ``tool_calls`` (raw value stays
``STOP``), like Ollama's and OpenAI's own mapping, so callers can tell why there is no text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from ..errors import ProviderResponseError
from ..schema import ModelInfo
from ._common import (
    REASONING_BUDGETS,
    AdapterBase,
    BaseParser,
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
from ._sse import SSEDecoder, SSEEvent
from .base import ChatRequest, HTTPRequest, ModelPage, StreamState

__all__ = ["ADAPTER", "GeminiAdapter", "Parser"]

MODELS_PAGE_SIZE = "1000"

_FINISH: dict[Any, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    # enum-encoding=int (array mode of some SDKs): 1 STOP, 2 MAX_TOKENS, 3 SAFETY, 4 RECITATION
    1: "stop",
    2: "length",
    3: "content_filter",
    4: "content_filter",
}
_GENERATION_CONFIG = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "top_p": "topP",
    "frequency_penalty": "frequencyPenalty",
    "presence_penalty": "presencePenalty",
}


def _auth(api_key: str | None) -> dict[str, str]:
    return {"x-goog-api-key": api_key} if api_key else {}  # never ?key=


def model_path(model: str) -> str:
    """``/v1beta/models/{id}`` (a ``models/`` prefix is accepted; ``tunedModels/x`` kept)."""
    if model.startswith("tunedModels/"):
        return "/v1beta/tunedModels/" + quote(model[len("tunedModels/"):], safe="")
    return "/v1beta/models/" + quote(model.removeprefix("models/"), safe="")


class Parser(BaseParser):
    """Incremental parser of a Gemini ``streamGenerateContent?alt=sse`` body."""

    protocol = "Gemini generateContent"
    marker = "candidate with a finishReason"

    def __init__(self, req: ChatRequest) -> None:
        super().__init__(req)
        self._sse = SSEDecoder(self.provider, keep_stray=True)
        self._sse_feed = self._sse.feed
        self._stray = self._sse.stray
        self._stray_seen = 0
        self._stray_counted = 0  # stray lines already counted into _stray_depth
        self._stray_depth = 0
        self._stray_hopeless = False
        self._tool_calls = False
        self._usage_key: tuple[Any, ...] | None = None

    def _feed(self, data: bytes, out: list[str]) -> None:
        events = self._sse_feed(data)
        if events:
            self._handle(events, out)
        if self._stray and len(self._stray) != self._stray_seen:
            self._check_stray(out, final=False)

    def _close(self, out: list[str]) -> None:
        self._handle(self._sse.close(), out)
        if self._stray:
            self._check_stray(out, final=True)

    def _check_stray(self, out: list[str], *, final: bool) -> None:
        """Non-SSE lines: a JSON error object, or a JSON array of chunks.

        Mid-stream they are parsed only when they may be complete: the last line starts
        with ``}``/``]`` and brackets balance (counted naively, per new line). Once they
        cannot become JSON (more closing than opening brackets, a syntax error before the
        end) they wait for the end of the stream: parsing everything again on every chunk
        would make a long non-JSON text quadratic."""
        stray = self._stray
        self._stray_seen = len(stray)
        if not final:
            for line in stray[self._stray_counted:]:
                self._stray_depth += (line.count(b"{") + line.count(b"[")
                                      - line.count(b"}") - line.count(b"]"))
            self._stray_counted = len(stray)
            if self._stray_depth < 0:
                self._stray_hopeless = True
            if self._stray_hopeless or self._stray_depth > 0 or \
                    stray[-1].lstrip()[:1] not in (b"}", b"]"):
                return  # cannot be complete yet
        text = b"\n".join(stray)
        decoded = text.decode("utf-8", "replace")
        try:
            obj = json.loads(decoded)
        except (ValueError, RecursionError) as exc:
            if not final:
                pos = getattr(exc, "pos", None)
                if not isinstance(pos, int) or pos < len(decoded.rstrip()):
                    self._stray_hopeless = True  # more text cannot repair a syntax error
                return
            if self.state.done:  # trailing junk after a finished answer: ignore it
                self._clear_stray()
                return
            raise self.bad_json(text, exc) from None
        self._clear_stray()
        items = obj if isinstance(obj, list) else [obj]
        for item in items:
            if isinstance(item, Mapping) and "error" in item:
                raise stream_error(item["error"], self.provider, self.model)
        if isinstance(obj, dict) and ("candidates" in obj or "promptFeedback" in obj):
            obj = [obj]  # a whole (non-streamed) GenerateContentResponse
        if not isinstance(obj, list):
            raise ProviderResponseError(
                f"Provider '{self.provider}' answered with a JSON body, not an event stream, "
                f"and it is not a {self.protocol} response. Check that the base_url serves "
                f"the {self.protocol} API.",
                self.provider, self.model)
        self._handle([(b"", json.dumps(item).encode()) for item in items], out)

    def _clear_stray(self) -> None:
        self._stray.clear()
        self._stray_seen = self._stray_counted = self._stray_depth = 0
        self._stray_hopeless = False

    def _handle(self, events: list[SSEEvent], out: list[str]) -> None:
        parse = parse_json
        append = out.append
        state = self.state
        usage: Any = None
        try:
            for _event, payload in events:
                try:
                    obj = parse(payload)
                except ValueError as exc:
                    raise self.bad_json(payload, exc) from None
                if type(obj) is not dict:
                    raise self.bad_json(payload, None)
                candidates = obj.get("candidates")
                if candidates:
                    candidate = candidates[0]
                    content = candidate.get("content")
                    if content:
                        parts = content.get("parts")
                        if parts:
                            for part in parts:
                                text = part.get("text")
                                if text:
                                    if part.get("thought"):
                                        state.reasoning.append(text)
                                    else:
                                        append(text)
                                elif "functionCall" in part:
                                    self._tool_calls = True
                                    _function_call(state, part)
                    reason = candidate.get("finishReason")
                    if reason:
                        set_finish(state, reason, _FINISH)
                        if self._tool_calls and state.finish_reason == "stop":
                            state.finish_reason = "tool_calls"
                        state.done = True
                else:
                    feedback = obj.get("promptFeedback")
                    if feedback and feedback.get("blockReason"):  # prompt blocked
                        set_finish(state, feedback["blockReason"], {})
                        state.finish_reason = "content_filter"
                        state.done = True
                usage = obj.get("usageMetadata") or usage  # cumulative: the last one wins
                if state.model is None:
                    state.model = opt_str(obj.get("modelVersion"))
                if "error" in obj:
                    raise stream_error(obj["error"], self.provider, self.model)
        except (AttributeError, TypeError, IndexError, KeyError) as exc:
            raise self.bad_shape(exc) from None
        finally:  # once per feed() rather than per event; also when an error event ends it
            if usage:
                self._usage(usage)

    def _usage(self, meta: Any) -> None:
        if type(meta) is not dict:  # as the OpenAI parser does: malformed usage is no usage
            return
        prompt = meta.get("promptTokenCount")
        cand = meta.get("candidatesTokenCount")
        thoughts = meta.get("thoughtsTokenCount")
        total = meta.get("totalTokenCount")
        key = (prompt, cand, thoughts, total, meta.get("cachedContentTokenCount"))
        if key == self._usage_key:  # unchanged since the last chunk
            return
        self._usage_key = key
        usage: dict[str, int] = {}
        if type(prompt) is int:
            usage["prompt_tokens"] = prompt
        cand = cand if type(cand) is int else None
        thoughts = thoughts if type(thoughts) is int else None
        if cand is not None or thoughts is not None:
            usage["completion_tokens"] = (cand or 0) + (thoughts or 0)
        if type(total) is int:
            usage["total_tokens"] = total
        if thoughts is not None:
            usage["reasoning_tokens"] = thoughts
        cached = meta.get("cachedContentTokenCount")  # part of promptTokenCount
        if type(cached) is int and cached > 0:
            usage["cached_input_tokens"] = cached
        self.state.usage = usage  # cumulative: the last report replaces the earlier ones


def _model(entry: Mapping[str, Any]) -> ModelInfo | None:
    methods = entry.get("supportedGenerationMethods")
    name = opt_str(entry.get("name"))
    if name is None or not isinstance(methods, list) or "generateContent" not in methods:
        return None
    return model_info(
        name.removeprefix("models/"),
        name=opt_str(entry.get("displayName")),
        context_length=count(entry.get("inputTokenLimit")),
        max_output_tokens=count(entry.get("outputTokenLimit")),
        capabilities=("reasoning",) if entry.get("thinking") is True else (),
        description=opt_str(entry.get("description")),
    )


def _thinking_config(req: ChatRequest) -> dict[str, Any] | None:
    level, budget = reasoning_of(req)
    if level is None:
        return None
    config: dict[str, Any] = {}
    bare = req.model.removeprefix("models/")
    if level == "none":
        if bare.startswith("gemini-2"):
            config["thinkingBudget"] = 0
        else:
            config["thinkingLevel"] = "minimal"
        return config
    if budget is not None:
        config["thinkingBudget"] = budget
    elif bare.startswith("gemini-2"):
        config["thinkingBudget"] = REASONING_BUDGETS[level]
    else:
        config["thinkingLevel"] = level
    config["includeThoughts"] = True
    return config


def _add_images(req: ChatRequest, contents: list[dict[str, Any]]) -> None:
    """Images go with the last user turn as ``inlineData`` parts (base64, with their MIME
    type), after its text."""
    if not req.images:
        return
    for turn in reversed(contents):
        if turn["role"] == "user":
            turn["parts"] += [{"inlineData": {"mimeType": img.mime, "data": img.b64}}
                              for img in req.images]
            return


def _json_output(output: Any) -> dict[str, Any]:
    """Structured output: ``responseMimeType: application/json`` + ``responseJsonSchema`` —
    the JSON Schema form (``responseSchema`` takes Gemini's OpenAPI subset instead; only one
    of the two may be set). See the firebase-js-sdk ``GenerationConfig`` reference."""
    return {"responseMimeType": "application/json", "responseJsonSchema": output.schema}


# --------------------------------------------------------------------------- tools


def _function_call(state: StreamState, part: Mapping[str, Any]) -> None:
    """A ``functionCall`` part (they arrive whole). Its ``thoughtSignature`` must go back
    in the same part of the model turn, so it is kept in ``extra``."""
    fc = part.get("functionCall")
    if not isinstance(fc, Mapping):
        return
    extra: dict[str, Any] = {}
    signature = part.get("thoughtSignature")
    if isinstance(signature, str):
        extra["thoughtSignature"] = signature
    state.tool_calls.append({"id": opt_str(fc.get("id")) or "",
                             "name": opt_str(fc.get("name")) or "",
                             "arguments": fc.get("args") or {}, "extra": extra})


def _tool_defs(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``functionDeclarations`` with ``parametersJsonSchema`` (full JSON Schema, as
    pydantic writes it; ``parameters`` takes only an OpenAPI subset)."""
    return [{"functionDeclarations": [{"name": t["name"], "description": t["description"],
                                       "parametersJsonSchema": t["parameters"]}
                                      for t in tools]}]


def _tool_contents(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The neutral transcript as ``contents``: a model turn of ``functionCall`` parts (with
    their ``thoughtSignature``), then ONE user turn of ``functionResponse`` parts whose
    ``response`` is ``{"output": ...}`` or ``{"error": ...}``."""
    out: list[dict[str, Any]] = []
    synthetic: set[str] = set()  # ids we made up (older models send none): not sent
    for m in messages:
        if m["role"] == "assistant" and "tool_calls" in m:
            parts: list[dict[str, Any]] = [{"text": m["content"]}] if m.get("content") else []
            for c in m["tool_calls"]:
                extra = c.get("extra") or {}
                call: dict[str, Any] = {"name": c["name"], "args": c["arguments"]}
                if extra.get("synthetic_id"):
                    synthetic.add(c["id"])
                else:
                    call = {"id": c["id"], **call}
                part: dict[str, Any] = {"functionCall": call}
                if "thoughtSignature" in extra:
                    part["thoughtSignature"] = extra["thoughtSignature"]
                parts.append(part)
            out.append({"role": "model", "parts": parts})
        elif m["role"] == "tool":
            response: dict[str, Any] = {"name": m["name"], "response": {
                "error" if m.get("is_error") else "output": m["content"]}}
            if m["tool_call_id"] not in synthetic:
                response = {"id": m["tool_call_id"], **response}
            part = {"functionResponse": response}
            if out and out[-1]["role"] == "user" and "functionResponse" in out[-1]["parts"][0]:
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part]})
        else:
            out.append({"role": "model" if m["role"] == "assistant" else "user",
                        "parts": [{"text": m["content"]}]})
    return out


class GeminiAdapter(AdapterBase):
    """streamGenerateContent over SSE; models from ``GET {base}/v1beta/models`` (pageToken)."""

    name = "gemini"
    parser_class = Parser

    def chat_request(self, req: ChatRequest) -> HTTPRequest:
        system, messages = split_system(req)
        body: dict[str, Any] = {
            "contents": [
                {"role": "model" if m["role"] == "assistant" else "user",
                 "parts": [{"text": m["content"]}]}
                for m in messages
            ],
        }
        if req.tools or any(m["role"] == "tool" for m in messages):
            body["contents"] = _tool_contents(messages)
            if req.tools:
                body["tools"] = _tool_defs(req.tools)
        _add_images(req, body["contents"])
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {_GENERATION_CONFIG[k]: v
                                  for k, v in settings_of(req).items()}
        thinking = _thinking_config(req)
        if thinking:
            config["thinkingConfig"] = thinking
        if req.output is not None:
            config.update(_json_output(req.output))
        if config:
            body["generationConfig"] = config
        url, params = endpoint(req.base_url, model_path(req.model) + ":streamGenerateContent",
                               {"alt": "sse"})
        headers = build_headers(_auth(req.api_key), req.headers, "text/event-stream")
        return HTTPRequest("POST", url, headers, json=body, params=params)


    def models_request(self, base_url: str, api_key: str | None,
                       headers: Mapping[str, str]) -> HTTPRequest:
        url, params = endpoint(base_url, "/v1beta/models", {"pageSize": MODELS_PAGE_SIZE})
        return HTTPRequest("GET", url, build_headers(_auth(api_key), headers, "application/json"),
                           params=params)

    def parse_models(self, body: bytes, request: HTTPRequest) -> ModelPage:
        obj = load_json_body(body, request)
        models = [m for m in map(_model, entries(obj, "models")) if m is not None]
        next_request = None
        token = opt_str(obj.get("nextPageToken")) if isinstance(obj, Mapping) else None
        params = dict(request.params or {})
        if token and params.get("pageToken") != token:
            params["pageToken"] = token
            next_request = replace(request, params=params, headers=dict(request.headers))
        return ModelPage(models, next_request)



ADAPTER = GeminiAdapter()
