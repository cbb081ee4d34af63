"""What the fake provider says, in each wire protocol: routes, the demo answer with its
framing, model lists and error bodies. Pure functions over plain data: no sockets here.

Framing follows ``fixtures/wire/README.md`` §2:

* OpenAI-style: ``data: {json}\\n\\n`` chunks, a ``choices: []`` usage chunk when
  ``stream_options.include_usage``, then ``data: [DONE]``. OpenRouter flavour: a
  ``: OPENROUTER PROCESSING`` comment first, a usage chunk (with ``cost``) after the finish
  chunk whose ``choices`` is *not* empty.
* Anthropic: ``event:``/``data:`` pairs ``message_start`` → ``content_block_start`` →
  ``ping`` → ``content_block_delta``* → ``content_block_stop`` → ``message_delta`` →
  ``message_stop``.
* Gemini ``alt=sse``: ``data: {json}\\r\\n\\r\\n`` (CRLF), cumulative ``usageMetadata`` on every
  chunk, ``finishReason`` on the last; without ``alt=sse`` one JSON array streamed in pieces.
* Ollama: NDJSON lines, ``done: false`` … then ``done: true`` with ``done_reason`` and counts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

__all__ = [
    "DEMO_MODELS",
    "PROTOCOLS",
    "DemoModel",
    "Reply",
    "Route",
    "chat_reply",
    "error_body",
    "error_reply",
    "key_problem",
    "match_route",
    "models_reply",
]

PROTOCOLS = ("openai", "anthropic", "gemini", "ollama")
_ERROR_SHAPES = (*PROTOCOLS, "openrouter")


@dataclass(frozen=True)
class DemoModel:
    """A model the fake provider lists (prices: USD per token, as OpenRouter writes them)."""

    id: str
    display_name: str = ""
    context_length: int = 32_768
    max_output_tokens: int = 4_096
    prompt_price: str = "0.0000005"
    completion_price: str = "0.0000015"

    @property
    def name(self) -> str:
        return self.display_name or self.id


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("demo-small", "Demo Small", 32_768, 4_096, "0.0000005", "0.0000015"),
    DemoModel("demo-large", "Demo Large", 128_000, 8_192, "0.000003", "0.000015"),
)

_CREATED = 1_700_000_000  # a fixed "created" for model entries: lists are deterministic
_CREATED_AT = "2025-01-01T00:00:00Z"


@dataclass(frozen=True)
class Route:
    """Which protocol and endpoint a request addressed."""

    protocol: str  # openai | anthropic | gemini | ollama
    kind: str  # chat | models
    model: str | None = None  # Gemini: the model named in the path
    stream: bool = True  # Gemini: streamGenerateContent (True) or generateContent
    openrouter: bool = False  # under /api/v1/, OpenRouter's layout

    @property
    def name(self) -> str:
        return f"{self.protocol}.{self.kind}"


@dataclass
class Reply:
    """A response to send: ``pieces`` are its natural chunks (one per event for streams)."""

    status: int
    content_type: str
    pieces: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False  # sent with chunked Transfer-Encoding


_GEMINI_CHAT = re.compile(
    r".*/v1beta/models/(?P<model>[^/:]+):(?P<action>streamGenerateContent|generateContent)"
)


def match_route(method: str, path: str, headers: Mapping[str, str]) -> Route | None:
    """The route for a request (``headers`` with lower-case names), or ``None``.

    ``GET /v1/models`` is Anthropic's list when the request carries ``anthropic-version``
    (every Anthropic client sends it), else OpenAI's."""
    openrouter = path.startswith("/api/v1/")
    if method == "POST":
        if path.endswith("/chat/completions"):
            return Route("openai", "chat", openrouter=openrouter)
        if path.endswith("/v1/messages"):
            return Route("anthropic", "chat")
        m = _GEMINI_CHAT.fullmatch(path)
        if m:
            return Route("gemini", "chat", model=unquote(m["model"]),
                         stream=m["action"] == "streamGenerateContent")
        if path.endswith("/api/chat"):
            return Route("ollama", "chat")
    elif method == "GET":
        if path.endswith("/v1beta/models"):
            return Route("gemini", "models")
        if path.endswith("/api/tags"):
            return Route("ollama", "models")
        if path.endswith("/v1/models") and "anthropic-version" in headers:
            return Route("anthropic", "models")
        if path.endswith("/models"):
            return Route("openai", "models", openrouter=openrouter)
    return None


