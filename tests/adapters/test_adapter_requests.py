"""Request builders (chat and model lists) and model-list parsing/pagination (synthetic)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from adapter_support import chat_request

from viagent_jupyter.adapters import get_adapter
from viagent_jupyter.adapters.base import HTTPRequest, ModelPage
from viagent_jupyter.errors import ProviderResponseError

SETTINGS = {"temperature": 1.5, "max_tokens": 256, "top_p": 0.9, "frequency_penalty": 0.5,
            "presence_penalty": -0.5}
MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Count to 3"}]


def build(provider_type: str, **kw: Any) -> HTTPRequest:
    req = chat_request(provider_type, **kw)
    http = get_adapter(provider_type).chat_request(req)
    json.dumps(http.json)  # serialisable
    assert http.method == "POST"
    return http


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize("provider_type", ["openai", "openrouter", "openai_compatible"])
def test_openai_style_request(provider_type: str) -> None:
    http = build(provider_type, api_key="sk-abc", system="Be brief.", messages=MESSAGES,
                 settings=SETTINGS, headers={"HTTP-Referer": "https://x.test", "X-Title": "T"})
    base = chat_request(provider_type).base_url
    assert http.url == base + "/chat/completions" and http.params is None
    h = lower(http.headers)
    assert h["authorization"] == "Bearer sk-abc"
    assert h["accept"] == "text/event-stream" and h["content-type"] == "application/json"
    assert h["http-referer"] == "https://x.test" and h["x-title"] == "T"
    body = http.json
    assert body["model"] == "test-model" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, *MESSAGES]
    assert body["temperature"] == 1.5 and body["top_p"] == 0.9
    assert body["frequency_penalty"] == 0.5 and body["presence_penalty"] == -0.5
    # OpenAI deprecated max_tokens (o-series / gpt-5 reject it); others expect max_tokens
    tokens_key = "max_completion_tokens" if provider_type == "openai" else "max_tokens"
    assert body[tokens_key] == 256
    assert ("max_tokens" in body) is (provider_type != "openai")


def test_openai_compatible_without_key_and_unset_settings() -> None:
    http = build("openai_compatible", api_key=None, settings={})
    assert "authorization" not in lower(http.headers)
    body = http.json
    assert set(body) == {"model", "messages", "stream", "stream_options"}


def test_base_url_query_string_is_kept() -> None:  # Azure-style api-version
    http = build("openai_compatible",
                 base_url="https://res.openai.azure.com/openai/deployments/gpt?api-version=2024-10-21")
    assert http.url == "https://res.openai.azure.com/openai/deployments/gpt/chat/completions"
    assert http.params == {"api-version": "2024-10-21"}
    models = get_adapter("openai_compatible").models_request(
        "https://h.test/v1?api-version=1", None, {})
    assert models.url == "https://h.test/v1/models" and models.params == {"api-version": "1"}


def test_extra_headers_never_override_auth() -> None:
    for provider_type, auth in [("openai", "authorization"), ("anthropic", "x-api-key"),
                                ("gemini", "x-goog-api-key"), ("ollama", "authorization")]:
        http = build(provider_type, api_key="real-key",
                     headers={"Authorization": "Bearer evil", "X-Api-Key": "evil",
                              "x-goog-api-key": "evil", "X-Custom": "1"})
        h = http.headers
        names = [k.lower() for k in h]
        assert len(names) == len(set(names)), "no duplicate header names"
        assert "evil" not in " ".join(h.values())
        assert lower(h)[auth] in ("real-key", "Bearer real-key")
        assert lower(h)["x-custom"] == "1"


def test_anthropic_request() -> None:
    http = build("anthropic", api_key="sk-ant-x", system="Sys", messages=MESSAGES,
                 settings=SETTINGS, headers={"anthropic-beta": "b1"})
    assert http.url == "https://api.anthropic.com/v1/messages"
    h = lower(http.headers)
    assert h["x-api-key"] == "sk-ant-x" and h["anthropic-version"] == "2023-06-01"
    assert "authorization" not in h and h["anthropic-beta"] == "b1"
    assert h["accept"] == "text/event-stream"
    body = http.json
    assert body == {"model": "test-model", "messages": MESSAGES, "system": "Sys",
                    "max_tokens": 256, "temperature": 1.0, "top_p": 0.9, "stream": True}


def test_anthropic_defaults_and_system_messages_folded() -> None:
    msgs = [{"role": "system", "content": "Extra rule."}, {"role": "user", "content": "Q"}]
    body = build("anthropic", system="Sys", messages=msgs, settings={"temperature": 0.2}).json
    assert body["max_tokens"] == 4096  # required by Anthropic
    assert body["temperature"] == 0.2
    assert body["system"] == "Sys\n\nExtra rule."
    assert body["messages"] == [{"role": "user", "content": "Q"}]
    assert "frequency_penalty" not in body and "presence_penalty" not in body
    assert "system" not in build("anthropic", settings={}).json


def test_anthropic_version_header_can_be_overridden_but_not_the_key() -> None:
    http = build("anthropic", api_key="k", headers={"Anthropic-Version": "2099-01-01",
                                                    "x-api-key": "evil"})
    h = lower(http.headers)
    assert h["anthropic-version"] == "2099-01-01" and h["x-api-key"] == "k"
    assert sum(k.lower() == "anthropic-version" for k in http.headers) == 1
    models = get_adapter("anthropic").models_request("https://api.anthropic.com", None, {})
    assert lower(models.headers)["anthropic-version"] == "2023-06-01"
    assert "x-api-key" not in lower(models.headers)


def test_gemini_request() -> None:  # always alt=sse; key in a header, never ?key=
    http = build("gemini", api_key="AIza-test", system="Sys", messages=MESSAGES,
                 settings=SETTINGS, model="models/gemini-2.5-flash")
    assert http.url == ("https://generativelanguage.googleapis.com/v1beta/models/"
                        "gemini-2.5-flash:streamGenerateContent")
    assert http.params == {"alt": "sse"}
    assert "key" not in (http.params or {}) and "key=" not in http.url
    h = lower(http.headers)
    assert h["x-goog-api-key"] == "AIza-test" and h["accept"] == "text/event-stream"
    body = http.json
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "Count to 3"}]},
    ]
    assert body["systemInstruction"] == {"parts": [{"text": "Sys"}]}
    assert body["generationConfig"] == {"temperature": 1.5, "maxOutputTokens": 256,
                                        "topP": 0.9, "frequencyPenalty": 0.5,
                                        "presencePenalty": -0.5}


def test_gemini_model_ids_are_path_safe() -> None:
    assert build("gemini", model="tunedModels/my-tune").url.endswith(
        "/v1beta/tunedModels/my-tune:streamGenerateContent")
    assert build("gemini", model="odd:model").url.endswith(
        "/v1beta/models/odd%3Amodel:streamGenerateContent")
    body = build("gemini", settings={}).json
    assert "generationConfig" not in body and "systemInstruction" not in body


def test_ollama_request() -> None:
    http = build("ollama", system="Sys", messages=MESSAGES, settings=SETTINGS)
    assert http.url == "http://localhost:11434/api/chat"
    h = lower(http.headers)
    assert "authorization" not in h and h["accept"] == "application/x-ndjson"
    body = http.json
    assert body["stream"] is True  # explicit: /api/chat streams by default
    assert body["messages"] == [{"role": "system", "content": "Sys"}, *MESSAGES]
    assert body["options"] == {"temperature": 1.5, "num_predict": 256, "top_p": 0.9,
                               "frequency_penalty": 0.5, "presence_penalty": -0.5}
    keyed = build("ollama", api_key="ollama-key", base_url="https://ollama.com")
    assert lower(keyed.headers)["authorization"] == "Bearer ollama-key"
    assert "options" not in build("ollama", settings={}).json


def test_settings_set_to_none_are_not_sent() -> None:
    body = build("openai", settings={"temperature": None, "top_p": 0.5}).json
    assert "temperature" not in body and body["top_p"] == 0.5


# --------------------------------------------------------------------------- model lists


def test_models_requests() -> None:
    oa = get_adapter("openai").models_request("https://api.openai.com/v1", "sk-1", {"X-A": "1"})
    assert (oa.method, oa.url, oa.params) == ("GET", "https://api.openai.com/v1/models", None)
    assert lower(oa.headers)["authorization"] == "Bearer sk-1"
    assert lower(oa.headers)["x-a"] == "1"
    an = get_adapter("anthropic").models_request("https://api.anthropic.com", "k", {})
    assert an.url == "https://api.anthropic.com/v1/models" and an.params == {"limit": "100"}
    assert lower(an.headers)["x-api-key"] == "k"
    ge = get_adapter("gemini").models_request("https://generativelanguage.googleapis.com",
                                              "g", {})
    assert ge.url == "https://generativelanguage.googleapis.com/v1beta/models"
    assert ge.params == {"pageSize": "1000"} and lower(ge.headers)["x-goog-api-key"] == "g"
    ol = get_adapter("ollama").models_request("http://localhost:11434", None, {})
    assert ol.url == "http://localhost:11434/api/tags" and "authorization" not in lower(
        ol.headers)


def parse(provider_type: str, body: Any, request: HTTPRequest | None = None) -> ModelPage:
    adapter = get_adapter(provider_type)
    request = request or adapter.models_request("https://h.test", "k", {})
    return adapter.parse_models(json.dumps(body).encode(), request)


def test_anthropic_pagination() -> None:  # cursor: has_more + after_id
    adapter = get_adapter("anthropic")
    first = adapter.models_request("https://api.anthropic.com", "k", {})
    page = parse("anthropic", {"data": [{"id": "claude-a", "display_name": "A"},
                                        {"id": "claude-b"}],
                               "has_more": True, "first_id": "claude-a", "last_id": "claude-b"},
                 first)
    assert [m.id for m in page.models] == ["claude-a", "claude-b"]
    assert page.models[0].name == "A" and page.models[1].name is None
    nxt = page.next_request
    assert nxt is not None and nxt.url == first.url
    assert nxt.params == {"limit": "100", "after_id": "claude-b"}
    assert nxt.headers == first.headers and nxt.headers is not first.headers
    last = parse("anthropic", {"data": [{"id": "claude-c"}], "has_more": False,
                               "last_id": "claude-c"}, nxt)
    assert last.next_request is None
    # a server that repeats the same cursor must not loop forever
    again = parse("anthropic", {"data": [], "has_more": True, "last_id": "claude-b"}, nxt)
    assert again.next_request is None


def test_gemini_pagination_and_filter() -> None:
    body = {"models": [
        {"name": "models/gemini-x", "displayName": "Gemini X", "inputTokenLimit": 1000,
         "supportedGenerationMethods": ["generateContent", "countTokens"], "thinking": True},
        {"name": "models/embedding-001", "supportedGenerationMethods": ["embedContent"]},
        {"name": "models/no-methods"},
        {"displayName": "nameless", "supportedGenerationMethods": ["generateContent"]},
    ], "nextPageToken": "tok2"}
    page = parse("gemini", body)
    assert [m.id for m in page.models] == ["gemini-x"]
    model = page.models[0]
    assert (model.name, model.context_length, model.capabilities) == ("Gemini X", 1000,
                                                                      ("reasoning",))
    assert page.next_request is not None and page.next_request.params == {
        "pageSize": "1000", "pageToken": "tok2"}
    assert parse("gemini", {"models": []}).next_request is None


def test_openrouter_style_entries_tolerate_missing_fields() -> None:
    page = parse("openrouter", {"data": [
        {"id": "a/full", "name": "Full", "context_length": 8192,
         "architecture": {"input_modalities": ["text", "image"]},
         "pricing": {"prompt": "0.000001", "completion": "0.000002"},
         "supported_parameters": ["tools", "reasoning"]},
        {"id": "a/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
        {"id": "a/half", "pricing": {"prompt": "0.1"}},
        {"id": "a/bad", "pricing": {"prompt": "abc", "completion": "1"}},
        {"id": "a/old", "architecture": {"modality": "text+image->text"},
         "top_provider": {"context_length": 4096}},
        {"name": "no id"}, "not a dict",
    ]})
    models = {m.id: m for m in page.models}
    assert list(models) == ["a/full", "a/auto", "a/half", "a/bad", "a/old"]
    full = models["a/full"]
    assert full.pricing == {"prompt": Decimal("0.000001"), "completion": Decimal("0.000002")}
    assert full.capabilities == ("tools", "vision", "reasoning")
    assert all(models[i].pricing is None for i in ("a/auto", "a/half", "a/bad"))
    assert models["a/old"].capabilities == ("vision",)
    assert models["a/old"].context_length == 4096


def test_plain_openai_list_and_bare_list() -> None:
    page = parse("openai", {"object": "list", "data": [{"id": "gpt-x", "created": 1}]})
    assert [(m.id, m.created, m.name) for m in page.models] == [("gpt-x", 1, None)]
    assert [m.id for m in parse("openai_compatible", [{"id": "local"}]).models] == ["local"]
    assert parse("openai", {"object": "list"}).models == []


def test_ollama_tags_entries() -> None:
    page = parse("ollama", {"models": [
        {"name": "llama3.2:latest", "details": {"family": "llama", "parameter_size": "3.2B",
                                                "quantization_level": "Q4_K_M"}},
        {"model": "only-model-key"}, {"size": 1}]})
    assert [m.id for m in page.models] == ["llama3.2:latest", "only-model-key"]
    assert page.models[0].description == "llama 3.2B Q4_K_M"


@pytest.mark.parametrize("provider_type", ["openai", "anthropic", "gemini", "ollama"])
def test_model_list_not_json(provider_type: str) -> None:
    adapter = get_adapter(provider_type)
    with pytest.raises(ProviderResponseError, match=r"h\.test"):
        adapter.parse_models(b"<html>oops</html>", adapter.models_request("https://h.test",
                                                                          None, {}))


def test_get_adapter_for_every_provider_type() -> None:
    names = {t: get_adapter(t).name for t in
             ["openai", "openrouter", "openai_compatible", "anthropic", "gemini", "ollama"]}
    assert names == {"openai": "openai", "openrouter": "openai", "openai_compatible": "openai",
                     "anthropic": "anthropic", "gemini": "gemini", "ollama": "ollama"}
