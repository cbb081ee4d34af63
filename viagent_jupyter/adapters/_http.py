"""The protocol-agnostic HTTP loop: send one request, retry it, stream its body.

Adapters build an :class:`~.base.HTTPRequest` and parse body bytes; this module does the
I/O in between, the same way for every protocol, sync (:func:`stream`,
:func:`request_json`) and async (:func:`astream`, :func:`arequest_json`). Every decision
(timeouts, the deadline, retry and backoff, redirects, plain-http keys, error mapping) lives
in plain functions and in :class:`_Call`, shared by both; only the I/O calls are written
twice.

Semantics
---------
* ``timeout`` is the longest silence allowed on the connection: waiting for the response
  headers, and between two body chunks (httpx's read/write timeouts). ``connect_timeout``
  bounds opening the connection. ``deadline`` (``None`` = none) bounds the whole call,
  retries and backoff included; when it passes the call fails with
  :class:`ProviderConnectionError` saying so. Async: exact (an anyio cancel scope around each
  wait). Sync: every wait is capped by the time left and, once the headers are in, a timer
  shuts the socket down at the deadline, so a stalled read ends on time too.
* Retries happen only before a 2xx answer is accepted, so never after a body byte was handed
  out: on connection failures (refused, reset, DNS, connect timeout, no headers within
  ``timeout``) and on the statuses :func:`._common.should_retry` accepts (408, 409, 429, 5xx,
  529; ``x-should-retry`` honoured; never an exhausted quota). ``max_retries`` counts
  retries, so at most ``1 + max_retries`` attempts. Backoff is exponential with jitter
  (0.5 s, x2, capped at 8 s, minus up to 25 %) unless the provider names a delay
  (``retry-after-ms`` / ``Retry-After``); a named delay above 60 s is not waited for: the
  error (a :class:`RateLimitError` for a 429, carrying ``retry_after``) is raised at once.
* Redirects are never followed: a request may carry a key, and a key goes only to its own
  origin. A 3xx answer raises :class:`ProviderConnectionError` (the request did not reach the
  API it was meant for: same remedy as an unreachable host, fix ``base_url``) naming the
  target host.
* A request carrying a key (``Authorization``, ``x-api-key``, ``x-goog-api-key``,
  ``api-key`` header, or a ``key`` query parameter) is refused before any connection is made
  when it would go over plain ``http`` to a host that is not loopback (127.0.0.0/8, ::1,
  ``localhost``), unless ``allow_insecure_http``.
* A non-2xx answer: its body is read (at most 1 MiB) and
  ``error_from_response(status, headers, body, provider, model)`` (the adapter's) gives the
  error to raise.
* A transport failure is mapped by :func:`map_transport_error` (the one place) onto
  :class:`ProviderConnectionError`, also when the connection breaks mid-body after chunks
  were delivered (the caller keeps the partial text).
* Leaving the context manager (normally, by an exception, ``KeyboardInterrupt`` or
  ``GeneratorExit``) closes the response, and so its connection, at once.
* Logging (``viagent_jupyter.http``, DEBUG): method, URL without its query, status, attempt,
  elapsed time. Never headers, never bodies.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import random
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
)
from contextlib import aclosing, asynccontextmanager, contextmanager, suppress
from typing import cast

import anyio
import httpx

from ..errors import (
    ProviderAPIError,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    register_secret,
)
from ._common import parse_retry_after, should_retry
from .base import HTTPRequest

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DEFAULT_CONNECT_TIMEOUT",
    "ERROR_BODY_LIMIT",
    "JSON_BODY_LIMIT",
    "MAX_RETRY_AFTER",
    "ErrorFromResponse",
    "arequest_json",
    "astream",
    "backoff_delay",
    "carries_key",
    "is_loopback",
    "make_async_client",
    "make_client",
    "map_transport_error",
    "request_json",
    "stream",
    "user_agent",
]

log = logging.getLogger("viagent_jupyter.http")

#: ``error_from_response(status, headers, body, provider, model)``: the adapter's mapping of
#: a non-2xx answer onto the error tree.
ErrorFromResponse = Callable[[int, Mapping[str, str], bytes, str, str | None], Exception]

DEFAULT_CONNECT_TIMEOUT = 10.0
MAX_RETRY_AFTER = 60.0  # a provider-named delay above this is not waited for
BACKOFF_BASE = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_CAP = 8.0
BACKOFF_JITTER = 0.25  # each backoff delay is shortened by up to this fraction
ERROR_BODY_LIMIT = 1 << 20  # bytes of a non-2xx body handed to error_from_response
JSON_BODY_LIMIT = 64 << 20  # bytes request_json accepts (a full OpenRouter list is ~1 MB)

_KEY_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})
_KEY_PARAMS = frozenset({"key", "api_key", "api-key"})
_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=8, keepalive_expiry=30.0)
_DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=DEFAULT_CONNECT_TIMEOUT)

# Injectable for tests: the waits between attempts, and the jitter source.
_sleep: Callable[[float], None] = time.sleep
_asleep: Callable[[float], Awaitable[None]] = anyio.sleep
_random: Callable[[], float] = random.random


# --------------------------------------------------------------------------- clients


def user_agent() -> str:
    """``viagent-jupyter/<version>`` (``0`` while the package has no version)."""
    version = getattr(sys.modules.get("viagent_jupyter"), "__version__", None)
    return f"viagent-jupyter/{version or '0'}"


class _Client(httpx.Client):
    """Never an environment proxy for loopback: a key to a local server must not travel in
    clear text to (or through) a proxy. Other hosts follow ``HTTP(S)_PROXY``/``NO_PROXY``."""

    def _transport_for_url(self, url: httpx.URL) -> httpx.BaseTransport:
        if is_loopback(url.host):
            return self._transport
        return super()._transport_for_url(url)


class _AsyncClient(httpx.AsyncClient):
    """The async twin of :class:`_Client`."""

    def _transport_for_url(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        if is_loopback(url.host):
            return self._transport
        return super()._transport_for_url(url)


def make_client(*, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A pooled client: no redirects followed, proxies and CA bundle from the environment
    (``HTTPS_PROXY``, ``NO_PROXY``, ``SSL_CERT_FILE``...) except that loopback hosts
    (127.0.0.0/8, ``localhost``, ``[::1]``) never go through a proxy; our User-Agent.
    Timeouts are set per request by :func:`stream`."""
    return _Client(
        follow_redirects=False,
        trust_env=True,
        limits=_LIMITS,
        timeout=_DEFAULT_TIMEOUT,
        headers={"User-Agent": user_agent()},
        transport=transport,
    )