def _dumps(obj: Any, *, ascii_only: bool = True) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def _json_reply(status: int, obj: Any, content_type: str = "application/json",
                *, indent: int | None = None) -> Reply:
    body = (json.dumps(obj, indent=indent).encode() + b"\n") if indent else _dumps(obj)
    return Reply(status, content_type, [body])


# --------------------------------------------------------------------------- errors

# status -> (OpenAI type, code, message)
_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported."),
    404: ("invalid_request_error", "model_not_found",
          "The model does not exist or you do not have access to it."),
    408: ("server_error", None, "Request timed out."),
    409: ("server_error", None, "Conflict: please retry."),
    413: ("invalid_request_error", None, "Request too large."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for requests (demo). Please try again shortly."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                  503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing "
                  "details.")
_request_ids = itertools.count(1)


def _default_message(status: int) -> str:
    if status in _OPENAI_ERRORS:
        return _OPENAI_ERRORS[status][2]
    return "Overloaded" if status == 529 else f"Demo error {status}."


def error_body(protocol: str, status: int, message: str | None = None, *,
               code: str | None = None) -> bytes:
    """An error body in a provider's shape (``protocol``: openai, anthropic, gemini, ollama
    or openrouter). ``code`` sets the provider's error code/type: e.g. ``insufficient_quota``
    (OpenAI), ``overloaded_error`` (Anthropic), ``API_KEY_INVALID`` (a Gemini ErrorInfo
    reason)."""
    if protocol not in _ERROR_SHAPES:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {_ERROR_SHAPES}")
    if code == "insufficient_quota" and message is None:
        message = _QUOTA_MESSAGE
    msg = message or _default_message(status)
    if protocol == "openai":
        etype, ecode, _ = _OPENAI_ERRORS.get(status, ("server_error", None, msg))
        if code is not None:
            ecode = code
            if code == "insufficient_quota":
                etype = code
        obj: Any = {"error": {"message": msg, "type": etype, "param": None, "code": ecode}}
        return json.dumps(obj, indent=4).encode() + b"\n"
    if protocol == "anthropic":
        etype = code or _ANTHROPIC_TYPES.get(status, "api_error")
        obj = {"type": "error", "error": {"type": etype, "message": msg},
               "request_id": f"req_demo{next(_request_ids):06d}"}
        return _dumps(obj)
    if protocol == "gemini":
        err: dict[str, Any] = {"code": status, "message": msg,
                               "status": _GEMINI_STATUS.get(status, "UNKNOWN")}
        if code is not None:
            err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                               "reason": code, "domain": "googleapis.com",
                               "metadata": {"service": "generativelanguage.googleapis.com"}}]
        return json.dumps({"error": err}, indent=2).encode() + b"\n"
    if protocol == "ollama":
        return _dumps({"error": msg})
    obj = {"error": {"code": status, "message": msg}, "user_id": "user_demo"}  # openrouter
    if code is not None:
        obj["error"]["metadata"] = {"code": code}
    return _dumps(obj)


_ERROR_CONTENT_TYPES = {"openai": "application/json; charset=utf-8",
                        "anthropic": "application/json",
                        "gemini": "application/json; charset=UTF-8",
                        "ollama": "application/json; charset=utf-8",
                        "openrouter": "application/json"}


def error_reply(protocol: str, status: int, message: str | None = None, *,
                code: str | None = None, sse: bool = False) -> Reply:
    """:func:`error_body` as a reply. ``sse``: Gemini labels errors on ``alt=sse`` requests
    ``text/event-stream`` although the body is plain JSON."""
    content_type = ("text/event-stream" if sse and protocol == "gemini"
                    else _ERROR_CONTENT_TYPES[protocol])
    return Reply(status, content_type, [error_body(protocol, status, message, code=code)])


def _sent_keys(headers: Mapping[str, str], query: Mapping[str, str]) -> list[str]:
    keys = [headers.get("x-api-key"), headers.get("x-goog-api-key"), query.get("key")]
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer":
        keys.append(token.strip())
    return [k for k in keys if k]


