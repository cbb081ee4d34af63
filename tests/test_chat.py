"""ws.chat end to end over real loopback HTTP, for every provider type."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _util import PLANTED_KEY, PLANTED_ODD_KEY, files_containing

import viagent_jupyter as vj
from viagent_jupyter.testing import FakeProviderServer, Scripted, demo_text

TYPES = ["openai", "openrouter", "openai_compatible", "anthropic", "gemini", "ollama"]


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as srv:
        yield srv


def add(ws: Any, srv: FakeProviderServer, ptype: str, id: str | None = None,
        **kw: Any) -> str:
    pid = id or ptype.replace("_", "-")
    kw.setdefault("api_key", None if ptype in ("ollama", "openai_compatible") else
                  f"sk-test-{ptype}-000000001")
    ws.providers.create(id=pid, provider_type=ptype, name=f"Fake {ptype}",
                        base_url=srv.url_for(ptype), default_model="demo-small", **kw)
    return pid


@pytest.mark.parametrize("ptype", TYPES)
def test_chat_streams_text_usage_and_finish_for_every_type(
    ws: Any, server: FakeProviderServer, ptype: str
) -> None:
    pid = add(ws, server, ptype)
    s = ws.chat("Hello there", provider=pid, system="Be brief.", temperature=0.3)
    deltas = list(s)
    assert len(deltas) > 3 and "".join(deltas) == s.text == demo_text("Hello there")
    assert s.finish_reason == "stop" and s.model == "demo-small"
    assert s.usage.prompt_tokens and s.usage.completion_tokens
    rec = ws.stats.get(pid, "demo-small")
    assert rec.requests == 1 and rec.prompt_tokens == s.usage.prompt_tokens
    assert rec.completion_tokens == s.usage.completion_tokens
    (req,) = [r for r in server.requests if r.method == "POST"]
    body = req.json
    if ptype == "anthropic":
        assert body["system"] == "Be brief." and req.headers["x-api-key"].startswith("sk-test")
        assert req.headers["anthropic-version"] and body["max_tokens"] > 0
    elif ptype == "gemini":
        assert body["systemInstruction"]["parts"][0]["text"] == "Be brief."
        assert req.query.get("alt") == "sse" and "x-goog-api-key" in req.headers
        assert "key" not in req.query
    elif ptype == "ollama":
        assert body["stream"] is True and body["messages"][0]["role"] == "system"
        assert body["options"]["temperature"] == 0.3
    else:
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["stream_options"] == {"include_usage": True}
        if ptype != "openai_compatible":
            assert req.headers["authorization"] == f"Bearer sk-test-{ptype}-000000001"
        assert body["temperature"] == 0.3


def test_openrouter_reported_cost_and_extra_headers(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "openrouter", headers={"HTTP-Referer": "https://example.test",
                                                 "X-Title": "viagent tests"})
    s = ws.chat("price me", provider=pid)
    s.wait()
    assert s.cost is not None and s.cost > 0
    req = server.requests[-1]
    assert req.headers["http-referer"] == "https://example.test"
    assert req.headers["x-title"] == "viagent tests"
    assert ws.stats.get(pid, "demo-small").cost == pytest.approx(s.cost)


def test_cost_from_registry_pricing_when_not_reported(ws: Any, server: FakeProviderServer
                                                      ) -> None:
    pid = add(ws, server, "openai")
    assert ws.chat("no prices yet", provider=pid).wait().cost is None
    ws.registry.refresh(pid)
    or_models = {m.id: m for m in ws.models(pid)}
    # OpenAI's /models has no prices: add them the way OpenRouter lists them
    assert or_models["demo-small"].pricing is None
    orid = add(ws, server, "openrouter")
    ws.models(orid, refresh=True)
    pricing = ws.registry.pricing(orid, "demo-small")
    assert pricing is not None and pricing["prompt"] > 0


def test_settings_resolution_call_over_provider_over_defaults(
    ws: Any, server: FakeProviderServer
) -> None:
    pid = add(ws, server, "openai_compatible", settings={"temperature": 0.1, "top_p": 0.5})
    ws.chat("a", provider=pid).wait()
    ws.chat("b", provider=pid, temperature=1.5, max_tokens=7, presence_penalty=1).wait()
    first, second = [r.json for r in server.requests if r.method == "POST"]
    assert (first["temperature"], first["top_p"]) == (0.1, 0.5) and "max_tokens" not in first
    assert (second["temperature"], second["top_p"], second["max_tokens"]) == (1.5, 0.5, 7)
    assert second["presence_penalty"] == 1
    with pytest.raises(vj.ConfigValidationError, match="temperature"):
        ws.chat("c", provider=pid, temperature=9)


def test_multi_turn_messages_and_selected_provider(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "anthropic")
    ws.providers.select(pid)
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"}, vj.Message(role="user", content="three")]
    s = ws.chat(msgs)
    assert s.wait().text == demo_text("three")
    body = server.requests[-1].json
    assert body["system"] == "sys"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_max_tokens_gives_length(ws: Any, server: FakeProviderServer) -> None:
    for ptype in TYPES:
        pid = add(ws, server, ptype)
        s = ws.chat("a long question that needs many words", provider=pid, max_tokens=3)
        s.wait()
        assert s.finish_reason == "length", ptype
        assert s.raw_finish_reason


def test_truncated_stream_keeps_partial_text_and_counts(ws: Any, server: FakeProviderServer
                                                        ) -> None:
    pid = add(ws, server, "openai")
    server.script("chat", Scripted(truncate_after=1200))
    s = ws.chat("cut me off please", provider=pid)
    got: list[str] = []
    with pytest.raises(vj.ProviderError) as info:
        got.extend(s)
    assert isinstance(info.value, (vj.ProviderResponseError, vj.ProviderConnectionError))
    assert got and s.text == "".join(got) and s.finish_reason == "error"
    assert s.error is info.value
    assert ws.stats.get(pid, "demo-small").requests == 1
    assert ws.stats.get(pid, "demo-small").errors == 1


def test_clean_end_without_marker_is_a_response_error(ws: Any, server: FakeProviderServer
                                                      ) -> None:
    pid = add(ws, server, "anthropic")
    server.script("chat", Scripted(truncate_after=700, clean_end=True))
    s = ws.chat("hello", provider=pid)
    with pytest.raises(vj.ProviderResponseError, match="anthropic"):
        s.wait()
    assert s.text


def test_close_mid_stream_cancels_and_closes_the_connection(
    ws: Any, server: FakeProviderServer
) -> None:
    pid = add(ws, server, "openai")
    server.script("chat", Scripted(delay=0.05))
    s = ws.chat("a fairly long prompt so the answer has many words in it", provider=pid)
    it = iter(s)
    next(it)
    next(it)
    s.close()
    assert s.finish_reason == "cancelled" and s.done
    req = server.requests[-1]
    assert server.wait_for(lambda: req.finished.is_set(), timeout=3)
    assert req.disconnected
    assert ws.stats.get(pid, "demo-small").requests == 1


def test_keyboard_interrupt_during_iteration_cancels(ws: Any, server: FakeProviderServer
                                                     ) -> None:
    """A real SIGINT while the stream waits on the network (as Ctrl-C / Interrupt Kernel).

    No timer: the server stops after three chunks, and the signal is sent once the main
    thread is back inside the stream (it cannot leave it: nothing more arrives)."""
    pid = add(ws, server, "gemini")
    server.script("chat", Scripted(stall=(3, 60)))
    s = ws.chat("interrupt me while you are still talking please", provider=pid)
    got: list[str] = []
    main = threading.main_thread()
    run_code = type(s)._run.__code__

    def inside_the_stream() -> bool:
        frame = sys._current_frames().get(main.ident or 0)
        while frame is not None:
            if frame.f_code is run_code:
                return True
            frame = frame.f_back
        return False

    def interrupt_when_waiting() -> None:
        while not (len(got) == 3 and inside_the_stream()):
            if stop.wait(0.005):
                return
        signal.pthread_kill(main.ident or 0, signal.SIGINT)

    stop = threading.Event()
    watcher = threading.Thread(target=interrupt_when_waiting, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for d in s:
                got.append(d)
    finally:
        stop.set()
        watcher.join(10)
    assert s.finish_reason == "cancelled" and len(got) == 3 and s.text == "".join(got)
    assert s.done and ws.stats.get(pid, "demo-small").requests == 1
    assert ws.chat("still works", provider=pid).wait().finish_reason == "stop"


def test_text_is_the_text_so_far_in_both_streams(ws: Any, server: FakeProviderServer) -> None:
    """One meaning for ``.text`` in the sync and async streams: the text received so far."""
    pid = add(ws, server, "ollama")
    s = ws.chat("so far", provider=pid)
    it = iter(s)
    first = next(it)
    assert s.text == first and not s.done  # after one delta: that delta, no waiting
    assert s.wait().text == demo_text("so far") and s.done

    async def main() -> tuple[str, str, str]:
        a = ws.achat("so far", provider=pid)
        ait = aiter(a)
        afirst = await anext(ait)
        partial = a.text
        await a.wait()
        return afirst, partial, a.text

    afirst, partial, whole = asyncio.run(main())
    assert partial == afirst and whole == demo_text("so far")


def test_text_of_an_unstarted_stream_still_waits_with_a_warning(
    ws: Any, server: FakeProviderServer
) -> None:
    pid = add(ws, server, "ollama")
    with pytest.warns(FutureWarning, match=r"wait\(\)\.text"):
        assert ws.chat("hi", provider=pid).text == demo_text("hi")


def test_async_chat(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "anthropic")

    async def main() -> tuple[str, Any]:
        s = ws.achat("async hello", provider=pid)
        parts = [d async for d in s]
        await ws.aclose()
        return "".join(parts), s

    text, s = asyncio.run(main())
    assert text == demo_text("async hello") == s.text
    assert s.finish_reason == "stop" and s.usage.completion_tokens
    assert ws.stats.get(pid, "demo-small").requests == 1


def test_errors_map_and_no_usage_before_start(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "openai")
    server.script("chat", Scripted(status=401, message=f"Incorrect API key {PLANTED_KEY}"))
    with pytest.raises(vj.AuthenticationError) as info:
        ws.chat("x", provider=pid).wait()
    assert info.value.status_code == 401 and info.value.provider == pid
    assert PLANTED_KEY not in str(info.value) and "%llm key" in str(info.value)
    assert ws.stats.get(pid, "demo-small").requests == 0
    server.script("chat", Scripted(status=400, message="bad param"), )
    with pytest.raises(vj.ProviderAPIError, match="bad param"):
        ws.chat("x", provider=pid).wait()


def test_connection_refused_is_one_clear_line(ws: Any) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    ws.providers.create(id="dead", provider_type="openai_compatible",
                        base_url=f"http://127.0.0.1:{port}/v1", default_model="m", max_retries=0)
    with pytest.raises(vj.ProviderConnectionError) as info:
        ws.chat("x", provider="dead").wait()
    msg = str(info.value)
    assert "dead" in msg and "\n" not in msg and info.value.code == "PROVIDER_UNREACHABLE"


def test_missing_model_and_missing_key_are_clear(ws: Any, server: FakeProviderServer) -> None:
    ws.providers.create(id="nomodel", provider_type="ollama", base_url=server.url_for("ollama"))
    with pytest.raises(vj.ConfigValidationError, match="default_model"):
        ws.chat("x", provider="nomodel")
    ws.providers.create(id="nokey", provider_type="anthropic", default_model="m",
                        base_url=server.url_for("anthropic"))
    with pytest.raises(vj.CredentialError, match="ANTHROPIC_API_KEY"):
        ws.chat("x", provider="nokey")
    assert server.requests == []


@pytest.mark.parametrize("key", [PLANTED_KEY, PLANTED_ODD_KEY])
def test_planted_key_goes_only_into_its_own_header(
    ws: Any, home: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeProviderServer(delay=0) as own, FakeProviderServer(delay=0) as other:
        ws.providers.create(id="mine", provider_type="openai", api_key=key,
                            base_url=own.url_for("openai"), default_model="demo-small")
        ws.providers.create(id="theirs", provider_type="openai_compatible",
                            base_url=other.url_for("openai_compatible"),
                            default_model="demo-small")
        texts: list[str] = []
        s = ws.chat("hello", provider="mine")
        s.wait()
        texts += [repr(s), repr(s.usage), repr(ws.stats.all())]
        ws.chat("hello", provider="theirs").wait()
        ws.models("mine", refresh=True)
        own.script("chat", Scripted(status=401, message=f"bad key {key} given"))
        with pytest.raises(vj.AuthenticationError) as info:
            ws.chat("again", provider="mine").wait()
        texts += [str(info.value), repr(info.value), repr(vars(info.value))]
        in_stream = f'data: {{"error": {{"message": "{key}"}}}}\n\n'
        own.script("chat", Scripted(status=200, body=in_stream, content_type="text/event-stream"))
        with pytest.raises(vj.ProviderAPIError) as info2:
            ws.chat("again", provider="mine").wait()
        texts += [str(info2.value), repr(vars(info2.value))]
        sent = [r for r in own.requests if key in r.headers.get("authorization", "")]
        assert len(sent) == 4  # 3 chats + 1 model list, each with its own header
        for r in own.requests + other.requests:
            blob = repr(r.headers) + r.body.decode(errors="replace") + r.path + repr(r.query)
            if r in sent:
                blob = blob.replace(f"Bearer {key}", "")
            assert key not in blob
    texts += [rec.getMessage() for rec in caplog.records]
    assert [t for t in texts if key in t] == []
    assert files_containing(home, key) == []


def _record_usage(home: str, n: int, q: Any) -> None:
    os.environ["VIAGENT_KEYRING"] = "0"
    try:
        with vj.Workspace(home=home) as w:
            for _ in range(n):
                w.stats.record("p", "m", vj.Usage(prompt_tokens=3, completion_tokens=5), 0.001)
        q.put("ok")
    except BaseException as exc:
        q.put(repr(exc))


@pytest.mark.slow
def test_two_processes_recording_usage_lose_nothing(home: Path) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_record_usage, args=(str(home), 150, q)) for _ in range(2)]
    for p in procs:
        p.start()
    assert [q.get(timeout=120) for _ in procs] == ["ok", "ok"]
    for p in procs:
        p.join(30)
    with vj.Workspace(home=home) as w:
        rec = w.stats.get("p", "m")
    assert (rec.requests, rec.prompt_tokens, rec.completion_tokens) == (300, 900, 1500)
    assert rec.cost == pytest.approx(0.3)


def test_usage_counters_equal_the_sums(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server, "ollama")
    streams = [ws.chat(f"question number {i} " * (i + 1), provider=pid).wait() for i in range(5)]
    rec = ws.stats.get(pid, "demo-small")
    assert rec.requests == 5
    assert rec.prompt_tokens == sum(s.usage.prompt_tokens for s in streams)
    assert rec.completion_tokens == sum(s.usage.completion_tokens for s in streams)
    assert ws.stats.totals["requests"] == 5 and ws.stats.records[0]["provider"] == pid


def test_import_stays_light() -> None:
    code = ("import sys, viagent_jupyter as vj; vj.__version__; "
            "heavy = [m for m in ('httpx', 'pydantic', 'cryptography', 'anywidget', 'traitlets',"
            " 'markdown_it', 'nh3', 'viagent_jupyter.adapters.openai', 'sqlite3') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
    code2 = ("import sys, viagent_jupyter as vj, tempfile; ws = vj.Workspace(tempfile.mkdtemp());"
             " print([m for m in ('httpx', 'viagent_jupyter.adapters.openai', 'anywidget') "
             "if m in sys.modules])")
    out2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True,
                          check=True, env={**os.environ, "VIAGENT_KEYRING": "0"}).stdout.strip()
    assert out2 == "[]"


def test_overall_deadline_ends_a_stream_that_never_stops(
    ws: Any, server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("VIAGENT_CHAT_DEADLINE", "0.6")  # read when a workspace is built
    pid = add(ws, server, "ollama")
    server.script("chat", Scripted(delay=0.1))  # never silent for long, but slow: ~60 s
    started = time.monotonic()
    ws2 = vj.Workspace(home=ws.home)
    s = ws2.chat("word " * 600, provider=pid)
    with pytest.raises(vj.ProviderConnectionError):
        s.wait()
    assert time.monotonic() - started < 30.0  # the 0.6 s deadline, not the 60 s answer
    assert s.text and s.finish_reason == "error"
    ws2.close()