def make_async_client(*, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The async twin of :func:`make_client`."""
    return _AsyncClient(
        follow_redirects=False,
        trust_env=True,
        limits=_LIMITS,
        timeout=_DEFAULT_TIMEOUT,
        headers={"User-Agent": user_agent()},
        transport=transport,
    )


# --------------------------------------------------------------------------- decisions


def backoff_delay(retries_done: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``retries_done + 1``: the provider's
    ``retry_after`` when it is in (0, 60], else ``0.5 * 2**retries_done`` capped at 8 s,
    shortened by up to 25 % of jitter."""
    if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER:
        return retry_after
    delay = min(BACKOFF_BASE * BACKOFF_FACTOR**retries_done, BACKOFF_CAP)
    return delay * (1 - BACKOFF_JITTER * _random())


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) and ``localhost``."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable_json(value: object) -> object:
    """``value`` with every lone surrogate (which UTF-8 cannot encode: a prompt built from
    ``"\\ud800"`` text) replaced by U+FFFD; unchanged objects are returned as they are."""
    if isinstance(value, str):
        return value if value.isascii() or not _SURROGATE.search(value) else \
            _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {k: encodable_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable_json(v) for v in value]
    return value


def carries_key(headers: Mapping[str, str], url: httpx.URL) -> bool:
    """Whether a request would send a credential (auth header or ``key`` query parameter)."""
    if any(name.lower() in _KEY_HEADERS and value for name, value in headers.items()):
        return True
    return any(name.lower() in _KEY_PARAMS for name in url.params)


def _host_port(url: httpx.URL) -> str:
    host = url.host or "?"
    if ":" in host:
        host = f"[{host}]"
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return f"{host}:{port}" if port else host


def _log_url(url: httpx.URL) -> str:
    """The URL for a log line: no user info, no query (a key may hide in it)."""
    port = f":{url.port}" if url.port else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}{url.path}" + ("?…" if url.query else "")


