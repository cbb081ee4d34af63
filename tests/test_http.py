"""The HTTP loop (adapters/_http.py) over real loopback HTTP against FakeProviderServer:
retries, timeouts, the deadline, redirects, plain-http keys, closing, and no key leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import traceback
from collections.abc import Generator, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from tests._util import PLANTED_KEY, PLANTED_ODD_KEY
from viagent_jupyter.adapters import _http
from viagent_jupyter.adapters.base import HTTPRequest
from viagent_jupyter.errors import (
    AuthenticationError,
    ProviderAPIError,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    RateLimitError,
)
from viagent_jupyter.testing import FakeProviderServer, Scripted

PID = "p1"


def error_from_response(status: int, headers: Mapping[str, str], body: bytes, provider: str,
                        model: str | None) -> Exception:
    """A stand-in for an adapter's mapping (the real ones plug into the same parameter)."""
    try:
        err = json.loads(body).get("error")
    except ValueError:
        err = None
    message = (err.get("message") if isinstance(err, dict) else err) or body[:200].decode()
    etype = (err.get("code") or err.get("type")) if isinstance(err, dict) else None
    cls = (AuthenticationError if status in (401, 403)
           else RateLimitError if status in (429, 529) else ProviderAPIError)
    return cls(f"HTTP {status} from provider '{provider}': {message}", provider, model,
               status_code=status, error_type=etype, provider_message=str(message))


