"""Issue 12: today's model parameter rules, reasoning, and real-server defects — over real
loopback HTTP (the fake provider in strict mode enforces the providers' documented rules),
a real IPython shell for the magic, and the recorded provider traffic where it exists."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adapters.conftest import SKIP_REASON, find_wire_dir
from test_magics import RecordingPublisher
from test_magics import shell as shell  # the fixture
from test_render import assert_safe_bundle

import viagent_jupyter as vj
from viagent_jupyter.magics import load, unload
from viagent_jupyter.schema import ModelSettings
from viagent_jupyter.testing import FakeProviderServer, Scripted

WIRE = find_wire_dir()
needs_wire = pytest.mark.skipif(WIRE is None, reason=SKIP_REASON)


@pytest.fixture
def strict() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0, strict=True) as srv:
        yield srv


def add(ws: Any, srv: FakeProviderServer, ptype: str, model: str, pid: str | None = None,
        **kw: Any) -> str:
    pid = pid or ptype.replace("_", "-")
    kw.setdefault("api_key", None if ptype in ("ollama", "openai_compatible") else
                  f"sk-test-{ptype}-000000001")
    ws.providers.create(id=pid, provider_type=ptype, name=f"Fake {ptype}",
                        base_url=srv.url_for(ptype), default_model=model, max_retries=0, **kw)
    return pid


def chats(srv: FakeProviderServer) -> list[Any]:
    return [r for r in srv.requests if r.route and r.route.endswith(".chat")]


class Magic:
    def __init__(self, sh: Any, ws: Any, pub: RecordingPublisher) -> None:
        self.shell, self.ws, self.pub = sh, ws, pub

    def run(self, cell: str) -> Any:
        self.shell.run_cell(cell)
        return self.shell.user_ns["_llm"]


@pytest.fixture
def magic(shell: Any, ws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Magic]:
    pub = RecordingPublisher(shell=shell)
    monkeypatch.setattr(shell, "display_pub", pub)
    load(shell, workspace=ws)
    try:
        yield Magic(shell, ws, pub)
    finally:
        unload(shell)
        shell.user_ns.pop("_llm", None)
        for call in pub.calls:
            assert_safe_bundle(call.data)


# -- 1. never send what the user did not ask for ---------------------------------------------


def test_settings_are_unset_by_default_and_the_public_api_still_sets_them(ws: Any) -> None:
    assert ModelSettings() == ModelSettings(temperature=None)
    assert ModelSettings().model_dump(exclude_none=True) == {}
    cfg = ws.providers.create(id="oa", provider_type="openai", name="OpenAI", api_key="sk-x",
                              settings={"temperature": 0.2})
    assert cfg.settings.temperature == 0.2 and cfg.settings.top_p is None


def test_llm_on_an_openai_reasoning_model_works_with_default_settings(
        magic: Magic, strict: FakeProviderServer) -> None:
    """OpenAI reasoning models (o-series, gpt-5) refuse temperature != 1, top_p, penalties and
    max_tokens with HTTP 400 (https://platform.openai.com/docs/guides/reasoning); the strict
    server answers exactly that body. With default settings nothing of it is sent."""
    add(magic.ws, strict, "openai", "o4-mini")
    magic.ws.providers.select("openai")
    result = magic.run("%%llm\nHello there")
    assert result.error is None and result.text.startswith("You said"), result.error
    body = chats(strict)[-1].json
    assert not {"temperature", "top_p", "max_tokens", "frequency_penalty"} & set(body)
    # a cap set by the user goes out under the name reasoning models accept
    result = magic.run("%%llm --max-tokens 50\nHello")
    assert result.error is None
    assert chats(strict)[-1].json["max_completion_tokens"] == 50


def test_a_refused_explicit_setting_is_one_line_naming_it_and_how_to_unset(
        magic: Magic, strict: FakeProviderServer) -> None:
    add(magic.ws, strict, "openai", "gpt-5-mini", settings={"temperature": 0.3})
    magic.ws.providers.select("openai")
    result = magic.run("%%llm\nHello")
    err = str(result.error)
    assert "\n" not in err and "temperature" in err
    assert "ws.providers.update('openai', settings={'temperature': None})" in err
    assert len(chats(strict)) == 1  # the user's own setting is not dropped behind their back
    result = magic.run("%%llm -t 0.5 -p openai\nHello")  # per call: leave it out of the call
    assert "temperature" in str(result.error) and "leave temperature= out" in str(result.error)


def test_llm_on_claude_works_with_default_settings_and_refuses_temperature_with_top_p(
        magic: Magic, strict: FakeProviderServer) -> None:
    """Anthropic requires max_tokens; Claude Opus 4.1 and the 4.5 models refuse temperature
    and top_p together (https://platform.claude.com/docs/en/about-claude/models/
    migrating-to-claude-4)."""
    add(magic.ws, strict, "anthropic", "claude-sonnet-4-5")
    magic.ws.providers.select("anthropic")
    result = magic.run("%%llm\nHello there")
    assert result.error is None and result.text.startswith("You said"), result.error
    body = chats(strict)[-1].json
    assert body["max_tokens"] == 4096 and "temperature" not in body and "top_p" not in body
    magic.ws.providers.update("anthropic", settings={"temperature": 0.5, "top_p": 0.9})
    with pytest.raises(vj.ConfigValidationError, match="temperature or top_p, not both"):
        magic.ws.chat("Hi", provider="anthropic")
    assert len(chats(strict)) == 1  # refused up front: nothing was sent


def test_claude_max_tokens_is_the_users_else_the_model_lists_else_the_default() -> None:
    from viagent_jupyter.adapters import get_adapter
    from viagent_jupyter.adapters.anthropic import DEFAULT_MAX_TOKENS
    from viagent_jupyter.adapters.base import ChatRequest

    adapter = get_adapter("anthropic")

    def sent(**kw: Any) -> Any:
        req = ChatRequest("p", "anthropic", "http://127.0.0.1:9", "claude-opus-5",
                          [{"role": "user", "content": "x"}], **kw)
        return adapter.chat_request(req).json

    assert sent()["max_tokens"] == DEFAULT_MAX_TOKENS
    assert sent(max_output_tokens=128000)["max_tokens"] == 128000
    assert sent(max_output_tokens=128000, settings={"max_tokens": 50})["max_tokens"] == 50
    # adaptive-only models (the 2026 model list says so): thinking adaptive + effort
    body = sent(capabilities=("reasoning", "adaptive_thinking"), settings={"reasoning": "low"})
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "low"}


@needs_wire
def test_the_anthropic_model_list_gives_output_limits_and_adaptive_thinking() -> None:
    from viagent_jupyter.adapters import get_adapter
    from viagent_jupyter.adapters.base import HTTPRequest

    assert WIRE is not None
    body = (WIRE / "anthropic" / "models_list__ellmer_2026-08.json").read_bytes()
    page = get_adapter("anthropic").parse_models(body, HTTPRequest("GET", "http://x", {}))
    opus = next(m for m in page.models if m.id == "claude-opus-5")
    assert opus.max_output_tokens == 128000 and "adaptive_thinking" in opus.capabilities


def test_an_adapter_added_parameter_refused_is_dropped_once_and_remembered(
        ws: Any, strict: FakeProviderServer) -> None:
    """A server refusing ``stream_options`` (which we add, the user did not): retried once
    without it, and the next call leaves it out at once."""
    pid = add(ws, strict, "openai_compatible", "local-model")
    strict.script("chat", Scripted(status=400, content_type="application/json", body=json.dumps(
        {"error": {"message": "Unsupported parameter: 'stream_options' is not supported with "
                   "this model.", "type": "invalid_request_error", "param": "stream_options",
                   "code": "unsupported_parameter"}})))
    s = ws.chat("Hello", provider=pid).wait()
    assert s.text.startswith("You said") and s.error is None
    first, second = chats(strict)
    assert "stream_options" in first.json and "stream_options" not in second.json
    ws.chat("Again", provider=pid).wait()
    assert len(chats(strict)) == 3 and "stream_options" not in chats(strict)[-1].json


def test_max_tokens_is_renamed_when_the_server_names_the_replacement(
        ws: Any, strict: FakeProviderServer) -> None:
    pid = add(ws, strict, "openai_compatible", "o3")  # a compatible server with OpenAI's rules
    s = ws.chat("Hello", provider=pid, max_tokens=40).wait()
    assert s.text.startswith("You said")
    assert [("max_tokens" in r.json, "max_completion_tokens" in r.json)
            for r in chats(strict)] == [(True, False), (False, True)]
    ws.chat("Again", provider=pid, max_tokens=40).wait()
    assert chats(strict)[-1].json["max_completion_tokens"] == 40 and len(chats(strict)) == 3


def test_the_mirascope_unsupported_param_body_names_the_parameter() -> None:
    from viagent_jupyter.adapters._common import http_error
    from viagent_jupyter.refusals import refused_parameter

    body = (b'{"error": {"message": "Unsupported parameter: \'stop\' is not supported with '
            b'this model.", "type": "invalid_request_error", "param": "stop", '
            b'"code": "unsupported_parameter"}}')
    if WIRE is not None:
        body = (WIRE / "openai" / "error_400_unsupported_param__mirascope.json").read_bytes()
    exc = http_error(400, {}, body, "p", "o3")
    assert exc.error_type == "unsupported_parameter"
    assert refused_parameter(exc) is None  # 'stop' is no setting of ours: not retried
    exc = http_error(400, {}, body.replace(b"'stop'", b"'top_p'"), "p", "o3")
    assert refused_parameter(exc) == "top_p"


def test_migration_unsets_the_untouched_default_temperature(tmp_path: Path) -> None:
    from viagent_jupyter import Workspace
    from viagent_jupyter.db import MIGRATIONS

    home = tmp_path / "home"
    ws = Workspace(home=home)
    ws.providers.create(id="a", provider_type="openai", name="A", api_key="sk-a")
    ws.providers.create(id="b", provider_type="openai", name="B", api_key="sk-b",
                        settings={"temperature": 0.2})
    ws.close()
    db = next(home.glob("*.sqlite3"))
    conn = sqlite3.connect(db)
    with conn:  # what an older version wrote: the whole ModelSettings, default 0.7 included
        for pid, data in conn.execute("SELECT id, data FROM providers").fetchall():
            fields = json.loads(data)
            fields["settings"]["temperature"] = fields["settings"]["temperature"] or 0.7
            conn.execute("UPDATE providers SET data = ? WHERE id = ?", (json.dumps(fields), pid))
        conn.execute("DROP TABLE param_refusals")
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    conn.close()
    ws = Workspace(home=home)
    try:
        assert ws.providers.get("a").settings.temperature is None  # the untouched default
        assert ws.providers.get("b").settings.temperature == 0.2  # the user's own
    finally:
        ws.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


# -- 2. reasoning, first-class ---------------------------------------------------------------


@needs_wire
def test_anthropic_thinking_is_shown_apart_in_the_magic(magic: Magic,
                                                         strict: FakeProviderServer) -> None:
    assert WIRE is not None
    add(magic.ws, strict, "anthropic", "claude-sonnet-4-5")
    magic.ws.providers.select("anthropic")
    strict.script("chat", Scripted.from_recording(
        WIRE / "anthropic" / "messages_stream_thinking__llm_anthropic.sse", chunks=64))
    result = magic.run("%%llm -r high\nTwo names for a pet pelican")
    body = chats(strict)[-1].json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 24576}
    assert body["max_tokens"] > 24576 and "temperature" not in body
    assert result.text == "- Captain\n- Scoop"
    assert result.reasoning.startswith("The user wants two names")
    final = magic.pub.calls[-1].data
    assert "<details" in final["text/html"] and "Thinking…" in final["text/html"]
    assert final["text/html"].index("Thinking…") < final["text/html"].index("Captain")
    assert "The user wants" not in result.text


def test_reasoning_with_a_temperature_is_refused_up_front_for_claude(
        ws: Any, strict: FakeProviderServer) -> None:
    add(ws, strict, "anthropic", "claude-sonnet-4-5")
    with pytest.raises(vj.ConfigValidationError, match="temperature unset"):
        ws.chat("Hi", provider="anthropic", reasoning="low", temperature=0.4)
    with pytest.raises(vj.ConfigValidationError, match="below max_tokens"):
        ws.chat("Hi", provider="anthropic", reasoning_budget=2000, max_tokens=1500)
    assert chats(strict) == []


def _ollama_thinking_body() -> bytes:
    """Ollama /api/chat with ``think: true`` (https://docs.ollama.com/capabilities/thinking):
    ``message.thinking`` deltas, then ``message.content``."""
    lines = [{"model": "qwen3", "message": {"role": "assistant", "content": "",
                                            "thinking": t}, "done": False}
             for t in ("Count", " up.")]
    lines += [{"model": "qwen3", "message": {"role": "assistant", "content": c}, "done": False}
              for c in ("1 2", " 3")]
    lines.append({"model": "qwen3", "message": {"role": "assistant", "content": ""},
                  "done": True, "done_reason": "stop", "prompt_eval_count": 9,
                  "eval_count": 20})
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


def _openai_reasoning_body() -> bytes:
    """OpenAI-compatible ``delta.reasoning_content`` (DeepSeek/vLLM/LiteLLM) and
    ``completion_tokens_details.reasoning_tokens``
    (https://platform.openai.com/docs/api-reference/chat/object)."""
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "r1"}
    events = [{**head, "choices": [{"index": 0, "delta": {"reasoning_content": t}}]}
              for t in ("Think", "ing.")]
    events += [{**head, "choices": [{"index": 0, "delta": {"content": "Done."}}]},
               {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
               {**head, "choices": [], "usage": {
                   "prompt_tokens": 5, "completion_tokens": 30, "total_tokens": 35,
                   "completion_tokens_details": {"reasoning_tokens": 27}}}]
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + \
        b"data: [DONE]\n\n"


def _gemini_thought_body() -> bytes:
    """Gemini parts with ``thought: true`` and ``thoughtsTokenCount``
    (https://ai.google.dev/gemini-api/docs/thinking)."""
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "Plan it.", "thought": True}],
                                     "role": "model"}}],
         "usageMetadata": {"promptTokenCount": 4, "thoughtsTokenCount": 12}},
        {"candidates": [{"content": {"parts": [{"text": "Answer."}], "role": "model"},
                         "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2,
                           "thoughtsTokenCount": 12, "totalTokenCount": 18},
         "modelVersion": "gemini-2.5-flash"},
    ]
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


