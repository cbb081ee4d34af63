"""Helpers for the hardening tests (issue 8): valid wire bodies built from generated content,
a protocol-agnostic replay, chunk splitting, digests of a workspace, and leak search."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viagent_jupyter.adapters import get_adapter
from viagent_jupyter.adapters.base import ChatRequest

PROVIDER_ID = "fuzzprov"
PROTOCOLS = ("openai", "openrouter", "anthropic", "gemini", "ollama")

#: Raw finish reasons per protocol, with what they must normalise to.
FINISH = {
    "openai": {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
               "function_call": "tool_calls", "content_filter": "content_filter"},
    "anthropic": {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "model_context_window_exceeded": "length", "tool_use": "tool_calls",
                  "refusal": "content_filter", "pause_turn": "other"},
    "gemini": {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
               "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
               "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
               "OTHER": "other", "MALFORMED_FUNCTION_CALL": "other"},
    "ollama": {"stop": "stop", "length": "length", "load": "other", "unload": "other"},
}
FINISH["openrouter"] = FINISH["openai"]

#: Characters that have broken stream parsers somewhere: line separators ``str.splitlines``
#: would split on, SSE framing look-alikes, JSON escapes, a BOM, NUL, astral characters.
TRICKY = ("\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\r", "\n",
          "\r\n", "\n\n", '"', "\\", "\\n", "\\u0000", "data: ", "event: error", "[DONE]",
          ": ping", "\ufeff", "\x00", "🦅", "👩‍💻", "é", "’", "𝕏", "\t", "{", "}", "%s")


def chat_request(protocol: str, model: str = "req-model") -> ChatRequest:
    return ChatRequest(provider_id=PROVIDER_ID, provider_type=protocol,
                       base_url="http://127.0.0.1:9", model=model,
                       messages=[{"role": "user", "content": "hi"}])


@dataclass
class Outcome:
    text: str
    deltas: list[str]
    finish_reason: str | None
    raw_finish_reason: str | None
    model: str | None
    usage: dict[str, int]
    cost: float | None
    done: bool
    error: BaseException | None = None
    where: str | None = None  # "feed" | "close"

    def key(self) -> tuple[Any, ...]:
        err = None if self.error is None else (type(self.error).__name__, str(self.error))
        return (self.text, self.finish_reason, self.raw_finish_reason, self.model,
                self.usage, self.cost, self.done, err)


def replay(protocol: str, chunks: Iterable[bytes]) -> Outcome:
    """Feed every chunk to a fresh parser and close it; the first exception is kept."""
    parser = get_adapter(protocol).parser(chat_request(protocol))
    deltas: list[str] = []
    error: BaseException | None = None
    where = "feed"
    try:
        for chunk in chunks:
            deltas.extend(parser.feed(chunk))
        where = "close"
        deltas.extend(parser.close())
    except Exception as exc:  # the caller decides what is allowed
        error = exc
    st = parser.state
    return Outcome("".join(deltas), deltas, st.finish_reason, st.raw_finish_reason, st.model,
                   dict(st.usage), st.cost, st.done, error, where if error else None)


def split_at(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c % max(len(body), 1) for c in cuts} - {0})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)] or [b""]


# --------------------------------------------------------------------------- valid bodies


@dataclass
class StreamSpec:
    """What a valid stream says; :func:`build_body` writes it in a protocol's framing."""

    protocol: str
    model: str
    items: list[tuple[bool, str]]  # (is answer text, string); False = reasoning/thinking
    prompt_tokens: int
    completion_tokens: int
    extra_tokens: tuple[int, int] = (0, 0)  # anthropic cache tokens; gemini thoughts
    finish: str = "stop"
    eol: str = "\n"
    ensure_ascii: bool = True
    bom: bool = False
    keepalives: Sequence[int] = ()  # event indices before which a comment is inserted
    multiline: bool = False  # SSE: JSON spread over several data: lines (indent)
    cost: float | None = None  # openrouter usage.cost
    extra: dict[str, Any] = field(default_factory=dict)

    # -- what the parser must report
    @property
    def text(self) -> str:
        return "".join(t for answer, t in self.items if answer)

    def expected_usage(self) -> dict[str, int]:
        p, c = self.prompt_tokens, self.completion_tokens
        a, b = self.extra_tokens
        if self.protocol in ("openai", "openrouter"):
            return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        if self.protocol == "anthropic":
            cache = {k: v for k, v in (("cached_input_tokens", b), ("cache_write_tokens", a)) if v}
            return {"prompt_tokens": p + a + b, "completion_tokens": c, **cache}
        if self.protocol == "gemini":  # a = thoughtsTokenCount: also the reasoning tokens
            return {"prompt_tokens": p, "completion_tokens": c + a, "total_tokens": p + c + a,
                    "reasoning_tokens": a}
        return {"prompt_tokens": p, "completion_tokens": c}

    def expected_finish(self) -> str:
        return FINISH[self.protocol].get(self.finish, "other")


def _dumps(spec: StreamSpec, obj: Any) -> str:
    if spec.multiline and spec.protocol != "ollama":
        return json.dumps(obj, ensure_ascii=spec.ensure_ascii, indent=1)
    return json.dumps(obj, ensure_ascii=spec.ensure_ascii)


