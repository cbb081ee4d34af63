"""Tool-call turns in each wire protocol, and the demo provider's deterministic tool mode.

Framing follows the recordings in ``fixtures/wire`` (README §2): OpenAI ``tool_calls``
deltas keyed by ``index`` (the first fragment has ``id``/``type``/``name`` and
``arguments: ""``, later ones only argument pieces); Anthropic ``tool_use`` blocks whose
input comes as ``input_json_delta`` fragments (the first ``""``); Gemini ``functionCall``
parts arriving whole (the first with a ``thoughtSignature``); Ollama ``message.tool_calls``
with arguments as an object, in one NDJSON line.

The tool mode: when a chat offers tools and no tool result follows the last user message,
the demo model calls one tool (the one the prompt names, else the first) once, with
arguments made from its schema; once a result is there, it answers as usual, quoting it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DemoCall", "tool_call_pieces", "tool_mode"]


@dataclass
class DemoCall:
    id: str
    name: str
    arguments: dict[str, Any]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _fragments(text: str, n: int) -> list[str]:
    """``text`` in ``n`` pieces, split mid-token like the recordings."""
    if n <= 1 or len(text) < 2:
        return [text]
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)]


def tool_call_pieces(protocol: str, calls: Sequence[DemoCall], *, model: str,
                     prompt_tokens: int, completion_tokens: int, fragments: int = 3,
                     text: str = "", openrouter: bool = False) -> list[bytes]:
    """The body of a streamed assistant turn asking for ``calls`` (in parallel)."""
    if protocol == "anthropic":
        return _anthropic(calls, model, prompt_tokens, completion_tokens, fragments, text)
    if protocol == "gemini":
        return _gemini(calls, model, prompt_tokens, completion_tokens, text)
    if protocol == "ollama":
        return _ollama(calls, model, prompt_tokens, completion_tokens, text)
    return _openai(calls, model, prompt_tokens, completion_tokens, fragments, text,
                   openrouter)


def _openai(calls: Sequence[DemoCall], model: str, prompt: int, completion: int,
            fragments: int, text: str, openrouter: bool) -> list[bytes]:
    head = {"id": "chatcmpl-demo-tools", "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + _dumps({**head, "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": None}) + b"\n\n"

    out = [b": OPENROUTER PROCESSING\n\n"] if openrouter else []
    out.append(chunk({"role": "assistant", "content": text or None}))
    for i, call in enumerate(calls):  # first fragments of every call, then the rest
        out.append(chunk({"content": None, "tool_calls": [{
            "index": i, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": ""}}]}))
    pieces = [_fragments(json.dumps(c.arguments), fragments) for c in calls]
    for k in range(max(map(len, pieces), default=0)):
        for i, parts in enumerate(pieces):  # interleaved, as parallel calls may be
            if k < len(parts):
                out.append(chunk({"tool_calls": [{"index": i,
                                                  "function": {"arguments": parts[k]}}]}))
    out.append(chunk({}, "tool_calls"))
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if openrouter:
        usage["cost"] = 0.00001  # USD, provider-reported
    out.append(b"data: " + _dumps({**head, "choices": [], "usage": usage}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def _event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(obj) + b"\n\n"


def _anthropic(calls: Sequence[DemoCall], model: str, prompt: int, completion: int,
               fragments: int, text: str) -> list[bytes]:
    out = [_event("message_start", {"type": "message_start", "message": {
        "id": "msg_demo_tools", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": 1}}})]
    index = 0
    if text:
        out += [_event("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}}),
                _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": text}}),
                _event("content_block_stop", {"type": "content_block_stop", "index": 0})]
        index = 1
    for call in calls:
        out.append(_event("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": call.id, "name": call.name,
                              "input": {}}}))
        for part in ["", *_fragments(json.dumps(call.arguments), fragments)]:
            out.append(_event("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": part}}))
        out.append(_event("content_block_stop", {"type": "content_block_stop",
                                                 "index": index}))
        index += 1
    out += [_event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": "tool_use",
                                               "stop_sequence": None},
                                     "usage": {"output_tokens": completion}}),
            _event("message_stop", {"type": "message_stop"})]
    return out


def _gemini(calls: Sequence[DemoCall], model: str, prompt: int, completion: int,
            text: str) -> list[bytes]:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    for i, call in enumerate(calls):
        part: dict[str, Any] = {"functionCall": {"id": call.id, "name": call.name,
                                                 "args": call.arguments}}
        if i == 0:
            part["thoughtSignature"] = "c2lnbmF0dXJlLWRlbW8="
        parts.append(part)
    obj = {"candidates": [{"content": {"parts": parts, "role": "model"},
                           "finishReason": "STOP", "index": 0}],
           "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": completion,
                             "totalTokenCount": prompt + completion},
           "modelVersion": model, "responseId": "demo-tools"}
    return [b"data: " + _dumps(obj) + b"\r\n\r\n"]


def _ollama(calls: Sequence[DemoCall], model: str, prompt: int, completion: int,
            text: str) -> list[bytes]:
    when = "2025-05-27T22:54:57.641643Z"
    msg = {"role": "assistant", "content": text, "tool_calls": [
        {"function": {"name": c.name, "arguments": c.arguments}} for c in calls]}
    return [_dumps({"model": model, "created_at": when, "message": msg, "done": False})
            + b"\n",
            _dumps({"model": model, "created_at": when,
                    "message": {"role": "assistant", "content": ""}, "done_reason": "stop",
                    "done": True, "prompt_eval_count": prompt, "eval_count": completion})
            + b"\n"]


# --------------------------------------------------------------------------- tool mode


def _offered(protocol: str, body: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, parameter schema) of each tool the request offers."""
    tools = body.get("tools")
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(tools, list):
        return out
    for t in tools:
        if not isinstance(t, dict):
            continue
        if protocol == "gemini":
            for d in t.get("functionDeclarations") or []:
                schema = d.get("parametersJsonSchema") or d.get("parameters") or {}
                out.append((str(d.get("name")), schema))
        elif protocol == "anthropic":
            out.append((str(t.get("name")), t.get("input_schema") or {}))
        else:
            fn = t.get("function") or {}
            out.append((str(fn.get("name")), fn.get("parameters") or {}))
    return out