@pytest.mark.parametrize(("ptype", "model", "body", "ctype", "want"), [
    ("ollama", "qwen3", _ollama_thinking_body(), "application/x-ndjson",
     ("Count up.", "1 2 3", None, {"think": True})),
    ("openai_compatible", "r1", _openai_reasoning_body(), "text/event-stream",
     ("Thinking.", "Done.", 27, {"reasoning_effort": "high"})),
    ("openrouter", "deepseek/r1", _openai_reasoning_body(), "text/event-stream",
     ("Thinking.", "Done.", 27, {"reasoning": {"effort": "high"}})),
    ("gemini", "gemini-2.5-flash", _gemini_thought_body(), "text/event-stream",
     ("Plan it.", "Answer.", 12, {"generationConfig": {"thinkingConfig": {
         "thinkingBudget": 24576, "includeThoughts": True}}})),
])
def test_reasoning_is_requested_separated_and_counted(
        ws: Any, strict: FakeProviderServer, ptype: str, model: str, body: bytes, ctype: str,
        want: tuple[str, str, int | None, dict[str, Any]]) -> None:
    reasoning, text, tokens, sent = want
    pid = add(ws, strict, ptype, model)
    strict.script("chat", Scripted(body=body, content_type=ctype, chunks=7))
    s = ws.chat("Count", provider=pid, reasoning="high")
    deltas = list(s)
    assert "".join(deltas) == s.text == text and reasoning not in s.text
    assert s.reasoning == reasoning
    assert s.usage.reasoning_tokens == tokens
    request = chats(strict)[-1].json
    for key, value in sent.items():
        assert request[key] == value


