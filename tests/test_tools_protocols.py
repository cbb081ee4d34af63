"""Tool calling end to end over loopback HTTP, in each of the four wire protocols.

Each protocol test scripts a first answer asking for TWO parallel calls whose arguments
arrive in fragments (and the body itself re-split into small chunks), lets the demo model
answer the follow-up, and checks: the functions ran with the right arguments, the results
went back in that protocol's exact shape, the answer and the summed usage.

Protocol shapes relied on (looked up; also the recordings in fixtures/wire, README §2):

* OpenAI: streamed ``delta.tool_calls[]`` keyed by ``index``, the first fragment with
  ``id``/``function.name``, later ones argument pieces; results as an assistant message
  with ``tool_calls`` + one ``{"role": "tool", "tool_call_id"}`` message per call —
  https://docs.opper.ai/build/chat/streaming (OpenAI-compatible streaming, "Streaming tool
  calls"), recording openai/chat_stream_tool_call_then_text__simonw_llm.0.sse.
* Anthropic: ``content_block_start`` of type ``tool_use`` then ``input_json_delta``
  ``partial_json`` pieces; results as one user message of ``tool_result`` blocks
  (``tool_use_id``, ``is_error``) — https://platform.claude.com/docs/en/build-with-claude/streaming
  (via https://dev.to/gabrielanhaia/streaming-tool-calls-with-anthropics-api-the-buffer-pattern-nobody-documents-27f8),
  recording anthropic/messages_stream_tool_use_args__mirascope.sse.
* Gemini: ``functionCall`` parts arrive whole, the first may carry a ``thoughtSignature``
  that must be sent back in the same part; results as ``functionResponse`` parts
  (``name``, ``id``, ``response`` an object: ``output`` or ``error`` key) —
  https://hexdocs.pm/geminix/Geminix.V1beta.FunctionResponse.html (v1beta reference),
  recording gemini/stream_sse_function_call__mirascope.sse.
* Ollama: ``message.tool_calls[].function.arguments`` is an object; results as
  ``{"role": "tool", "content", "tool_name"}`` — https://ollama.com/blog/streaming-tool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from pydantic import Field

import viagent_jupyter as vj
from viagent_jupyter.testing import FakeProviderServer, Scripted, demo_text
from viagent_jupyter.testing._tool_wire import DemoCall, tool_call_pieces

PROMPT = "Weather in Paris and 2+3?"
ASKED = [DemoCall("c1", "weather", {"city": "Paris", "days": 2}),
         DemoCall("c2", "add", {"a": 2, "b": 3})]
CONTENT_TYPES = {"openai": "text/event-stream", "anthropic": "text/event-stream",
                 "gemini": "text/event-stream", "ollama": "application/x-ndjson"}


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as srv:
        yield srv


def _add_provider(ws: Any, srv: FakeProviderServer, ptype: str) -> str:
    key = None if ptype in ("ollama", "openai_compatible") else f"sk-test-{ptype}-00000001"
    ws.providers.create(id=ptype, provider_type=ptype, name=f"Fake {ptype}",
                        base_url=srv.url_for(ptype), default_model="demo-small", api_key=key)
    return ptype


def _tools(ran: list[tuple[str, dict[str, Any]]]) -> list[vj.Tool]:
    @vj.tool
    def weather(city: Annotated[str, Field(description="City name")], days: int = 1
                ) -> dict[str, Any]:
        """The forecast for a city."""
        ran.append(("weather", {"city": city, "days": days}))
        return {"city": city, "temp": 21 + days}

    @vj.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        ran.append(("add", {"a": a, "b": b}))
        return a + b

    return [weather, add]


def _script_calls(srv: FakeProviderServer, protocol: str, calls: list[DemoCall],
                  **kw: Any) -> None:
    body = b"".join(tool_call_pieces(protocol, calls, model="demo-small", prompt_tokens=10,
                                     completion_tokens=7, fragments=3, **kw))
    srv.script("chat", Scripted(body=body, content_type=CONTENT_TYPES[protocol], chunks=11))


def _chat_posts(srv: FakeProviderServer) -> list[Any]:
    return [r.json for r in srv.requests if r.method == "POST"]


WEATHER_OUT = json.dumps({"city": "Paris", "temp": 23})


def _expected_tail(protocol: str) -> list[dict[str, Any]]:
    """The transcript the second request must end with, in the protocol's own shape."""
    if protocol == "openai":
        return [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {
                    "name": "weather", "arguments": '{"city": "Paris", "days": 2}'}},
                {"id": "c2", "type": "function", "function": {
                    "name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": WEATHER_OUT},
            {"role": "tool", "tool_call_id": "c2", "content": "5"},
        ]
    if protocol == "anthropic":
        return [
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "c1", "name": "weather",
                 "input": {"city": "Paris", "days": 2}},
                {"type": "tool_use", "id": "c2", "name": "add", "input": {"a": 2, "b": 3}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": WEATHER_OUT},
                {"type": "tool_result", "tool_use_id": "c2", "content": "5"}]},
        ]
    if protocol == "gemini":
        return [
            {"role": "model", "parts": [
                {"functionCall": {"id": "c1", "name": "weather",
                                  "args": {"city": "Paris", "days": 2}},
                 "thoughtSignature": "c2lnbmF0dXJlLWRlbW8="},
                {"functionCall": {"id": "c2", "name": "add", "args": {"a": 2, "b": 3}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "c1", "name": "weather",
                                      "response": {"output": WEATHER_OUT}}},
                {"functionResponse": {"id": "c2", "name": "add",
                                      "response": {"output": "5"}}}]},
        ]
    return [  # ollama
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "weather", "arguments": {"city": "Paris", "days": 2}}},
            {"function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]},
        {"role": "tool", "content": WEATHER_OUT, "tool_name": "weather"},
        {"role": "tool", "content": "5", "tool_name": "add"},
    ]


