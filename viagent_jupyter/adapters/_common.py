"""Helpers shared by the wire-protocol adapters: URLs and headers, HTTP-error mapping,
retry hints, in-stream errors, the common parser skeleton and model-list helpers.

``parse_retry_after`` and ``should_retry`` are used by the HTTP loop (``_http.py``); keep
their names and signatures.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from json.decoder import JSONDecoder
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ..errors import (
    AuthenticationError,
    ProviderAPIError,
    ProviderError,
    ProviderResponseError,
    RateLimitError,
    scrub,
)
from ..schema import ModelInfo
from ._sse import SSEDecoder, SSEEvent
from .base import ChatRequest, HTTPRequest, StreamState

__all__ = [
    "REASONING_BUDGETS",
    "SETTING_KEYS",
    "BaseParser",
    "UnexpectedBody",
    "api_error",
    "build_headers",
    "count",
    "endpoint",
    "entries",
    "function_tools",
    "http_error",
    "load_json_body",
    "model_info",
    "opt_str",
    "parse_json",
    "parse_retry_after",
    "price",
    "reasoning_of",
    "set_finish",
    "settings_of",
    "should_retry",
    "split_system",
    "stream_error",
    "with_system",
]

#: The sampling settings a ``ChatRequest`` may carry.
SETTING_KEYS = ("temperature", "max_tokens", "top_p", "frequency_penalty", "presence_penalty")

_SNIPPET = 200  # at most this much of a provider body goes into a message

#: Thinking budgets (tokens) for a reasoning level, for the protocols that want a budget and
#: were given no ``reasoning_budget``: Anthropic's minimum is 1024; Gemini 2.5 Flash's
#: ceiling is 24576.
REASONING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
#: The most of a JSON body (answered where a stream was expected) that is read.
JSON_BODY_LIMIT = 16 << 20


# --------------------------------------------------------------------------- requests


def endpoint(base_url: str, path: str, params: Mapping[str, str] | None = None
             ) -> tuple[str, dict[str, str] | None]:
    """``base_url + path``; a query string on ``base_url`` (Azure ``api-version``...) is kept,
    moved into the returned params together with ``params``."""
    parts = urlsplit(base_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) if parts.query else {}
    if params:
        query.update(params)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))
    return url, (query or None)


def build_headers(auth: Mapping[str, str], extra: Mapping[str, str] | None,
                  accept: str | None, defaults: Mapping[str, str] | None = None
                  ) -> dict[str, str]:
    """JSON request headers + ``defaults`` + the provider's extra headers + auth. Extra
    headers may replace a default (e.g. ``anthropic-version``) but never an auth header."""
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    headers.update(defaults or {})
    protected = {name.lower() for name in auth} | {"authorization", "x-api-key",
                                                  "x-goog-api-key", "api-key"}
    for name, value in (extra or {}).items():
        low = name.lower()
        if low in protected:
            continue
        for existing in [k for k in headers if k.lower() == low]:
            del headers[existing]
        headers[name] = value
    headers.update(auth)
    return headers


def function_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral tool definitions as ``{"type": "function", "function": {...}}``: the shape of
    OpenAI's Chat Completions and of Ollama's ``/api/chat`` alike."""
    return [{"type": "function", "function": {"name": t["name"],
                                              "description": t["description"],
                                              "parameters": t["parameters"]}}
            for t in tools]


def settings_of(req: ChatRequest) -> dict[str, Any]:
    """The settings that are set (not ``None``), in a fixed order."""
    s = req.settings
    return {k: s[k] for k in SETTING_KEYS if s.get(k) is not None}


def reasoning_of(req: ChatRequest) -> tuple[str | None, int | None]:
    """``(level, budget)`` as set (``None`` = unset). A budget alone means "on"."""
    level = req.settings.get("reasoning")
    budget = req.settings.get("reasoning_budget")
    if level is None and budget is not None:
        level = "medium"
    return level, budget


def split_system(req: ChatRequest) -> tuple[str | None, list[dict[str, Any]]]:
    """For protocols with a separate system field: ``req.system`` plus any ``system``-role
    messages (joined with blank lines), and the remaining messages."""
    system = [req.system] if req.system else []
    rest: list[dict[str, Any]] = []
    for m in req.messages:
        if m.get("role") == "system":
            if m.get("content"):
                system.append(m["content"])
        else:
            rest.append(m)
    return ("\n\n".join(system) if system else None), rest