def test_async_stream_has_reasoning_too(ws: Any, strict: FakeProviderServer) -> None:
    import asyncio

    pid = add(ws, strict, "ollama", "qwen3")
    strict.script("chat", Scripted(body=_ollama_thinking_body(),
                                   content_type="application/x-ndjson"))

    async def main() -> tuple[str, str]:
        s = ws.achat("Count", provider=pid, reasoning="low")
        await s.wait()
        await ws.aclose()
        return s.text, s.reasoning

    assert asyncio.run(main()) == ("1 2 3", "Count up.")
    record = ws.history.search(n=1)[0]  # the history keeps the reasoning apart too
    assert (record.answer, record.reasoning) == ("1 2 3", "Count up.")


@needs_wire
@pytest.mark.parametrize(("ptype", "rel", "reasoning_start"), [
    ("openai_compatible", "ollama/v1_chat_stream_compat_reasoning__ruby_llm.sse", "Okay, the"),
    ("gemini", "gemini/stream_array_mode__llm_gemini.json", "**Considering the Constraint**"),
])
def test_recorded_reasoning_streams_keep_reasoning_apart(
        ws: Any, strict: FakeProviderServer, ptype: str, rel: str, reasoning_start: str
) -> None:
    assert WIRE is not None
    pid = add(ws, strict, ptype, "demo")
    strict.script("chat", Scripted.from_recording(WIRE / rel, chunks=50))
    s = ws.chat("Hi", provider=pid).wait()  # .reasoning, like .text, is what came so far
    assert s.reasoning.startswith(reasoning_start)
    assert reasoning_start not in s.text and s.text


