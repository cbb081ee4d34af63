"""The fake provider's HTTP server: a threaded stdlib server on 127.0.0.1, scripts,
recording and a prompt shutdown."""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from ._strict import strict_problem
from ._wire import (
    DEMO_MODELS,
    PROTOCOLS,
    DemoModel,
    Reply,
    Route,
    chat_reply,
    error_reply,
    key_problem,
    match_route,
    models_reply,
)

__all__ = ["FakeProviderServer", "RecordedRequest", "Scripted", "rechunk"]

MAX_BODY = 10 << 20  # request bodies above this are answered 413
ChunkPlan: TypeAlias = "int | Sequence[int] | Literal['random'] | None"

#: Route names a script may be queued under (besides an exact path and ``"*"``).
ROUTE_NAMES = frozenset(
    {"chat", "models", *PROTOCOLS,
     *(f"{p}.{k}" for p in PROTOCOLS for k in ("chat", "models"))}
)


def rechunk(data: bytes, plan: ChunkPlan, seed: int = 0) -> list[bytes]:
    """Split ``data`` by a plan: ``None`` whole; ``n`` fixed size; a list of sizes (the rest
    as a last chunk); ``"random"`` sizes 1-16 from ``random.Random(seed)``."""
    if plan is None:
        return [data]
    if plan == "random":
        rng = random.Random(seed)
        sizes: Callable[[], int] = lambda: rng.randint(1, 16)  # noqa: E731
    elif isinstance(plan, int):
        if plan < 1:
            raise ValueError("a chunk size must be >= 1")
        sizes = lambda: plan  # noqa: E731
    else:
        fixed = list(plan)
        if any(n < 1 for n in fixed):
            raise ValueError("chunk sizes must be >= 1")
        fixed_iter = iter(fixed)
        sizes = lambda: next(fixed_iter, len(data))  # noqa: E731
    out, pos = [], 0
    while pos < len(data):
        n = sizes()
        out.append(data[pos:pos + n])
        pos += n
    return out or [b""]


