"""HTTP error mapping, retry hints and secret scrubbing (synthetic bodies)."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from adapter_support import PROVIDER_ID

from viagent_jupyter.adapters import get_adapter
from viagent_jupyter.adapters._common import parse_retry_after, should_retry
from viagent_jupyter.errors import (
    AuthenticationError,
    ProviderAPIError,
    RateLimitError,
    register_secret,
)

ALL_TYPES = ["openai", "openrouter", "openai_compatible", "anthropic", "gemini", "ollama"]


def err_for(provider_type: str, status: int, body: Any, headers: dict[str, str] | None = None,
            model: str | None = "m-1") -> ProviderAPIError:
    raw = body if isinstance(body, bytes) else json.dumps(body, indent=4).encode()
    err = get_adapter(provider_type).error_from_response(status, headers or {}, raw,
                                                         PROVIDER_ID, model)
    assert isinstance(err, ProviderAPIError)
    assert "\n" not in str(err) and len(str(err)) <= 400
    assert err.status_code == status and err.provider == PROVIDER_ID
    return err


def test_openai_insufficient_quota_is_never_retried() -> None:
    body = {"error": {"message": "You exceeded your current quota, please check your plan "
                                 "and billing details.", "type": "insufficient_quota",
                      "param": None, "code": "insufficient_quota"}}
    err = err_for("openai", 429, body)
    assert type(err) is RateLimitError
    assert err.error_type == "insufficient_quota"
    assert "Quota exhausted" in str(err) and "retrying will not help" in str(err)
    assert not should_retry(429, {}, err)
    assert not should_retry(429, {"x-should-retry": "true"}, err)


def test_openai_rate_limit_with_retry_after_ms() -> None:
    body = {"error": {"message": "Rate limit reached for gpt-4o on tokens per min.",
                      "type": "tokens", "param": None, "code": "rate_limit_exceeded"}}
    err = err_for("openai", 429, body, {"retry-after-ms": "1500", "retry-after": "9"})
    assert type(err) is RateLimitError and err.retry_after == 1.5
    assert err.error_type == "rate_limit_exceeded"
    assert "Wait 2 s and retry" in str(err)
    assert should_retry(429, {}, err)


def test_anthropic_529_overloaded_and_x_should_retry() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    err = err_for("anthropic", 529, body, {"x-should-retry": "true"})
    assert type(err) is RateLimitError and err.error_type == "overloaded_error"
    assert "HTTP 529: Overloaded" in str(err)
    assert should_retry(529, {"x-should-retry": "true"}, err)
    assert should_retry(529, {}, err)


def test_anthropic_401_with_x_should_retry_false() -> None:
    body = {"type": "error", "error": {"type": "authentication_error",
                                       "message": "invalid x-api-key"}, "request_id": "req_1"}
    err = err_for("anthropic", 401, body, {"x-should-retry": "false"})
    assert type(err) is AuthenticationError
    msg = str(err)
    assert msg.startswith("Authentication failed on provider 'testprov' (HTTP 401: "
                          "invalid x-api-key). ")
    assert "%llm key testprov" in msg and "ws.providers.update('testprov', api_key=...)" in msg


def test_openrouter_402_credits() -> None:
    body = {"error": {"code": 402, "message": "Insufficient credits. Add more using "
                                              "https://openrouter.ai/credits"}}
    err = err_for("openrouter", 402, body)
    assert type(err) is ProviderAPIError
    assert "credits" in str(err).lower() and "Out of credits" in str(err)
    assert not should_retry(402, {}, err)


def test_openrouter_403_moderation_is_not_an_auth_error() -> None:
    body = {"error": {"code": 403, "message": "Input was flagged", "metadata": {
        "reasons": ["violence"], "flagged_input": "...", "provider_name": "OpenAI"}}}
    err = err_for("openrouter", 403, body)
    assert type(err) is ProviderAPIError and "moderation" in str(err)


def test_gemini_400_api_key_invalid_labelled_sse() -> None:
    body = json.dumps({"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}},
        indent=2).encode() + b"\n"
    err = err_for("gemini", 400, body, {"Content-Type": "text/event-stream"})
    assert type(err) is AuthenticationError
    assert err.error_type == "API_KEY_INVALID"
    assert err.provider_message == "API key not valid. Please pass a valid API key."


def test_gemini_400_other_reason_is_not_auth() -> None:
    body = {"error": {"code": 400, "message": "Invalid value at 'generation_config'",
                      "status": "INVALID_ARGUMENT"}}
    err = err_for("gemini", 400, body)
    assert type(err) is ProviderAPIError and err.error_type == "INVALID_ARGUMENT"
    assert "Request rejected" in str(err)


def test_ollama_404_string_error() -> None:
    err = err_for("ollama", 404, {"error": "model \"nope\" not found, try pulling it first"},
                  model="nope")
    assert err.provider_message == 'model "nope" not found, try pulling it first'
    assert "Check the model id ('nope')" in str(err)


def test_error_as_sse_data_event() -> None:
    body = b'event: error\ndata: {"error": {"message": "bad gateway upstream"}}\n\n'
    err = err_for("openai_compatible", 502, body)
    assert err.provider_message == "bad gateway upstream"
    assert should_retry(502, {}, err)


@pytest.mark.parametrize("provider_type", ALL_TYPES)
def test_html_body_gives_a_short_snippet(provider_type: str) -> None:
    html = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
            + b"<p>" + b"filler " * 500 + b"</p></body></html>")
    err = err_for(provider_type, 502, html)
    assert type(err) is ProviderAPIError
    assert err.provider_message == "502 Bad Gateway"
    assert "filler" not in str(err) and "<" not in str(err)


def test_plain_text_and_empty_bodies() -> None:
    err = err_for("openai_compatible", 500, b"Internal Server Error\n" + b"trace line\n" * 200)
    assert err.provider_message is not None and len(err.provider_message) <= 200
    assert "Server error" in str(err)
    err = err_for("openai_compatible", 503, b"")
    assert err.provider_message is None and "HTTP 503: Service Unavailable" in str(err)


@pytest.mark.parametrize(("status", "cls"), [(400, ProviderAPIError), (401, AuthenticationError),
                                             (403, AuthenticationError), (404, ProviderAPIError),
                                             (408, ProviderAPIError), (413, ProviderAPIError),
                                             (429, RateLimitError), (500, ProviderAPIError),
                                             (529, RateLimitError)])
def test_status_classes(status: int, cls: type[ProviderAPIError]) -> None:
    err = err_for("openai", status, {"error": {"message": "x"}})
    assert type(err) is cls


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("provider_type", ALL_TYPES)
def test_body_echoing_a_key_is_scrubbed(provider_type: str) -> None:
    shaped = "sk-proj-ECHOEDkey0123456789abcdefXYZ"  # scrubbed by shape, never registered
    odd = "plain-Echoed-7731-oddly-shaped-secret"  # only exact-value scrubbing catches it
    register_secret(odd)
    pad = "y" * 170  # puts the keys right where a 200-character snippet would cut them
    body = {"error": {"message": f"{pad} Incorrect API key provided: {shaped} / {odd}",
                      "type": "invalid_request_error", "code": "invalid_api_key"}}
    err = err_for(provider_type, 401, body)
    for text in (str(err), repr(err), err.provider_message or "", err.message):
        for key in (shaped, odd):
            assert key not in text
            assert key[:12] not in text  # not even cut in half
    assert "[REDACTED]" in (err.provider_message or "")


def test_stream_error_echoing_a_key_is_scrubbed() -> None:
    from adapter_support import replay

    key = "sk-ant-api03-STREAMkey0123456789abcdefgh"
    body = b"event: error\ndata: " + json.dumps(
        {"type": "error", "error": {"type": "api_error", "message": f"bad key {key}"}}
    ).encode() + b"\n\n"
    got = replay("anthropic", [body])
    assert got.error_obj is not None
    assert key not in str(got.error_obj) and key not in repr(got.error_obj)
    assert isinstance(got.error_obj, ProviderAPIError)
    assert key not in (got.error_obj.provider_message or "")


# --------------------------------------------------------------------------- retry hints


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "20"}) == 20.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after(httpx.Headers({"RETRY-AFTER": "7"})) == 7.0
    date = formatdate(time.time() + 30, usegmt=True)
    value = parse_retry_after({"Retry-After": date})
    assert value is not None and 25 <= value <= 31
    assert parse_retry_after({"Retry-After": formatdate(time.time() - 30, usegmt=True)}) == 0.0
    for bad in ("soon", "-5", "nan", "inf", ""):
        assert parse_retry_after({"Retry-After": bad}) is None
    assert parse_retry_after({"retry-after-ms": "oops", "retry-after": "3"}) == 3.0
    # OpenRouter: X-RateLimit-Reset is epoch milliseconds
    reset = parse_retry_after({"X-RateLimit-Reset": str(int((time.time() + 40) * 1000))})
    assert reset is not None and 35 <= reset <= 41
    assert parse_retry_after({"X-RateLimit-Reset": "1754667660000"}) is None  # in the past
    # OpenAI/Anthropic quota-reset headers are not retry hints
    assert parse_retry_after({"x-ratelimit-reset-requests": "6m0s",
                              "anthropic-ratelimit-requests-reset": "2026-02-17T23:44:11Z"}) is None


@pytest.mark.parametrize(("status", "want"), [(400, False), (401, False), (402, False),
                                              (404, False), (408, True), (409, True),
                                              (429, True), (500, True), (502, True),
                                              (503, True), (529, True)])
def test_should_retry_statuses(status: int, want: bool) -> None:
    assert should_retry(status, {}, None) is want


def test_should_retry_header_overrides() -> None:
    assert should_retry(500, {"x-should-retry": "false"}) is False
    assert should_retry(400, {"X-Should-Retry": "true"}) is True
    assert should_retry(500, {"x-should-retry": "maybe"}) is True