# -- 3. real-server defects ------------------------------------------------------------------


def _ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


def test_ollama_done_line_with_error_is_an_error(ws: Any, strict: FakeProviderServer) -> None:
    pid = add(ws, strict, "ollama", "llama3")
    strict.script("chat", Scripted(content_type="application/x-ndjson", body=_ndjson(
        {"model": "llama3", "message": {"role": "assistant", "content": "Hal"}, "done": False},
        {"model": "llama3", "done": True, "done_reason": "error",
         "error": "model runner has unexpectedly stopped"})))
    s = ws.chat("Hi", provider=pid)
    with pytest.raises(vj.ProviderAPIError, match="unexpectedly stopped"):
        s.wait()
    assert s.finish_reason == "error" and s.text == "Hal"
    assert ws.stats.get(pid, "llama3").errors == 1


def test_ollama_truncated_stream_is_an_error(ws: Any, strict: FakeProviderServer) -> None:
    pid = add(ws, strict, "ollama", "llama3")
    strict.script("chat", Scripted(content_type="application/x-ndjson", body=_ndjson(
        {"model": "llama3", "message": {"role": "assistant", "content": "Hal"}, "done": False},
        {"model": "llama3", "message": {"role": "assistant", "content": "f"}, "done": False}),
        clean_end=True))
    with pytest.raises(vj.ProviderResponseError, match="ended before it finished"):
        ws.chat("Hi", provider=pid).wait()