def key_problem(protocol: str, headers: Mapping[str, str], query: Mapping[str, str],
                key: str) -> Reply | None:
    """``None`` when the request carries ``key`` (Bearer, x-api-key, x-goog-api-key or
    ``?key=``); else the provider's own answer to a missing or wrong key (Gemini: 403 when
    missing, 400 ``API_KEY_INVALID`` when wrong, as the real API does)."""
    sent = _sent_keys(headers, query)
    if key in sent:
        return None
    hint = f"{sent[0][:3]}…{sent[0][-4:]}" if sent and len(sent[0]) > 8 else "…"
    if protocol == "anthropic":
        msg = "invalid x-api-key" if sent else "x-api-key header is required"
        reply = error_reply("anthropic", 401, msg)
        reply.headers["x-should-retry"] = "false"
        return reply
    if protocol == "gemini":
        if not sent:
            return error_reply("gemini", 403, "Method doesn't allow unregistered callers "
                               "(callers without established identity). Please use API Key "
                               "or other form of API consumer identity to call this API.")
        return error_reply("gemini", 400, "API key not valid. Please pass a valid API key.",
                           code="API_KEY_INVALID")
    if protocol == "ollama":
        return error_reply("ollama", 401, "unauthorized")
    if protocol == "openrouter":
        return error_reply("openrouter", 401, "No auth credentials found" if not sent
                           else "User not found.")
    msg = (f"Incorrect API key provided: {hint}. You can find your API key at "
           "https://platform.openai.com/account/api-keys." if sent else
           "You didn't provide an API key. You need to provide your API key in an "
           "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
    return error_reply("openai", 401, msg, code="invalid_api_key")


class BadRequest(Exception):
    """The request body is not what the real API accepts: answered with a 400."""


# --------------------------------------------------------------------------- the demo answer


@dataclass
class Answer:
    """The deterministic demo answer to one chat request."""

    model: str
    pieces: list[str]  # the text deltas, one token each
    truncated: bool  # cut by max_tokens
    prompt_tokens: int
    id: str
    created: int
    tool: str | None = None  # Anthropic structured output: the forced tool's name

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


_answer_ids = itertools.count(1)


def _text_of(content: Any) -> str:
    """Text of an OpenAI/Anthropic/Ollama content (string or list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _words(text: str) -> int:
    return len(text.split())


def demo_text(last_user: str | None) -> str:
    """``You said: …`` plus a sentence saying this is the offline demo provider."""
    said = " ".join((last_user or "").split())
    if len(said) > 200:
        said = said[:199] + "…"
    end = "" if said[-1:] in ".?!…" else "."
    lead = f"You said: {said}{end} " if said else "Hello! "
    return lead + ("This is the viagent demo provider, running locally and offline: "
                   "no real model was called.")


def _tokens(text: str) -> list[str]:
    """Text deltas whose concatenation is ``text``: one word and its trailing space each."""
    return re.findall(r"\S+\s*|\s+", text)


def _conversation(protocol: str, body: Mapping[str, Any]
                  ) -> tuple[str | None, int, int | None]:
    """(last user text, prompt token estimate, max_tokens) — raising :class:`BadRequest`
    where the real API would answer 400."""
    if protocol == "gemini":
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
        texts: list[tuple[str, str]] = []
        for c in contents:
            role = c.get("role", "user") if isinstance(c, dict) else None
            if role not in ("user", "model"):
                raise BadRequest(f"Please use a valid role: user, model. (got {role!r})")
            parts = c.get("parts") if isinstance(c, dict) else None
            results = isinstance(parts, list) and any(
                isinstance(p, dict) and "functionResponse" in p for p in parts)
            texts.append(("function" if results else role, _text_of(parts)))
        system = body.get("systemInstruction")
        prompt = sum(_words(t) for _, t in texts)
        if isinstance(system, dict):
            prompt += _words(_text_of(system.get("parts")))
        config = body.get("generationConfig")
        limit = config.get("maxOutputTokens") if isinstance(config, dict) else None
        last = next((t for r, t in reversed(texts) if r == "user"), None)
        return last, prompt, limit if isinstance(limit, int) else None
    messages = body.get("messages")
    if not isinstance(body.get("model"), str) or not body.get("model"):
        raise BadRequest("model is required" if protocol == "ollama"
                         else "you must provide a model parameter")
    if not isinstance(messages, list) or (not messages and protocol != "ollama"):
        raise BadRequest("messages: field required (a non-empty list)")
    allowed = {"anthropic": ("user", "assistant"),
               "ollama": ("system", "user", "assistant", "tool"),
               }.get(protocol, ("system", "developer", "user", "assistant", "tool"))
    pairs: list[tuple[str, str]] = []
    for m in messages:
        role = m.get("role") if isinstance(m, dict) else None
        if role not in allowed:
            if protocol == "anthropic" and role == "system":
                raise BadRequest('messages: Unexpected role "system". The Messages API '
                                 "accepts a top-level `system` parameter, not \"system\" as "
                                 "an input message role.")
            raise BadRequest(f"messages: invalid role {role!r}")
        content = m.get("content")
        if role == "user" and isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            role = "tool"  # Anthropic tool results travel in a user message
        pairs.append((str(role), _text_of(content)))
    prompt = sum(_words(t) for _, t in pairs)
    if protocol == "anthropic":
        limit = body.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise BadRequest("max_tokens: Field required")
        prompt += _words(_text_of(body.get("system")))
    elif protocol == "ollama":
        options = body.get("options")
        limit = options.get("num_predict") if isinstance(options, dict) else None
    else:
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
    last = next((t for r, t in reversed(pairs) if r == "user"), None)
    return last, prompt, limit if isinstance(limit, int) and limit > 0 else None


def make_answer(protocol: str, body: Mapping[str, Any], model: str | None) -> Answer:
    from ._multimodal import acknowledge, request_images, request_schema

    last, prompt, limit = _conversation(protocol, body)
    schema, tool = request_schema(protocol, body)
    if schema is not None:  # structured output: the minimal valid instance, in pieces
        from .._structured import example_instance

        text = json.dumps(example_instance(schema), ensure_ascii=False)
        pieces = [text[i:i + 12] for i in range(0, len(text), 12)]
    else:
        pieces = _tokens(acknowledge(request_images(protocol, body)) + demo_text(last))
    truncated = limit is not None and limit < len(pieces)
    if truncated and limit is not None:
        pieces = pieces[:limit]
    name = model or str(body.get("model") or "demo-small")
    return Answer(name, pieces, truncated, max(prompt, 1), f"demo-{next(_answer_ids):06d}",
                  int(time.time()), tool)


# --------------------------------------------------------------------------- chat framing


def _sse(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def _price(models: Sequence[DemoModel], model: str) -> DemoModel | None:
    return next((m for m in models if m.id == model), None)


def _openai(a: Answer, body: Mapping[str, Any], stream: bool, openrouter: bool,
            models: Sequence[DemoModel]) -> Reply:
    finish = "length" if a.truncated else "stop"
    usage: dict[str, Any] = {"prompt_tokens": a.prompt_tokens,
                             "completion_tokens": a.completion_tokens,
                             "total_tokens": a.prompt_tokens + a.completion_tokens}
    if openrouter:
        m = _price(models, a.model)
        cost = (Decimal(m.prompt_price) * a.prompt_tokens
                + Decimal(m.completion_price) * a.completion_tokens) if m else Decimal(0)
        usage.update(cost=float(cost), is_byok=False)
    head = {"id": f"chatcmpl-{a.id}", "object": "chat.completion.chunk", "created": a.created,
            "model": a.model}
    if openrouter:
        head["provider"] = "Demo"
    if not stream:
        full = {**head, "object": "chat.completion", "choices": [{
            "index": 0, "message": {"role": "assistant", "content": a.text, "refusal": None},
            "logprobs": None, "finish_reason": finish}], "usage": usage,
            "system_fingerprint": "fp_demo"}
        return Reply(200, "application/json", [json.dumps(full, indent=2).encode() + b"\n"])
    options = body.get("stream_options")
    include_usage = openrouter or (isinstance(options, dict)
                                   and options.get("include_usage") is True)
    extra: dict[str, Any] = {"system_fingerprint": "fp_demo"}
    if include_usage and not openrouter:
        extra["usage"] = None  # 2025+ shape: "usage": null on every other chunk

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        if openrouter:
            choice["native_finish_reason"] = finish_reason
        return _sse({**head, **extra, "choices": [choice]})

    pieces = [b": OPENROUTER PROCESSING\n\n"] if openrouter else []
    pieces.append(chunk({"role": "assistant", "content": ""}))
    pieces += [chunk({"content": p}) for p in a.pieces]
    pieces.append(chunk({}, finish))
    if include_usage:
        if openrouter:  # after the finish chunk, with a non-empty choices list
            pieces.append(_sse({**head, "choices": [{
                "index": 0, "delta": {"role": "assistant", "content": ""},
                "finish_reason": None, "native_finish_reason": None, "logprobs": None}],
                "usage": usage}))
        else:  # choices: [] on the usage chunk
            pieces.append(_sse({**head, **extra, "choices": [], "usage": usage}))
    pieces.append(b"data: [DONE]\n\n")
    return Reply(200, "text/event-stream; charset=utf-8", pieces, stream=True)


def _event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(obj, ascii_only=False) + b"\n\n"


def _anthropic(a: Answer, stream: bool) -> Reply:
    stop = "max_tokens" if a.truncated else ("tool_use" if a.tool else "end_turn")
    msg_id = f"msg_{a.id}"
    block: dict[str, Any] = {"type": "text", "text": ""}
    if a.tool:  # a forced tool: the structured answer is its input (input_json_delta)
        block = {"type": "tool_use", "id": f"toolu_{a.id}", "name": a.tool, "input": {}}
    if not stream:
        content = ({**block, "input": json.loads(a.text)} if a.tool
                   else {"type": "text", "text": a.text})
        full = {"id": msg_id, "type": "message", "role": "assistant", "model": a.model,
                "content": [content], "stop_reason": stop,
                "stop_sequence": None, "usage": {"input_tokens": a.prompt_tokens,
                                                 "output_tokens": a.completion_tokens}}
        return Reply(200, "application/json", [_dumps(full, ascii_only=False)])
    pieces = [
        _event("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": a.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": a.prompt_tokens, "output_tokens": 1}}}),
        _event("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": block}),
        _event("ping", {"type": "ping"}),
    ]
    pieces += [_event("content_block_delta", {
        "type": "content_block_delta", "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": p} if a.tool
        else {"type": "text_delta", "text": p}}) for p in a.pieces]
    pieces += [
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": stop, "stop_sequence": None},
                                 "usage": {"output_tokens": a.completion_tokens}}),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return Reply(200, "text/event-stream; charset=utf-8", pieces, stream=True)


def _gemini(a: Answer, stream: bool, sse: bool) -> Reply:
    finish = "MAX_TOKENS" if a.truncated else "STOP"

    def chunk(parts_text: str, done: int, last: bool) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": [{"text": parts_text}], "role": "model"},
                                "index": 0}
        if last:
            cand["finishReason"] = finish
        return {"candidates": [cand],
                "usageMetadata": {"promptTokenCount": a.prompt_tokens,
                                  "candidatesTokenCount": done,
                                  "totalTokenCount": a.prompt_tokens + done},
                "modelVersion": a.model, "responseId": a.id}

    if not stream:
        full = chunk(a.text, a.completion_tokens, True)
        return Reply(200, "application/json; charset=UTF-8",
                     [json.dumps(full, indent=2).encode() + b"\n"])
    objs = [chunk(p, i + 1, i == len(a.pieces) - 1) for i, p in enumerate(a.pieces)]
    if not objs:
        objs = [chunk("", 0, True)]
    if sse:
        pieces = [b"data: " + _dumps(o) + b"\r\n\r\n" for o in objs]
        return Reply(200, "text/event-stream", pieces, stream=True)
    # array mode: "[{…}\n,\r\n{…}\n]"
    pieces = [(b"[" if i == 0 else b",\r\n") + _dumps(o) + b"\n" for i, o in enumerate(objs)]
    pieces.append(b"]")
    return Reply(200, "application/json; charset=UTF-8", pieces, stream=True)


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ollama(a: Answer, stream: bool) -> Reply:
    reason = "length" if a.truncated else "stop"
    final = {"model": a.model, "created_at": _now_iso(),
             "message": {"role": "assistant", "content": "" if stream else a.text},
             "done_reason": reason, "done": True, "total_duration": 1_000_000 * (5 + len(a.pieces)),
             "load_duration": 1_000_000, "prompt_eval_count": a.prompt_tokens,
             "prompt_eval_duration": 2_000_000, "eval_count": a.completion_tokens,
             "eval_duration": 1_000_000 * len(a.pieces)}
    if not stream:
        return Reply(200, "application/json; charset=utf-8", [_dumps(final, ascii_only=False)])
    pieces = [_dumps({"model": a.model, "created_at": _now_iso(),
                      "message": {"role": "assistant", "content": p}, "done": False},
                     ascii_only=False) + b"\n" for p in a.pieces]
    pieces.append(_dumps(final, ascii_only=False) + b"\n")
    return Reply(200, "application/x-ndjson", pieces, stream=True)


def chat_reply(route: Route, body: Any, query: Mapping[str, str], *,
               models: Sequence[DemoModel] = DEMO_MODELS, openrouter: bool = False) -> Reply:
    """The demo answer to a chat request, framed in the route's protocol (a 400 in the
    provider's shape when the body is not what the real API accepts)."""
    shape = "openrouter" if route.protocol == "openai" and openrouter else route.protocol
    sse_error = route.protocol == "gemini" and route.stream and query.get("alt") == "sse"
    if not isinstance(body, dict):
        return error_reply(shape, 400, "The request body is not a JSON object.", sse=sse_error)
    try:
        answer = make_answer(route.protocol, body, route.model)
    except BadRequest as exc:
        return error_reply(shape, 400, str(exc), sse=sse_error)
    # a forced schema tool (Anthropic structured output) is answered by the schema path
    tooled = None if answer.tool else _tool_turn(route, body, answer, query, openrouter)
    if tooled is not None:
        return tooled
    if route.protocol == "anthropic":
        return _anthropic(answer, body.get("stream") is True)
    if route.protocol == "gemini":
        return _gemini(answer, route.stream, query.get("alt") == "sse")
    if route.protocol == "ollama":
        return _ollama(answer, body.get("stream") is not False)  # Ollama streams by default
    return _openai(answer, body, body.get("stream") is True, openrouter, models)


_TOOL_CONTENT_TYPES = {"openai": "text/event-stream; charset=utf-8",
                       "anthropic": "text/event-stream; charset=utf-8",
                       "gemini": "text/event-stream", "ollama": "application/x-ndjson"}


def _tool_turn(route: Route, body: Mapping[str, Any], answer: Answer,
               query: Mapping[str, str], openrouter: bool) -> Reply | None:
    """The demo's tool mode (``_tool_wire.tool_mode``): a streamed call, or the usual
    answer quoting the tool results; ``None`` when no tools are offered."""
    from ._tool_wire import tool_call_pieces, tool_mode

    last, _prompt, _limit = _conversation(route.protocol, body)
    call, results = tool_mode(route.protocol, body, last)
    if results:
        said = "; ".join(f"{name} returned {content}" for name, content in results)
        answer.pieces = _tokens(f"The tool {said}. ") + answer.pieces
        return None
    streams = body.get("stream") is not False if route.protocol == "ollama" else (
        route.stream and query.get("alt") == "sse" if route.protocol == "gemini"
        else body.get("stream") is True)
    if call is None or not streams:
        return None
    pieces = tool_call_pieces(route.protocol, [call], model=answer.model,
                              prompt_tokens=answer.prompt_tokens, completion_tokens=5,
                              openrouter=openrouter)
    return Reply(200, _TOOL_CONTENT_TYPES[route.protocol], pieces, stream=True)


# --------------------------------------------------------------------------- model lists


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise BadRequest(f"{name}: must be an integer") from None
    return max(low, min(value, high))


def _openai_models(models: Sequence[DemoModel], openrouter: bool) -> Reply:
    if not openrouter:
        return _json_reply(200, {"object": "list", "data": [
            {"id": m.id, "object": "model", "created": _CREATED, "owned_by": "viagent-demo"}
            for m in models]})
    return _json_reply(200, {"data": [{
        "id": m.id, "canonical_slug": m.id, "name": f"Demo: {m.name}", "created": _CREATED,
        "description": "A model of the offline viagent demo provider.",
        "context_length": m.context_length,
        "architecture": {"modality": "text->text", "input_modalities": ["text"],
                         "output_modalities": ["text"], "tokenizer": "Other",
                         "instruct_type": None},
        "pricing": {"prompt": m.prompt_price, "completion": m.completion_price,
                    "request": "0", "image": "0", "web_search": "0",
                    "internal_reasoning": "0"},
        "top_provider": {"context_length": m.context_length,
                         "max_completion_tokens": m.max_output_tokens, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": ["max_tokens", "temperature", "top_p", "frequency_penalty",
                                 "presence_penalty"],
    } for m in models]})


def _anthropic_models(models: Sequence[DemoModel], query: Mapping[str, str]) -> Reply:
    limit = _int(query, "limit", 20, 1, 1000)
    ids = [m.id for m in models]
    start, end = 0, len(ids)
    if "after_id" in query:
        if query["after_id"] not in ids:
            raise BadRequest(f"after_id: unknown model id {query['after_id']!r}")
        start = ids.index(query["after_id"]) + 1
        end = min(start + limit, len(ids))
    elif "before_id" in query:
        if query["before_id"] not in ids:
            raise BadRequest(f"before_id: unknown model id {query['before_id']!r}")
        end = ids.index(query["before_id"])
        start = max(end - limit, 0)
    else:
        end = min(limit, len(ids))
    page = list(models[start:end])
    more = end < len(ids) if "before_id" not in query else start > 0
    return _json_reply(200, {
        "data": [{"type": "model", "id": m.id, "display_name": m.name,
                  "created_at": _CREATED_AT} for m in page],
        "has_more": more,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
    })


def _gemini_models(models: Sequence[DemoModel], query: Mapping[str, str]) -> Reply:
    size = _int(query, "pageSize", 50, 1, 1000)
    token = query.get("pageToken", "")
    entries: list[dict[str, Any]] = [{
        "name": f"models/{m.id}", "version": "001", "displayName": m.name,
        "description": "A model of the offline viagent demo provider.",
        "inputTokenLimit": m.context_length, "outputTokenLimit": m.max_output_tokens,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2,
    } for m in models]
    # Real lists also hold models that cannot chat: one to filter out.
    entries.append({"name": "models/demo-embedding", "version": "001",
                    "displayName": "Demo Embedding", "inputTokenLimit": 2048,
                    "outputTokenLimit": 1, "supportedGenerationMethods": ["embedContent"]})
    if token:
        m = re.fullmatch(r"demo-page-(\d+)", token)
        if not m:
            raise BadRequest("Invalid page token.")
        start = int(m[1])
    else:
        start = 0
    obj: dict[str, Any] = {"models": entries[start:start + size]}
    if start + size < len(entries):
        obj["nextPageToken"] = f"demo-page-{start + size}"
    return _json_reply(200, obj, "application/json; charset=UTF-8", indent=2)


def _ollama_models(models: Sequence[DemoModel]) -> Reply:
    return _json_reply(200, {"models": [{
        "name": f"{m.id}:latest", "model": f"{m.id}:latest",
        "modified_at": "2025-01-01T00:00:00.000000000Z",
        "size": 1_000_000 * m.context_length // 1024,
        "digest": hashlib.sha256(m.id.encode()).hexdigest(),
        "details": {"parent_model": "", "format": "gguf", "family": "demo",
                    "families": ["demo"], "parameter_size": "1B",
                    "quantization_level": "Q4_0"},
    } for m in models]}, "application/json; charset=utf-8")


def models_reply(route: Route, query: Mapping[str, str], *,
                 models: Sequence[DemoModel] = DEMO_MODELS, openrouter: bool = False) -> Reply:
    """A model list in the route's protocol, honouring its pagination parameters."""
    try:
        if route.protocol == "anthropic":
            return _anthropic_models(models, query)
        if route.protocol == "gemini":
            return _gemini_models(models, query)
        if route.protocol == "ollama":
            return _ollama_models(models)
        return _openai_models(models, openrouter)
    except BadRequest as exc:
        return error_reply(route.protocol, 400, str(exc))
