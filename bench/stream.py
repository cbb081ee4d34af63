"""Streaming throughput and time to first token over real loopback HTTP.

Run: ``python -m bench.stream [--quick] [--events N] [--reps N] [--format F] [--no-per-event]``.

For each wire format (OpenAI-style SSE, Anthropic SSE, Gemini SSE with CRLF, Ollama NDJSON)
a synthetic 20,000-event answer, shaped like the real provider's, is served by
:class:`~viagent_jupyter.testing.FakeProviderServer` **in a separate process** (so the
server never competes with the client for the GIL) and read end to end by:

1. ours: ``ws.chat(...)`` on a provider whose ``base_url`` is the fake server, iterating
   every delta (our HTTP loop + incremental parser + ``ChatStream`` + usage bookkeeping);
2. the raw httpx floor: ``httpx.Client.stream`` + ``iter_lines`` + ``json.loads`` of each
   data line, picking the text out of it (what any client has to do at least);
3. the official SDK of that format when installed (openai, anthropic, google-genai, ollama);
4. for reference, transport only: the same bytes read with ``iter_raw`` and dropped (far
   below the others: the server is not what limits them).

Chunking, first pass: the server writes the body in **4 KiB chunks**, what a fast stream
looks like after TCP coalescing; wall time is compared. Second pass (ours vs raw httpx
only): **one event per write**, as a provider flushing every token does. There the
single-threaded stdlib server is the slower side and sets everyone's wall time, so that pass
compares the client's CPU time (``time.process_time`` of this process) instead, on half as
many events (10,000) to keep the run short.

Runs are interleaved (A B C, B C A, C A B, …), each client reuses its connection pool,
and one warm-up run per client is discarded. Reported: the median per client and the
median of the per-repetition ratios to raw httpx. Target: ours ≤ 1.3× raw httpx.

Time to first token: many small requests (the fake server's unscripted demo answer, 20-odd
events, no pacing), interleaved ours / raw httpx / SDK; reported: the median of the paired
differences (ours − raw httpx), from the call (``ws.chat(...)``, ``client.stream(...)``)
to the first non-empty text delta. Target: ≤ 0.5 ms extra.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.run import ERROR, INFO, Row, median, print_rows, skipped, verdict

__all__ = ["FORMATS", "ChildServer", "ServerProcess", "build_body", "rows"]

FORMATS = ("openai", "anthropic", "gemini", "ollama")
LABEL = {"openai": "openai-style SSE", "anthropic": "anthropic SSE",
         "gemini": "gemini SSE (CRLF)", "ollama": "ollama NDJSON"}
MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
         "gemini": "gemini-2.0-flash", "ollama": "llama3.2"}
PEER = {"openai": "openai SDK", "anthropic": "anthropic SDK", "gemini": "google-genai SDK",
        "ollama": "ollama client"}
REPO = Path(__file__).resolve().parent.parent
KEY = "sk-bench-0123456789abcdef"
STREAM_RATIO_TARGET = 1.3
TTFT_EXTRA_TARGET_MS = 0.5

# Tokens as a real answer has them: mostly short words with their space, some punctuation,
# newlines and non-ASCII text.
VOCAB = ("The", " model", " streams", " tokens", ",", " one", " at", " a", " time", ".",
         " Café", " naïve", " —", " 日本語", " code", "`", " fn", "(", "x", ")", "\n\n",
         " **bold**", " and", " plain", " text", " über", " 42", " %", " é", "!")


def tokens(n: int) -> list[str]:
    return [VOCAB[i % len(VOCAB)] for i in range(n)]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def build_body(fmt: str, n: int) -> tuple[list[bytes], str]:
    """The events of an ``n``-token streamed answer in ``fmt``'s wire shape (one bytes
    object per event, framing included) and its content type."""
    toks = tokens(n)
    if fmt == "openai":
        head = {"id": "chatcmpl-BenchBench0123456789", "object": "chat.completion.chunk",
                "created": 1_750_000_000, "model": "gpt-4o-mini-2024-07-18",
                "service_tier": "default", "system_fingerprint": "fp_0123456789"}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return b"data: " + _dumps({**head, "choices": [{
                "index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                "usage": None, "obfuscation": "aBcD"}) + b"\n\n"

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": t}) for t in toks]
        events.append(chunk({}, "stop"))
        events.append(b"data: " + _dumps({**head, "choices": [], "usage": {
            "prompt_tokens": 9, "completion_tokens": n, "total_tokens": n + 9,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}})
            + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events, "text/event-stream; charset=utf-8"
    if fmt == "anthropic":
        def event(name: str, obj: Any) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + _dumps(obj) + b"\n\n"

        events = [
            event("message_start", {"type": "message_start", "message": {
                "id": "msg_01BenchBenchBench", "type": "message", "role": "assistant",
                "model": "claude-3-5-haiku-20241022", "content": [], "stop_reason": None,
                "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1,
                                                  "cache_creation_input_tokens": 0,
                                                  "cache_read_input_tokens": 0}}}),
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}),
            event("ping", {"type": "ping"}),
        ]
        events += [event("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": t}}) for t in toks]
        events += [
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": n}}),
            event("message_stop", {"type": "message_stop"}),
        ]
        return events, "text/event-stream; charset=utf-8"
    if fmt == "gemini":
        events = []
        for i, t in enumerate(toks):
            cand: dict[str, Any] = {"content": {"parts": [{"text": t}], "role": "model"},
                                    "index": 0}
            if i == n - 1:
                cand["finishReason"] = "STOP"
            events.append(b"data: " + _dumps({
                "candidates": [cand],
                "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": i + 1,
                                  "totalTokenCount": i + 10,
                                  "promptTokensDetails": [{"modality": "TEXT",
                                                           "tokenCount": 9}]},
                "modelVersion": "gemini-2.0-flash", "responseId": "BenchBenchBench01"})
                + b"\r\n\r\n")
        return events, "text/event-stream"
    if fmt == "ollama":
        events = [_dumps({"model": "llama3.2", "created_at": "2025-06-01T12:00:00.123456789Z",
                          "message": {"role": "assistant", "content": t}, "done": False})
                  + b"\n" for t in toks]
        events.append(_dumps({
            "model": "llama3.2", "created_at": "2025-06-01T12:00:09.123456789Z",
            "message": {"role": "assistant", "content": ""}, "done_reason": "stop",
            "done": True, "total_duration": 9_000_000_000, "load_duration": 1_000_000,
            "prompt_eval_count": 9, "prompt_eval_duration": 2_000_000, "eval_count": n,
            "eval_duration": 8_000_000_000}) + b"\n")
        return events, "application/x-ndjson"
    raise ValueError(f"unknown format {fmt!r}")


def per_event_count(n: int) -> int:
    """The one-event-per-write pass streams half as many events (it compares CPU per event,
    and each event costs the server a write)."""
    return max(n // 2, 1)


def expected_chars(n: int) -> int:
    return sum(len(t) for t in tokens(n))


# --------------------------------------------------------------------------- the server


def serve(n_events: int) -> None:
    """The child process (``python -m bench.stream --serve N``): a 'big' server answering
    scripted ``N``-event streams and a 'small' one answering the demo answer. Prints the
    two ports; each stdin line ``FMT CHUNKING`` queues one big answer and is acked."""
    import sys

    from viagent_jupyter.testing import FakeProviderServer, Scripted

    scripts = {}
    for fmt in FORMATS:
        events, ctype = build_body(fmt, n_events)
        scripts[fmt, "4k"] = Scripted(body=b"".join(events), content_type=ctype, chunks=4096)
        events, ctype = build_body(fmt, per_event_count(n_events))
        scripts[fmt, "event"] = Scripted(body=b"".join(events), content_type=ctype,
                                         chunks=[len(e) for e in events])
    with FakeProviderServer(delay=0) as big, FakeProviderServer(delay=0) as small:
        print(big.port, small.port, flush=True)
        for line in sys.stdin:
            fmt, chunking = line.split()
            big.script(f"{fmt}.chat", scripts[fmt, chunking])
            if len(big.requests) > 1000:  # the record of requests only grows
                big.clear()
            print("ok", flush=True)


class ChildServer:
    """Fake provider servers in a child process (``python -m MODULE --serve ...``), so that
    serving never competes with the measured client for the GIL. The child prints its
    ports on one line, then answers each command line written to its stdin with ``ok``."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self._proc: subprocess.Popen[str] | None = None
        self.ports: list[int] = []

    def __enter__(self) -> ChildServer:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        self._proc = subprocess.Popen([sys.executable, "-m", *self.argv],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env=env, cwd=REPO)
        assert self._proc.stdout is not None
        try:
            self.ports = [int(p) for p in self._proc.stdout.readline().split()]
        except ValueError:
            self.ports = []
        if not self.ports:
            self.__exit__()
            raise RuntimeError(f"the fake provider process ({self.argv[0]}) did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

    def command(self, line: str) -> None:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        if self._proc.stdout.readline().strip() != "ok":
            raise RuntimeError("the fake provider process stopped")


class ServerProcess(ChildServer):
    """bench.stream's servers: ``big`` (scripted N-event answers) and ``small`` (demo)."""

    def __init__(self, n_events: int = 20_000) -> None:
        super().__init__(["bench.stream", "--serve", str(n_events)])

    def __enter__(self) -> ServerProcess:
        super().__enter__()
        return self

    @property
    def big_port(self) -> int:
        return self.ports[0]

    @property
    def small_port(self) -> int:
        return self.ports[1]

    def arm(self, fmt: str, chunking: str = "4k") -> None:
        """The next chat of ``fmt`` on the big server gets the big answer, so chunked."""
        self.command(f"{fmt} {chunking}")

    def url(self, fmt: str, big: bool = True) -> str:
        port = self.big_port if big else self.small_port
        return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- clients

#: A client reads one whole answer; ``on_first`` is called at its first non-empty delta.
Reader = Callable[[Callable[[], None]], int]


def _noop() -> None:
    pass


def _base_url(fmt: str, root: str) -> str:
    return root + "/v1" if fmt == "openai" else root


def make_ours(ws: Any, fmt: str, root: str, pid: str) -> Reader:
    """Create provider ``pid`` of type ``fmt`` at ``root``; its reader."""
    ws.providers.create(id=pid, provider_type=fmt, name=f"bench {fmt}",
                        base_url=_base_url(fmt, root), default_model=MODEL[fmt],
                        api_key=None if fmt == "ollama" else KEY, max_retries=0)
    return _ours_reader(ws, pid)


def _ours_reader(ws: Any, pid: str) -> Reader:
    def read(on_first: Callable[[], None] = _noop) -> int:
        n = 0
        for delta in ws.chat("Say something long.", provider=pid):
            if not n:
                on_first()
            n += len(delta)
        return n

    return read


def make_httpx(client: Any, fmt: str, root: str) -> Reader:
    """The floor: stream, split lines, json.loads each data line, pick the text."""
    loads = json.loads
    msgs = [{"role": "user", "content": "Say something long."}]
    if fmt == "openai":
        url, headers = root + "/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}
        body: dict[str, Any] = {"model": MODEL[fmt], "messages": msgs, "stream": True,
                                "stream_options": {"include_usage": True}}

        def read_openai(on_first: Callable[[], None] = _noop) -> int:
            n = 0
            with client.stream("POST", url, json=body, headers=headers) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        data = line[6:]
                        if data == "[DONE]":
                            break
                        choices = loads(data)["choices"]
                        if choices:
                            text = choices[0]["delta"].get("content")
                            if text:
                                if not n:
                                    on_first()
                                n += len(text)
            return n

        return read_openai
    if fmt == "anthropic":
        url = root + "/v1/messages"
        headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        body = {"model": MODEL[fmt], "max_tokens": 1024, "messages": msgs, "stream": True}

        def read_anthropic(on_first: Callable[[], None] = _noop) -> int:
            n = 0
            with client.stream("POST", url, json=body, headers=headers) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        obj = loads(line[6:])
                        if obj["type"] == "content_block_delta":
                            text = obj["delta"].get("text")
                            if text:
                                if not n:
                                    on_first()
                                n += len(text)
                        elif obj["type"] == "message_stop":
                            break
            return n

        return read_anthropic
    if fmt == "gemini":
        url = f"{root}/v1beta/models/{MODEL[fmt]}:streamGenerateContent"
        headers = {"x-goog-api-key": KEY}
        body = {"contents": [{"role": "user", "parts": [{"text": "Say something long."}]}]}

        def read_gemini(on_first: Callable[[], None] = _noop) -> int:
            n = 0
            with client.stream("POST", url, params={"alt": "sse"}, json=body,
                               headers=headers) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        for part in loads(line[6:])["candidates"][0]["content"]["parts"]:
                            text = part.get("text")
                            if text:
                                if not n:
                                    on_first()
                                n += len(text)
            return n

        return read_gemini
    url = root + "/api/chat"
    body = {"model": MODEL[fmt], "messages": msgs, "stream": True}

    def read_ollama(on_first: Callable[[], None] = _noop) -> int:
        n = 0
        with client.stream("POST", url, json=body) as r:
            for line in r.iter_lines():
                if line:
                    obj = loads(line)
                    text = obj["message"]["content"]
                    if text:
                        if not n:
                            on_first()
                        n += len(text)
                    if obj["done"]:
                        break
        return n

    return read_ollama


def make_peer(fmt: str, root: str) -> Reader | str:
    """The official client of ``fmt``, or why it cannot run (a string)."""
    msgs = [{"role": "user", "content": "Say something long."}]
    try:
        if fmt == "openai":
            import openai

            oa: Any = openai.OpenAI(base_url=root + "/v1", api_key=KEY, max_retries=0)

            def read_openai(on_first: Callable[[], None] = _noop) -> int:
                n = 0
                stream = oa.chat.completions.create(
                    model=MODEL[fmt], messages=msgs, stream=True,
                    stream_options={"include_usage": True})
                for chunk in stream:
                    if chunk.choices:
                        text = chunk.choices[0].delta.content
                        if text:
                            if not n:
                                on_first()
                            n += len(text)
                return n

            return read_openai
        if fmt == "anthropic":
            import anthropic

            an: Any = anthropic.Anthropic(base_url=root, api_key=KEY, max_retries=0)

            def read_anthropic(on_first: Callable[[], None] = _noop) -> int:
                n = 0
                events = an.messages.create(model=MODEL[fmt], max_tokens=1024,
                                            messages=msgs, stream=True)
                for ev in events:
                    if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                        text = ev.delta.text
                        if text:
                            if not n:
                                on_first()
                            n += len(text)
                return n

            return read_anthropic
        if fmt == "gemini":
            from google import genai
            from google.genai import types

            gc_: Any = genai.Client(api_key=KEY, http_options=types.HttpOptions(
                base_url=root + "/", api_version="v1beta"))

            def read_gemini(on_first: Callable[[], None] = _noop) -> int:
                n = 0
                for chunk in gc_.models.generate_content_stream(
                        model=MODEL[fmt], contents="Say something long."):
                    text = chunk.text
                    if text:
                        if not n:
                            on_first()
                        n += len(text)
                return n

            return read_gemini
        import ollama

        ol: Any = ollama.Client(host=root)

        def read_ollama(on_first: Callable[[], None] = _noop) -> int:
            n = 0
            for chunk in ol.chat(model=MODEL[fmt], messages=msgs, stream=True):
                text = chunk.message.content
                if text:
                    if not n:
                        on_first()
                    n += len(text)
            return n

        return read_ollama
    except ImportError:
        return "not installed — skipped"


# --------------------------------------------------------------------------- measuring


def make_drain(client: Any, fmt: str, root: str) -> Reader:
    """Transport only: the same request as the floor, body bytes read and dropped. Close
    to the floor means the server, not the client, sets the pace."""
    if fmt == "openai":
        url, kw = root + "/v1/chat/completions", {
            "headers": {"Authorization": f"Bearer {KEY}"},
            "json": {"model": MODEL[fmt], "stream": True, "messages": []}}
    elif fmt == "anthropic":
        url, kw = root + "/v1/messages", {
            "headers": {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
            "json": {"model": MODEL[fmt], "stream": True, "max_tokens": 1, "messages": []}}
    elif fmt == "gemini":
        url, kw = f"{root}/v1beta/models/{MODEL[fmt]}:streamGenerateContent", {
            "params": {"alt": "sse"}, "headers": {"x-goog-api-key": KEY},
            "json": {"contents": []}}
    else:
        url, kw = root + "/api/chat", {"json": {"model": MODEL[fmt], "messages": []}}

    def read(on_first: Callable[[], None] = _noop) -> int:
        n = 0
        with client.stream("POST", url, **kw) as r:
            for chunk in r.iter_raw():
                n += len(chunk)
        return n

    return read


@dataclass
class Series:
    name: str
    read: Reader
    times: list[float] = field(default_factory=list)  # wall ms
    cpus: list[float] = field(default_factory=list)  # this process's CPU ms
    chars: int = -1
    error: str = ""
    check: bool = True  # compare the characters read with the answer's


def _timed(read: Reader) -> tuple[float, float, int]:
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    n = read(_noop)
    return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000, n


@contextmanager
def _workspace() -> Iterator[Any]:
    os.environ.setdefault("VIAGENT_KEYRING", "0")
    import viagent_jupyter as vj

    with tempfile.TemporaryDirectory() as tmp, vj.Workspace(home=tmp) as ws:
        yield ws


def throughput(srv: ServerProcess, ws: Any, client: Any, fmt: str, reps: int,
               n_events: int, chunking: str = "4k", peers: bool = True) -> list[Row]:
    """Ours, the raw httpx floor and the SDK on the big answer, interleaved."""
    root = srv.url(fmt)
    pid = f"big-{fmt}"
    if pid not in ws.providers:
        make_ours(ws, fmt, root, pid)
    series = [Series("ours (ws.chat)", _ours_reader(ws, pid)),
              Series("raw httpx floor", make_httpx(client, fmt, root))]
    peer: Reader | str = make_peer(fmt, root) if peers else ""
    if not isinstance(peer, str):
        series.append(Series(PEER[fmt], peer))
    if chunking == "4k":
        series.append(Series("transport only (httpx iter_raw)", make_drain(client, fmt, root),
                             check=False))
    if chunking == "event":
        n_events = per_event_count(n_events)
    want = expected_chars(n_events)
    for s in series:  # warm-up: connection, imports, first-call caches
        srv.arm(fmt, chunking)
        try:
            s.chars = s.read(_noop)
        except Exception as exc:  # a peer that cannot talk to the fake server
            s.error = f"{type(exc).__name__}: {exc}"[:120]
    live = [s for s in series if not s.error]
    for rep in range(reps):
        k = rep % len(live)
        for s in live[k:] + live[:k]:
            srv.arm(fmt, chunking)
            ms, cpu, n = _timed(s.read)
            s.times.append(ms)
            s.cpus.append(cpu)
            if s.check and n != want:
                s.error = f"incomplete answer: {n} of {want} characters"
    label = LABEL[fmt]
    ours, floor = series[0], series[1]
    out: list[Row] = []
    per_event = chunking == "event"
    for s in series:
        what = f"{label}: {s.name}"
        name = (f"{what}, client CPU, {n_events:,} events, 1 event/write" if per_event
                else f"{what}, {n_events:,} events")
        if s.error or not s.times:
            out.append(Row("stream", name, None, "", verdict=ERROR, note=s.error or "no runs"))
            continue
        # One event per write: the server sets the pace (every client's wall time is the
        # server's), so what differs is the client's CPU per event.
        mine, base = (s.cpus, floor.cpus) if per_event else (s.times, floor.times)
        value = median(mine)
        ratio = None
        if not floor.error and len(base) == len(mine):
            ratio = median(a / b for a, b in zip(mine, base, strict=True))
        extra = {"wall_ms": s.times, "cpu_ms": s.cpus, "chunking": chunking,
                 "events": n_events}
        if per_event:
            note = f"wall {median(s.times):.0f} ms"
        else:
            note = f"client CPU {median(s.cpus):.0f} ms"
            if s is not floor and not floor.error and len(floor.cpus) == len(s.cpus):
                cpu_ratio = median(a / b for a, b in zip(s.cpus, floor.cpus, strict=True))
                note += f" ({cpu_ratio:.2f}× raw httpx's)"
        if s is ours:
            out.append(Row("stream", name, value, "ms",
                           target=f"≤ {STREAM_RATIO_TARGET}× raw httpx", ratio=ratio,
                           verdict=verdict(ratio, STREAM_RATIO_TARGET), note=note,
                           extra=extra))
        else:
            out.append(Row("stream", name, value, "ms", ratio=ratio, verdict=INFO,
                           note=note, extra=extra))
    if isinstance(peer, str) and peer:
        out.append(skipped("stream", f"{label}: {PEER[fmt]}", peer))
    return out


def _stamper(mark: list[float]) -> Callable[[], None]:
    def stamp() -> None:
        mark.append(time.perf_counter())

    return stamp


def ttft(srv: ServerProcess, ws: Any, client: Any, fmt: str, pairs: int) -> list[Row]:
    """Extra time to first token of ours (and of the SDK) over raw httpx, small answers."""
    root = srv.url(fmt, big=False)
    readers: dict[str, Reader] = {
        "ours": make_ours(ws, fmt, root, f"small-{fmt}"),
        "httpx": make_httpx(client, fmt, root),
    }
    peer = make_peer(fmt, root)
    if not isinstance(peer, str):
        readers["peer"] = peer
    firsts: dict[str, list[float]] = {k: [] for k in readers}
    names = list(readers)
    for name in names:  # warm-up
        try:
            readers[name](_noop)
        except Exception:
            readers.pop(name)
            firsts.pop(name)
    names = list(readers)
    for i in range(pairs):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            mark: list[float] = []
            t0 = time.perf_counter()
            readers[name](_stamper(mark))
            if mark:
                firsts[name].append((mark[0] - t0) * 1000)
    out: list[Row] = []
    base = firsts.get("httpx", [])
    label = LABEL[fmt]
    for name, target_row in (("ours", True), ("peer", False)):
        values = firsts.get(name)
        if not values or len(values) != len(base):
            if name == "peer":
                continue
            out.append(Row("stream", f"{label}: extra TTFT, ours − raw httpx", None, "",
                           verdict=ERROR, note="no first token measured"))
            continue
        extra = median(a - b for a, b in zip(values, base, strict=True))
        who = "ours" if name == "ours" else PEER[fmt]
        note = (f"medians: {who} {median(values):.3f} ms, raw httpx {median(base):.3f} ms, "
                f"{len(values)} pairs")
        out.append(Row("stream", f"{label}: extra TTFT, {who} − raw httpx", extra, "ms",
                       target=f"≤ {TTFT_EXTRA_TARGET_MS} ms" if target_row else "",
                       verdict=verdict(extra, TTFT_EXTRA_TARGET_MS) if target_row else INFO,
                       note=note, extra={"first_ms": values, "httpx_first_ms": base}))
    return out


def rows(quick: bool = False, n_events: int | None = None, reps: int | None = None,
         formats: tuple[str, ...] = FORMATS, per_event: bool = True) -> list[Row]:
    import httpx

    n_events = n_events or (5_000 if quick else 20_000)
    reps = reps or (3 if quick else 5)
    pairs = 40 if quick else 150
    out: list[Row] = []
    with ServerProcess(n_events) as srv, _workspace() as ws, \
            httpx.Client(timeout=60) as client:
        for fmt in formats:
            out += throughput(srv, ws, client, fmt, reps, n_events, "4k")
        if per_event:
            for fmt in formats:
                out += throughput(srv, ws, client, fmt, reps, n_events, "event", peers=False)
        for fmt in formats:
            out += ttft(srv, ws, client, fmt, pairs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--no-per-event", action="store_true",
                        help="skip the one-event-per-write CPU rows")
    parser.add_argument("--format", action="append", choices=FORMATS, default=[])
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    print_rows(rows(args.quick, args.events, args.reps, tuple(args.format) or FORMATS,
                    per_event=not args.no_per_event))


if __name__ == "__main__":
    main()
