"""Our adapters against LiteLLM's proxy (a real third-party server) on loopback, compared
with what the official SDK reads from the same server in the same test: text, finish reason,
usage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from realserver.conftest import ANSWER, MASTER_KEY, LiteLLM


def add(ws: Any, litellm: LiteLLM, ptype: str, model: str) -> str:
    ws.providers.create(id=ptype.replace("_", "-"), provider_type=ptype, name=f"LiteLLM {ptype}",
                        base_url=litellm.base_url, default_model=model, api_key=MASTER_KEY,
                        max_retries=0)
    return ptype.replace("_", "-")


@pytest.mark.parametrize("ptype", ["openai_compatible", "openai", "openrouter"])
def test_openai_protocol_matches_the_openai_sdk(ws: Any, litellm: LiteLLM, ptype: str) -> None:
    sdk = json.loads(litellm.sdk("openai-stream", "mock-gpt", "Say hello"))
    pid = add(ws, litellm, ptype, "mock-gpt")
    s = ws.chat("Say hello", provider=pid)
    deltas = list(s)
    assert len(deltas) > 1  # really streamed
    assert s.text == sdk["text"] == ANSWER
    assert s.finish_reason == sdk["finish_reason"] == "stop"
    assert {"prompt_tokens": s.usage.prompt_tokens,
            "completion_tokens": s.usage.completion_tokens} == sdk["usage"]
    rec = ws.stats.get(pid, "mock-gpt")
    assert rec.requests == 1 and rec.prompt_tokens == sdk["usage"]["prompt_tokens"]


def test_openai_type_with_max_tokens_against_a_non_openai_server(ws: Any, litellm: LiteLLM
                                                                  ) -> None:
    """A cap the user sets reaches a compatible server under the name it knows."""
    pid = add(ws, litellm, "openai", "mock-gpt")
    s = ws.chat("Say hello", provider=pid, max_tokens=64).wait()
    assert s.text == ANSWER and s.error is None


def test_anthropic_protocol_matches_the_anthropic_sdk(ws: Any, litellm: LiteLLM) -> None:
    """LiteLLM answers ``stream: true`` on /v1/messages for a mock model with one
    ``application/json`` message: a real server doing what issue 12 describes. It is a
    valid non-streamed Messages response, so it is the answer."""
    sdk = json.loads(litellm.sdk("anthropic", "claude-mock", "Say hello"))
    pid = add(ws, litellm, "anthropic", "claude-mock")
    s = ws.chat("Say hello", provider=pid).wait()
    assert s.text == sdk["text"] == ANSWER
    assert s.raw_finish_reason == sdk["finish_reason"] == "end_turn"
    assert s.finish_reason == "stop"
    assert {"prompt_tokens": s.usage.prompt_tokens,
            "completion_tokens": s.usage.completion_tokens} == sdk["usage"]


def test_gemini_protocol_against_litellm_google_route(ws: Any, litellm: LiteLLM) -> None:
    """LiteLLM's ``/v1beta/models/{m}:streamGenerateContent`` route (here for an OpenAI-backed
    mock model): the same text and finish as the OpenAI SDK reads for that model."""
    sdk = json.loads(litellm.sdk("openai-stream", "mock-gpt", "Say hello"))
    pid = add(ws, litellm, "gemini", "mock-gpt")
    s = ws.chat("Say hello", provider=pid)
    deltas = list(s)
    assert len(deltas) > 1
    assert s.text == sdk["text"] == ANSWER
    assert s.finish_reason == sdk["finish_reason"] == "stop"
    if s.usage.reported:  # usageMetadata, when LiteLLM's translation carries it
        assert s.usage.prompt_tokens == sdk["usage"]["prompt_tokens"]


def test_model_list_from_litellm(ws: Any, litellm: LiteLLM) -> None:
    pid = add(ws, litellm, "openai_compatible", "mock-gpt")
    ids = {m.id for m in ws.models(pid)}
    assert {"mock-gpt", "claude-mock"} <= ids


def test_litellm_enforces_o_series_rules_and_default_settings_pass(ws: Any, litellm: LiteLLM
                                                                   ) -> None:
    """LiteLLM itself refuses what OpenAI's reasoning models refuse (temperature != 1, top_p)
    with its own 400 shape: default settings send none of it; a stored temperature is named
    in one line with how to unset it, and is not silently dropped."""
    import viagent_jupyter as vj

    pid = add(ws, litellm, "openai", "o3-mock")
    assert ws.chat("Say hello", provider=pid).wait().text == ANSWER
    ws.providers.update(pid, settings={"temperature": 0.7})
    with pytest.raises(vj.ProviderAPIError) as info:
        ws.chat("Say hello", provider=pid).wait()
    message = str(info.value)
    assert "\n" not in message and "does not accept the setting temperature" in message
    assert f"ws.providers.update('{pid}', settings={{'temperature': None}})" in message
    with pytest.raises(vj.ProviderAPIError, match=r"setting top_p.*leave top_p= out"):
        ws.chat("Say hello", provider=pid, temperature=1, top_p=0.5).wait()


def test_reasoning_refused_by_the_server_is_named(ws: Any, litellm: LiteLLM) -> None:
    import viagent_jupyter as vj

    pid = add(ws, litellm, "openai_compatible", "mock-gpt")
    with pytest.raises(vj.ProviderAPIError, match="does not accept the setting reasoning"):
        ws.chat("Say hello", provider=pid, reasoning="high").wait()