@dataclass
class Scripted:
    """One scripted answer. Unset fields keep the default behaviour, so
    ``Scripted(stall=(2, 5))`` is the demo answer stalling 5 s before its third chunk.

    * ``status``, ``headers``, ``content_type``: the response line and headers. A non-2xx
      status without ``body`` gets an error body in the route's provider shape (``message``,
      ``code``: see :func:`error_body`).
    * ``body``: bytes to send instead of the demo answer (e.g. a replayed recording).
    * ``chunks``: re-split the body: ``n`` bytes each, a list of sizes, or ``"random"``
      (with ``seed``); default: one chunk per event for streams, whole otherwise.
    * ``delay``: seconds between chunks (default: the server's ``delay`` between the demo
      answer's events; none for a scripted or re-chunked body).
    * ``stall=(k, seconds)``: wait before chunk ``k`` (0 = after the headers, before any
      byte; ``len(chunks)`` = before the end). ``headers_delay``: wait before the headers.
    * ``truncate_after=n``: send only the first ``n`` body bytes, then close the connection
      mid-body (``clean_end=True``: end the body properly instead, short of its marker).
    * ``redirect``: answer 3xx (``status`` if it is one, else 307) with this ``Location``.
    * ``reset``: read the request, then reset the connection without any answer.
    * ``retry_after`` / ``retry_after_ms``: the ``Retry-After`` / ``retry-after-ms`` headers.
    * ``require_key``: the request must carry this key, else the provider's auth error.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    body: bytes | str | None = None
    chunks: ChunkPlan = None
    seed: int = 0
    delay: float | None = None
    stall: tuple[int, float] | None = None
    headers_delay: float = 0.0
    truncate_after: int | None = None
    clean_end: bool = False
    redirect: str | None = None
    reset: bool = False
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    require_key: str | None = None
    message: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be 100-599, not {self.status}")
        if self.stall is not None and (self.stall[0] < 0 or self.stall[1] < 0):
            raise ValueError("stall must be (chunk index >= 0, seconds >= 0)")
        if self.truncate_after is not None and self.truncate_after < 0:
            raise ValueError("truncate_after must be >= 0")

    @classmethod
    def from_recording(cls, path: str | Path, **overrides: Any) -> Scripted:
        """Replay a recorded body; status and content type come from its ``.meta.json``
        (``fixtures/wire`` layout) when there is one."""
        path = Path(path)
        meta_path = path.with_name(path.name + ".meta.json")
        meta: dict[str, Any] = {}
        if meta_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        values: dict[str, Any] = {"body": path.read_bytes(),
                                  "status": int(meta.get("status") or 200),
                                  "content_type": meta.get("content_type")}
        values.update(overrides)
        return cls(**values)


@dataclass
class RecordedRequest:
    """A request the server received. ``headers`` have lower-case names; ``query`` keeps
    the last value of each parameter; ``json`` is the parsed body (``None`` if none or
    not JSON); ``route`` is e.g. ``"openai.chat"`` (``None``: unknown path)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    json: Any = field(repr=False)
    route: str | None
    status: int | None = None  # what was answered (None: nothing, e.g. a reset)
    disconnected: bool = False  # the answer was cut short: the client left or we stopped
    finished: threading.Event = field(default_factory=threading.Event, repr=False,
                                      compare=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # FakeProviderServer.stop joins the handlers, with a time limit
    allow_reuse_address = True

    def __init__(self, fake: FakeProviderServer, port: int) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.handlers: set[threading.Thread] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # skip HTTPServer's reverse DNS lookup (getfqdn)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        me = threading.current_thread()
        with self.lock:
            self.handlers.add(me)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.lock:
                self.handlers.discard(me)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away is not an error worth a traceback on stderr


class _Abort(Exception):
    """The server is stopping, or the client left: drop the connection."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "viagent-fake-provider"
    sys_version = ""
    disable_nagle_algorithm = True  # each chunk goes out as it is written
    timeout = 120  # an idle or silent client is dropped after this many seconds
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- request

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or ``None`` when it is too large or malformed."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            buf = bytearray()
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip() or b"x", 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(buf)
                if len(buf) + size > limit:
                    return None
                buf += self.rfile.read(size)
                self.rfile.readline(8)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if not 0 <= length <= limit:
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {name.lower(): value for name, value in self.headers.items()}
        route = match_route(self.command, parts.path, headers)
        body = self._read_body(fake.max_body)
        parsed: Any = None
        if body:
            with suppress(ValueError):
                parsed = json.loads(body)
        rec = RecordedRequest(self.command, parts.path, query, headers, body or b"", parsed,
                              route.name if route else None)
        fake._record(rec)
        try:
            if body is None:
                self.close_connection = True  # the body was not read: the stream is unusable
                self._send(rec, error_reply("openai", 413, "Request body too large or "
                                            "malformed."), None)
            else:
                self._respond(rec, route, query, headers, parsed)
        except (_Abort, OSError):
            rec.disconnected = True
            self.close_connection = True
        finally:
            rec.finished.set()

    # -- response

    def _respond(self, rec: RecordedRequest, route: Route | None, query: dict[str, str],
                 headers: dict[str, str], parsed: Any) -> None:
        fake = self.server.fake
        script = fake._take(rec.path, route)
        if script is not None and script.reset:
            self._reset()
            return
        if script is not None and script.headers_delay:
            fake._pause(script.headers_delay)
        openrouter = route is not None and route.protocol == "openai" and (
            route.openrouter or fake.openrouter)
        shape = "openrouter" if openrouter else (route.protocol if route else "openai")
        sse = route is not None and route.protocol == "gemini" and route.stream and (
            query.get("alt") == "sse")
        key = (script.require_key if script is not None else None) or fake.require_key
        problem = key_problem(shape, headers, query, key) if key is not None else None
        reply: Reply
        if problem is not None:
            reply = problem
        elif script is not None and script.redirect is not None:
            status = script.status if 300 <= script.status < 400 else 307
            reply = Reply(status, "text/plain; charset=utf-8", [b""],
                          {"Location": script.redirect})
        elif script is not None and script.body is not None:
            data = script.body.encode() if isinstance(script.body, str) else script.body
            reply = Reply(script.status, script.content_type or "application/octet-stream",
                          [data])
        elif script is not None and not 200 <= script.status < 300:
            reply = error_reply(shape, script.status, script.message, code=script.code,
                                sse=sse)
        elif route is None:
            reply = error_reply("openai", 404, f"Unknown path {rec.path} (demo provider).")
        elif route.kind == "chat" and fake.strict and \
                (strict := strict_problem(route.protocol, parsed)) is not None:
            reply = strict
        elif route.kind == "chat":
            reply = chat_reply(route, parsed, query, models=fake.models, openrouter=openrouter)
        else:
            reply = models_reply(route, query, models=fake.models, openrouter=openrouter)
        if script is not None and problem is None:
            if 200 <= script.status < 300 and reply.status < 300:
                reply.status = script.status
            if script.content_type:
                reply.content_type = script.content_type
            reply.headers.update(script.headers)
            if script.retry_after is not None:
                reply.headers["Retry-After"] = str(script.retry_after)
            if script.retry_after_ms is not None:
                reply.headers["retry-after-ms"] = f"{script.retry_after_ms:g}"
        self._send(rec, reply, script)

    def _reset(self) -> None:
        """Close with a TCP reset and no answer at all."""
        with suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()  # drop the makefile reference, so close() really closes now
        self.connection.close()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send(self, rec: RecordedRequest, reply: Reply, script: Scripted | None) -> None:
        fake = self.server.fake
        pieces = reply.pieces
        if script is not None and script.chunks is not None:
            pieces = rechunk(b"".join(pieces), script.chunks, script.seed)
        natural = script is None or (script.body is None and script.chunks is None)
        if script is not None and script.delay is not None:
            delay = script.delay
        else:  # the server's delay paces the demo answer's events, not scripted bytes
            delay = fake.delay if natural and reply.stream else 0.0
        stall = script.stall if script is not None else None
        truncate = script.truncate_after if script is not None else None
        clean_end = script is not None and script.clean_end
        chunked = (reply.stream or len(pieces) != 1 or stall is not None
                   or truncate is not None)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(pieces[0])))
        self.end_headers()
        rec.status = reply.status
        sent, cut = 0, False
        for i, piece in enumerate(pieces):
            if i and delay:
                fake._pause(delay)
            if stall is not None and stall[0] == i:
                fake._pause(stall[1])
            if truncate is not None and sent + len(piece) > truncate:
                piece, cut = piece[: truncate - sent], True
            if piece:
                if chunked:
                    self._write_chunk(piece)
                else:
                    self.wfile.write(piece)
            sent += len(piece)
            if cut:
                break
        if cut and not clean_end:
            self.close_connection = True  # no last chunk: the body ends mid-way
            return
        if stall is not None and stall[0] >= len(pieces):
            fake._pause(stall[1])
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class FakeProviderServer:
    """A real local HTTP server speaking the OpenAI-style, Anthropic, Gemini and Ollama
    protocols, for tests, notebooks, browser tests and the offline demo.

    ::

        with FakeProviderServer(delay=0) as srv:
            base = srv.url_for("anthropic")                  # http://127.0.0.1:PORT
            srv.script("chat", Scripted(status=429, retry_after=1))
            ...                                               # first chat: 429, then the demo
            srv.requests[-1].headers["x-api-key"]

    Routes: ``POST …/chat/completions`` (OpenAI-style, any prefix; OpenRouter flavour under
    ``/api/v1/`` or with ``openrouter=True``), ``POST /v1/messages``, ``POST
    /v1beta/models/{model}:streamGenerateContent`` (``alt=sse``, else JSON-array mode) and
    ``:generateContent``, ``POST /api/chat``; ``GET …/models``, ``/v1/models`` (Anthropic's
    when ``anthropic-version`` is sent), ``/v1beta/models``, ``/api/tags``.

    Without a script every chat gets the deterministic demo answer (``You said: …``), streamed
    one word per event ``delay`` seconds apart, with usage and the terminal marker.
    Scripts (:class:`Scripted`) are queued per route key and consumed in order; a request
    takes the first non-empty queue of: its exact path, ``"<protocol>.<kind>"`` (e.g.
    ``"openai.chat"``), ``"<protocol>"``, ``"<kind>"`` (``"chat"``/``"models"``), ``"*"``.

    ``strict=True`` answers what real OpenAI reasoning models and Claude models refuse
    (temperature on o-series/gpt-5, max_tokens missing on Anthropic...) with the providers'
    own 400 bodies (see ``_strict.py``).

    Binds 127.0.0.1 only; request bodies above ``max_body`` get a 413. ``stop()`` returns
    promptly even while a stream is stalled.
    """

    def __init__(self, port: int = 0, *, delay: float = 0.02,
                 models: Sequence[DemoModel] = DEMO_MODELS, openrouter: bool = False,
                 require_key: str | None = None, max_body: int = MAX_BODY,
                 strict: bool = False) -> None:
        self.requested_port = port
        self.strict = strict  # enforce today's model parameter rules (see _strict.py)
        self.delay = delay
        self.models: tuple[DemoModel, ...] = tuple(models)
        self.openrouter = openrouter
        self.require_key = require_key
        self.max_body = max_body
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queues: dict[str, deque[Scripted]] = {}
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle

    def start(self) -> FakeProviderServer:
        if self._httpd is not None or self._stopping.is_set():
            raise RuntimeError("a FakeProviderServer starts once")
        self._httpd = _Server(self, self.requested_port)
        self._port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"fake-provider-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and drop every open connection (stalled streams included)."""
        httpd, self._httpd = self._httpd, None
        self._stopping.set()
        if httpd is None:
            return
        httpd.shutdown()
        with httpd.lock:
            connections, handlers = list(httpd.connections), list(httpd.handlers)
        for conn in connections:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        end = time.monotonic() + timeout
        for thread in handlers:
            thread.join(max(end - time.monotonic(), 0.0))
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(max(end - time.monotonic(), 0.0))

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (still known after ``stop()``)."""
        if self._port is None:
            raise RuntimeError("the server has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, provider_type: str) -> str:
        """The ``base_url`` a ProviderConfig of this type should use: ``/v1`` for openai and
        openai_compatible, ``/api/v1`` for openrouter (its real layout, which also selects
        the OpenRouter flavour), the bare base for anthropic, gemini and ollama."""
        suffix = {"openai": "/v1", "openai_compatible": "/v1", "openrouter": "/api/v1",
                  "anthropic": "", "gemini": "", "ollama": ""}
        if provider_type not in suffix:
            raise ValueError(f"unknown provider type {provider_type!r}")
        return self.base_url + suffix[provider_type]

    # -- scripts and records

    def script(self, route: str, *responses: Scripted) -> None:
        """Queue answers for ``route``: an exact path (``"/v1/messages"``), a route name
        (``"chat"``, ``"models"``, ``"anthropic"``, ``"gemini.chat"``...) or ``"*"``."""
        if route != "*" and not route.startswith("/") and route not in ROUTE_NAMES:
            raise ValueError(f"unknown route {route!r}: use '*', a path, or one of "
                             f"{sorted(ROUTE_NAMES)}")
        with self._lock:
            self._queues.setdefault(route, deque()).extend(responses)

    def pending(self) -> int:
        """How many scripted answers are still queued."""
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        """Forget the recorded requests and the queued scripts."""
        with self._lock:
            self._requests.clear()
            self._queues.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in order."""
        with self._lock:
            return list(self._requests)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate`` until it holds (``True``) or ``timeout`` passes (``False``)."""
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= end:
                return False
            time.sleep(0.005)
        return True

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)

    def _take(self, path: str, route: Route | None) -> Scripted | None:
        keys = [path]
        if route is not None:
            keys += [route.name, route.protocol, route.kind]
        keys.append("*")
        with self._lock:
            for key in keys:
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _pause(self, seconds: float) -> None:
        """Sleep, unless the server is stopping: then abort the response."""
        if self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set():
            raise _Abort
