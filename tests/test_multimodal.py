"""Context, images and structured output on the wire: each protocol's own request shape,
asserted on what a loopback FakeProviderServer received, and each protocol's structured
stream parsed into a validated instance.

Request forms (looked up; the adapters' module docs say the same):
- OpenAI: user ``content`` parts ``{"type": "image_url", "image_url": {"url": "data:…"}}``;
  ``response_format {type: json_schema, json_schema: {name, schema, strict: true}}``
  (https://openrouter.ai/docs/structured-outputs — the OpenAI shape OpenRouter mirrors).
- Anthropic: ``{"type": "image", "source": {"type": "base64", "media_type", "data"}}`` blocks
  (https://arize-ai.github.io/phoenix/variables/_arizeai_phoenix-client.schemas_llm_anthropic_messagePartSchemas.anthropicImageBlockSchema.html);
  a forced tool ``tool_choice {type: tool, name}`` whose ``input_schema`` is the schema
  (https://api.koog.ai/prompt/prompt-executor/prompt-executor-clients/prompt-executor-anthropic-client/ai.koog.prompt.executor.clients.anthropic/-anthropic-tool-choice/index.html),
  its input streamed as ``input_json_delta`` ``partial_json``.
- Gemini: ``{"inlineData": {"mimeType", "data"}}`` parts; ``generationConfig.responseMimeType:
  application/json`` + ``responseJsonSchema`` — "an alternative to responseSchema that
  accepts JSON Schema; if set, responseSchema must be omitted"
  (https://raw.githubusercontent.com/firebase/firebase-js-sdk/964465c5332f96ffdfcc20f4832fa88f209af813/docs-devsite/ai.generationconfig.md).
- Ollama: ``images`` (base64 list) on the message; ``format`` with the schema
  (https://ollama.com/blog/structured-outputs).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from _util import PLANTED_KEY
from pydantic import BaseModel

from viagent_jupyter.errors import ConfigValidationError, ProviderResponseError
from viagent_jupyter.testing import FakeProviderServer, Scripted


class City(BaseModel):
    name: str
    population: int
    capital: bool | None = None


def _png(w: int = 64, h: int = 48) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), "blue").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as srv:
        yield srv


TYPES = ("openai", "anthropic", "gemini", "ollama")


def _add(ws: Any, srv: FakeProviderServer, ptype: str) -> str:
    ws.providers.create(id=ptype, provider_type=ptype, name=ptype,
                        base_url=srv.url_for(ptype), default_model="demo-small",
                        api_key=None if ptype == "ollama" else "sk-test-123456789")
    return ptype


def _last_user(ptype: str, body: dict[str, Any]) -> Any:
    if ptype == "gemini":
        return body["contents"][-1]
    return body["messages"][-1]


@pytest.mark.parametrize("ptype", TYPES)
def test_image_request_shape_per_protocol(ws: Any, server: FakeProviderServer,
                                          ptype: str) -> None:
    pid = _add(ws, server, ptype)
    png = _png()
    s = ws.chat("What is in the picture?", provider=pid, images=[png])
    text = s.wait().text
    assert "I see 1 image (PNG, 64×48)" in text  # the demo provider acknowledges it
    body = server.requests[-1].json
    b64 = base64.b64encode(png).decode()
    msg = _last_user(ptype, body)
    if ptype == "openai":
        assert msg["content"] == [
            {"type": "text", "text": "What is in the picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}}]
    elif ptype == "anthropic":
        assert msg["content"] == [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": b64}},
            {"type": "text", "text": "What is in the picture?"}]
    elif ptype == "gemini":
        assert msg["parts"] == [{"text": "What is in the picture?"},
                                {"inlineData": {"mimeType": "image/png", "data": b64}}]
    else:
        assert msg == {"role": "user", "content": "What is in the picture?", "images": [b64]}


@pytest.mark.parametrize("ptype", TYPES)
def test_schema_request_shape_and_stream_parsed_per_protocol(
        ws: Any, server: FakeProviderServer, ptype: str) -> None:
    """The demo answer is the minimal valid instance, streamed in the protocol's documented
    framing (12-character pieces that split JSON tokens; re-chunked at random bytes here)."""
    pid = _add(ws, server, ptype)
    server.script("chat", Scripted(chunks="random", seed=7))
    s = ws.chat("A city, please", provider=pid, schema=City)
    value = s.value
    assert isinstance(value, City) and value == City(name="demo", population=1)
    assert s.finish_reason == "stop"
    body = server.requests[-1].json
    if ptype == "openai":
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"
        assert fmt["json_schema"]["strict"] is True
        sch = fmt["json_schema"]["schema"]
        assert sch["additionalProperties"] is False
        assert sch["required"] == ["name", "population", "capital"]
    elif ptype == "anthropic":
        assert body["tool_choice"] == {"type": "tool", "name": "City"}
        (tool,) = body["tools"]
        assert tool["name"] == "City"
        assert tool["input_schema"]["properties"]["population"]["type"] == "integer"
    elif ptype == "gemini":
        cfg = body["generationConfig"]
        assert cfg["responseMimeType"] == "application/json"
        assert cfg["responseJsonSchema"]["required"] == ["name", "population"]
        assert "responseSchema" not in cfg
    else:
        assert body["format"]["required"] == ["name", "population"]


def test_list_schema_to_records(ws: Any, server: FakeProviderServer) -> None:
    pid = _add(ws, server, "openai")
    s = ws.chat("Cities", provider=pid, schema=list[City])
    assert s.value == [City(name="demo", population=1)]
    sent = server.requests[-1].json["response_format"]["json_schema"]
    assert sent["name"] == "list_of_City"
    assert sent["schema"]["properties"]["items"]["type"] == "array"


def test_invalid_structured_answer_lists_fields_and_repair_retries_once(
        ws: Any, server: FakeProviderServer) -> None:
    pid = _add(ws, server, "ollama")
    bad = b'{"model":"m","message":{"role":"assistant","content":"{\\"name\\": 3}"},' \
          b'"done":true,"done_reason":"stop"}\n'
    server.script("chat", Scripted(body=bad, content_type="application/x-ndjson"))
    s = ws.chat("A city", provider=pid, schema=City)
    with pytest.raises(ProviderResponseError) as err:
        _ = s.value
    assert "does not fit City" in str(err.value)
    assert "name:" in str(err.value) and "population:" in str(err.value)
    # with repair: one more request carrying the failing fields, and the demo's valid answer
    server.script("chat", Scripted(body=bad, content_type="application/x-ndjson"))
    before = len(server.requests)
    s = ws.chat("A city", provider=pid, schema=City, repair=True)
    assert s.value == City(name="demo", population=1)
    assert len(server.requests) == before + 2
    retry = server.requests[-1].json["messages"]
    assert retry[-2]["role"] == "assistant" and "population" in retry[-1]["content"]


def test_context_objects_go_before_the_prompt_and_keys_are_refused(
        ws: Any, server: FakeProviderServer) -> None:
    pid = _add(ws, server, "openai")
    ws.chat("Summarise", provider=pid, context=[{"a": 1}, [1, 2, 3]]).wait()
    content = server.requests[-1].json["messages"][-1]["content"]
    assert content.startswith("Context from the notebook:")
    assert '{"a": 1}' in content and content.rstrip().endswith("Summarise")
    ws.providers.update(pid, api_key=PLANTED_KEY)
    n = len(server.requests)
    with pytest.raises(ConfigValidationError) as err:
        ws.chat("leak", provider=pid, context=[{"key": PLANTED_KEY}])
    assert PLANTED_KEY not in str(err.value) and len(server.requests) == n


def test_model_known_without_vision_refused_before_sending(
        ws: Any, server: FakeProviderServer) -> None:
    from viagent_jupyter.errors import ConfigValidationError as CVE

    pid = _add(ws, server, "openai")
    from viagent_jupyter.schema import ModelInfo

    # the cached list says demo-small takes tools, not images (as OpenRouter's listing would)
    ws.registry._save(pid, [ModelInfo(id="demo-small", capabilities=("tools",))])
    n = len(server.requests)
    with pytest.raises(CVE, match="does not accept images"):
        ws.chat("look", provider=pid, images=[_png()])
    assert len(server.requests) == n


def test_dry_run_shows_messages_with_placeholders_and_sends_nothing(
        ws: Any, server: FakeProviderServer) -> None:
    from viagent_jupyter._dryrun import dry_run

    pid = _add(ws, server, "anthropic")
    n = len(server.requests)
    view = dry_run(ws, "Describe", provider=pid, images=[_png(10, 20)], schema=City,
                   context=[[1, 2]])
    assert len(server.requests) == n
    text = str(view)
    assert "[image: PNG 10×20" in text and "Context from the notebook" in text
    assert "sk-test" not in text and base64.b64encode(_png(10, 20)).decode() not in text
    assert view.tokens > 0 and view.body["tool_choice"]["name"] == "City"


def test_unknown_model_refusing_images_is_one_line(ws: Any, server: FakeProviderServer) -> None:
    """A model the list says nothing about is tried; its 400 about images becomes one line."""
    pid = _add(ws, server, "openai")
    server.script("chat", Scripted(status=400, message="Invalid content type. image_url is "
                                   "only supported by certain models."))
    with pytest.raises(Exception) as err:
        ws.chat("look", provider=pid, images=[_png()]).wait()
    msg = str(err.value)
    assert "refused the image(s)" in msg and "image_url is only supported" in msg
    assert "\n" not in msg and type(err.value).__name__ == "ProviderAPIError"


def test_anthropic_schema_with_thinking_refused_up_front(ws: Any,
                                                        server: FakeProviderServer) -> None:
    pid = _add(ws, server, "anthropic")
    n = len(server.requests)
    with pytest.raises(ConfigValidationError, match="forces a tool call"):
        ws.chat("x", provider=pid, schema=City, reasoning="high")
    assert len(server.requests) == n


def test_async_value(ws: Any, server: FakeProviderServer) -> None:
    import asyncio

    pid = _add(ws, server, "gemini")

    async def go() -> Any:
        s = ws.achat("A city", provider=pid, schema=City)
        with pytest.raises(RuntimeError, match=r"await s\.wait"):
            _ = s.value
        await s.wait()
        await ws.aclose()
        return s.value

    assert asyncio.run(go()) == City(name="demo", population=1)


def test_anthropic_recorded_tool_input_stream_is_json_text(ws: Any,
                                                           server: FakeProviderServer) -> None:
    """A hand-written stream in Anthropic's documented tool_use shape, the input split
    mid-token across input_json_delta events (as in the recorded
    messages_stream_tool_use_args__mirascope.sse)."""
    def ev(name: str, obj: Any) -> bytes:
        import json

        return f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()

    body = b"".join([
        ev("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "usage": {"input_tokens": 20, "output_tokens": 1}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "tool_use", "id": "toolu_1",
                                                     "name": "City", "input": {}}}),
        *[ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "input_json_delta", "partial_json": p}})
          for p in ['', '{"na', 'me": "Lyon", "popu', 'lation": 52', '2000}']],
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                             "usage": {"output_tokens": 12}}),
        ev("message_stop", {"type": "message_stop"}),
    ])
    pid = _add(ws, server, "anthropic")
    server.script("chat", Scripted(body=body, content_type="text/event-stream", chunks=5))
    s = ws.chat("A city", provider=pid, schema=City)
    assert s.value == City(name="Lyon", population=522000)
    assert s.finish_reason == "stop" and s.usage.completion_tokens == 12


def test_anthropic_whole_json_message_with_the_forced_tool(ws: Any,
                                                           server: FakeProviderServer) -> None:
    """A server answering the streamed request with one JSON ``message`` (content: the
    ``tool_use`` block) is read the same way."""
    import json

    msg = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "tool_use", "id": "t", "name": "City",
                        "input": {"name": "Oslo", "population": 700000}}],
           "stop_reason": "tool_use", "usage": {"input_tokens": 9, "output_tokens": 9}}
    pid = _add(ws, server, "anthropic")
    server.script("chat", Scripted(body=json.dumps(msg), content_type="application/json"))
    s = ws.chat("A city", provider=pid, schema=City)
    assert s.value == City(name="Oslo", population=700000) and s.finish_reason == "stop"