def _results(protocol: str, body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(tool name or id, content) of the tool results after the last user text."""
    if protocol == "gemini":
        contents = body.get("contents") or []
        last = contents[-1] if contents else {}
        found: list[tuple[str, str]] = []
        for p in last.get("parts") or []:
            if "functionResponse" in p:
                response = p["functionResponse"].get("response") or {}
                value = response.get("output", response.get("error", response))
                found.append((str(p["functionResponse"].get("name")),
                              value if isinstance(value, str) else json.dumps(value)))
        return found
    messages = body.get("messages") or []
    names = _call_names(messages)
    if protocol == "anthropic":
        last = messages[-1] if messages else {}
        content = last.get("content")
        if not isinstance(content, list):
            return []
        return [(names.get(str(b.get("tool_use_id")), "?"), str(b.get("content")))
                for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    out: list[tuple[str, str]] = []
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") != "tool":
            break
        out.insert(0, (str(m.get("tool_name") or names.get(str(m.get("tool_call_id")), "?")),
                       str(m.get("content"))))
    return out


def _call_names(messages: Sequence[Any]) -> dict[str, str]:
    """Call id -> tool name, from the assistant turns (OpenAI and Anthropic shapes)."""
    out: dict[str, str] = {}
    for m in messages:
        if not isinstance(m, dict) or m.get("role") != "assistant":
            continue
        for c in m.get("tool_calls") or []:
            if isinstance(c, dict) and isinstance(c.get("function"), dict):
                out[str(c.get("id"))] = str(c["function"].get("name"))
        content = m.get("content")
        for b in content if isinstance(content, list) else []:
            if isinstance(b, dict) and b.get("type") == "tool_use":
                out[str(b.get("id"))] = str(b.get("name"))
    return out


def _example(schema: Mapping[str, Any]) -> Any:
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if "anyOf" in schema:
        return _example(next((s for s in schema["anyOf"] if s.get("type") != "null"), {}))
    return {"integer": 2, "number": 1.5, "boolean": True, "array": [],
            "object": {}}.get(str(kind), "demo")


def _arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    props = schema.get("properties") or {}
    return {name: _example(props.get(name) or {}) for name in schema.get("required") or []}


def tool_mode(protocol: str, body: Mapping[str, Any], last_user: str | None
              ) -> tuple[DemoCall | None, list[tuple[str, str]]]:
    """What the demo model does with tools: a call to make, or the results to quote."""
    offered = _offered(protocol, body)
    if not offered:
        return None, []
    results = _results(protocol, body)
    if results:
        return None, results
    said = (last_user or "").lower()
    name, schema = next(((n, s) for n, s in offered if n.lower() in said), offered[0])
    return DemoCall(f"call_demo_{name}", name, _arguments(schema)), []
