"""The fake provider: framing of each protocol's default answer (checked with plain httpx),
model lists and pagination, scripts, recording, lifecycle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from viagent_jupyter.testing import (
    DEMO_MODELS,
    DemoModel,
    FakeProviderServer,
    Scripted,
    demo_text,
    error_body,
    rechunk,
)

ROOT = Path(__file__).resolve().parents[1]
WIRE = Path(os.environ.get("VIAGENT_WIRE_FIXTURES")
            or ROOT.parent / "shared" / "fixtures" / "wire")
USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def srv() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def sse_events(body: bytes, sep: bytes = b"\n\n") -> list[bytes]:
    """Split an SSE body on its event separator; the body must end with one."""
    assert body.endswith(sep)
    return body[: -len(sep)].split(sep)


def data_json(event: bytes) -> Any:
    assert event.startswith(b"data: ")
    return json.loads(event[len(b"data: "):])


# --------------------------------------------------------------------------- OpenAI-style


def test_openai_stream_framing_with_usage(srv: FakeProviderServer, http: httpx.Client) -> None:
    r = http.post(srv.url_for("openai") + "/chat/completions",
                  json={"model": "demo-small", "messages": USER, "stream": True,
                        "stream_options": {"include_usage": True}})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"
    assert b"\r" not in r.content
    events = sse_events(r.content)
    assert events[-1] == b"data: [DONE]"
    chunks = [data_json(e) for e in events[:-1]]
    assert all(e.count(b"\n") == 0 for e in events)  # one data line per event
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                   if c["choices"])
    assert text == demo_text("hello there")
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []  # the usage chunk has no choices
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == len(chunks) - 3  # role chunk, finish chunk, usage chunk
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert all(c["model"] == "demo-small" and c["object"] == "chat.completion.chunk"
               for c in chunks)
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])  # 2025 shape


def test_openai_stream_without_usage_and_nonstream(srv: FakeProviderServer,
                                                   http: httpx.Client) -> None:
    url = srv.url_for("openai") + "/chat/completions"
    r = http.post(url, json={"model": "demo-large", "messages": USER, "stream": True})
    chunks = [data_json(e) for e in sse_events(r.content)[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)
    r = http.post(url, json={"model": "demo-large", "messages": USER})
    body = r.json()
    assert r.headers["content-type"] == "application/json"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == demo_text("hello there")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0


def test_openai_any_prefix_and_parts_content(srv: FakeProviderServer, http: httpx.Client) -> None:
    r = http.post(srv.base_url + "/some/proxy/chat/completions",
                  json={"model": "m", "stream": True, "messages": [
                      {"role": "system", "content": "be brief"},
                      {"role": "user", "content": [{"type": "text", "text": "parts work"}]}]})
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in map(data_json, sse_events(r.content)[:-1]))
    assert text == demo_text("parts work")
    assert srv.requests[-1].route == "openai.chat"


def test_openrouter_flavour(srv: FakeProviderServer, http: httpx.Client) -> None:
    base = srv.url_for("openrouter")
    assert base.endswith("/api/v1")
    r = http.post(base + "/chat/completions",
                  json={"model": "demo-large", "messages": USER, "stream": True})
    events = sse_events(r.content)
    assert events[0] == b": OPENROUTER PROCESSING"  # a keep-alive comment first
    assert events[-1] == b"data: [DONE]"
    chunks = [data_json(e) for e in events[1:-1]]
    finish_idx = next(i for i, c in enumerate(chunks) if c["choices"][0]["finish_reason"])
    usage_chunk = chunks[-1]
    assert finish_idx == len(chunks) - 2  # the usage chunk comes after the finish chunk
    assert usage_chunk["choices"] and usage_chunk["choices"][0]["finish_reason"] is None
    usage = usage_chunk["usage"]
    expected = 0.000003 * usage["prompt_tokens"] + 0.000015 * usage["completion_tokens"]
    assert usage["cost"] == pytest.approx(expected)
    models = http.get(base + "/models").json()
    assert "object" not in models
    entry = models["data"][0]
    assert entry["id"] == "demo-small"
    assert entry["pricing"]["prompt"] == "0.0000005"
    assert entry["context_length"] == 32_768
    # the flag forces the flavour on the plain /v1 routes too
    srv.openrouter = True
    assert "pricing" in http.get(srv.url_for("openai") + "/models").json()["data"][0]


# --------------------------------------------------------------------------- Anthropic


def anthropic_events(body: bytes) -> list[tuple[str, Any]]:
    out = []
    for event in sse_events(body):
        name_line, data_line = event.split(b"\n")
        assert name_line.startswith(b"event: ")
        name = name_line[len(b"event: "):].decode()
        data = data_json(data_line)
        assert data["type"] == name
        out.append((name, data))
    return out


def test_anthropic_stream_framing(srv: FakeProviderServer, http: httpx.Client) -> None:
    r = http.post(srv.url_for("anthropic") + "/v1/messages",
                  headers={"anthropic-version": "2023-06-01"},
                  json={"model": "demo-small", "max_tokens": 100, "system": "be brief",
                        "messages": USER, "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = anthropic_events(r.content)
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["model"] == "demo-small" and start["usage"]["input_tokens"] == 4
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == demo_text("hello there")
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == names.count("content_block_delta")


def test_anthropic_nonstream_and_validation(srv: FakeProviderServer, http: httpx.Client) -> None:
    url = srv.url_for("anthropic") + "/v1/messages"
    body = http.post(url, json={"model": "m", "max_tokens": 5, "messages": USER}).json()
    assert body["type"] == "message" and body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] == 5
    r = http.post(url, json={"model": "m", "messages": USER})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
    r = http.post(url, json={"model": "m", "max_tokens": 5,
                             "messages": [{"role": "system", "content": "x"}, *USER]})
    assert r.status_code == 400 and "top-level `system`" in r.json()["error"]["message"]


# --------------------------------------------------------------------------- Gemini


def test_gemini_sse_framing(srv: FakeProviderServer, http: httpx.Client) -> None:
    r = http.post(srv.url_for("gemini") + "/v1beta/models/demo-large:streamGenerateContent",
                  params={"alt": "sse"},
                  json={"contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
                        "systemInstruction": {"parts": [{"text": "be brief"}]}})
    assert r.headers["content-type"] == "text/event-stream"
    assert r.content.replace(b"\r\n", b"").count(b"\n") == 0  # CRLF only
    chunks = [data_json(e) for e in sse_events(r.content, b"\r\n\r\n")]
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == demo_text("hello there")
    reasons = [c["candidates"][0].get("finishReason") for c in chunks]
    assert reasons[-1] == "STOP" and set(reasons[:-1]) == {None}
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert counts == list(range(1, len(chunks) + 1))  # cumulative
    assert {c["usageMetadata"]["promptTokenCount"] for c in chunks} == {4}
    assert chunks[0]["modelVersion"] == "demo-large"


def test_gemini_array_mode_and_generate_content(srv: FakeProviderServer,
                                                http: httpx.Client) -> None:
    base = srv.url_for("gemini") + "/v1beta/models/demo-small"
    req = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
           "generationConfig": {"maxOutputTokens": 3}}
    r = http.post(base + ":streamGenerateContent", json=req)
    assert r.headers["content-type"].startswith("application/json")
    assert b"\n,\r\n" in r.content  # array mode separators
    items = json.loads(r.content)
    assert len(items) == 3 and items[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    one = http.post(base + ":generateContent", json=req).json()
    assert one["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert one["usageMetadata"]["candidatesTokenCount"] == 3
    bad = http.post(base + ":streamGenerateContent", params={"alt": "sse"}, json={})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "text/event-stream"  # Gemini labels its JSON error as SSE
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"


# --------------------------------------------------------------------------- Ollama


def test_ollama_ndjson_framing(srv: FakeProviderServer, http: httpx.Client) -> None:
    url = srv.url_for("ollama") + "/api/chat"
    r = http.post(url, json={"model": "demo-small", "messages": USER})  # streams by default
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.content.endswith(b"\n")
    lines = [json.loads(line) for line in r.content.split(b"\n")[:-1]]
    assert [x["done"] for x in lines] == [False] * (len(lines) - 1) + [True]
    text = "".join(x["message"]["content"] for x in lines)
    assert text == demo_text("hello there")
    last = lines[-1]
    assert last["done_reason"] == "stop"
    assert last["eval_count"] == len(lines) - 1 and last["prompt_eval_count"] == 2
    one = http.post(url, json={"model": "demo-small", "messages": USER, "stream": False,
                               "options": {"num_predict": 2}}).json()
    assert one["done"] is True and one["done_reason"] == "length"
    assert one["message"]["content"] == "You said: "
    r = http.post(url, json={"messages": USER})
    assert r.status_code == 400 and r.json() == {"error": "model is required"}


@pytest.mark.parametrize(("path", "body", "reason"), [
    ("/v1/chat/completions", {"model": "m", "messages": USER, "max_tokens": 2}, "length"),
    ("/v1/chat/completions", {"model": "m", "messages": USER, "max_completion_tokens": 2},
     "length"),
    ("/v1/messages", {"model": "m", "messages": USER, "max_tokens": 2}, "max_tokens"),
    ("/api/chat", {"model": "m", "messages": USER, "stream": False,
                   "options": {"num_predict": 2}}, "length"),
])
def test_max_tokens_cuts_the_answer(srv: FakeProviderServer, http: httpx.Client, path: str,
                                    body: dict[str, Any], reason: str) -> None:
    raw = http.post(srv.base_url + path, json=body).text
    assert reason in raw and "You said: " in raw and "hello" not in raw


def test_demo_answer_is_deterministic(srv: FakeProviderServer, http: httpx.Client) -> None:
    url = srv.url_for("ollama") + "/api/chat"
    req = {"model": "demo-small", "messages": USER, "stream": False}
    first = http.post(url, json=req).json()["message"]["content"]
    assert http.post(url, json=req).json()["message"]["content"] == first
    assert "offline" in first and "demo provider" in first


def test_demo_deltas_are_paced(http: httpx.Client) -> None:
    with FakeProviderServer(delay=0.02) as srv:  # about the default
        url = srv.url_for("ollama") + "/api/chat"
        t0 = time.monotonic()
        with http.stream("POST", url, json={"model": "m", "messages": USER}) as r:
            arrivals = [time.monotonic() - t0 for _ in r.iter_raw()]
        assert len(arrivals) > 10 and arrivals[-1] >= 0.02 * 18  # one pause per delta
        srv.delay = 2.0  # were scripted bytes paced, these 10 chunks would take 18 s
        srv.script("*", Scripted(body=b"q" * 100, chunks=10))
        t0 = time.monotonic()
        assert http.get(srv.base_url + "/x").content == b"q" * 100
        assert time.monotonic() - t0 < 9.0


# --------------------------------------------------------------------------- model lists


def test_openai_and_ollama_lists(srv: FakeProviderServer, http: httpx.Client) -> None:
    body = http.get(srv.url_for("openai") + "/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [m.id for m in DEMO_MODELS]
    assert set(body["data"][0]) == {"id", "object", "created", "owned_by"}
    tags = http.get(srv.url_for("ollama") + "/api/tags").json()
    assert [m["name"] for m in tags["models"]] == ["demo-small:latest", "demo-large:latest"]
    assert tags["models"][0]["details"]["format"] == "gguf"


MANY = [DemoModel(f"m{i}") for i in range(5)]


def test_anthropic_list_pagination(http: httpx.Client) -> None:
    with FakeProviderServer(delay=0, models=MANY) as srv:
        url = srv.url_for("anthropic") + "/v1/models"
        hdr = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
        seen, params = [], {"limit": "2"}
        while True:
            page = http.get(url, headers=hdr, params=params).json()
            seen += [m["id"] for m in page["data"]]
            assert page["first_id"] == page["data"][0]["id"]
            assert page["last_id"] == page["data"][-1]["id"]
            if not page["has_more"]:
                break
            params = {"limit": "2", "after_id": page["last_id"]}
        assert seen == [m.id for m in MANY]
        default = http.get(url, headers=hdr).json()
        assert len(default["data"]) == 5 and default["has_more"] is False
        assert default["data"][0]["type"] == "model"
        before = http.get(url, headers=hdr, params={"before_id": "m3", "limit": "2"}).json()
        assert [m["id"] for m in before["data"]] == ["m1", "m2"] and before["has_more"]
        assert http.get(url, headers=hdr, params={"after_id": "nope"}).status_code == 400
        # without anthropic-version the same path is the OpenAI-style list
        assert http.get(url).json()["object"] == "list"


def test_gemini_list_pagination(http: httpx.Client) -> None:
    with FakeProviderServer(delay=0, models=MANY) as srv:
        url = srv.url_for("gemini") + "/v1beta/models"
        names, params = [], {"pageSize": "2"}
        while True:
            page = http.get(url, params=params).json()
            names += [m["name"] for m in page["models"]]
            if "nextPageToken" not in page:
                break
            params = {"pageSize": "2", "pageToken": page["nextPageToken"]}
        assert names == [f"models/{m.id}" for m in MANY] + ["models/demo-embedding"]
        full = http.get(url).json()
        assert "nextPageToken" not in full and len(full["models"]) == 6
        assert full["models"][0]["supportedGenerationMethods"][0] == "generateContent"
        assert full["models"][-1]["supportedGenerationMethods"] == ["embedContent"]
        assert http.get(url, params={"pageToken": "garbage"}).status_code == 400


# --------------------------------------------------------------------------- scripts


def test_scripts_are_consumed_in_order_then_default(srv: FakeProviderServer,
                                                    http: httpx.Client) -> None:
    url = srv.url_for("openai") + "/chat/completions"
    req = {"model": "m", "messages": USER}
    srv.script("chat", Scripted(status=503), Scripted(status=201, body="custom",
                                                      content_type="text/plain",
                                                      headers={"x-demo": "1"}))
    assert srv.pending() == 2
    r1, r2, r3 = (http.post(url, json=req) for _ in range(3))
    assert r1.status_code == 503 and r1.json()["error"]["type"] == "server_error"
    assert (r2.status_code, r2.text, r2.headers["x-demo"]) == (201, "custom", "1")
    assert r2.headers["content-type"] == "text/plain"
    assert r3.status_code == 200 and r3.json()["object"] == "chat.completion"
    assert srv.pending() == 0


def test_script_route_precedence(srv: FakeProviderServer, http: httpx.Client) -> None:
    for route in ("*", "chat", "openai", "openai.chat", "/v1/chat/completions"):
        srv.script(route, Scripted(body=route))
    url = srv.url_for("openai") + "/chat/completions"
    got = [http.post(url, json={}).text for _ in range(5)]
    assert got == ["/v1/chat/completions", "openai.chat", "openai", "chat", "*"]
    srv.script("*", Scripted(body="any"))
    assert http.get(srv.base_url + "/not/a/route").text == "any"
    assert http.get(srv.base_url + "/not/a/route").status_code == 404
    with pytest.raises(ValueError, match="unknown route"):
        srv.script("chats", Scripted())


@pytest.mark.parametrize(("route", "status", "code", "check"), [
    ("openai", 429, None, lambda b: b["error"]["code"] == "rate_limit_exceeded"),
    ("openai", 429, "insufficient_quota",
     lambda b: b["error"]["type"] == b["error"]["code"] == "insufficient_quota"),
    ("anthropic", 529, None, lambda b: b["error"]["type"] == "overloaded_error"),
    ("gemini", 429, None, lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED"),
    ("ollama", 500, None, lambda b: isinstance(b["error"], str)),
])
def test_scripted_errors_take_the_provider_shape(srv: FakeProviderServer, http: httpx.Client,
                                                 route: str, status: int, code: str | None,
                                                 check: Any) -> None:
    srv.script(route, Scripted(status=status, code=code, retry_after=7, retry_after_ms=7000))
    path = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
            "gemini": "/v1beta/models/m:generateContent", "ollama": "/api/chat"}[route]
    r = http.post(srv.base_url + path, json={})
    assert r.status_code == status and check(r.json())
    assert r.headers["retry-after"] == "7" and r.headers["retry-after-ms"] == "7000"


def test_error_body_shapes() -> None:
    assert json.loads(error_body("openrouter", 402, "credits"))["error"]["code"] == 402
    gem = json.loads(error_body("gemini", 400, code="API_KEY_INVALID"))
    assert gem["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    with pytest.raises(ValueError):
        error_body("nope", 400)


def test_rechunk_plans() -> None:
    data = bytes(range(50))
    assert rechunk(data, None) == [data]
    assert [len(c) for c in rechunk(data, 7)] == [7] * 7 + [1]
    assert [len(c) for c in rechunk(data, [1, 2, 3])] == [1, 2, 3, 44]
    rnd = rechunk(data, "random", seed=3)
    assert rnd == rechunk(data, "random", seed=3) and b"".join(rnd) == data
    assert all(1 <= len(c) <= 16 for c in rnd) and len(rnd) > 3
    with pytest.raises(ValueError):
        rechunk(data, 0)


@pytest.mark.parametrize("plan", [None, 1, 5, [1, 2, 3], "random"])
def test_chunking_plans_keep_the_body(srv: FakeProviderServer, http: httpx.Client,
                                      plan: Any) -> None:
    body = ("data: {\"x\": \"é🦅\"}\r\n\r\n" * 20).encode()
    srv.script("*", Scripted(body=body, chunks=plan, seed=1, content_type="text/event-stream"))
    r = http.get(srv.base_url + "/anything")
    assert r.content == body


def test_truncation_closes_mid_body(srv: FakeProviderServer, http: httpx.Client) -> None:
    srv.script("*", Scripted(truncate_after=100))
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), http.stream(
            "POST", srv.url_for("ollama") + "/api/chat",
            json={"model": "m", "messages": USER}) as r:
        for chunk in r.iter_raw():
            got += chunk
    assert len(got) == 100 and not got.endswith(b"\n")
    assert srv.wait_for(lambda: srv.requests[-1].finished.is_set())


def test_clean_truncation_ends_the_body_without_marker(srv: FakeProviderServer,
                                                      http: httpx.Client) -> None:
    srv.script("*", Scripted(truncate_after=100, clean_end=True))
    r = http.post(srv.url_for("openai") + "/chat/completions",
                  json={"model": "m", "messages": USER, "stream": True})
    assert len(r.content) == 100 and b"[DONE]" not in r.content


def test_reset_redirect_stall(srv: FakeProviderServer, http: httpx.Client) -> None:
    srv.script("*", Scripted(reset=True))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.get(srv.base_url + "/api/tags")
    assert srv.requests[-1].status is None
    srv.script("*", Scripted(redirect="https://elsewhere.example/v1"),
               Scripted(status=301, redirect="/moved"))
    r = http.get(srv.base_url + "/api/tags")
    assert (r.status_code, r.headers["location"]) == (307, "https://elsewhere.example/v1")
    r = http.get(srv.base_url + "/api/tags")
    assert (r.status_code, r.headers["location"]) == (301, "/moved")
    srv.script("*", Scripted(stall=(1, 0.3)), Scripted(headers_delay=0.3))
    for _ in range(2):
        t0 = time.monotonic()
        assert http.get(srv.base_url + "/api/tags").status_code == 200
        assert time.monotonic() - t0 >= 0.3


@pytest.mark.parametrize(("flavour", "path", "missing", "wrong"), [
    ("openai", "/v1/chat/completions", 401, 401),
    ("openrouter", "/api/v1/chat/completions", 401, 401),
    ("anthropic", "/v1/messages", 401, 401),
    ("gemini", "/v1beta/models/m:streamGenerateContent", 403, 400),
    ("ollama", "/api/chat", 401, 401),
])
def test_require_key(http: httpx.Client, flavour: str, path: str, missing: int,
                     wrong: int) -> None:
    auth = {"anthropic": "x-api-key", "gemini": "x-goog-api-key"}.get(flavour, "authorization")
    prefix = "Bearer " if auth == "authorization" else ""
    body = {"model": "m", "messages": USER, "max_tokens": 5,
            "contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    with FakeProviderServer(delay=0, require_key="right-key") as srv:
        r = http.post(srv.base_url + path, json=body)
        assert r.status_code == missing and "error" in r.json()
        r = http.post(srv.base_url + path, json=body, headers={auth: prefix + "wrong-key-123"})
        assert r.status_code == wrong
        if flavour == "gemini":
            assert r.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        if flavour == "anthropic":
            assert r.json()["error"]["type"] == "authentication_error"
        assert "wrong-key-123" not in r.text  # like the real APIs: at most a masked hint
        r = http.post(srv.base_url + path, json=body, headers={auth: prefix + "right-key"})
        assert r.status_code == 200


def test_require_key_per_script(srv: FakeProviderServer, http: httpx.Client) -> None:
    srv.script("models", Scripted(require_key="k1"))
    r = http.get(srv.url_for("openai") + "/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert http.get(srv.url_for("openai") + "/models").status_code == 200  # script used up
    srv.script("models", Scripted(require_key="k1"))
    assert http.get(srv.url_for("gemini") + "/v1beta/models",
                    params={"key": "k1"}).status_code == 200


# --------------------------------------------------------------------------- recording


def test_requests_are_recorded(srv: FakeProviderServer, http: httpx.Client) -> None:
    http.post(srv.url_for("gemini") + "/v1beta/models/demo-small:streamGenerateContent",
              params={"alt": "sse"}, headers={"X-Goog-Api-Key": "g-key"},
              json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    rec = srv.requests[-1]
    assert (rec.method, rec.path, rec.query) == (
        "POST", "/v1beta/models/demo-small:streamGenerateContent", {"alt": "sse"})
    assert rec.headers["x-goog-api-key"] == "g-key"
    assert rec.json["contents"][0]["parts"][0]["text"] == "hi"
    assert rec.route == "gemini.chat" and rec.status == 200
    assert "g-key" not in repr(rec)
    srv.clear()
    assert srv.requests == []


def test_concurrent_requests_are_all_recorded(srv: FakeProviderServer) -> None:
    def worker(i: int) -> None:
        with httpx.Client(trust_env=False) as c:
            c.post(srv.url_for("ollama") + "/api/chat",
                   json={"model": "m", "messages": [{"role": "user", "content": str(i)}]})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(r.json["messages"][0]["content"]) for r in srv.requests) == list(range(16))


def test_body_cap_and_unknown_path(http: httpx.Client) -> None:
    with FakeProviderServer(delay=0, max_body=1000) as srv:
        r = http.post(srv.base_url + "/v1/chat/completions", content=b"x" * 2000)
        assert r.status_code == 413 and r.headers.get("connection") != "keep-alive"
        r = http.post(srv.base_url + "/v1/chat/completions", content=b"x" * 500)
        assert r.status_code == 400  # read, not JSON
        r = http.get(srv.base_url + "/nothing/here")
        assert r.status_code == 404 and "Unknown path" in r.json()["error"]["message"]


def test_client_disconnect_is_seen(srv: FakeProviderServer, http: httpx.Client) -> None:
    srv.script("*", Scripted(body=b"x" * 5000, chunks=50, delay=0.01))
    with http.stream("GET", srv.base_url + "/x") as r:
        next(r.iter_raw())
    assert srv.wait_for(lambda: srv.requests[-1].disconnected, timeout=3)


# --------------------------------------------------------------------------- lifecycle


def test_urls_and_lifecycle() -> None:
    srv = FakeProviderServer()
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    srv.start()
    try:
        assert srv.base_url.startswith("http://127.0.0.1:") and srv.port > 0
        assert srv.url_for("openai") == srv.base_url + "/v1"
        assert srv.url_for("openai_compatible") == srv.base_url + "/v1"
        assert srv.url_for("anthropic") == srv.url_for("gemini") == srv.url_for("ollama") \
            == srv.base_url
        with pytest.raises(ValueError):
            srv.url_for("cohere")
        with pytest.raises(RuntimeError):
            srv.start()
    finally:
        srv.stop()
    srv.stop()  # idempotent


def test_stop_is_prompt_with_a_stalled_stream() -> None:
    srv = FakeProviderServer(delay=0).start()
    srv.script("*", Scripted(stall=(1, 60)))
    errors: list[BaseException] = []
    got_first = threading.Event()

    def client() -> None:
        try:
            with httpx.Client(trust_env=False, timeout=30) as c, c.stream(
                    "POST", srv.base_url + "/api/chat",
                    json={"model": "m", "messages": USER}) as r:
                for _ in r.iter_raw():
                    got_first.set()
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=client)
    t.start()
    assert got_first.wait(5)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 20.0  # not the 60 s stall
    t.join(5)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], httpx.RemoteProtocolError)
    assert srv.requests[-1].disconnected


def test_foreground_cli() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-m", "viagent_jupyter.testing", "--port", "0",
                           "--delay", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, cwd=ROOT) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(trust_env=False) as c:
            assert c.get(url + "/api/tags").json()["models"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


@pytest.mark.wire
@pytest.mark.skipif(not WIRE.is_dir(), reason="fixtures/wire recordings not present")
def test_replay_a_recording_byte_by_byte(srv: FakeProviderServer, http: httpx.Client) -> None:
    path = WIRE / "anthropic" / "messages_stream_tool_use__llm_anthropic.1.sse"
    srv.script("anthropic", Scripted.from_recording(path, chunks=1, delay=0))
    r = http.post(srv.url_for("anthropic") + "/v1/messages", json={})
    assert r.content == path.read_bytes()
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