@pytest.fixture
def srv() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with _http.make_client() as c:
        yield c


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits are recorded, not slept; jitter is off so delays are exact."""
    calls: list[float] = []

    async def asleep(delay: float) -> None:
        calls.append(delay)

    monkeypatch.setattr(_http, "_sleep", calls.append)
    monkeypatch.setattr(_http, "_asleep", asleep)
    monkeypatch.setattr(_http, "_random", lambda: 0.0)
    return calls


def chat(url: str, key: str = PLANTED_KEY, **extra: str) -> HTTPRequest:
    return HTTPRequest("POST", url + "/chat/completions",
                       headers={"Authorization": f"Bearer {key}", **extra},
                       json={"model": "demo-small", "stream": True,
                             "messages": [{"role": "user", "content": "hello"}]})


def opts(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"provider": PID, "model": "demo-small", "timeout": 5.0,
                            "error_from_response": error_from_response}
    base.update(kw)
    return base


def fetch(client: httpx.Client, request: HTTPRequest, **kw: Any) -> bytes:
    with _http.stream(client, request, **opts(**kw)) as chunks:
        return b"".join(chunks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- basics


def test_stream_yields_the_body_and_sends_our_headers(srv: FakeProviderServer,
                                                      client: httpx.Client) -> None:
    body = fetch(client, chat(srv.url_for("openai")))
    assert body.startswith(b"data: ") and body.endswith(b"data: [DONE]\n\n")
    rec = srv.requests[-1]
    assert rec.headers["authorization"] == f"Bearer {PLANTED_KEY}"
    assert rec.headers["user-agent"].startswith("viagent-jupyter/")
    assert rec.json["stream"] is True


def test_clients_are_configured() -> None:
    with _http.make_client() as c:
        assert c.follow_redirects is False and c.trust_env is True
        assert c.headers["user-agent"] == _http.user_agent()
    ac = _http.make_async_client()
    assert ac.follow_redirects is False and ac.trust_env is True
    asyncio.run(ac.aclose())
    import viagent_jupyter

    assert _http.user_agent() == f"viagent-jupyter/{viagent_jupyter.__version__}"


def test_bad_options_are_rejected(srv: FakeProviderServer, client: httpx.Client) -> None:
    for bad in ({"timeout": 0}, {"deadline": -1}, {"max_retries": -1}):
        with pytest.raises(ValueError):
            fetch(client, chat(srv.url_for("openai")), **bad)


def test_request_json(srv: FakeProviderServer, client: httpx.Client,
                      sleeps: list[float]) -> None:
    req = HTTPRequest("GET", srv.url_for("anthropic") + "/v1/models",
                      headers={"x-api-key": PLANTED_KEY, "anthropic-version": "2023-06-01"},
                      params={"limit": "1"})
    srv.script("models", Scripted(status=503))
    body = _http.request_json(client, req, **opts(model=None))
    assert json.loads(body)["data"][0]["id"] == "demo-small"
    assert srv.requests[-1].query == {"limit": "1"} and len(sleeps) == 1
    srv.script("models", Scripted(status=404, message="no such thing"))
    with pytest.raises(ProviderAPIError, match="no such thing") as info:
        _http.request_json(client, req, **opts(model=None))
    assert info.value.status_code == 404
    with pytest.raises(ProviderResponseError, match="larger than 50 bytes"):
        _http.request_json(client, req, **opts(model=None), max_bytes=50)


def test_undecodable_body(srv: FakeProviderServer, client: httpx.Client) -> None:
    srv.script("chat", Scripted(body=b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    with pytest.raises(ProviderResponseError, match="could not be decoded"):
        fetch(client, chat(srv.url_for("openai")))


# --------------------------------------------------------------------------- retries


def test_retry_429_with_retry_after_seconds(srv: FakeProviderServer, client: httpx.Client,
                                            sleeps: list[float]) -> None:
    srv.script("chat", Scripted(status=429, retry_after=2))
    assert fetch(client, chat(srv.url_for("openai"))).endswith(b"[DONE]\n\n")
    assert sleeps == [2.0]
    assert [r.status for r in srv.requests] == [429, 200]


def test_retry_after_http_date(srv: FakeProviderServer, client: httpx.Client,
                               sleeps: list[float]) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    srv.script("chat", Scripted(status=429, retry_after=format_datetime(when, usegmt=True)))
    fetch(client, chat(srv.url_for("openai")))
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 3.0


def test_retry_after_ms(srv: FakeProviderServer, client: httpx.Client,
                        sleeps: list[float]) -> None:
    srv.script("chat", Scripted(status=429, retry_after_ms=250, retry_after=30))
    fetch(client, chat(srv.url_for("openai")))
    assert sleeps == [0.25]  # retry-after-ms wins


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 529])
def test_retry_on_transient_status(srv: FakeProviderServer, client: httpx.Client,
                                   sleeps: list[float], status: int) -> None:
    srv.script("chat", Scripted(status=status))
    fetch(client, chat(srv.url_for("openai")))
    assert sleeps == [0.5]
    assert [r.status for r in srv.requests] == [status, 200]


def test_backoff_grows_and_is_capped(srv: FakeProviderServer, client: httpx.Client,
                                     sleeps: list[float],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    srv.script("chat", *[Scripted(status=503)] * 3)
    fetch(client, chat(srv.url_for("openai")), max_retries=3)
    assert sleeps == [0.5, 1.0, 2.0]
    assert _http.backoff_delay(10) == 8.0
    monkeypatch.setattr(_http, "_random", lambda: 1.0)
    assert _http.backoff_delay(0) == pytest.approx(0.375)  # at most 25 % jitter
    assert _http.backoff_delay(0, retry_after=0) == pytest.approx(0.375)  # 0: not a hint
    assert _http.backoff_delay(0, retry_after=61) == pytest.approx(0.375)


@pytest.mark.parametrize(("status", "cls"), [(400, ProviderAPIError), (401, AuthenticationError),
                                             (403, AuthenticationError),
                                             (404, ProviderAPIError)])
def test_no_retry_on_client_errors(srv: FakeProviderServer, client: httpx.Client,
                                   sleeps: list[float], status: int,
                                   cls: type[ProviderAPIError]) -> None:
    srv.script("chat", Scripted(status=status))
    with pytest.raises(cls) as info:
        fetch(client, chat(srv.url_for("openai")))
    assert type(info.value) is cls and info.value.status_code == status
    assert info.value.provider == PID
    assert len(srv.requests) == 1 and sleeps == []


def test_no_retry_on_insufficient_quota(srv: FakeProviderServer, client: httpx.Client,
                                        sleeps: list[float]) -> None:
    srv.script("chat", Scripted(status=429, code="insufficient_quota", retry_after=1))
    with pytest.raises(RateLimitError) as info:
        fetch(client, chat(srv.url_for("openai")))
    assert info.value.error_type == "insufficient_quota"
    assert len(srv.requests) == 1 and sleeps == []


def test_x_should_retry_is_honoured(srv: FakeProviderServer, client: httpx.Client,
                                    sleeps: list[float]) -> None:
    srv.script("chat", Scripted(status=503, headers={"x-should-retry": "false"}))
    with pytest.raises(ProviderAPIError):
        fetch(client, chat(srv.url_for("openai")))
    assert len(srv.requests) == 1
    srv.script("chat", Scripted(status=400, headers={"x-should-retry": "true"}))
    fetch(client, chat(srv.url_for("openai")))
    assert [r.status for r in srv.requests] == [503, 400, 200] and sleeps == [0.5]


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_counts_retries(srv: FakeProviderServer, client: httpx.Client,
                                    sleeps: list[float], max_retries: int) -> None:
    srv.script("chat", *[Scripted(status=503)] * 10)
    with pytest.raises(ProviderAPIError) as info:
        fetch(client, chat(srv.url_for("openai")), max_retries=max_retries)
    assert info.value.status_code == 503
    assert len(srv.requests) == 1 + max_retries and len(sleeps) == max_retries


def test_retry_after_above_60s_raises_at_once(srv: FakeProviderServer, client: httpx.Client,
                                              sleeps: list[float]) -> None:
    srv.script("chat", Scripted(status=429, retry_after=120))
    t0 = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        fetch(client, chat(srv.url_for("openai")))
    assert time.monotonic() - t0 < 30.0  # not the 120 s it asked for
    assert info.value.retry_after == 120.0
    assert len(srv.requests) == 1 and sleeps == []


def test_connection_refused_is_retried_then_reported(client: httpx.Client,
                                                     sleeps: list[float]) -> None:
    port = free_port()
    with pytest.raises(ProviderConnectionError) as info:
        fetch(client, chat(f"http://127.0.0.1:{port}/v1"))
    msg = str(info.value)
    assert "connection refused" in msg and f"127.0.0.1:{port}" in msg and f"'{PID}'" in msg
    assert "base_url" in msg and "\n" not in msg
    assert sleeps == [0.5, 1.0]  # max_retries=2 → 3 attempts
    assert info.value.code == "PROVIDER_UNREACHABLE"


def test_reset_before_answer_is_retried(srv: FakeProviderServer, client: httpx.Client,
                                        sleeps: list[float]) -> None:
    srv.script("chat", Scripted(reset=True))
    fetch(client, chat(srv.url_for("openai")))
    assert len(srv.requests) == 2 and sleeps == [0.5]


def test_no_headers_within_timeout_is_retried(srv: FakeProviderServer, client: httpx.Client,
                                              sleeps: list[float]) -> None:
    srv.script("chat", Scripted(headers_delay=5))
    fetch(client, chat(srv.url_for("openai")), timeout=0.3)
    assert len(srv.requests) == 2 and sleeps == [0.5]


def test_deadline_stops_retrying(srv: FakeProviderServer, client: httpx.Client,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "_sleep", time.sleep)  # real waits: the deadline is wall time
    srv.script("chat", *[Scripted(status=503, retry_after=0.3)] * 5)
    t0 = time.monotonic()
    with pytest.raises(ProviderAPIError) as info:
        fetch(client, chat(srv.url_for("openai")), max_retries=5, deadline=0.5)
    assert info.value.status_code == 503
    assert len(srv.requests) == 2  # a third wait would end past the deadline
    assert time.monotonic() - t0 < 0.5


# --------------------------------------------------------------------------- timeouts


def test_stall_between_chunks_times_out(srv: FakeProviderServer, client: httpx.Client,
                                        sleeps: list[float]) -> None:
    srv.script("chat", Scripted(stall=(3, 60)))
    got: list[bytes] = []
    t0 = time.monotonic()
    with pytest.raises(ProviderConnectionError) as info, _http.stream(
            client, chat(srv.url_for("openai")), **opts(timeout=0.3)) as chunks:
        for chunk in chunks:
            got.append(chunk)
    assert time.monotonic() - t0 < 20.0  # the 0.3 s timeout, not the 60 s stall
    assert len(got) == 3  # what came before the stall was handed out
    msg = str(info.value)
    assert "no data for 0.3 s (timeout)" in msg and "incomplete" in msg
    assert len(srv.requests) == 1 and sleeps == []  # never retried after the body started


def test_overall_deadline_on_a_dribbling_stream(srv: FakeProviderServer,
                                                client: httpx.Client) -> None:
    srv.script("chat", Scripted(body=b"x" * 100, chunks=1, delay=0.5))  # 50 s in all
    t0 = time.monotonic()
    with pytest.raises(ProviderConnectionError, match=r"overall deadline of 0\.4 s"):
        fetch(client, chat(srv.url_for("openai")), deadline=0.4)
    assert 0.4 <= time.monotonic() - t0 < 20.0


def test_overall_deadline_on_a_stalled_stream(srv: FakeProviderServer,
                                              client: httpx.Client) -> None:
    srv.script("chat", Scripted(stall=(1, 60)))
    t0 = time.monotonic()
    with pytest.raises(ProviderConnectionError, match="deadline"):
        fetch(client, chat(srv.url_for("openai")), timeout=30, deadline=0.5)
    assert time.monotonic() - t0 < 20.0  # the timer cut the blocked read


def test_deadline_before_the_headers(srv: FakeProviderServer, client: httpx.Client) -> None:
    srv.script("chat", Scripted(headers_delay=60))
    t0 = time.monotonic()
    with pytest.raises(ProviderConnectionError, match="deadline"):
        fetch(client, chat(srv.url_for("openai")), timeout=30, deadline=0.4)
    assert time.monotonic() - t0 < 20.0


def test_connect_timeout(client: httpx.Client, sleeps: list[float]) -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, connect hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                s = socket.socket()
                fillers.append(s)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
            time.sleep(0.05)
            with pytest.raises(ProviderConnectionError) as info:
                fetch(client, chat(f"http://127.0.0.1:{port}/v1"), connect_timeout=0.2,
                      max_retries=0)
        finally:
            for s in fillers:
                s.close()
    assert "no connection within 0.2 s (connect timeout)" in str(info.value)


# --------------------------------------------------------------------------- redirects, http


def test_redirect_is_not_followed(srv: FakeProviderServer, client: httpx.Client,
                                  sleeps: list[float]) -> None:
    with FakeProviderServer(delay=0) as other:
        srv.script("chat", Scripted(redirect=other.url_for("openai") + "/chat/completions"))
        with pytest.raises(ProviderConnectionError) as info:
            fetch(client, chat(srv.url_for("openai")))
        assert other.requests == []  # the key never went to the other origin
    msg = str(info.value)
    assert f"127.0.0.1:{other.port}/v1/chat/completions" in msg
    assert "307" in msg and "fix base_url" in msg
    assert len(srv.requests) == 1 and sleeps == []
    srv.script("chat", Scripted(status=301, redirect="https://api.elsewhere.example/v2?x=1"))
    with pytest.raises(ProviderConnectionError, match=r"api\.elsewhere\.example") as info:
        fetch(client, chat(srv.url_for("openai")))
    assert "x=1" not in str(info.value)


class Recorder:
    """A transport that counts calls: proves no connection was attempted."""

    def __init__(self) -> None:
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        return httpx.Response(200, content=b"ok")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer k"}, {"x-api-key": "k"},
                                     {"x-goog-api-key": "k"}, {"api-key": "k"}])
def test_key_over_plain_http_is_refused_before_connecting(headers: dict[str, str]) -> None:
    rec = Recorder()
    req = HTTPRequest("POST", "http://example.invalid/v1/chat/completions", headers=headers,
                      json={})
    with _http.make_client(transport=httpx.MockTransport(rec)) as c, \
            pytest.raises(ProviderConnectionError) as info:
        fetch(c, req)
    assert rec.calls == []  # refused before any request was made
    assert str(info.value) == (
        f"Refusing to send the API key for provider '{PID}' over plain http to host "
        "example.invalid; use https or set allow_insecure_http=True.")


def test_key_in_query_over_plain_http_is_refused() -> None:
    rec = Recorder()
    req = HTTPRequest("GET", "http://example.invalid/v1beta/models", headers={},
                      params={"key": "k"})
    with _http.make_client(transport=httpx.MockTransport(rec)) as c, \
            pytest.raises(ProviderConnectionError, match="plain http"):
        _http.request_json(c, req, **opts())
    assert rec.calls == []


@pytest.mark.parametrize(("url", "headers", "allow"), [
    ("http://127.0.0.1:9/x", {"Authorization": "Bearer k"}, False),
    ("http://127.8.9.10/x", {"Authorization": "Bearer k"}, False),
    ("http://localhost:11434/api/chat", {"Authorization": "Bearer k"}, False),
    ("http://[::1]:8000/x", {"x-api-key": "k"}, False),
    ("https://example.invalid/x", {"Authorization": "Bearer k"}, False),
    ("http://example.invalid/x", {"Authorization": "Bearer k"}, True),
    ("http://example.invalid/x", {}, False),  # no key, nothing to protect
])
def test_allowed_plain_http(url: str, headers: dict[str, str], allow: bool) -> None:
    rec = Recorder()
    with _http.make_client(transport=httpx.MockTransport(rec)) as c:
        assert fetch(c, HTTPRequest("GET", url, headers=headers),
                     allow_insecure_http=allow) == b"ok"
    assert len(rec.calls) == 1


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.255.0.9", "localhost", "LOCALHOST.", "::1", "[::1]",
                 "::ffff:127.0.0.1"):
        assert _http.is_loopback(host), host
    for host in ("10.0.0.1", "0.0.0.0", "localhost.example.com", "example.invalid", "::2",
                 "128.0.0.1"):
        assert not _http.is_loopback(host), host


# --------------------------------------------------------------------------- the body


def test_truncation_mid_body_after_chunks(srv: FakeProviderServer, client: httpx.Client) -> None:
    srv.script("chat", Scripted(truncate_after=200))
    got = bytearray()
    with pytest.raises(ProviderConnectionError) as info, _http.stream(
            client, chat(srv.url_for("openai")), **opts()) as chunks:
        for chunk in chunks:
            got += chunk
    assert len(got) == 200
    assert "broke mid-answer (incomplete body)" in str(info.value)
    assert len(srv.requests) == 1


def _slow_body(srv: FakeProviderServer) -> None:
    srv.script("chat", Scripted(body=b"y" * 6000, chunks=60, delay=0.01))


def test_leaving_the_context_closes_the_connection(srv: FakeProviderServer,
                                                   client: httpx.Client) -> None:
    _slow_body(srv)
    with _http.stream(client, chat(srv.url_for("openai")), **opts()) as chunks:
        assert set(next(chunks)) == {ord("y")}
    assert srv.wait_for(lambda: srv.requests[-1].disconnected, timeout=3)


def test_keyboard_interrupt_closes_the_connection(srv: FakeProviderServer,
                                                  client: httpx.Client) -> None:
    _slow_body(srv)
    with pytest.raises(KeyboardInterrupt), _http.stream(
            client, chat(srv.url_for("openai")), **opts()) as chunks:
        next(chunks)
        raise KeyboardInterrupt
    assert srv.wait_for(lambda: srv.requests[-1].disconnected, timeout=3)


def test_generator_exit_closes_the_connection(srv: FakeProviderServer,
                                              client: httpx.Client) -> None:
    _slow_body(srv)

    def deltas() -> Generator[bytes, None, None]:
        with _http.stream(client, chat(srv.url_for("openai")), **opts()) as chunks:
            yield from chunks

    gen = deltas()
    next(gen)
    gen.close()
    assert srv.wait_for(lambda: srv.requests[-1].disconnected, timeout=3)


def test_a_finished_stream_keeps_the_connection(srv: FakeProviderServer,
                                                client: httpx.Client) -> None:
    for _ in range(3):
        fetch(client, chat(srv.url_for("openai")))
    assert [r.disconnected for r in srv.requests] == [False] * 3


# --------------------------------------------------------------------------- mapping


def _transport_errors() -> list[type[httpx.TransportError]]:
    out: list[type[httpx.TransportError]] = [httpx.TransportError]
    for cls in out:
        out += [c for c in cls.__subclasses__() if c not in out]
    return out


@pytest.mark.parametrize("cls", _transport_errors(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("streaming", [False, True])
def test_every_transport_error_is_mapped(cls: type[httpx.TransportError],
                                         streaming: bool) -> None:
    request = httpx.Request("GET", "https://api.example.com:8443/v1/models?key=SECRETQUERY")
    request.extensions["timeout"] = {"connect": 10.0, "read": 60.0, "write": 60.0,
                                     "pool": 10.0}
    exc = cls("boom with raw detail", request=request)
    err = _http.map_transport_error(exc, PID, "m", streaming=streaming)
    assert type(err) is ProviderConnectionError
    assert (err.provider, err.model, err.code) == (PID, "m", "PROVIDER_UNREACHABLE")
    msg = str(err)
    assert f"provider '{PID}'" in msg.lower() and "\n" not in msg
    assert "SECRETQUERY" not in msg and "raw detail" not in msg
    if cls is not httpx.UnsupportedProtocol:
        assert "api.example.com:8443" in msg


def test_mapping_messages() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1234/v1/chat/completions")
    request.extensions["timeout"] = {"connect": 10.0, "read": 60.0, "write": 60.0,
                                     "pool": 10.0}
    refused = httpx.ConnectError("x", request=request)
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert str(_http.map_transport_error(refused, "oa")) == (
        "Could not reach provider 'oa' at 127.0.0.1:1234 (connection refused). "
        "Check base_url / that the server is running.")
    dns = httpx.ConnectError("x", request=request)
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert "(host name not found)" in str(_http.map_transport_error(dns, "oa"))
    read = httpx.ReadTimeout("x", request=request)
    assert "sent no response for 60 s (timeout)" in str(_http.map_transport_error(read, "oa"))
    assert "sent no data for 60 s (timeout)" in str(
        _http.map_transport_error(read, "oa", streaming=True))
    assert "connect timeout" in str(
        _http.map_transport_error(httpx.ConnectTimeout("x", request=request), "oa"))
    orphan = httpx.ReadError("x")  # no request attached
    assert "its base_url" in str(_http.map_transport_error(orphan, "oa"))


# --------------------------------------------------------------------------- secrets


def test_planted_keys_never_leak(srv: FakeProviderServer, client: httpx.Client,
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {PLANTED_KEY} "
                                            f"and {PLANTED_ODD_KEY}", "code": "invalid_api_key"}})
    errors: list[BaseException] = []
    with FakeProviderServer(delay=0) as other:
        srv.script("chat",
                   Scripted(status=401, body=echo, content_type="application/json"),
                   Scripted(status=429, retry_after=1), Scripted(stall=(2, 10)),
                   Scripted(redirect=other.url_for("openai") + "/chat/completions"),
                   Scripted(truncate_after=50))
        req = chat(srv.url_for("openai"), PLANTED_KEY, **{"x-api-key": PLANTED_ODD_KEY})
        for kw in ({}, {"timeout": 0.3}, {}, {}):
            with pytest.raises(ProviderError) as info:
                fetch(client, req, **kw)
            errors.append(info.value)
        with pytest.raises(ProviderConnectionError) as refused:
            fetch(client, chat(f"http://127.0.0.1:{free_port()}/v1", PLANTED_KEY))
        errors.append(refused.value)
        assert other.requests == []
    assert [type(e).__name__ for e in errors] == [
        "AuthenticationError", "ProviderConnectionError", "ProviderConnectionError",
        "ProviderConnectionError", "ProviderConnectionError"]
    # errors[1] is the stall: the 429 was retried and the retry stalled
    texts = []
    for err in errors:
        texts += [str(err), repr(err), *map(str, err.args),
                  *map(str, vars(err).values()),
                  "".join(traceback.format_exception(type(err), err, err.__traceback__))]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert PLANTED_KEY not in text and PLANTED_ODD_KEY not in text
    ours = [r.getMessage() for r in caplog.records if r.name == "viagent_jupyter.http"]
    assert any("POST http://127.0.0.1:" in m and "attempt 1/3" in m for m in ours)
    assert any("-> 401" in m for m in ours) and any("retrying" in m for m in ours)
    # ...while the server saw the key, on its own origin only
    sent = [r.headers for r in srv.requests]
    assert sent and all(h["authorization"] == f"Bearer {PLANTED_KEY}" for h in sent)
    assert all(h["x-api-key"] == PLANTED_ODD_KEY for h in sent)


def test_log_lines_carry_no_query(srv: FakeProviderServer, client: httpx.Client,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="viagent_jupyter.http")
    req = HTTPRequest("GET", srv.url_for("gemini") + "/v1beta/models", headers={},
                      params={"key": "query-secret-123"})
    _http.request_json(client, req, **opts())
    ours = [r.getMessage() for r in caplog.records if r.name == "viagent_jupyter.http"]
    assert ours and all("query-secret-123" not in m for m in ours)
    assert any("/v1beta/models?…" in m and "-> 200" in m for m in ours)


# --------------------------------------------------------------------------- async twin


async def afetch(client: httpx.AsyncClient, request: HTTPRequest, **kw: Any) -> bytes:
    async with _http.astream(client, request, **opts(**kw)) as chunks:
        return b"".join([c async for c in chunks])


def arun(coro: Any) -> Any:
    return asyncio.run(coro)


def test_async_success_and_retry(srv: FakeProviderServer, sleeps: list[float]) -> None:
    async def main() -> bytes:
        async with _http.make_async_client() as c:
            return await afetch(c, chat(srv.url_for("openai")))

    srv.script("chat", Scripted(status=429, retry_after=3), Scripted(status=529))
    assert arun(main()).endswith(b"data: [DONE]\n\n")
    assert sleeps == [3.0, 1.0]
    assert [r.status for r in srv.requests] == [429, 529, 200]


def test_async_no_retry_and_retry_after_above_60(srv: FakeProviderServer,
                                                 sleeps: list[float]) -> None:
    async def main() -> None:
        async with _http.make_async_client() as c:
            with pytest.raises(AuthenticationError):
                await afetch(c, chat(srv.url_for("openai")))
            with pytest.raises(RateLimitError) as info:
                await afetch(c, chat(srv.url_for("openai")))
            assert info.value.retry_after == 90.0

    srv.script("chat", Scripted(status=401), Scripted(status=429, retry_after=90))
    arun(main())
    assert len(srv.requests) == 2 and sleeps == []


def test_async_refused_and_insecure(sleeps: list[float]) -> None:
    port = free_port()

    async def main() -> None:
        async with _http.make_async_client() as c:
            with pytest.raises(ProviderConnectionError, match="connection refused"):
                await afetch(c, chat(f"http://127.0.0.1:{port}/v1"), max_retries=1)
            with pytest.raises(ProviderConnectionError, match="plain http"):
                await afetch(c, chat("http://example.invalid/v1"))

    arun(main())
    assert sleeps == [0.5]


def test_async_stall_times_out(srv: FakeProviderServer) -> None:
    srv.script("chat", Scripted(stall=(2, 60)))
    got: list[bytes] = []

    async def main() -> None:
        async with _http.make_async_client() as c:
            with pytest.raises(ProviderConnectionError, match=r"no data for 0.3 s \(timeout\)"):
                async with _http.astream(c, chat(srv.url_for("openai")),
                                         **opts(timeout=0.3)) as chunks:
                    async for chunk in chunks:
                        got.append(chunk)

    t0 = time.monotonic()
    arun(main())
    assert time.monotonic() - t0 < 20.0 and len(got) == 2  # 0.3 s timeout, not 60 s stall


def test_async_deadline(srv: FakeProviderServer) -> None:
    srv.script("chat", Scripted(stall=(1, 60)), Scripted(headers_delay=60),
               Scripted(body=b"z" * 100, chunks=1, delay=0.5))

    async def main() -> None:
        async with _http.make_async_client() as c:
            for _ in range(3):
                t0 = time.monotonic()
                with pytest.raises(ProviderConnectionError, match=r"overall deadline of 0\.4 s"):
                    await afetch(c, chat(srv.url_for("openai")), timeout=30, deadline=0.4)
                assert 0.35 <= time.monotonic() - t0 < 20.0

    arun(main())


def test_async_truncation(srv: FakeProviderServer) -> None:
    srv.script("chat", Scripted(truncate_after=120))
    got = bytearray()

    async def main() -> None:
        async with _http.make_async_client() as c:
            with pytest.raises(ProviderConnectionError, match="mid-answer"):
                async with _http.astream(c, chat(srv.url_for("openai")), **opts()) as chunks:
                    async for chunk in chunks:
                        got.extend(chunk)

    arun(main())
    assert len(got) == 120


def test_async_leaving_and_cancelling_close_the_connection(srv: FakeProviderServer) -> None:
    _slow_body(srv)
    _slow_body(srv)

    async def consume(c: httpx.AsyncClient, started: asyncio.Event) -> None:
        async with _http.astream(c, chat(srv.url_for("openai")), **opts()) as chunks:
            async for _ in chunks:
                started.set()

    async def main() -> None:
        async with _http.make_async_client() as c:
            async with _http.astream(c, chat(srv.url_for("openai")), **opts()) as chunks:
                it = aiter(chunks)
                assert set(await anext(it)) == {ord("y")}
            started = asyncio.Event()
            task = asyncio.create_task(consume(c, started))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    arun(main())
    assert srv.wait_for(lambda: len(srv.requests) == 2
                        and all(r.disconnected for r in srv.requests), timeout=3)


def test_async_request_json(srv: FakeProviderServer, sleeps: list[float]) -> None:
    srv.script("models", Scripted(status=500))
    req = HTTPRequest("GET", srv.url_for("ollama") + "/api/tags", headers={})

    async def main() -> bytes:
        async with _http.make_async_client() as c:
            return await _http.arequest_json(c, req, **opts())

    assert json.loads(arun(main()))["models"][0]["name"] == "demo-small:latest"
    assert sleeps == [0.5]