def _tail(protocol: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    if protocol == "gemini":
        return list(body["contents"][-2:])
    return list(body["messages"][-(2 if protocol == "anthropic" else 3):])


WEATHER_SCHEMA = {"type": "object", "properties": {
    "city": {"type": "string", "description": "City name"},
    "days": {"type": "integer", "default": 1}},
    "required": ["city"], "additionalProperties": False}


def _tool_defs(protocol: str, body: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(name, description, schema) of the tools a request offers, in its own shape."""
    if protocol == "gemini":
        return [(d["name"], d["description"], d["parametersJsonSchema"])
                for d in body["tools"][0]["functionDeclarations"]]
    if protocol == "anthropic":
        return [(t["name"], t["description"], t["input_schema"]) for t in body["tools"]]
    assert all(t["type"] == "function" for t in body["tools"])
    return [(t["function"]["name"], t["function"]["description"],
             t["function"]["parameters"]) for t in body["tools"]]


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "gemini", "ollama"])
def test_two_parallel_fragmented_calls_then_answer(
        ws: Any, server: FakeProviderServer, protocol: str) -> None:
    pid = _add_provider(ws, server, protocol)
    ran: list[tuple[str, dict[str, Any]]] = []
    _script_calls(server, protocol, ASKED)
    s = ws.chat(PROMPT, provider=pid, tools=_tools(ran), approve="all")
    text = s.wait().text

    assert sorted(ran) == [("add", {"a": 2, "b": 3}), ("weather", {"city": "Paris", "days": 2})]
    first, second = _chat_posts(server)
    defs = _tool_defs(protocol, first)
    assert defs[0] == ("weather", "The forecast for a city.", WEATHER_SCHEMA)
    assert [d[0] for d in defs] == ["weather", "add"]
    assert _tail(protocol, second) == _expected_tail(protocol)
    assert _tool_defs(protocol, second) == defs  # tools offered again

    assert text.endswith(demo_text(PROMPT))
    assert f"weather returned {WEATHER_OUT}" in text or "weather returned" in text
    assert s.finish_reason == "stop"
    (step1, step2) = s.steps
    assert [r.status for r in step1.results] == ["ok", "ok"] and not step2.calls
    assert step1.usage["prompt_tokens"] == 10 and step1.usage["completion_tokens"] == 7
    assert s.usage.prompt_tokens == 10 + step2.usage["prompt_tokens"]
    assert s.usage.completion_tokens == 7 + step2.usage["completion_tokens"]
    rec = ws.stats.get(pid, "demo-small")
    assert rec.requests == 2  # one per HTTP call
    assert rec.prompt_tokens == s.usage.prompt_tokens
    assert rec.completion_tokens == s.usage.completion_tokens


def test_openrouter_cost_is_summed_over_steps(ws: Any, server: FakeProviderServer) -> None:
    """OpenRouter reports ``usage.cost`` per request: the chat's cost is their sum."""
    pid = _add_provider(ws, server, "openrouter")
    _script_calls(server, "openai", ASKED[1:], openrouter=True)
    s = ws.chat(PROMPT, provider=pid, tools=_tools([]), approve="all").wait()
    assert len(s.steps) == 2 and s.steps[1].cost is not None
    assert s.steps[0].cost == pytest.approx(0.00001)
    assert s.cost == pytest.approx(0.00001 + s.steps[1].cost)


# --------------------------------------------------------------------------- outcomes


def _one_call(server: FakeProviderServer, arguments: dict[str, Any], name: str = "weather"
              ) -> None:
    _script_calls(server, "openai", [DemoCall("c1", name, arguments)])


def _tool_messages(server: FakeProviderServer) -> list[dict[str, Any]]:
    return [m for m in _chat_posts(server)[-1]["messages"] if m["role"] == "tool"]


def test_denied_call_is_reported_to_the_model(ws: Any, server: FakeProviderServer) -> None:
    """Documented: a denied call does not run; the model is told it was denied."""
    pid = _add_provider(ws, server, "openai")
    ran: list[Any] = []
    _one_call(server, {"city": "Paris"})
    asked: list[str] = []
    s = ws.chat(PROMPT, provider=pid, tools=_tools(ran),
                approve=lambda call: asked.append(call.name) or False).wait()
    assert asked == ["weather"] and ran == []
    assert s.steps[0].results[0].status == "denied" and s.finish_reason == "stop"
    (msg,) = _tool_messages(server)
    assert msg["tool_call_id"] == "c1" and "denied" in msg["content"]


def test_a_raising_tool_becomes_an_error_result(ws: Any, server: FakeProviderServer) -> None:
    pid = _add_provider(ws, server, "openai")

    @vj.tool
    def weather(city: str) -> str:
        """Fails."""
        raise RuntimeError(f"no data for {city}")

    _one_call(server, {"city": "Oslo"})
    s = ws.chat(PROMPT, provider=pid, tools=[weather], approve="all").wait()
    (msg,) = _tool_messages(server)
    assert msg["content"] == "Error: the tool raised RuntimeError: no data for Oslo"
    assert s.steps[0].results[0].status == "error" and s.finish_reason == "stop"


def test_invalid_arguments_never_reach_the_function(ws: Any,
                                                    server: FakeProviderServer) -> None:
    pid = _add_provider(ws, server, "anthropic")
    ran: list[Any] = []
    server.script("chat", Scripted(body=b"".join(tool_call_pieces(
        "anthropic", [DemoCall("t1", "add", {"a": "two", "b": 3})], model="demo-small",
        prompt_tokens=3, completion_tokens=2)), content_type="text/event-stream"))
    s = ws.chat(PROMPT, provider=pid, tools=_tools(ran), approve="all").wait()
    assert ran == [] and s.steps[0].results[0].status == "invalid"
    (block,) = _chat_posts(server)[-1]["messages"][-1]["content"]
    assert block["type"] == "tool_result" and block["is_error"] is True
    assert "Invalid arguments for tool 'add': a:" in block["content"]


def test_max_steps_stops_the_loop(ws: Any, server: FakeProviderServer) -> None:
    """Documented: at most ``max_steps`` model requests; when the last one still asks for
    tools they are not run, ``finish_reason`` is ``tool_calls`` and
    ``stopped_by_limit`` is true."""
    pid = _add_provider(ws, server, "openai")
    ran: list[Any] = []
    for i in range(3):
        _one_call(server, {"a": i, "b": 1}, name="add")
    s = ws.chat(PROMPT, provider=pid, tools=_tools(ran), approve="all", max_steps=2).wait()
    assert len(_chat_posts(server)) == 2 and ran == [("add", {"a": 0, "b": 1})]
    assert s.finish_reason == "tool_calls" and s.stopped_by_limit
    assert [r.status for r in s.steps[-1].results] == ["skipped"]
    assert ws.stats.get(pid, "demo-small").requests == 2


def test_ctrl_c_during_a_tool_cancels_the_chat(ws: Any, server: FakeProviderServer) -> None:
    """Documented: Ctrl-C while a tool runs stops the chat: ``KeyboardInterrupt``
    propagates, ``finish_reason`` is ``cancelled``, no further request is sent, the
    request already made is counted."""
    pid = _add_provider(ws, server, "openai")

    @vj.tool
    def weather(city: str) -> str:
        """The user presses Ctrl-C while this runs."""
        raise KeyboardInterrupt

    _one_call(server, {"city": "Rome"})
    s = ws.chat(PROMPT, provider=pid, tools=[weather], approve="all")
    with pytest.raises(KeyboardInterrupt):
        s.wait()
    assert s.finish_reason == "cancelled" and len(_chat_posts(server)) == 1
    assert s.steps[0].results[0].status == "cancelled"
    assert ws.stats.get(pid, "demo-small").requests == 1


def test_async_chat_with_tools(ws: Any, server: FakeProviderServer) -> None:
    import asyncio

    pid = _add_provider(ws, server, "gemini")
    ran: list[Any] = []
    _script_calls(server, "gemini", ASKED)

    async def main() -> Any:
        s = ws.achat(PROMPT, provider=pid, tools=_tools(ran), approve="all")
        try:
            return await s.wait()
        finally:
            await ws.aclose()

    s = asyncio.run(main())
    assert len(ran) == 2 and s.text.endswith(demo_text(PROMPT))
    assert s.finish_reason == "stop" and len(s.steps) == 2


def test_demo_tool_mode_calls_the_first_tool_once(ws: Any, server: FakeProviderServer) -> None:
    """The demo provider's deterministic tool mode: schema-valid arguments, then an
    answer quoting the result."""
    for protocol in ("openai", "anthropic", "gemini", "ollama"):
        pid = _add_provider(ws, server, protocol)
        ran: list[Any] = []
        s = ws.chat("use add please", provider=pid, tools=_tools(ran), approve="all").wait()
        assert s.text.startswith("The tool add returned 4."), (protocol, s.text)
        assert ran == [("add", {"a": 2, "b": 2})], protocol


# --------------------------------------------------------------------------- recordings

RECORDED = {
    # protocol: (recording, provider type, the calls it asks for)
    "openai": ("openai/chat_stream_tool_call_then_text__simonw_llm.0.sse", "openai",
               [("multiply", {"a": 1231, "b": 2331})]),
    "anthropic": ("anthropic/messages_stream_tool_use_args__mirascope.sse", "anthropic",
                  [("secret_retrieval_tool", {"password": "mellon"}),
                   ("secret_retrieval_tool", {"password": "radiance"})]),
    "openrouter": ("openrouter/chat_stream_tool_calls__llm_openrouter.turn1.sse",
                   "openrouter", [("llm_version", {})]),
    "gemini": ("gemini/stream_sse_function_call__mirascope.sse", "gemini",
               [("secret_retrieval_tool", {"password": "mellon"}),
                ("secret_retrieval_tool", {"password": "radiance"})]),
}


@pytest.mark.parametrize("protocol", sorted(RECORDED))
def test_recorded_tool_turns_run_and_go_back(ws: Any, server: FakeProviderServer,
                                            protocol: str) -> None:
    """Real recorded tool-call turns (fixtures/wire) drive the loop: the calls run with the
    recorded arguments; Gemini's thoughtSignature goes back in its part."""
    import os
    from pathlib import Path

    root = os.environ.get("VIAGENT_WIRE_FIXTURES")
    if not root:
        pytest.skip("VIAGENT_WIRE_FIXTURES is not set")
    path, ptype, expected = RECORDED[protocol]
    pid = _add_provider(ws, server, ptype)
    server.script("chat", Scripted.from_recording(Path(root) / path, chunks=64))
    ran: list[tuple[str, dict[str, Any]]] = []

    @vj.tool
    def multiply(a: int, b: int) -> int:
        """Multiply."""
        ran.append(("multiply", {"a": a, "b": b}))
        return a * b

    @vj.tool
    def secret_retrieval_tool(password: str) -> str:
        """A secret."""
        ran.append(("secret_retrieval_tool", {"password": password}))
        return f"secret-of-{password}"

    @vj.tool
    def llm_version() -> str:
        """The version."""
        ran.append(("llm_version", {}))
        return "0.0+test"

    s = ws.chat("go", provider=pid, tools=[multiply, secret_retrieval_tool, llm_version],
                approve="all").wait()
    assert ran == expected and s.finish_reason == "stop" and len(s.steps) == 2
    second = _chat_posts(server)[1]
    if protocol == "gemini":
        model_turn, results = second["contents"][-2:]
        assert model_turn["parts"][0]["thoughtSignature"].startswith("CikB0e2Kbw5")
        assert "id" not in model_turn["parts"][0]["functionCall"]  # none was recorded
        assert [p["functionResponse"] for p in results["parts"]] == [
            {"name": "secret_retrieval_tool", "response": {"output": "secret-of-mellon"}},
            {"name": "secret_retrieval_tool", "response": {"output": "secret-of-radiance"}}]
    elif protocol == "anthropic":
        turn, results = second["messages"][-2:]
        assert turn["content"][0] == {"type": "text", "text":
                                      "I'll retrieve the secrets for both passwords you provided."}
        assert [b["content"] for b in results["content"]] == ["secret-of-mellon",
                                                              "secret-of-radiance"]
    elif protocol == "openrouter":
        assert second["messages"][-1]["content"] == "0.0+test"
    else:
        assert second["messages"][-1]["content"] == str(1231 * 2331)


def test_a_key_in_a_tool_result_or_error_never_reaches_the_provider(
        ws: Any, server: FakeProviderServer) -> None:
    from _util import PLANTED_KEY

    ws.providers.create(id="k", provider_type="openai", name="Keyed",
                        base_url=server.url_for("openai"), default_model="demo-small",
                        api_key=PLANTED_KEY)

    @vj.tool
    def leaky(city: str) -> str:
        """Returns a key."""
        return f"the key is {PLANTED_KEY}"

    @vj.tool
    def weather(city: str) -> str:
        """Raises with a key in the message."""
        raise ValueError(f"auth failed for {PLANTED_KEY}")

    _script_calls(server, "openai", [DemoCall("c1", "leaky", {"city": "x"}),
                                     DemoCall("c2", "weather", {"city": "x"})])
    s = ws.chat(PROMPT, provider="k", tools=[leaky, weather], approve="all").wait()
    second = [r for r in server.requests if r.method == "POST"][1]
    assert PLANTED_KEY.encode() not in second.body
    assert [m["content"] for m in second.json["messages"][-2:]] == [
        "the key is [REDACTED]", "Error: the tool raised ValueError: auth failed for [REDACTED]"]
    assert PLANTED_KEY not in repr(s.steps)


def test_close_mid_answer_closes_the_request(ws: Any, server: FakeProviderServer) -> None:
    """``close()`` while the second answer streams: that request is dropped at once, the
    chat is cancelled and both requests are counted."""
    pid = _add_provider(ws, server, "openai")
    _one_call(server, {"a": 1, "b": 2}, name="add")
    server.script("chat", Scripted(delay=0.5))  # the final answer, slowly
    s = ws.chat(PROMPT, provider=pid, tools=_tools([]), approve="all")
    it = iter(s)
    first = next(it)
    assert first and len(s.steps) == 2
    s.close()
    assert s.finish_reason == "cancelled" and s.steps[1].finish_reason == "cancelled"
    assert server.wait_for(lambda: all(r.finished.is_set() for r in server.requests))
    assert [r.disconnected for r in server.requests if r.method == "POST"] == [False, True]
    assert ws.stats.get(pid, "demo-small").requests == 2


def test_anthropic_thinking_blocks_go_back_with_the_tool_turn(
        ws: Any, server: FakeProviderServer) -> None:
    """With extended thinking, the assistant turn sent back must start with its thinking
    block, signature included (https://platform.claude.com/docs/en/build-with-claude/
    extended-thinking, "Preserving thinking blocks" with tool use); the stream shape follows
    the recording anthropic/messages_stream_thinking__llm_anthropic.sse."""
    pid = _add_provider(ws, server, "anthropic")

    def ev(name: str, obj: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()

    body = b"".join([
        ev("message_start", {"type": "message_start", "message": {
            "id": "m1", "type": "message", "role": "assistant", "model": "demo-small",
            "content": [], "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "thinking", "thinking": "", "signature": ""}}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "thinking_delta", "thinking": "Let me "}}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "thinking_delta", "thinking": "add."}}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "signature_delta", "signature": "EvoC=="}}),
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        *tool_call_pieces("anthropic", [DemoCall("t1", "add", {"a": 1, "b": 1})],
                          model="demo-small", prompt_tokens=5, completion_tokens=9)[1:],
    ])
    server.script("chat", Scripted(body=body, content_type="text/event-stream", chunks=13))
    s = ws.chat(PROMPT, provider=pid, tools=_tools([]), approve="all").wait()
    assert s.reasoning == "Let me add." and s.finish_reason == "stop"
    turn = _chat_posts(server)[1]["messages"][-2]
    assert turn == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Let me add.", "signature": "EvoC=="},
        {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 1, "b": 1}}]}


def test_openai_parallel_calls_sharing_index_0_are_kept_apart() -> None:
    """Some OpenAI-compatible servers (Ollama's /v1) send every parallel call at index 0,
    told apart only by a new ``id``: each is its own call."""
    from viagent_jupyter.adapters import get_adapter
    from viagent_jupyter.adapters.base import ChatRequest

    req = ChatRequest(provider_id="p", provider_type="openai_compatible",
                      base_url="http://127.0.0.1:1/v1", model="m", messages=[])
    parser = get_adapter("openai_compatible").parser(req)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + json.dumps({"choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"

    body = b"".join([
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "add",
                                                                  "arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' 1, "b": 2}'}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "b", "function": {
            "name": "weather", "arguments": {"city": "Oslo"}}}]}),
        chunk({}, "tool_calls"), b"data: [DONE]\n\n"])
    for i in range(0, len(body), 7):
        assert parser.feed(body[i:i + 7]) == []
    parser.close()
    assert [(c["id"], c["name"], json.loads(c["arguments"]))
            for c in parser.state.tool_calls] == [("a", "add", {"a": 1, "b": 2}),
                                                   ("b", "weather", {"city": "Oslo"})]
    assert parser.state.finish_reason == "tool_calls"