def _seconds(value: float | None) -> str:
    return "the allowed time" if value is None else f"{value:g} s"


def _timeout_of(exc: httpx.TransportError, kind: str) -> float | None:
    try:
        timeouts = exc.request.extensions.get("timeout") or {}
    except RuntimeError:  # an exception built without its request
        return None
    value = timeouts.get(kind)
    return float(value) if isinstance(value, (int, float)) else None


def _where(exc: httpx.TransportError, url: httpx.URL | None) -> str:
    with suppress(RuntimeError):  # an exception built without its request
        url = exc.request.url
    return _host_port(url) if url is not None else "its base_url"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _reason(exc: httpx.TransportError) -> str:
    """A short, fixed description of why a connection failed (never the raw text, which
    for some protocol errors quotes header bytes)."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "TLS certificate verification failed"
        if isinstance(cause, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network unreachable"
    text = str(exc).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("name resolution", "host name not found"),
        ("getaddrinfo", "host name not found"),
        ("certificate", "TLS certificate verification failed"),
        ("ssl", "TLS handshake failed"),
        ("reset", "connection reset"),
        ("incomplete", "incomplete body"),
        ("disconnected", "server disconnected"),
        ("unreachable", "network unreachable"),
    ):
        if needle in text:
            return reason
    return "connection failed"


def map_transport_error(
    exc: httpx.TransportError,
    provider: str,
    model: str | None = None,
    *,
    streaming: bool = False,
    url: httpx.URL | None = None,
) -> ProviderError:
    """The one mapping of httpx transport failures onto the error tree: always a
    :class:`ProviderConnectionError` with a one-line message (what failed, where, what to
    do). ``streaming``: the failure came after the body had started."""
    who = f"provider '{provider}'"
    where = _where(exc, url)
    if isinstance(exc, httpx.ConnectTimeout):
        msg = (f"Could not reach {who} at {where}: no connection within "
               f"{_seconds(_timeout_of(exc, 'connect'))} (connect timeout). Check base_url, "
               "the network and any proxy settings.")
    elif isinstance(exc, httpx.ReadTimeout):
        silence = _seconds(_timeout_of(exc, "read"))
        if streaming:
            msg = (f"Provider '{provider}' at {where} sent no data for {silence} (timeout); "
                   "the answer is incomplete. Try again, or raise the provider's timeout.")
        else:
            msg = (f"Provider '{provider}' at {where} sent no response for {silence} "
                   "(timeout). It may be busy: try again, or raise the provider's timeout.")
    elif isinstance(exc, httpx.WriteTimeout):
        msg = (f"Could not send the request to {who} at {where} within "
               f"{_seconds(_timeout_of(exc, 'write'))} (write timeout). Check the network, "
               "or raise the provider's timeout.")
    elif isinstance(exc, httpx.PoolTimeout):
        msg = (f"No free connection to {who} at {where} within "
               f"{_seconds(_timeout_of(exc, 'pool'))} (pool timeout): too many requests at "
               "once. Try again.")
    elif isinstance(exc, httpx.ProxyError):
        msg = (f"The proxy failed the connection to {who} at {where} (proxy error). Check "
               "HTTPS_PROXY / HTTP_PROXY / NO_PROXY.")
    elif isinstance(exc, httpx.UnsupportedProtocol):
        msg = (f"Cannot connect to {who}: its URL scheme is not supported. base_url must "
               "start with http:// or https://.")
    elif isinstance(exc, httpx.LocalProtocolError):
        msg = (f"Could not send the request to {who} at {where}: it is not valid HTTP "
               "(local protocol error). Check the provider's extra headers.")
    elif isinstance(exc, httpx.ConnectError):
        reason = _reason(exc)
        todo = ("Check base_url, or point SSL_CERT_FILE at your CA bundle." if "TLS" in reason
                else "Check base_url / that the server is running.")
        msg = f"Could not reach {who} at {where} ({reason}). {todo}"
    elif streaming:  # ReadError, WriteError, CloseError, RemoteProtocolError mid-body
        msg = (f"The connection to {who} at {where} broke mid-answer ({_reason(exc)}); the "
               "answer is incomplete. Try again.")
    else:
        msg = (f"Provider '{provider}' at {where} closed the connection without answering "
               f"({_reason(exc)}). Check base_url / that the server is running, then try "
               "again.")
    return ProviderConnectionError(msg, provider, model)


def _retryable_transport(exc: httpx.TransportError) -> bool:
    """Connection failures worth another attempt (not: proxy/scheme/local protocol errors,
    nor a certificate that will fail the same way)."""
    if isinstance(exc, httpx.ConnectError) and _reason(exc).startswith("TLS certificate"):
        return False
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError,
                            httpx.RemoteProtocolError))


def _cause(exc: httpx.HTTPError) -> BaseException | None:
    """What to chain a mapped error to: never a local protocol error, whose text can quote
    a header value (a key pasted with a newline, say)."""
    return None if isinstance(exc, httpx.LocalProtocolError) else exc


def _register_key_headers(headers: Mapping[str, str]) -> None:
    """Make sure ``errors.scrub`` knows every credential this request sends."""
    for name, value in headers.items():
        if name.lower() in _KEY_HEADERS and value:
            register_secret(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                register_secret(token.strip())


class _Call:
    """One logical request: its options, its clock and every decision the sync and async
    loops share."""

    def __init__(
        self,
        request: HTTPRequest,
        *,
        provider: str,
        model: str | None,
        timeout: float,
        connect_timeout: float,
        deadline: float | None,
        max_retries: int,
        allow_insecure_http: bool,
        error_from_response: ErrorFromResponse,
    ) -> None:
        if not timeout > 0 or not connect_timeout > 0:
            raise ValueError("timeout and connect_timeout must be > 0 seconds")
        if deadline is not None and not deadline > 0:
            raise ValueError("deadline must be > 0 seconds or None")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        _register_key_headers(request.headers)
        for name, value in request.headers.items():
            if not value.isascii():  # httpx would raise UnicodeEncodeError (holding the value)
                what = "its API key" if name.lower() in _KEY_HEADERS else f"the header {name!r}"
                raise ProviderConnectionError(
                    f"Cannot send the request to provider '{provider}': {what} contains "
                    "characters an HTTP header cannot carry (non-ASCII). Set the key again "
                    f"(%llm key {provider}) or fix the provider's headers.",
                    provider, model,
                )
        self.request = request
        self.provider = provider
        self.model = model
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.deadline = deadline
        self.max_retries = max_retries
        self.error_from_response = error_from_response
        try:
            url = httpx.URL(request.url)
            if request.params:
                url = url.copy_merge_params(request.params)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise ProviderConnectionError(
                f"The URL for provider '{provider}' is not valid. Check base_url.",
                provider, model,
            ) from None
        self.url = url
        self.log_url = _log_url(url)
        if (url.scheme == "http" and not allow_insecure_http and not is_loopback(url.host)
                and carries_key(request.headers, url)):
            raise ProviderConnectionError(
                f"Refusing to send the API key for provider '{provider}' over plain http to "
                f"host {url.host}; use https or set allow_insecure_http=True.",
                provider, model,
            )
        self.started = time.monotonic()
        self.deadline_at = None if deadline is None else self.started + deadline
        self.retries = 0  # retries done so far
        self.attempt_started = self.started

    # -- clock

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline; may be <= 0)."""
        return None if self.deadline_at is None else self.deadline_at - time.monotonic()

    def deadline_passed(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def deadline_error(self) -> ProviderConnectionError:
        return ProviderConnectionError(
            f"Provider '{self.provider}' at {_host_port(self.url)} did not finish within the "
            f"overall deadline of {_seconds(self.deadline)} (timeout). Try again, or allow "
            "more time.",
            self.provider, self.model,
        )

    def check_deadline(self) -> None:
        if self.deadline_passed():
            raise self.deadline_error()

    def timeouts(self) -> httpx.Timeout:
        """Per-attempt timeouts, each capped by the time left before the deadline."""
        left = self.remaining()

        def cap(value: float) -> float:
            return value if left is None else max(min(value, left), 0.001)

        return httpx.Timeout(connect=cap(self.connect_timeout), read=cap(self.timeout),
                             write=cap(self.timeout), pool=cap(self.connect_timeout))

    # -- one attempt

    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """Start an attempt: check the deadline, log, and build the request."""
        self.check_deadline()
        self.attempt_started = time.monotonic()
        log.debug("%s %s: attempt %d/%d", self.request.method, self.log_url, self.retries + 1,
                  self.max_retries + 1)
        return client.build_request(self.request.method, self.url, headers=self.request.headers,
                                    json=encodable_json(self.request.json),
                                    timeout=self.timeouts())

    def accept(self, response: httpx.Response) -> bool:
        """Log the answer; ``True`` when it is a 2xx to stream."""
        log.debug("%s %s -> %d after %.3f s (attempt %d)", self.request.method, self.log_url,
                  response.status_code, time.monotonic() - self.attempt_started,
                  self.retries + 1)
        return 200 <= response.status_code < 300

    def _wait(self, retry_after: float | None) -> float | None:
        """The pause before the next attempt, or ``None`` when there is none: retries
        used up, or the pause would run past the deadline."""
        if self.retries >= self.max_retries:
            return None
        delay = backoff_delay(self.retries, retry_after)
        left = self.remaining()
        if left is not None and delay >= left:
            return None
        return delay

    def after_status(self, status: int, headers: httpx.Headers, body: bytes
                     ) -> tuple[Exception, float | None]:
        """A non-2xx answer: the error it means, and the pause before retrying (``None``:
        raise the error now)."""
        if 300 <= status < 400:
            return self._redirect_error(status, headers), None
        err = self.error_from_response(status, headers, body, self.provider, self.model)
        retry_after = parse_retry_after(headers)
        if (isinstance(err, ProviderAPIError) and err.retry_after is None
                and retry_after is not None):
            err.retry_after = retry_after
        if not should_retry(status, headers, err):
            return err, None
        if retry_after is not None and retry_after > MAX_RETRY_AFTER:
            return err, None
        return err, self._wait(retry_after)

    def after_transport_error(self, exc: httpx.TransportError
                              ) -> tuple[ProviderError, float | None]:
        """A failure before any answer: the error it means, and the pause before retrying."""
        log.debug("%s %s: %s after %.3f s (attempt %d)", self.request.method, self.log_url,
                  type(exc).__name__, time.monotonic() - self.attempt_started,
                  self.retries + 1)
        if self.deadline_passed():
            return self.deadline_error(), None
        err = map_transport_error(exc, self.provider, self.model, url=self.url)
        return err, (self._wait(None) if _retryable_transport(exc) else None)

    def retrying(self, delay: float, err: Exception) -> None:
        log.debug("%s %s: retrying in %.2f s after %s", self.request.method, self.log_url,
                  delay, type(err).__name__)
        self.retries += 1

    def _redirect_error(self, status: int, headers: httpx.Headers) -> ProviderConnectionError:
        location = headers.get("location", "")
        try:
            target = self.url.join(location) if location else None
        except (httpx.InvalidURL, TypeError, ValueError):
            target = None
        if target is not None and target.host:
            port = f":{target.port}" if target.port else ""
            to = f"to {target.scheme}://{target.host}{port}{target.path}"
            host = target.host
        else:
            to, host = "without a usable Location", "another address"
        return ProviderConnectionError(
            f"Provider '{self.provider}' at {_host_port(self.url)} answered HTTP {status}, a "
            f"redirect {to}. Redirects are not followed, so the API key only goes to the "
            f"configured host: fix base_url (the API now seems to live at {host}).",
            self.provider, self.model,
        )

    # -- the body

    def body_error(self, exc: httpx.TransportError | httpx.DecodingError,
                   cut_by_deadline: bool = False) -> ProviderError:
        if cut_by_deadline or self.deadline_passed():
            return self.deadline_error()
        if isinstance(exc, httpx.DecodingError):
            return ProviderResponseError(
                f"The response body from provider '{self.provider}' could not be decoded "
                "(bad content encoding). Try again; check any proxy in between.",
                self.provider, self.model,
            )
        return map_transport_error(exc, self.provider, self.model, streaming=True, url=self.url)

    def body_done(self, size: int) -> None:
        log.debug("%s %s: body done, %d bytes, %.3f s in all", self.request.method,
                  self.log_url, size, time.monotonic() - self.started)


def _append_capped(buf: bytearray, chunk: bytes, limit: int) -> bool:
    """Append what fits; ``False`` once ``limit`` is reached."""
    room = limit - len(buf)
    buf += chunk[:room]
    return len(chunk) < room


class _Watchdog:
    """Sync only: shuts the response's socket down when the deadline passes, so a read
    blocked on a silent server ends on time (the read then fails and is reported as the
    deadline). Without a deadline, or without a plain socket to reach, it does nothing.

    httpx hands a fully read connection back to the pool just before the body loop ends,
    so the timer may, rarely, shut down a pooled idle socket: the pool sees it readable
    (EOF) and discards it, so nothing else is affected."""

    def __init__(self, response: httpx.Response, seconds: float | None) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if seconds is None or not isinstance(sock, socket.socket):
            return
        self._sock = sock
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._timer is None:  # cancelled meanwhile
                return
            self.fired = True
            with suppress(OSError):  # the base-class call leaves an SSL object alone
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


# --------------------------------------------------------------------------- sync I/O


def _read_error_body(response: httpx.Response) -> bytes:
    buf = bytearray()
    with suppress(httpx.TransportError, httpx.DecodingError):
        for chunk in response.iter_bytes():
            if not _append_capped(buf, chunk, ERROR_BODY_LIMIT):
                break
    return bytes(buf)


def _open(client: httpx.Client, call: _Call) -> httpx.Response:
    """Send with retries until a 2xx answer (returned unread) or an error (raised)."""
    err: Exception
    while True:
        try:
            response = client.send(call.build(client), stream=True)
        except httpx.TransportError as exc:
            err, delay = call.after_transport_error(exc)
            if delay is None:
                raise err from _cause(exc)
        else:
            if call.accept(response):
                return response
            try:
                body = _read_error_body(response)
            finally:
                response.close()
            err, delay = call.after_status(response.status_code, response.headers, body)
            if delay is None:
                raise err
        call.retrying(delay, err)
        _sleep(delay)


def _iter_body(response: httpx.Response, call: _Call, watchdog: _Watchdog
               ) -> Generator[bytes, None, None]:
    size = 0
    try:
        for chunk in response.iter_bytes():
            call.check_deadline()
            size += len(chunk)
            yield chunk
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise call.body_error(exc, watchdog.fired) from _cause(exc)
    if watchdog.fired:  # the shutdown ended a body that had no length to check
        raise call.deadline_error()
    call.body_done(size)


@contextmanager
def stream(
    client: httpx.Client,
    request: HTTPRequest,
    *,
    provider: str,
    model: str | None,
    timeout: float,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    deadline: float | None = None,
    max_retries: int = 2,
    allow_insecure_http: bool = False,
    error_from_response: ErrorFromResponse,
) -> Iterator[Iterator[bytes]]:
    """Send ``request`` and yield an iterator of its raw (content-decoded) body chunks.

    Retries, timeouts, redirects and errors as described in the module docstring. Leaving
    the ``with`` block closes the response and its connection at once::

        with stream(client, req, provider="oa", model="m", timeout=60,
                    error_from_response=adapter.error_from_response) as chunks:
            for chunk in chunks:
                deltas = parser.feed(chunk)
    """
    call = _Call(request, provider=provider, model=model, timeout=timeout,
                 connect_timeout=connect_timeout, deadline=deadline, max_retries=max_retries,
                 allow_insecure_http=allow_insecure_http,
                 error_from_response=error_from_response)
    response = _open(client, call)
    watchdog = _Watchdog(response, call.remaining())
    body = _iter_body(response, call, watchdog)
    try:
        yield body
    finally:
        body.close()
        watchdog.cancel()
        response.close()


def request_json(
    client: httpx.Client,
    request: HTTPRequest,
    *,
    provider: str,
    model: str | None = None,
    timeout: float,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    deadline: float | None = None,
    max_retries: int = 2,
    allow_insecure_http: bool = False,
    error_from_response: ErrorFromResponse,
    max_bytes: int = JSON_BODY_LIMIT,
) -> bytes:
    """A whole (non-streamed) answer, e.g. a model list: its body bytes, with the same
    retries and checks as :func:`stream`; a body above ``max_bytes`` is refused."""
    buf = bytearray()
    with stream(client, request, provider=provider, model=model, timeout=timeout,
                connect_timeout=connect_timeout, deadline=deadline, max_retries=max_retries,
                allow_insecure_http=allow_insecure_http,
                error_from_response=error_from_response) as chunks:
        for chunk in chunks:
            if not _append_capped(buf, chunk, max_bytes + 1):
                break
    if len(buf) > max_bytes:
        raise _too_large(provider, model, max_bytes)
    return bytes(buf)


def _too_large(provider: str, model: str | None, limit: int) -> ProviderResponseError:
    return ProviderResponseError(
        f"The response from provider '{provider}' is larger than {limit} bytes; refusing to "
        "read it. Check base_url.",
        provider, model,
    )


# --------------------------------------------------------------------------- async I/O


async def _aread_error_body(response: httpx.Response) -> bytes:
    buf = bytearray()
    with suppress(httpx.TransportError, httpx.DecodingError):
        async for chunk in response.aiter_bytes():
            if not _append_capped(buf, chunk, ERROR_BODY_LIMIT):
                break
    return bytes(buf)


async def _aopen(client: httpx.AsyncClient, call: _Call) -> httpx.Response:
    """The async twin of :func:`_open`; the deadline is a cancel scope around each wait."""
    err: Exception
    while True:
        try:
            with anyio.fail_after(call.remaining()):
                response = await client.send(call.build(client), stream=True)
        except httpx.TransportError as exc:
            err, delay = call.after_transport_error(exc)
            if delay is None:
                raise err from _cause(exc)
        except TimeoutError:
            raise call.deadline_error() from None
        else:
            if call.accept(response):
                return response
            try:
                with anyio.fail_after(call.remaining()):
                    body = await _aread_error_body(response)
            except TimeoutError:
                body = b""
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
            err, delay = call.after_status(response.status_code, response.headers, body)
            if delay is None:
                raise err
        call.retrying(delay, err)
        await _asleep(delay)


async def _aiter_body(response: httpx.Response, call: _Call) -> AsyncIterator[bytes]:
    size = 0
    chunks = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
    async with aclosing(chunks):
        while True:
            try:
                with anyio.fail_after(call.remaining()):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except (httpx.TransportError, httpx.DecodingError) as exc:
                raise call.body_error(exc) from _cause(exc)
            except TimeoutError:
                raise call.deadline_error() from None
            size += len(chunk)
            yield chunk
    call.body_done(size)


@asynccontextmanager
async def astream(
    client: httpx.AsyncClient,
    request: HTTPRequest,
    *,
    provider: str,
    model: str | None,
    timeout: float,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    deadline: float | None = None,
    max_retries: int = 2,
    allow_insecure_http: bool = False,
    error_from_response: ErrorFromResponse,
) -> AsyncIterator[AsyncIterator[bytes]]:
    """The async twin of :func:`stream`: ``async with astream(...) as chunks: async for ...``.
    Closing is shielded from cancellation, so a cancelled task still frees the connection."""
    call = _Call(request, provider=provider, model=model, timeout=timeout,
                 connect_timeout=connect_timeout, deadline=deadline, max_retries=max_retries,
                 allow_insecure_http=allow_insecure_http,
                 error_from_response=error_from_response)
    response = await _aopen(client, call)
    body = cast(AsyncGenerator[bytes, None], _aiter_body(response, call))
    try:
        yield body
    finally:
        with anyio.CancelScope(shield=True):
            await body.aclose()
            await response.aclose()


async def arequest_json(
    client: httpx.AsyncClient,
    request: HTTPRequest,
    *,
    provider: str,
    model: str | None = None,
    timeout: float,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    deadline: float | None = None,
    max_retries: int = 2,
    allow_insecure_http: bool = False,
    error_from_response: ErrorFromResponse,
    max_bytes: int = JSON_BODY_LIMIT,
) -> bytes:
    """The async twin of :func:`request_json`."""
    buf = bytearray()
    async with astream(client, request, provider=provider, model=model, timeout=timeout,
                       connect_timeout=connect_timeout, deadline=deadline,
                       max_retries=max_retries, allow_insecure_http=allow_insecure_http,
                       error_from_response=error_from_response) as chunks:
        async for chunk in chunks:
            if not _append_capped(buf, chunk, max_bytes + 1):
                break
    if len(buf) > max_bytes:
        raise _too_large(provider, model, max_bytes)
    return bytes(buf)