def with_system(req: ChatRequest) -> list[dict[str, Any]]:
    """For protocols that take the system prompt as the first message."""
    msgs = [dict(m) for m in req.messages]
    if req.system:
        msgs.insert(0, {"role": "system", "content": req.system})
    return msgs


# --------------------------------------------------------------------------- headers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that also works on a plain ``dict``."""
    value = headers.get(name)
    if value is None:
        for key, val in headers.items():
            if key.lower() == name:
                return val
    return value


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait as the provider asks, or ``None``.

    ``retry-after-ms`` (milliseconds, OpenAI/Anthropic SDK convention), then
    ``Retry-After`` (seconds, fractional allowed, or an HTTP-date), then OpenRouter's
    ``X-RateLimit-Reset`` (epoch milliseconds; only when it lies in the future). The
    ``x-ratelimit-reset-*`` quota headers of OpenAI/Anthropic are not retry hints and are
    ignored."""
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        value = _number(ms)
        if value is not None:
            return value / 1000.0
    ra = _header(headers, "retry-after")
    if ra is not None:
        value = _number(ra)
        if value is not None:
            return value
        try:
            when = parsedate_to_datetime(ra.strip())
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, when.timestamp() - time.time())
    reset = _header(headers, "x-ratelimit-reset")
    if reset is not None:
        value = _number(reset)
        if value is not None:
            seconds = value / 1000.0 if value > 1e11 else value  # epoch ms (OpenRouter) or s
            if seconds > 1e9:  # an epoch timestamp, not a duration
                delta = seconds - time.time()
                return delta if 0 < delta <= 3600 else None
    return None


_RETRY_STATUS = frozenset({408, 409, 429})


def should_retry(status: int, headers: Mapping[str, str], error: BaseException | None = None
                 ) -> bool:
    """Whether a failed request is worth retrying (the SDKs' rule): never for an exhausted
    quota or missing credits; ``x-should-retry: true|false`` decides when present; else
    408, 409, 429 and 5xx (incl. Anthropic's 529) are retried."""
    if getattr(error, "error_type", None) == "insufficient_quota" or status == 402:
        return False
    hint = _header(headers, "x-should-retry")
    if hint is not None:
        low = hint.strip().lower()
        if low == "true":
            return True
        if low == "false":
            return False
    return status in _RETRY_STATUS or status >= 500


# --------------------------------------------------------------------------- errors


def _snippet(text: str, limit: int = _SNIPPET) -> str:
    """One line of at most ``limit`` characters, keys scrubbed *before* cutting (a key cut
    in half would no longer be recognised)."""
    text = " ".join(scrub(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TAGS = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_AUTH_TYPES = frozenset({
    "authentication_error", "invalid_api_key", "permission_error", "unauthenticated",
    "permission_denied", "api_key_invalid", "unauthorized", "forbidden",
})
_RATE_TYPES = frozenset({
    "rate_limit_error", "rate_limit_exceeded", "overloaded_error", "insufficient_quota",
    "resource_exhausted", "too_many_requests",
})


def _json_from_body(body: bytes) -> Any:
    """The JSON object in an error body: plain JSON (also when labelled
    ``text/event-stream``, as Gemini does), an SSE ``data:`` event holding JSON, or a
    one-element JSON array. ``None`` if none."""
    text = body.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
        if b"data:" in text:
            from ._sse import SSEDecoder

            try:
                decoder = SSEDecoder("?")
                for _event, payload in decoder.feed(text) + decoder.close():
                    try:
                        obj = json.loads(payload)
                    except (ValueError, RecursionError):
                        continue
                    if isinstance(obj, dict):
                        break
            except ProviderError:
                obj = None
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]
    return obj if isinstance(obj, dict) else None


def _text_snippet(body: bytes) -> str | None:
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return None
    if text.startswith("<"):
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAGS.sub(" ", text)
    text = _snippet(text)
    return text or None


class _Details:
    """What an error body says: message, type/code/status, and a few flags."""

    __slots__ = ("auth", "code", "message", "moderation", "type")

    def __init__(self) -> None:
        self.message: str | None = None
        self.type: str | None = None
        self.code: int | None = None
        self.auth = False  # Gemini reason API_KEY_INVALID
        self.moderation = False  # OpenRouter 403 flagged input


def _details(err: Any, top: Mapping[str, Any] | None = None) -> _Details:
    """Read an ``error`` value (dict or string) in any of the providers' shapes."""
    d = _Details()
    if isinstance(err, str):
        d.message = err  # Ollama {"error": "..."}
        return d
    if not isinstance(err, Mapping):
        if top is not None:  # {"detail": "..."} / {"message": "..."} servers
            msg = top.get("message") or top.get("detail")
            d.message = msg if isinstance(msg, str) else (json.dumps(msg) if msg else None)
            t = top.get("type") or top.get("code")
            d.type = t if isinstance(t, str) and t != "error" else None
        return d
    msg = err.get("message")
    if isinstance(msg, str):
        d.message = msg
    elif msg is not None:
        d.message = json.dumps(msg)
    code, etype, status = err.get("code"), err.get("type"), err.get("status")
    if isinstance(code, int) and not isinstance(code, bool):
        d.code = code
    reasons: list[str] = []
    details = err.get("details")
    if isinstance(details, list):
        reasons = [x["reason"] for x in details
                   if isinstance(x, Mapping) and isinstance(x.get("reason"), str)]
    if "API_KEY_INVALID" in reasons:
        d.auth = True
    for candidate in (code, *reasons, etype, status):
        if isinstance(candidate, str) and candidate:
            d.type = candidate
            break
    if d.type is None and d.code is not None:
        d.type = str(d.code)
    if etype == "insufficient_quota" or code == "insufficient_quota":
        d.type = "insufficient_quota"
    meta = err.get("metadata")
    if isinstance(meta, Mapping):
        raw, name = meta.get("raw"), meta.get("provider_name")
        if raw:
            raw_text = raw if isinstance(raw, str) else json.dumps(raw)
            d.message = f"{d.message or 'error'} ({name or 'upstream'}: {_snippet(raw_text)})"
        if meta.get("flagged_input") is not None or meta.get("reasons"):
            d.moderation = True
    return d


def _classify(status: int | None, d: _Details
              ) -> tuple[type[ProviderAPIError], str, str]:
    """(error class, what failed, what to do) — ``{pid}``/``{model}``/``{wait}`` get filled
    in. ``status`` is the HTTP status, or for an in-stream error the provider's code."""
    etype = (d.type or "").lower()
    if d.moderation:
        return (ProviderAPIError, "Request blocked by moderation",
                "The input was flagged by the provider's moderation; rephrase the prompt.")
    if status in (401, 403) or d.auth or etype in _AUTH_TYPES:
        return (AuthenticationError, "Authentication failed",
                "Check the API key: %llm key {pid} or ws.providers.update('{pid}', api_key=...)")
    if etype == "insufficient_quota":
        return (RateLimitError, "Quota exhausted",
                "The account has no quota left: check its plan and billing with the provider; "
                "retrying will not help.")
    if status == 529 or etype == "overloaded_error":
        return (RateLimitError, "Overloaded",
                "The provider is overloaded right now; retry in a little while.")
    if status == 429 or etype in _RATE_TYPES:
        return (RateLimitError, "Rate limit hit",
                "{wait}, or send requests less often.")
    if status == 402:
        return (ProviderAPIError, "Out of credits",
                "Add credits to the account (or lower max_tokens), then retry.")
    if status == 404:
        return (ProviderAPIError, "Not found",
                "Check the model id{model} and the base_url; ws.models('{pid}', refresh=True) "
                "lists the available models.")
    if status == 413:
        return (ProviderAPIError, "Request too large",
                "Shorten the prompt or the conversation, then retry.")
    if status in (400, 422):
        return (ProviderAPIError, "Request rejected",
                "Check the model id{model} and its settings (ws.providers.get('{pid}').settings).")
    if status == 408 or (status is not None and status >= 500):
        return (ProviderAPIError, "Server error",
                "This is on the provider's side; retry in a little while.")
    if status is None:
        return (ProviderAPIError, "Error reported in the response",
                "The answer was cut short; retry, and check the model and its settings.")
    return (ProviderAPIError, "Request failed",
            "Check the provider's base_url, model and settings, then retry.")


def api_error(status: int | None, d: _Details, provider: str, model: str | None,
              retry_after: float | None = None) -> ProviderAPIError:
    """Build the error for what a provider stated: an HTTP ``status``, or ``None`` for an
    error inside a 200 stream (then the provider's numeric code, if any, stands in)."""
    code = d.code if d.code is not None and 100 <= d.code <= 599 else None
    cls, what, todo = _classify(status if status is not None else code, d)
    wait = (f"Wait {retry_after:.0f} s and retry" if retry_after is not None
            else "Wait a moment and retry")
    todo = todo.format(pid=provider, model=f" ('{model}')" if model else "", wait=wait)
    pmsg = _snippet(d.message) if d.message else None
    if status is not None:
        label = f"HTTP {status}"
        if not pmsg:
            try:
                pmsg = HTTPStatus(status).phrase
            except ValueError:
                pmsg = "Overloaded" if status == 529 else None
    elif d.type and d.type != str(d.code):
        label = f"in-stream {d.type}"
    else:
        label = f"in-stream {code}" if code is not None else "in-stream error"
    detail = f"{label}: {pmsg}" if pmsg else label
    return cls(
        f"{what} on provider '{provider}' ({detail}). {todo}",
        provider,
        model,
        status_code=status if status is not None else code,
        retry_after=retry_after,
        error_type=d.type,
        provider_message=d.message,
    )


def http_error(status: int, headers: Mapping[str, str], body: bytes, provider: str,
               model: str | None) -> ProviderAPIError:
    """Map a non-2xx answer (JSON, JSON labelled SSE, SSE, HTML or text) onto the tree."""
    obj = _json_from_body(body)
    d = _details(obj.get("error"), obj) if obj is not None else _Details()
    if d.message is None:
        d.message = _text_snippet(body)
    return api_error(status, d, provider, model, parse_retry_after(headers))


def stream_error(err: Any, provider: str, model: str | None) -> ProviderAPIError:
    """An error the provider stated inside a 200 stream. ``status_code`` is the provider's
    numeric code when it gives one (OpenRouter mirrors HTTP codes), else ``None``."""
    d = _details(err)
    if d.message is None and not isinstance(err, Mapping):
        d.message = _snippet(str(err))
    return api_error(None, d, provider, model)


# --------------------------------------------------------------------------- parsing

_json_loads = json.loads


def _fast_scanner() -> Callable[[str, int], tuple[Any, int]] | None:
    """The scanner behind ``json.loads``, to call directly: ``json.loads(str)`` spends about a
    third of its time in pure-Python wrappers (two whitespace regex matches, ``raw_decode``).
    ``JSONDecoder.scan_once`` is an implementation detail (CPython's C scanner, clearing its
    key memo after each call like ``json.loads``): used only when present and answering as
    expected, else None and :func:`parse_json` calls ``json.loads``."""
    scan = getattr(JSONDecoder(), "scan_once", None)
    if not callable(scan):
        return None
    probe = '{"a": [1, "\\u00e9"]}'
    try:
        if scan(probe, 0) == ({"a": [1, "é"]}, len(probe)):
            return scan  # type: ignore[no-any-return]
    except Exception:  # any surprise means: do not use it
        pass
    return None


_scan_once = _fast_scanner()


def parse_json(payload: bytes) -> Any:
    """``json.loads`` of one event payload (UTF-8, invalid bytes replaced as the SSE spec
    says). Raises ``ValueError`` (``JSONDecodeError``) on malformed JSON."""
    text = payload.decode("utf-8", "replace")
    if _scan_once is None:
        try:
            return _json_loads(text)
        except RecursionError:
            raise ValueError("nested too deeply") from None
    try:
        try:
            obj, end = _scan_once(text, 0)
        except StopIteration:  # leading whitespace or not JSON at all: let json.loads decide
            return _json_loads(text)
        if end != len(text):  # trailing whitespace (fine) or extra data (an error)
            return _json_loads(text)
    except RecursionError:  # "[[[[…" thousands deep: malformed for us, not a crash
        raise ValueError("nested too deeply") from None
    return obj


_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(deltas: list[str]) -> list[str]:
    """Text deltas that UTF-8 can encode: a JSON ``"\\ud800"`` escape decodes to a lone
    surrogate, which would break every later step (display, storage, the next request);
    each one becomes U+FFFD. (A valid escaped pair was already joined by the JSON decoder.)"""
    for i, delta in enumerate(deltas):
        if not delta.isascii() and _SURROGATE.search(delta):
            deltas[i] = _SURROGATE.sub("\ufffd", delta)
    return deltas


def set_finish(state: StreamState, raw: Any, table: Mapping[Any, str]) -> None:
    """Record a (non-null) finish reason: normalised via ``table``, unknown → ``other``."""
    state.raw_finish_reason = raw if isinstance(raw, str) else str(raw)
    state.finish_reason = table.get(raw, "other")


def count(value: Any) -> int | None:
    """A token count, if ``value`` is one."""
    return value if type(value) is int and value >= 0 else None


class UnexpectedBody(ProviderResponseError):
    """A complete body of the wrong shape (not a cut-off stream): reported as it is, never
    as truncation."""


class BaseParser:
    """The skeleton every protocol parser shares.

    Subclasses implement ``_feed(data, out)`` / ``_close(out)``, appending text deltas to
    ``out`` and filling :attr:`state`. Here:

    * an error raised while some text of the same ``feed`` call was already decoded is
      *deferred*: that text is returned, and the error is raised by the next ``feed`` or
      by ``close`` — so the text so far always reaches the caller;
    * ``close`` raises :class:`ProviderResponseError` when the terminal marker never came.
    """

    #: Names used in messages.
    protocol: ClassVar[str] = ""
    marker: ClassVar[str] = ""
    #: A body that starts with ``{`` is a whole JSON answer, not an event stream (SSE
    #: protocols: some proxies answer ``stream: true`` with ``application/json``).
    sniff_json: ClassVar[bool] = False

    def __init__(self, req: ChatRequest) -> None:
        self.state = StreamState()
        self.provider = req.provider_id
        self.model = req.model
        self._error: ProviderError | None = None
        self._sniffed = not self.sniff_json
        self._body: bytearray | None = None

    def _whole(self, obj: dict[str, Any], out: list[str]) -> bool:
        """Read a complete non-streamed response of the protocol into ``out``/``state``;
        ``False`` when ``obj`` is not one."""
        return False

    def _json_body(self, out: list[str]) -> None:
        body = bytes(self._body or b"")
        self._body = None
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and "error" in obj:
            raise stream_error(obj["error"], self.provider, self.model)
        if not isinstance(obj, dict) or not self._whole(obj, out):
            what = (f"keys {', '.join(sorted(map(str, obj))[:6])}" if isinstance(obj, dict)
                    else repr(_snippet(body[:_SNIPPET].decode("utf-8", "replace"), 80)))
            raise UnexpectedBody(
                f"Provider '{self.provider}' answered with a JSON body, not an event stream, "
                f"and it is not a {self.protocol} response ({what}). Check that the base_url "
                f"serves the {self.protocol} API.", self.provider, self.model)
        self.state.done = True

    def _feed(self, data: bytes, out: list[str]) -> None:
        raise NotImplementedError

    def _close(self, out: list[str]) -> None:
        raise NotImplementedError

    def feed(self, data: bytes) -> list[str]:
        if self._error is not None:
            raise self._error
        if not self._sniffed:
            head = data.lstrip()
            if head:
                self._sniffed = True
                if head[:1] == b"{":
                    self._body = bytearray()
        if self._body is not None:
            if len(self._body) + len(data) > JSON_BODY_LIMIT:
                raise ProviderResponseError(
                    f"Provider '{self.provider}' answered with a JSON body over "
                    f"{JSON_BODY_LIMIT >> 20} MiB where an event stream was expected.",
                    self.provider, self.model)
            self._body += data
            return []
        out: list[str] = []
        try:
            self._feed(data, out)
        except ProviderError as exc:
            self._error = exc  # sticky: a later feed() or close() says the same
            if not out:
                raise
        return encodable(out)

    def close(self) -> list[str]:
        if self._error is not None:
            raise self._error
        out: list[str] = []
        if self._body is not None:
            self._json_body(out)
            return out
        try:
            self._close(out)
        except ProviderResponseError as exc:
            if self.state.done or isinstance(exc, UnexpectedBody):
                raise
            raise self.truncated() from exc  # a cut-off last event is truncation
        if not self.state.done:
            raise self.truncated()
        return encodable(out)

    def truncated(self) -> ProviderResponseError:
        return ProviderResponseError(
            f"The response stream from provider '{self.provider}' ended before it finished "
            f"(no {self.marker}); the answer may be incomplete. Retry; if it keeps "
            "happening, check the network, any proxy, and the base_url.",
            self.provider,
            self.model,
        )

    def bad_json(self, payload: bytes, exc: Exception | None) -> ProviderResponseError:
        text = _snippet(payload[: 4 * _SNIPPET].decode("utf-8", "replace"), 120)
        why = f"not valid JSON ({getattr(exc, 'msg', exc)})" if exc else "not a JSON object"
        return ProviderResponseError(
            f"Malformed event in the stream from provider '{self.provider}': {why}: "
            f"{text!r}. Retry; if it persists, check that the base_url serves the "
            f"{self.protocol} API.",
            self.provider,
            self.model,
        )

    def bad_shape(self, exc: Exception) -> ProviderResponseError:
        return ProviderResponseError(
            f"Unexpected event shape in the stream from provider '{self.provider}' "
            f"({type(exc).__name__}: {exc}). Check that the base_url serves the "
            f"{self.protocol} API.",
            self.provider,
            self.model,
        )


class SSEParser(BaseParser):
    """A :class:`BaseParser` over an SSE body: subclasses implement ``_handle(events, out)``."""

    sniff_json = True

    def __init__(self, req: ChatRequest) -> None:
        super().__init__(req)
        self._sse = SSEDecoder(self.provider)
        self._sse_feed = self._sse.feed

    def _handle(self, events: list[SSEEvent], out: list[str]) -> None:
        raise NotImplementedError

    def _feed(self, data: bytes, out: list[str]) -> None:
        events = self._sse_feed(data)
        if events:
            self._handle(events, out)

    def _close(self, out: list[str]) -> None:
        self._handle(self._sse.close(), out)


# --------------------------------------------------------------------------- adapters and models


class AdapterBase:
    """What every adapter does the same way: its parser class, and HTTP errors."""

    name: ClassVar[str] = ""
    parser_class: ClassVar[type[BaseParser]]

    def parser(self, req: ChatRequest) -> BaseParser:
        return self.parser_class(req)

    def check_request(self, req: ChatRequest) -> None:
        """Refuse, before anything is sent, a combination of settings the protocol's
        models are documented to refuse (``ConfigValidationError``). Default: nothing."""

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes,
                            provider: str, model: str | None) -> ProviderError:
        return http_error(status, headers, body, provider, model)


def load_json_body(body: bytes, request: HTTPRequest, what: str = "model list") -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        host = urlsplit(request.url).netloc or request.url
        raise ProviderResponseError(
            f"The {what} from {host} is not valid JSON "
            f"({_text_snippet(body[:_SNIPPET]) or 'empty body'!r}). "
            "Check that the base_url points at the provider's API."
        ) from None


def price(value: Any) -> Decimal | None:
    """USD per token from a price string/number; negative (OpenRouter ``"-1"`` = variable)
    or unparseable → ``None``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() and d >= 0 else None


def entries(obj: Any, key: str) -> Iterable[Mapping[str, Any]]:
    """``obj[key]`` as a list of dicts, skipping anything else (providers add and change
    entries over time)."""
    items = obj.get(key) if isinstance(obj, Mapping) else None
    if not isinstance(items, list):
        return ()
    return [x for x in items if isinstance(x, Mapping)]


def opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def model_info(id_: str, **fields: Any) -> ModelInfo:
    return ModelInfo(id=id_, **{k: v for k, v in fields.items() if v is not None})