def _sse(spec: StreamSpec, events: list[tuple[str | None, Any]]) -> bytes:
    eol = spec.eol
    out: list[str] = []
    for i, (name, obj) in enumerate(events):
        if i in spec.keepalives:
            out.append(f": keep-alive {i}{eol}{eol}")
        if name is not None:
            out.append(f"event: {name}{eol}")
        payload = obj if isinstance(obj, str) else _dumps(spec, obj)
        # json.dumps escapes every CR/LF inside strings: a payload line ends only where
        # indent put a line break, and each becomes its own data: line (joined with \n)
        out.extend(f"data: {line}{eol}" for line in payload.split("\n"))
        out.append(eol)
    return (("\ufeff" if spec.bom else "") + "".join(out)).encode()


def build_body(spec: StreamSpec) -> bytes:
    p, c = spec.prompt_tokens, spec.completion_tokens
    a, b = spec.extra_tokens
    m = spec.model
    if spec.protocol in ("openai", "openrouter"):
        head = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": m}
        events: list[tuple[str | None, Any]] = [
            (None, {**head, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                "content": ""}}]})]
        for answer, t in spec.items:
            delta = {"content": t} if answer else {"reasoning_content": t, "content": None}
            events.append((None, {**head, "choices": [{"index": 0, "delta": delta,
                                                        "finish_reason": None}],
                                  "usage": None}))
        usage: dict[str, Any] = {"prompt_tokens": p, "completion_tokens": c,
                                 "total_tokens": p + c}
        if spec.protocol == "openrouter":
            # OpenRouter: the finish chunk first, then usage on a chunk with finish_reason null
            if spec.cost is not None:
                usage["cost"] = spec.cost
            events.append((None, {**head, "choices": [{"index": 0, "delta": {},
                                                        "finish_reason": spec.finish}]}))
            events.append((None, {**head, "choices": [{"index": 0, "delta": {"content": ""},
                                                        "finish_reason": None}],
                                  "usage": usage}))
        else:
            events.append((None, {**head, "choices": [{"index": 0, "delta": {},
                                                        "finish_reason": spec.finish}]}))
            events.append((None, {**head, "choices": [], "usage": usage}))
        events.append((None, "[DONE]"))
        return _sse(spec, events)
    if spec.protocol == "anthropic":
        events = [("message_start", {"type": "message_start", "message": {
            "id": "msg_x", "type": "message", "role": "assistant", "model": m, "content": [],
            "usage": {"input_tokens": p, "cache_creation_input_tokens": a,
                      "cache_read_input_tokens": b, "output_tokens": 1}}}),
            ("ping", {"type": "ping"})]
        for i, (answer, t) in enumerate(spec.items):
            kind = ("text", "text_delta", "text") if answer else \
                ("thinking", "thinking_delta", "thinking")
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": kind[0],
                                                                     kind[2]: ""}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": kind[1], kind[2]: t}}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
        events.append(("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": spec.finish, "stop_sequence": None}, "usage": {"output_tokens": c}}))
        events.append(("message_stop", {"type": "message_stop"}))
        return _sse(spec, events)
    if spec.protocol == "gemini":
        chunks: list[tuple[str | None, Any]] = []
        items = spec.items or [(True, "")]
        for i, (answer, t) in enumerate(items):
            last = i == len(items) - 1
            part: dict[str, Any] = {"text": t} if answer else {"text": t, "thought": True}
            cand: dict[str, Any] = {"content": {"parts": [part], "role": "model"},
                                    "index": 0}
            if last:
                cand["finishReason"] = spec.finish
            done = last
            chunks.append((None, {
                "candidates": [cand],
                "usageMetadata": {"promptTokenCount": p,
                                  "candidatesTokenCount": c if done else i,
                                  "thoughtsTokenCount": a if done else 0,
                                  "totalTokenCount": p + c + a if done else p + i},
                "modelVersion": m, "responseId": "r-1"}))
        return _sse(spec, chunks)
    # ollama: NDJSON, eol is \n or \r\n
    eol = "\r\n" if spec.eol == "\r\n" else "\n"
    lines = []
    for answer, t in spec.items:
        msg = {"role": "assistant", "content": t} if answer else \
            {"role": "assistant", "content": "", "thinking": t}
        lines.append(json.dumps({"model": m, "created_at": "2026-01-01T00:00:00Z",
                                 "message": msg, "done": False},
                                ensure_ascii=spec.ensure_ascii))
    lines.append(json.dumps({"model": m, "created_at": "2026-01-01T00:00:00Z",
                             "message": {"role": "assistant", "content": ""},
                             "done": True, "done_reason": spec.finish,
                             "prompt_eval_count": p, "eval_count": c},
                            ensure_ascii=spec.ensure_ascii))
    return (("\ufeff" if spec.bom else "") + "".join(line + eol for line in lines)).encode()


# --------------------------------------------------------------------------- workspaces


def digest(ws: Any) -> str:
    """A digest of what every process must agree on: providers, selection, usage."""
    ws.providers.refresh()
    providers = [(c.id, c.version, c.name, c.model_dump_json(exclude={"key_source",
                                                                      "has_api_key",
                                                                      "api_key_hint"}))
                 for c in ws.providers.list()]
    stats = [(r.provider, r.model, r.requests, r.prompt_tokens, r.completion_tokens, r.errors)
             for r in ws.stats.all()]
    blob = json.dumps([providers, ws.providers.selected, stats], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def files_under(root: Path) -> list[Path]:
    return [Path(d) / n for d, _dirs, names in os.walk(root) for n in names]


def needles(key: str) -> list[bytes]:
    """The byte forms a key could take in a file: UTF-8, UTF-16, JSON-escaped."""
    return [key.encode(), key.encode("utf-16-le"), json.dumps(key)[1:-1].encode()]
