"""Property: any chunking of a valid stream gives exactly the whole-body result."""

from __future__ import annotations

import json

from adapter_support import replay, split_at, sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TEXTS = ["Hel", "lo 🦅", " wor\u2028ld", "’\u0085!", "\r\n", "é" * 3]

OPENAI = b": OPENROUTER PROCESSING\n\n" + sse(
    *[json.dumps({"model": "m", "choices": [{"delta": {"content": t}}], "usage": None})
      for t in TEXTS],
    json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
    json.dumps({"choices": [{"delta": {"content": ""}, "finish_reason": None}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9,
                          "cost": 0.5}}),
    "[DONE]")

ANTHROPIC = sse(
    ("message_start", json.dumps({"type": "message_start", "message": {
        "model": "claude", "usage": {"input_tokens": 5, "output_tokens": 1}}}) + "   "),
    ("ping", '{"type": "ping"}'),
    *[("content_block_delta", json.dumps({"type": "content_block_delta", "delta": {
        "type": "text_delta", "text": t}}, ensure_ascii=False)) for t in TEXTS],
    ("message_delta", json.dumps({"type": "message_delta", "delta": {
        "stop_reason": "max_tokens"}, "usage": {"output_tokens": 6}})),
    ("message_stop", '{"type": "message_stop"   }'))

GEMINI = sse(
    *[json.dumps({"candidates": [{"content": {"parts": [{"text": t}]}}],
                  "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": i,
                                    "thoughtsTokenCount": 2, "totalTokenCount": 6 + i}},
                 ensure_ascii=False) for i, t in enumerate(TEXTS)],
    json.dumps({"candidates": [{"content": {"parts": [{"text": "."}]},
                                "finishReason": "STOP"}]}),
    eol="\r\n")

OLLAMA = b"".join(
    json.dumps({"model": "l", "message": {"content": t}, "done": False},
               ensure_ascii=False).encode() + b"\n" for t in TEXTS
) + b'{"model":"l","message":{"content":""},"done_reason":"length","done":true,' \
    b'"prompt_eval_count":4,"eval_count":6}\n'

STREAMS = {"openrouter": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI, "ollama": OLLAMA}
WHOLE = {name: replay(name, [body]) for name, body in STREAMS.items()}


def test_whole_body_results() -> None:
    joined = "".join(TEXTS)
    for name, got in WHOLE.items():
        assert got.error is None and got.done, name
        assert got.text == (joined + "." if name == "gemini" else joined), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(STREAMS)),
       cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=40))
def test_any_chunking_gives_the_same_result(name: str, cuts: list[int]) -> None:
    body = STREAMS[name]
    chunks = split_at(body, (c % len(body) for c in cuts))
    assert b"".join(chunks) == body
    assert replay(name, chunks).key() == WHOLE[name].key()
