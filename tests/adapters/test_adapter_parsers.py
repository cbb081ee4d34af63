"""Protocol parsers on synthetic streams written from the protocol fact sheet (these run
without ../shared). Every case is replayed under several chunkings (``replay_all``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from adapter_support import PROVIDER_ID, chat_request, replay, replay_all, sse

from viagent_jupyter.adapters import get_adapter
from viagent_jupyter.errors import (
    AuthenticationError,
    ProviderAPIError,
    ProviderResponseError,
    RateLimitError,
)


def j(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


# --------------------------------------------------------------------------- OpenAI


def oa_chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> str:
    delta = {} if content is None else {"content": content}
    return j({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-x",
              "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


USAGE_CHUNK = j({"id": "chatcmpl-1", "model": "gpt-4o-x", "choices": [],
                 "usage": {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17}})


def test_openai_text_finish_and_choices_empty_usage_chunk() -> None:
    body = sse(oa_chunk("Hel", usage=None), oa_chunk("lo"), oa_chunk(None, "stop"),
               USAGE_CHUNK, "[DONE]")
    got = replay_all("openai", body)
    assert (got.text, got.finish_reason, got.raw_finish_reason) == ("Hello", "stop", "stop")
    assert got.usage == {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17}
    assert got.model == "gpt-4o-x" and got.done and got.error is None
    assert got.cost is None


def test_openai_usage_absent_or_null_and_no_usage_chunk() -> None:
    body = sse(oa_chunk("a"), oa_chunk("b", usage=None), oa_chunk("", "length"), "[DONE]")
    got = replay_all("openai", body)
    assert got.text == "ab" and got.finish_reason == "length" and got.usage == {}


def test_openrouter_late_null_finish_and_cost() -> None:
    late = j({"id": "gen-1", "model": "openai/gpt-4o",
              "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                           "finish_reason": None, "native_finish_reason": None}],
              "usage": {"prompt_tokens": 17, "completion_tokens": 6, "total_tokens": 23,
                        "cost": 0.0001025, "is_byok": False}})
    body = b": OPENROUTER PROCESSING\n\n" * 3 + sse(
        oa_chunk("Pebbles"), oa_chunk(" and Skipper."), oa_chunk("", "stop"), late, "[DONE]")
    got = replay_all("openrouter", body)
    assert got.text == "Pebbles and Skipper."
    assert got.finish_reason == "stop"  # the last *non-null* one
    assert got.cost == pytest.approx(0.0001025)
    assert got.usage["total_tokens"] == 23


@pytest.mark.parametrize(("raw", "norm"), [("stop", "stop"), ("length", "length"),
                                           ("tool_calls", "tool_calls"),
                                           ("function_call", "tool_calls"),
                                           ("content_filter", "content_filter"),
                                           ("something_new", "other")])
def test_openai_finish_reasons(raw: str, norm: str) -> None:
    got = replay_all("openai", sse(oa_chunk("x"), oa_chunk(None, raw), "[DONE]"))
    assert (got.finish_reason, got.raw_finish_reason) == (norm, raw)


def test_openai_refusal_is_text_reasoning_and_tool_fragments_are_not() -> None:
    chunks = [
        j({"choices": [{"delta": {"role": "assistant", "content": None, "refusal": "I can"}}]}),
        j({"choices": [{"delta": {"refusal": "not."}}]}),
        j({"choices": [{"delta": {"content": "", "reasoning": "thinking...",
                                  "reasoning_content": "more"}}]}),
        j({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                                  "function": {"name": "f",
                                                               "arguments": ""}}]}}]}),
        j({"choices": [{"delta": {"tool_calls": [{"index": 0,
                                                  "function": {"arguments": "{\"a\":"}}]}}]}),
        j({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
    ]
    got = replay_all("openai", sse(*chunks, "[DONE]"))
    assert got.text == "I cannot."
    assert got.finish_reason == "tool_calls"


def test_openai_content_as_list_of_parts() -> None:
    chunk = j({"choices": [{"delta": {"content": [{"type": "thinking", "thinking": "hmm"},
                                                  {"type": "text", "text": "Hi"}]}}]})
    got = replay_all("openai_compatible", sse(chunk, oa_chunk(None, "stop"), "[DONE]"))
    assert got.text == "Hi"


def test_openai_raw_unicode_separators_in_text() -> None:
    text = "a\u2028b\u2029c\u0085d"
    got = replay_all("openai", sse(oa_chunk(text), oa_chunk(None, "stop"), "[DONE]"))
    assert got.text == text


def test_openai_in_stream_error_keeps_text_and_raises() -> None:
    err = j({"error": {"message": "Internal failure", "type": "server_error", "code": None}})
    got = replay_all("openai", sse(oa_chunk("partial "), err, "[DONE]"))
    assert got.text == "partial "
    assert got.error is not None and got.error[0] == "ProviderAPIError"
    exc = got.error_obj
    assert isinstance(exc, ProviderAPIError)
    assert exc.provider_message == "Internal failure" and exc.provider == PROVIDER_ID
    assert exc.error_type == "server_error" and exc.status_code is None
    assert not got.done


def test_openrouter_in_stream_error_with_code() -> None:
    err = j({"error": {"code": 429, "message": "Rate limited upstream"},
             "choices": [{"delta": {"content": ""}, "finish_reason": None}]})
    got = replay_all("openrouter", sse(oa_chunk("x"), err, "[DONE]"))
    assert isinstance(got.error_obj, RateLimitError)
    assert got.error_obj.status_code == 429
    assert "Rate limited upstream" in got.error[1] if got.error else False


def test_openai_event_error() -> None:
    body = b"event: error\ndata: " + j({"message": "boom"}).encode() + b"\n\n"
    got = replay_all("openai", body)
    assert isinstance(got.error_obj, ProviderAPIError)
    assert got.error_obj.provider_message == "boom"


def test_deferred_error_text_of_the_same_chunk_reaches_the_caller() -> None:
    parser = get_adapter("openai").parser(chat_request("openai"))
    body = sse(oa_chunk("one "), oa_chunk("two"),
               j({"error": {"message": "later", "type": "x"}}), "[DONE]")
    assert parser.feed(body) == ["one ", "two"]
    with pytest.raises(ProviderAPIError, match="later"):
        parser.feed(b"")
    with pytest.raises(ProviderAPIError, match="later"):
        parser.close()


def test_openai_truncated_without_done() -> None:
    body = sse(oa_chunk("Hello"), oa_chunk(" wor"))
    parser = get_adapter("openai").parser(chat_request("openai"))
    assert parser.feed(body) == ["Hello", " wor"]
    with pytest.raises(ProviderResponseError, match=r"stream from provider 'testprov' ended "
                                                    r"before it finished"):
        parser.close()
    # a finish chunk is not enough: [DONE] is the terminal marker
    got = replay_all("openai", sse(oa_chunk("x"), oa_chunk(None, "stop"), USAGE_CHUNK))
    assert got.error and got.error[0] == "ProviderResponseError" and got.where == "close"
    assert got.finish_reason == "stop" and got.usage  # what arrived is kept


def test_openai_cut_mid_event_is_truncation() -> None:
    body = sse(oa_chunk("Hi")) + b'data: {"choices": [{"del'
    got = replay_all("openai", body)
    assert got.text == "Hi"
    assert got.error and "ended before it finished" in got.error[1]


def test_openai_malformed_json() -> None:
    junk = "{not json " + "x" * 1000
    got = replay_all("openai", sse(oa_chunk("ok"), junk, "[DONE]"))
    assert got.text == "ok"
    assert got.error and got.error[0] == "ProviderResponseError"
    msg = got.error[1]
    assert "testprov" in msg and "not valid JSON" in msg and "\n" not in msg
    assert "x" * 250 not in msg and len(msg) < 400


@pytest.mark.parametrize("payload", ['"a string"', "[1, 2]", "42"])
def test_openai_non_object_json(payload: str) -> None:
    got = replay("openai", [sse(payload, "[DONE]")])
    assert got.error and got.error[0] == "ProviderResponseError"


def test_openai_unexpected_shape() -> None:
    got = replay("openai", [sse(j({"choices": ["nope"]}), "[DONE]")])
    assert got.error and got.error[0] == "ProviderResponseError"
    assert "Unexpected event shape" in got.error[1]


# --------------------------------------------------------------------------- Anthropic


def an_events(*extra: tuple[str, str], stop: str = "end_turn", output: int = 10,
              message_delta_usage: dict[str, int] | None = None) -> list[tuple[str, str]]:
    start = {"type": "message_start", "message": {
        "model": "claude-x", "id": "msg_1", "type": "message", "role": "assistant",
        "usage": {"input_tokens": 17, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1}}}
    usage = message_delta_usage or {"output_tokens": output}
    return [
        ("message_start", j(start) + "               "),
        ("content_block_start", j({"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}})),
        ("ping", j({"type": "ping"})),
        *extra,
        ("content_block_stop", j({"type": "content_block_stop", "index": 0})),
        ("message_delta", j({"type": "message_delta",
                             "delta": {"stop_reason": stop, "stop_sequence": None},
                             "usage": usage}) + "     "),
        ("message_stop", '{"type":"message_stop"         }'),  # Anthropic pads its JSON with spaces
    ]


def text_delta(text: str, kind: str = "text_delta", key: str = "text") -> tuple[str, str]:
    return ("content_block_delta", j({"type": "content_block_delta", "index": 0,
                                      "delta": {"type": kind, key: text}}))


def test_anthropic_text_ping_unknown_event_and_usage_split() -> None:
    body = sse(*an_events(text_delta("- Cap"), ("ping", '{"type": "ping"}'),
                          ("brand_new_event", '{"type": "brand_new_event", "x": 1}'),
                          text_delta("tain 🦅\u2028")))
    got = replay_all("anthropic", body)
    assert got.text == "- Captain 🦅\u2028"
    assert got.usage == {"prompt_tokens": 17, "completion_tokens": 10}  # not 17/1 nor 34/11
    assert (got.finish_reason, got.raw_finish_reason) == ("stop", "end_turn")
    assert got.model == "claude-x" and got.done


def test_anthropic_thinking_and_tool_json_are_not_text() -> None:
    body = sse(*an_events(text_delta("let me think", "thinking_delta", "thinking"),
                          text_delta("sig", "signature_delta", "signature"),
                          text_delta("", "input_json_delta", "partial_json"),
                          text_delta('{"a": 1}', "input_json_delta", "partial_json"),
                          text_delta("Answer"), stop="tool_use"))
    got = replay_all("anthropic", body)
    assert got.text == "Answer" and got.finish_reason == "tool_calls"


def test_anthropic_message_delta_repeats_input_and_cache_tokens() -> None:
    body = sse(*an_events(text_delta("x"), message_delta_usage={
        "input_tokens": 20, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
        "output_tokens": 7}))
    assert replay_all("anthropic", body).usage == {"prompt_tokens": 125, "completion_tokens": 7,
                                                   "cached_input_tokens": 100,
                                                   "cache_write_tokens": 5}


@pytest.mark.parametrize(("raw", "norm"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "other"),
    ("model_context_window_exceeded", "length"), ("brand_new", "other")])
def test_anthropic_stop_reasons(raw: str, norm: str) -> None:
    got = replay_all("anthropic", sse(*an_events(text_delta("x"), stop=raw)))
    assert (got.finish_reason, got.raw_finish_reason) == (norm, raw)


def test_anthropic_event_error_overloaded() -> None:
    error = j({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    events = [*an_events(text_delta("Hel"))[:4], ("error", error)]
    got = replay_all("anthropic", sse(*events))
    assert got.text == "Hel"
    exc = got.error_obj
    assert isinstance(exc, RateLimitError)  # retryable kind, like HTTP 529
    assert exc.error_type == "overloaded_error" and exc.provider_message == "Overloaded"
    assert "Overloaded" in str(exc) and "testprov" in str(exc)


def test_anthropic_error_event_with_non_json_data() -> None:
    got = replay_all("anthropic", b"event: error\ndata: upstream exploded\n\n")
    assert isinstance(got.error_obj, ProviderAPIError)
    assert got.error_obj.provider_message == "upstream exploded"


def test_anthropic_truncated_without_message_stop() -> None:
    events = an_events(text_delta("Hello"))[:-1]
    got = replay_all("anthropic", sse(*events))
    assert got.text == "Hello" and got.finish_reason == "stop"
    assert got.error and "ended before it finished" in got.error[1] and got.where == "close"


# --------------------------------------------------------------------------- Gemini


def ge_chunk(*texts: str, finish: str | None = None, thoughts: int | None = None,
             prompt: int = 13, cand: int | None = None, thought_parts: tuple[str, ...] = (),
             **extra: Any) -> str:
    parts: list[dict[str, Any]] = [{"text": t, "thought": True} for t in thought_parts]
    parts += [{"text": t} for t in texts]
    cand_obj: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        cand_obj["finishReason"] = finish
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    total = prompt
    if cand is not None:
        usage["candidatesTokenCount"] = cand
        total += cand
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
        total += thoughts
    usage["totalTokenCount"] = total
    return j({"candidates": [cand_obj], "usageMetadata": usage,
              "modelVersion": "gemini-2.5-flash", "responseId": "r1", **extra})


def test_gemini_cumulative_usage_thoughts_and_crlf() -> None:
    body = sse(ge_chunk(thought_parts=("**Plan**",), prompt=15, thoughts=75),
               ge_chunk("To find", prompt=15, cand=5, thoughts=75),
               ge_chunk(" 4242.", finish="STOP", prompt=13, cand=63, thoughts=75), eol="\r\n")
    got = replay_all("gemini", body)
    assert got.text == "To find 4242."  # thought parts excluded
    assert got.reasoning == "**Plan**"  # ... and kept apart
    assert got.usage == {"prompt_tokens": 13, "completion_tokens": 138, "total_tokens": 151,
                         "reasoning_tokens": 75}
    assert (got.finish_reason, got.raw_finish_reason) == ("stop", "STOP")
    assert got.model == "gemini-2.5-flash" and got.done


@pytest.mark.parametrize(("raw", "norm"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "other"), ("LANGUAGE", "other"), ("OTHER", "other")])
def test_gemini_finish_reasons(raw: str, norm: str) -> None:
    got = replay_all("gemini", sse(ge_chunk("a"), ge_chunk("b", finish=raw, cand=2)))
    assert (got.text, got.finish_reason, got.raw_finish_reason) == ("ab", norm, raw)


def test_gemini_function_call_reports_tool_calls() -> None:
    chunk = j({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "xyz"}],
        "role": "model"}, "finishReason": "STOP"}]})
    got = replay_all("gemini", sse(chunk))
    assert (got.text, got.finish_reason, got.raw_finish_reason) == ("", "tool_calls", "STOP")


def test_gemini_prompt_blocked() -> None:
    chunk = j({"promptFeedback": {"blockReason": "SAFETY"},
               "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}})
    got = replay_all("gemini", sse(chunk))
    assert got.done and got.finish_reason == "content_filter"
    assert got.raw_finish_reason == "SAFETY" and got.usage["prompt_tokens"] == 8


def test_gemini_in_stream_error_as_data() -> None:
    err = j({"error": {"code": 503, "message": "The model is overloaded.",
                       "status": "UNAVAILABLE"}})
    got = replay_all("gemini", sse(ge_chunk("par"), err, eol="\r\n"))
    assert got.text == "par"
    assert isinstance(got.error_obj, ProviderAPIError)
    assert got.error_obj.provider_message == "The model is overloaded."
    assert got.error_obj.status_code == 503 and got.error_obj.error_type == "UNAVAILABLE"


def test_gemini_in_stream_error_without_data_prefix() -> None:  # how google-genai reads it
    pretty = json.dumps({"error": {"code": 500, "message": "Internal error encountered.",
                                   "status": "INTERNAL"}}, indent=2).replace("\n", "\r\n")
    body = sse(ge_chunk("Hello"), eol="\r\n") + pretty.encode() + b"\r\n"
    got = replay_all("gemini", body)
    assert got.text == "Hello"
    assert isinstance(got.error_obj, ProviderAPIError)
    assert got.error_obj.provider_message == "Internal error encountered."


def test_gemini_api_key_invalid_body_fed_to_parser_raises_auth() -> None:
    # Gemini: the error JSON labelled text/event-stream, should it reach the parser.
    pretty = json.dumps({"error": {"code": 400, "message": "API key not valid.",
                                   "status": "INVALID_ARGUMENT",
                                   "details": [{"reason": "API_KEY_INVALID"}]}}, indent=2)
    got = replay_all("gemini", pretty.encode() + b"\n")
    assert isinstance(got.error_obj, AuthenticationError)


def test_gemini_array_mode_body_is_read_at_close() -> None:  # not alt=sse
    items = [json.loads(ge_chunk("Sc")), json.loads(ge_chunk("oop", finish="STOP", cand=2))]
    body = ("[" + json.dumps(items[0], indent=2) + "\n,\r\n" + json.dumps(items[1], indent=2)
            + "\n]").encode()
    got = replay_all("gemini", body)
    assert got.text == "Scoop" and got.done and got.finish_reason == "stop"


def test_gemini_truncated_and_junk() -> None:
    got = replay_all("gemini", sse(ge_chunk("Hello"), ge_chunk(" wor")))
    assert got.text == "Hello wor"
    assert got.error and "ended before it finished" in got.error[1]
    got = replay_all("gemini", b"<html><body>Bad gateway</body></html>\n")
    assert got.error and got.error[0] == "ProviderResponseError"
    # junk after a finished answer is ignored
    got = replay_all("gemini", sse(ge_chunk("ok", finish="STOP")) + b"trailing junk\n")
    assert got.error is None and got.text == "ok"


# --------------------------------------------------------------------------- Ollama


def ol_line(content: str = "", *, done: bool = False, **extra: Any) -> bytes:
    obj: dict[str, Any] = {"model": "llama3.1", "created_at": "2024-11-17T08:41:59Z",
                           "message": {"role": "assistant", "content": content}, "done": done}
    obj.update(extra)
    return (j(obj) + "\n").encode()


def ol_done(reason: str | None = "stop", **extra: Any) -> bytes:
    fields: dict[str, Any] = {"total_duration": 2544046375, "prompt_eval_count": 13,
                              "eval_count": 23, **extra}
    if reason is not None:
        fields["done_reason"] = reason
    return ol_line("", done=True, **fields)


def test_ollama_text_usage_and_raw_separators() -> None:  # raw U+0085 in NDJSON
    body = ol_line("Hello") + ol_line(" wor\u0085ld ’😊") + ol_done()
    got = replay_all("ollama", body)
    assert got.text == "Hello wor\u0085ld ’😊"
    assert got.usage == {"prompt_tokens": 13, "completion_tokens": 23}
    assert (got.finish_reason, got.raw_finish_reason) == ("stop", "stop")
    assert got.model == "llama3.1" and got.done


@pytest.mark.parametrize(("raw", "norm"), [("stop", "stop"), ("length", "length"),
                                           ("load", "other"), ("unload", "other"),
                                           (None, "stop")])
def test_ollama_done_reasons(raw: str | None, norm: str) -> None:
    got = replay_all("ollama", ol_line("x") + ol_done(raw))
    assert (got.finish_reason, got.raw_finish_reason) == (norm, raw)


def test_ollama_thinking_is_not_text_and_tool_calls_reported() -> None:
    think = j({"model": "qwen3", "message": {"role": "assistant", "content": "",
                                             "thinking": "hmm"}, "done": False})
    tool = j({"model": "qwen3", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": {}}}]}, "done": False})
    body = (think + "\n" + tool + "\n").encode() + ol_done()
    got = replay_all("ollama", body)
    assert got.text == "" and got.finish_reason == "tool_calls" and got.raw_finish_reason == "stop"


def test_ollama_in_stream_error() -> None:
    body = ol_line("Hi") + b'{"error":"an error was encountered while running the model"}\n'
    got = replay_all("ollama", body)
    assert got.text == "Hi"
    assert isinstance(got.error_obj, ProviderAPIError)
    assert got.error_obj.provider_message == "an error was encountered while running the model"


def test_ollama_truncated_and_last_line_without_newline() -> None:
    got = replay_all("ollama", ol_line("Hi") + ol_line(" there"))
    assert got.text == "Hi there" and got.error and "ended before it finished" in got.error[1]
    got = replay_all("ollama", ol_line("Hi") + ol_done().rstrip(b"\n"))
    assert got.error is None and got.done
    got = replay_all("ollama", ol_line("Hi") + ol_done()[:30])
    assert got.error and "ended before it finished" in got.error[1]


def test_ollama_crlf_lines_and_blank_lines() -> None:
    body = ol_line("a").replace(b"\n", b"\r\n") + b"\n\r\n" + ol_done()
    got = replay_all("ollama", body)
    assert got.text == "a" and got.done