@needs_wire
def test_ollama_generate_shaped_body_is_a_response_error(ws: Any, strict: FakeProviderServer
                                                         ) -> None:
    assert WIRE is not None
    pid = add(ws, strict, "ollama", "llama3")
    strict.script("chat", Scripted.from_recording(
        WIRE / "ollama" / "api_generate_nonstream__langchaingo.json"))
    with pytest.raises(vj.ProviderResponseError, match="/api/generate"):
        ws.chat("Hi", provider=pid).wait()


def test_openai_type_sends_max_tokens_to_other_origins(ws: Any, strict: FakeProviderServer
                                                      ) -> None:
    from viagent_jupyter.adapters import get_adapter
    from viagent_jupyter.adapters.base import ChatRequest

    pid = add(ws, strict, "openai", "gpt-4o-mini")
    ws.chat("Hi", provider=pid, max_tokens=12).wait()
    body = chats(strict)[-1].json
    assert body["max_tokens"] == 12 and "max_completion_tokens" not in body
    req = ChatRequest("p", "openai", "https://api.openai.com/v1", "gpt-4o-mini",
                      [{"role": "user", "content": "x"}], settings={"max_tokens": 12})
    assert get_adapter("openai").chat_request(req).json["max_completion_tokens"] == 12


def test_usage_not_reported_is_unknown_not_zero(magic: Magic, strict: FakeProviderServer
                                                ) -> None:
    pid = add(magic.ws, strict, "openai_compatible", "local")
    magic.ws.providers.select(pid)
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "local"}
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (
        {**head, "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    )) + b"data: [DONE]\n\n"
    strict.script("chat", Scripted(body=body, content_type="text/event-stream"))
    result = magic.run("%%llm\nHello")
    assert result.usage.prompt_tokens is None
    assert "— tokens" in magic.pub.calls[-1].data["text/plain"]
    rec = magic.ws.stats.get(pid, "local")
    assert rec.requests == 1 and rec.unreported == 1 and not rec.tokens_known
    assert magic.ws.stats.totals["unreported"] == 1
    magic.shell.run_cell("%llm stats")
    assert "—" in magic.pub.calls[-1].data["text/plain"]


@needs_wire
@pytest.mark.parametrize(("ptype", "rel"), [
    ("openai_compatible", "openai/chat_nonstream_text__mirascope.json"),
    ("anthropic", "anthropic/messages_nonstream_text__mirascope.json"),
    ("gemini", "gemini/generate_nonstream__mirascope.json"),
    ("ollama", "ollama/v1_chat_nonstream_compat__mirascope.json"),
])
def test_a_whole_json_answer_where_a_stream_was_expected_is_accepted(
        ws: Any, strict: FakeProviderServer, ptype: str, rel: str) -> None:
    assert WIRE is not None
    expected = json.loads((WIRE / "EXPECTED.json").read_text())[rel]
    if ptype == "ollama":
        ptype = "openai_compatible"  # Ollama's /v1 answer is OpenAI-shaped
    pid = add(ws, strict, ptype, "demo", pid="p")
    strict.script("chat", Scripted.from_recording(WIRE / rel))
    s = ws.chat("Hi", provider=pid).wait()
    assert s.text and s.error is None and s.finish_reason == "stop"
    assert s.text == (expected.get("text") or s.text)
    assert s.usage.prompt_tokens is not None


def test_a_json_body_that_is_no_answer_is_a_response_error(ws: Any, strict: FakeProviderServer
                                                           ) -> None:
    pid = add(ws, strict, "openai_compatible", "demo")
    strict.script("chat", Scripted(body=b'{"status": "ok", "detail": "queued"}',
                                   content_type="application/json"))
    with pytest.raises(vj.ProviderResponseError, match="a JSON body, not an event stream"):
        ws.chat("Hi", provider=pid).wait()


# -- the Thinking section: sanitised, live, coalesced ----------------------------------------


def test_thinking_section_is_sanitised_and_collapsed() -> None:
    from viagent_jupyter._display import LLMResult

    evil = ('<script>alert(1)</script><img src=x onerror=alert(2)> '
            '[x](javascript:alert(3)) **plan**')
    for fmt in ("markdown", "text", "code", "json"):
        result = LLMResult(text='{"a": 1}', provider="p", model="m", format=fmt,
                           reasoning=evil)
        bundle = result._repr_mimebundle_()
        assert_safe_bundle(bundle)
        assert bundle["text/plain"].startswith("[Thinking…]")
        if "text/html" in bundle:
            html = bundle["text/html"]
            assert html.startswith('<details class="viagent-llm-thinking"')
            assert "<details open" not in html  # collapsed
            assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
            assert 'href="javascript' not in html and "<strong>plan</strong>" in html


def test_reasoning_streams_live_into_the_display_before_the_answer(
        magic: Magic, strict: FakeProviderServer) -> None:
    magic.shell.run_line_magic("config", "LLMMagics.update_interval = 0")
    pid = add(magic.ws, strict, "ollama", "qwen3")
    magic.ws.providers.select(pid)
    strict.script("chat", Scripted(body=_ollama_thinking_body(),
                                   content_type="application/x-ndjson"))
    result = magic.run("%%llm -r medium\nCount")
    assert result.text == "1 2 3" and result.reasoning == "Count up."
    assert chats(strict)[-1].json["think"] is True
    plains = [c.data["text/plain"] for c in magic.pub.calls]
    thinking_only = [p for p in plains if "Count" in p and "1 2" not in p]
    assert thinking_only, "the reasoning was shown before any answer text arrived"
    final = magic.pub.calls[-1].data
    assert final["text/plain"].index("Count up.") < final["text/plain"].index("1 2 3")
    assert "usage" not in final["text/plain"] and "9/20 tokens" in final["text/plain"]


def test_reasoning_option_is_checked_by_the_magic(magic: Magic) -> None:
    from viagent_jupyter.magics import parse_prompt_args

    assert parse_prompt_args(["-r", "high"]).reasoning == "high"
    assert parse_prompt_args(["--reasoning", "none"]).reasoning == "none"
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="invalid choice"):
        parse_prompt_args(["-r", "extreme"])


@pytest.mark.parametrize(("message", "wire"), [
    ("`temperature` may only be set to 1 when thinking is enabled.", "temperature"),
    ("temperature and top_p cannot both be specified for this model.", None),
    ('Invalid JSON payload received. Unknown name "frequencyPenalty" at '
     "'generation_config': Cannot find field.", "frequencyPenalty"),
    ("litellm.UnsupportedParamsError: openai does not support parameters: ['top_p'], for "
     "model=o3-mini.", "top_p"),
    ("O-series models don't support temperature=0.7. Only temperature=1 is supported.",
     "temperature"),
    ("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
     "'max_completion_tokens' instead.", "max_tokens"),
    ("The model is overloaded.", None),
])
def test_refused_parameter_reads_each_providers_wording(message: str, wire: str | None) -> None:
    from viagent_jupyter.errors import ProviderAPIError
    from viagent_jupyter.refusals import refused_parameter

    exc = ProviderAPIError("x", "p", "m", status_code=400, provider_message=message)
    assert refused_parameter(exc) == wire
    assert refused_parameter(ProviderAPIError("x", "p", "m", status_code=500,
                                              provider_message=message)) is None


def test_claude_max_tokens_is_the_listed_output_limit_end_to_end(
        ws: Any, strict: FakeProviderServer) -> None:
    pid = add(ws, strict, "anthropic", "claude-opus-5")
    strict.script("models", Scripted(content_type="application/json", body=json.dumps({
        "data": [{"type": "model", "id": "claude-opus-5", "display_name": "Claude Opus 5",
                  "created_at": "2026-07-24T00:00:00Z", "max_input_tokens": 1000000,
                  "max_tokens": 128000}], "has_more": False, "first_id": "claude-opus-5",
        "last_id": "claude-opus-5"})))
    assert ws.models(pid)[0].max_output_tokens == 128000
    ws.chat("Hi", provider=pid).wait()
    assert chats(strict)[-1].json["max_tokens"] == 128000


@pytest.mark.slow
def test_must_show_in_a_real_kernel(ws: Any, strict: FakeProviderServer, tmp_path: Path
                                    ) -> None:
    """The must-shows through a real IPython kernel: %%llm on an OpenAI reasoning model and on
    Claude with default settings against the strict server, and reasoning shown apart."""
    from test_magics import _displays, _run, real_kernel

    add(ws, strict, "openai", "o4-mini")
    add(ws, strict, "anthropic", "claude-sonnet-4-5")
    add(ws, strict, "ollama", "qwen3")
    ws.providers.select("openai")
    with real_kernel(tmp_path) as (_km, kc):
        _run(kc, "%load_ext viagent_jupyter")
        for cell in ("%%llm\nHello o4", "%%llm -p anthropic -r low\nHello Claude"):
            final = _displays(_run(kc, cell))[-1]["data"]["text/plain"]
            assert final.startswith("You said: Hello") and "error" not in final, final
        sent = chats(strict)
        assert not {"temperature", "top_p", "max_tokens"} & set(sent[0].json)
        assert sent[1].json["thinking"]["type"] == "enabled"
        strict.script("chat", Scripted(body=_ollama_thinking_body(),
                                       content_type="application/x-ndjson"))
        shown = _displays(_run(kc, "%%llm -p ollama -r high\nCount"))
        for o in shown:
            assert_safe_bundle(o["data"])
        html = shown[-1]["data"]["text/html"]
        assert html.index("Thinking…") < html.index("Count up.") < html.index("1 2 3")
