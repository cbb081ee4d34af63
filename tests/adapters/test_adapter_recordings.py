"""Replays of real recorded provider traffic (../shared/fixtures/wire), cross-checked with
the fixture author's EXPECTED.json.

Where we deliberately differ from EXPECTED.json (it is a reference parser's derivation, not
provider truth):

* Gemini ``stream_sse_function_call__mirascope``: EXPECTED says ``STOP``. Our *raw* finish
  reason is ``STOP`` too, but the normalised one is ``tool_calls`` because the answer is
  only ``functionCall`` parts — the brief requires a tool_calls finish to be reported, and
  Ollama/OpenAI report it the same way. The fact sheet (§2.3) only says finishReason is
  on the last chunk; nothing contradicts the normalisation.
* Gemini usage: EXPECTED lists ``usageMetadata`` raw; DESIGN says completion_tokens =
  candidatesTokenCount + thoughtsTokenCount, so we compare against that sum.
* OpenAI refusal: EXPECTED keeps ``refusal`` apart from ``text``; the brief counts a
  refusal as text (it is what the model said), so our text = text + refusal.
* OpenRouter inline error: EXPECTED records the error and still reports finish ``length``
  and usage 43/10; we raise ProviderAPIError *and* keep finish/usage in the state
  (the usage chunk is processed before the error is raised), so both agree.
* Terminal markers: every OpenAI-style recording (OpenAI, OpenRouter, Ollama /v1 incl. the
  Nov-2024 server without a usage chunk) ends with ``data: [DONE]`` (EXPECTED
  ``done_sentinel: true`` everywhere), so ``[DONE]`` is required; a finish chunk followed by
  EOF is *not* accepted as done — no recording needs that leniency.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from adapter_support import PROVIDER_ID, chat_request, replay, replay_all

from viagent_jupyter.adapters import get_adapter
from viagent_jupyter.errors import (
    AuthenticationError,
    ProviderAPIError,
    RateLimitError,
)

NORMALISE = {
    "openai-chat-sse": {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
                        "function_call": "tool_calls", "content_filter": "content_filter"},
    "anthropic-messages-sse": {"end_turn": "stop", "stop_sequence": "stop",
                               "max_tokens": "length", "tool_use": "tool_calls",
                               "refusal": "content_filter", "pause_turn": "other"},
    "gemini-sse": {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
                   "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
                   "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter"},
    "ollama-ndjson": {"stop": "stop", "length": "length", "load": "other"},
}


def _expected_stream(rec: Any, exp: dict[str, Any]) -> dict[str, Any]:
    """What our parser must produce for this recording, derived from EXPECTED.json."""
    fmt = exp["format"]
    out: dict[str, Any] = {"errors": None, "cost": None, "reasoning": None}
    if fmt == "openai-chat-sse":
        out["text"] = (exp.get("text") or "") + (exp.get("refusal") or "")
        out["raw_finish"] = exp.get("finish_reason")
        usage = exp.get("usage") or {}
        out["usage"] = {k: usage[k] for k in ("prompt_tokens", "completion_tokens",
                                              "total_tokens") if k in usage}
        details = usage.get("completion_tokens_details") or {}
        if details.get("reasoning_tokens") is not None:
            out["usage"]["reasoning_tokens"] = details["reasoning_tokens"]
        out["reasoning"] = exp.get("reasoning") or ""
        if "cost" in usage:
            out["cost"] = float(usage["cost"])
        out["errors"] = exp.get("in_stream_errors")
    elif fmt == "anthropic-messages-sse":
        out["text"] = exp["text"]
        out["raw_finish"] = exp.get("stop_reason")
        usage = exp.get("usage") or {}
        # The recordings carry no cache tokens, so prompt = input_tokens (17/10 ...).
        out["usage"] = {"prompt_tokens": usage["input_tokens"],
                        "completion_tokens": usage["output_tokens"]}
        out["reasoning"] = exp.get("thinking") or ""
        out["errors"] = exp.get("in_stream_errors")
    elif fmt == "gemini-sse":
        out["text"] = exp["text"]
        out["raw_finish"] = exp.get("finish_reason")
        last = exp.get("usage_last") or {}
        out["usage"] = {
            "prompt_tokens": last["promptTokenCount"],
            "completion_tokens": last.get("candidatesTokenCount", 0)
            + last.get("thoughtsTokenCount", 0),
            "total_tokens": last["totalTokenCount"],
        }
        if "thoughtsTokenCount" in last:
            out["usage"]["reasoning_tokens"] = last["thoughtsTokenCount"]
        out["errors"] = exp.get("errors")
    elif fmt == "ollama-ndjson":
        out["text"] = exp["text"]
        out["raw_finish"] = exp.get("done_reason")
        usage = exp.get("usage") or {}
        out["usage"] = {"prompt_tokens": usage["prompt_eval_count"],
                        "completion_tokens": usage["eval_count"]}
        out["errors"] = exp.get("errors")
    else:  # pragma: no cover - a new kind of recording
        pytest.fail(f"unknown EXPECTED format {fmt!r} for {rec.rel}")
    norm = NORMALISE[fmt]
    out["finish"] = norm.get(out["raw_finish"], "other") if out["raw_finish"] else None
    if fmt == "gemini-sse" and exp.get("function_calls") and out["finish"] == "stop":
        out["finish"] = "tool_calls"  # see the module docstring
    return out


def test_stream_recording_replays(stream_recording: Any, expected: dict[str, Any]) -> None:
    """Same text, finish reason, usage under whole/1/7-byte/random/after-CR chunkings, and
    agreement with EXPECTED.json."""
    rec = stream_recording
    assert "event-stream" in rec.content_type or "ndjson" in rec.content_type
    got = replay_all(rec.provider_type, rec.body)
    want = _expected_stream(rec, expected[rec.rel])

    assert got.text == want["text"]
    assert got.raw_finish_reason == want["raw_finish"]
    assert got.finish_reason == want["finish"]
    assert got.usage == want["usage"]
    if want["reasoning"] is not None:  # reasoning kept apart, whole, never in the text
        assert got.reasoning == want["reasoning"]
    assert got.cost == want["cost"]
    assert got.model, "the model the provider reports"
    if want["errors"]:
        assert got.error is not None and got.error[0] == "ProviderAPIError", got.error
        err = got.error_obj
        assert isinstance(err, ProviderAPIError)
        assert err.provider == PROVIDER_ID
        assert err.provider_message == want["errors"][0]["message"]
        assert not got.done
    else:
        assert got.error is None, got.error
        assert got.done


def test_stream_recording_is_incremental(stream_recording: Any) -> None:
    """All the text arrives from feed(), before the body ends (nothing held until close)."""
    rec = stream_recording
    parser = get_adapter(rec.provider_type).parser(chat_request(rec.provider_type))
    body = rec.body
    texts: list[str] = []
    try:
        for i in range(0, len(body) - 1, 64):
            texts += parser.feed(body[i:min(i + 64, len(body) - 1)])
    except ProviderAPIError:
        return  # the in-stream error recording
    full = replay(rec.provider_type, [body]).text
    assert "".join(texts) == full


def test_stream_recording_truncated_is_reported(stream_recording: Any) -> None:
    """Cut the body before its terminal marker: close() raises ProviderResponseError and
    the text before the cut was already returned."""
    rec = stream_recording
    body = rec.body
    full = replay(rec.provider_type, [body])
    if full.error:
        return  # the in-stream error recording: it never reaches its terminal marker
    marker = {"openai": b"[DONE]", "openai_compatible": b"[DONE]", "openrouter": b"[DONE]",
              "anthropic": b"message_stop", "gemini": b"finishReason",
              "ollama": b'"done":true'}[rec.provider_type]
    cut = body.rfind(marker)
    assert cut > 0
    cut = max(body.rfind(b"\n", 0, cut), 0)  # start of the line carrying the marker
    got = replay(rec.provider_type, [body[:cut]])
    assert got.error is not None and got.error[0] == "ProviderResponseError", got.error
    assert "ended before it finished" in got.error[1]
    assert got.where == "close"
    assert full.text.startswith(got.text)


# --------------------------------------------------------------------------- errors

ERROR_CLASSES = {
    "anthropic/error_401_authentication__mirascope.json": AuthenticationError,
    "anthropic/error_404_not_found__mirascope.json": ProviderAPIError,
    "gemini/error_400_api_key_invalid_on_sse__mirascope.sse": AuthenticationError,  # 400
    "gemini/error_403__langchaingo.json": AuthenticationError,
    "gemini/error_404_model_not_found_on_sse__mirascope.sse": ProviderAPIError,
    "openai/error_400_unsupported_param__mirascope.json": ProviderAPIError,
    "openai/error_401_invalid_api_key__mirascope.json": AuthenticationError,
    "openai/error_404_model_not_found__mirascope.json": ProviderAPIError,
    "openrouter/error_429_rate_limit__langchaingo.json": RateLimitError,
    "openrouter/error_429_upstream_rate_limited__pydantic_ai.json": RateLimitError,
}


def _rule_class(status: int) -> type[ProviderAPIError]:
    if status in (401, 403):
        return AuthenticationError
    if status in (429, 529):
        return RateLimitError
    return ProviderAPIError


def test_error_recording_maps(error_recording: Any) -> None:
    rec = error_recording
    adapter = get_adapter(rec.provider_type)
    err = adapter.error_from_response(rec.status, rec.headers, rec.body, PROVIDER_ID, "m-1")
    want = ERROR_CLASSES.get(rec.rel, _rule_class(rec.status))
    assert type(err) is want
    assert isinstance(err, ProviderAPIError)
    assert err.status_code == rec.status
    assert err.provider == PROVIDER_ID and err.model == "m-1"
    assert err.provider_message, "the provider's own message is kept"
    assert err.error_type
    msg = str(err)
    assert "\n" not in msg and len(msg) <= 400
    assert f"provider '{PROVIDER_ID}' (HTTP {rec.status}: " in msg
    assert err.provider_message[:40] in msg
    if isinstance(err, AuthenticationError):
        assert f"%llm key {PROVIDER_ID}" in msg
    if rec.rel.startswith("gemini/error_400"):
        assert err.error_type == "API_KEY_INVALID"


# --------------------------------------------------------------------------- models

BASES = {"openai": "https://api.openai.com/v1", "openrouter": "https://openrouter.ai/api/v1",
         "anthropic": "https://api.anthropic.com",
         "gemini": "https://generativelanguage.googleapis.com",
         "ollama": "http://localhost:11434"}


def test_models_recording_parses(models_recording: Any, expected: dict[str, Any]) -> None:
    rec = models_recording
    adapter = get_adapter(rec.provider_type)
    request = adapter.models_request(BASES[rec.provider_type], "k", {})
    page = adapter.parse_models(rec.body, request)
    exp = expected[rec.rel]
    ids = [m.id for m in page.models]
    assert len(ids) == len(set(ids)) > 0
    if rec.provider == "gemini":
        # only generateContent models, "models/" stripped
        assert len(ids) < exp["count"]
        assert not any(i.startswith("models/") for i in ids)
        token = exp.get("nextPageToken")
        if token:
            assert page.next_request is not None
            assert page.next_request.params is not None
            assert page.next_request.params["pageToken"] == token
            assert page.next_request.params["pageSize"] == "1000"
            assert page.next_request.url == request.url
        else:
            assert page.next_request is None
    else:
        assert len(ids) == exp["count"]
        first = exp.get("first_ids") or exp.get("first_names")
        assert ids[: len(first)] == first
        assert page.next_request is None  # has_more false / single page
    for m in page.models:
        assert m.pricing is None or set(m.pricing) == {"prompt", "completion"}


def _models(rel: str, recording: Any) -> dict[str, Any]:
    rec = recording(rel)
    adapter = get_adapter(rec.provider_type)
    page = adapter.parse_models(rec.body, adapter.models_request(BASES[rec.provider_type],
                                                                 None, {}))
    return {m.id: m for m in page.models}


def test_openrouter_models_prices_and_capabilities(recording: Any) -> None:
    full = _models("openrouter/models_list_full__llm_openrouter_2025-04.json", recording)
    assert len(full) == 302
    assert full["openrouter/auto"].pricing is None  # "-1" = variable price
    free = full["microsoft/mai-ds-r1:free"]
    assert free.pricing == {"prompt": Decimal(0), "completion": Decimal(0)}
    assert free.context_length == 163840
    assert free.name == "Microsoft: MAI DS R1 (free)"
    priced = [m for m in full.values() if m.pricing and m.pricing["prompt"] > 0]
    assert len(priced) > 100
    assert all(isinstance(m.pricing["completion"], Decimal) for m in priced if m.pricing)
    assert any("vision" in m.capabilities for m in full.values())

    trimmed = _models("openrouter/models_list_trimmed__llm_openrouter_2025-08.json", recording)
    sonnet = trimmed["anthropic/claude-sonnet-4"]
    assert sonnet.pricing == {"prompt": Decimal("0.000003"), "completion": Decimal("0.000015")}
    assert sonnet.context_length == 200000
    assert {"tools", "vision"} <= set(sonnet.capabilities)


def test_openai_models_keep_every_id(recording: Any) -> None:
    models = _models("openai/models_list__ruby_openai_2023-11.json", recording)
    assert len(models) == 586
    assert "gpt-3.5-turbo-16k" in models and "text-search-babbage-doc-001" in models
    assert all(m.pricing is None and m.created for m in models.values())


def test_anthropic_models(recording: Any) -> None:
    old = _models("anthropic/models_list__ellmer_2025-11.json", recording)
    assert old["claude-sonnet-4-5-20250929"].name == "Claude Sonnet 4.5"
    assert old["claude-sonnet-4-5-20250929"].context_length is None  # not listed in 2025
    new = _models("anthropic/models_list__ellmer_2026-08.json", recording)
    opus = new["claude-opus-5"]
    assert opus.context_length == 1000000
    assert {"vision", "reasoning"} <= set(opus.capabilities)
    assert opus.created is not None


def test_gemini_models_filtered(recording: Any) -> None:
    models = _models("gemini/models_list__llm_gemini_2026-08.json", recording)
    assert "gemini-2.5-flash" in models
    assert models["gemini-2.5-flash"].context_length == 1048576
    assert models["gemini-2.5-flash"].name
    assert not any(i.startswith(("embedding", "text-embedding", "imagen", "veo"))
                   for i in models)


def test_ollama_tags(recording: Any) -> None:
    models = _models("ollama/api_tags__kiln_test_literal.json", recording)
    assert list(models) == ["scosman_net", "phi3.5:latest", "gemma2:2b", "llama3.1:latest"]
    assert all(m.context_length is None for m in models.values())
