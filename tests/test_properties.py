"""Property tests (issue 8): generated input never breaks a parser, the store or the magic.

* any chunking of a *generated* valid stream of every wire protocol gives exactly the
  generated text, usage and finish reason;
* arbitrary bytes (random, grammar-shaped, mutated valid streams) fed to each parser raise
  nothing but ``ProviderResponseError``/``ProviderAPIError``, from ``feed`` and ``close``;
* a 100 MB line (or event, or stray text) is refused with bounded memory;
* arbitrary config dicts given to ``create``/``update`` raise nothing but the documented
  errors, never store invalid data, and a rejected write changes nothing;
* magic argument strings never crash the ``%%llm``/``%llm`` parser (``UsageError`` only).

Every ``@settings`` has an explicit ``max_examples``, ``deadline=None``, ``derandomize=True``
and ``database=None``: the same cases run on every machine, and CI time stays bounded.
"""

from __future__ import annotations

import json
import math
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hardening import (
    FINISH,
    PROTOCOLS,
    PROVIDER_ID,
    TRICKY,
    StreamSpec,
    build_body,
    replay,
    split_at,
)
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from viagent_jupyter.adapters import get_adapter
from viagent_jupyter.adapters._common import http_error
from viagent_jupyter.adapters._sse import MAX_LINE_BYTES
from viagent_jupyter.adapters.base import HTTPRequest
from viagent_jupyter.errors import (
    ConfigValidationError,
    ProviderAPIError,
    ProviderConflictError,
    ProviderError,
    ProviderNotFoundError,
    ProviderResponseError,
    ViagentError,
)
from viagent_jupyter.schema import PROVIDER_TYPES, ModelSettings, ProviderConfig

SETTINGS = {"deadline": None, "derandomize": True, "database": None,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much]}

# --------------------------------------------------------------------------- strategies

# Text with the characters that matter most, mixed with anything UTF-8 can carry.
chars = st.characters(blacklist_categories=("Cs",))  # lone surrogates have no UTF-8 form
pieces = st.one_of(st.sampled_from(TRICKY), st.text(chars, max_size=12))
texts = st.lists(pieces, max_size=4).map("".join)
tokens = st.integers(min_value=0, max_value=10**12)


@st.composite
def stream_specs(draw: st.DrawFn) -> StreamSpec:
    protocol = draw(st.sampled_from(PROTOCOLS))
    finish = draw(st.one_of(st.sampled_from(sorted(FINISH[protocol])),
                            st.text(st.characters(min_codepoint=65, max_codepoint=122),
                                    min_size=1, max_size=12)))
    # (is answer text, text): about one in four items is reasoning the parser must skip
    items = draw(st.lists(st.tuples(st.sampled_from([True, True, True, False]), texts),
                          max_size=12))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"] if protocol != "ollama"
                               else ["\n", "\r\n"]))
    return StreamSpec(
        protocol=protocol,
        model=draw(st.text(chars, min_size=1, max_size=20)),
        items=items,
        prompt_tokens=draw(tokens),
        completion_tokens=draw(tokens),
        extra_tokens=(draw(tokens), draw(tokens)),
        finish=finish,
        eol=eol,
        ensure_ascii=draw(st.booleans()),
        bom=draw(st.booleans()),
        keepalives=draw(st.lists(st.integers(0, 40), max_size=4)),
        multiline=draw(st.booleans()),
        cost=draw(st.none() | st.floats(0, 100, allow_nan=False)),
    )


cut_lists = st.lists(st.integers(min_value=0, max_value=10**9), max_size=60)


# --------------------------------------------------------------------------- valid streams


@settings(max_examples=400, **SETTINGS)
@given(spec=stream_specs(), cuts=cut_lists, single_bytes=st.booleans())
def test_any_chunking_of_a_generated_stream_gives_what_it_says(
        spec: StreamSpec, cuts: list[int], single_bytes: bool) -> None:
    body = build_body(spec)
    chunks = [body[i:i + 1] for i in range(len(body))] if single_bytes and len(body) < 4000 \
        else split_at(body, cuts)
    assert b"".join(chunks) == body
    note(f"body={body[:400]!r}")
    got = replay(spec.protocol, chunks)
    assert got.error is None, f"{type(got.error).__name__}: {got.error}"
    assert got.done
    assert got.text == spec.text
    assert all(isinstance(d, str) and d for d in got.deltas)
    assert got.usage == spec.expected_usage()
    assert got.finish_reason == spec.expected_finish()
    assert got.raw_finish_reason == spec.finish
    assert got.model == spec.model
    if spec.protocol == "openrouter" and spec.cost is not None:
        assert got.cost == spec.cost
    whole = replay(spec.protocol, [body])
    assert whole.key() == got.key()


# --------------------------------------------------------------------------- hostile bytes

_KEYS = ["choices", "delta", "content", "finish_reason", "usage", "model", "error", "message",
         "type", "candidates", "parts", "text", "done", "done_reason", "usageMetadata",
         "promptFeedback", "blockReason", "index", "refusal", "stop_reason", "input_tokens",
         "output_tokens", "prompt_eval_count", "eval_count", "code", "status", "details",
         "reason", "metadata", "raw", "thought", "functionCall", "tool_calls",
         "prompt_tokens", "completion_tokens", "total_tokens", "cost", "promptTokenCount",
         "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount", "modelVersion",
         "id", "provider_name", "flagged_input", "cache_read_input_tokens"]
_STRINGS = ["message_start", "message_delta", "message_stop", "content_block_delta",
            "text_delta", "thinking_delta", "error", "overloaded_error", "stop", "STOP",
            "length", "API_KEY_INVALID", "rate_limit_error", "insufficient_quota", "ping",
            "[DONE]", "x", ""]
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                      st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from(_STRINGS), st.text(chars, max_size=6))
json_values = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), kids,
                                                               max_size=5),
    max_leaves=16)
_FRAMING = [b"data: ", b"data:", b"event: error\n", b"event: message_stop\n", b"event:",
            b"\n", b"\r\n", b"\r", b"\n\n", b": keep\n", b"[DONE]", b"{", b"}", b"[", b"]",
            b'"error"', b":", b",", b"id: 1\n", b"retry: 5\n", b"\xef\xbb\xbf", b"\xff",
            b"\xc3", b"  ", b'{"done": true}\n']


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


grammar_bodies = st.lists(
    st.one_of(st.sampled_from(_FRAMING), json_values.map(_json_bytes),
              json_values.map(lambda v: b"data: " + _json_bytes(v) + b"\n\n"),
              json_values.map(lambda v: _json_bytes(v) + b"\n"),
              st.binary(max_size=8)),
    max_size=30).map(b"".join)


@st.composite
def mutated_valid(draw: st.DrawFn) -> tuple[str, bytes]:
    spec = draw(stream_specs())
    body = bytearray(build_body(spec))
    for _ in range(draw(st.integers(1, 6))):
        if not body:
            break
        at = draw(st.integers(0, len(body) - 1))
        op = draw(st.sampled_from(["flip", "drop", "insert", "cut"]))
        if op == "flip":
            body[at] ^= draw(st.integers(1, 255))
        elif op == "drop":
            del body[at:at + draw(st.integers(1, 20))]
        elif op == "insert":
            body[at:at] = draw(st.sampled_from(_FRAMING) | st.binary(min_size=1, max_size=6))
        else:
            del body[at:]
    return spec.protocol, bytes(body)


hostile = st.one_of(
    st.tuples(st.sampled_from(PROTOCOLS), st.binary(max_size=3000)),
    st.tuples(st.sampled_from(PROTOCOLS), grammar_bodies),
    mutated_valid(),
)


def _check_error(exc: BaseException, body: bytes) -> None:
    # only the provider-error branch, and within it only what a parser may say
    assert isinstance(exc, (ProviderResponseError, ProviderAPIError)), repr(exc)
    assert isinstance(exc, ProviderError) and isinstance(exc, ViagentError)
    assert exc.provider in (PROVIDER_ID, None)
    assert "\n" not in str(exc) and len(str(exc)) <= 400
    if isinstance(exc, ProviderAPIError):
        # an API error is what the provider *stated*: the stream must say "error" somewhere
        # (an error member, an error event or type), literally or through a \\u escape
        assert b"error" in body or b"\\u" in body, body[:300]


@settings(max_examples=700, **SETTINGS)
@given(case=hostile, cuts=cut_lists)
def test_arbitrary_bytes_raise_only_provider_errors(case: tuple[str, bytes],
                                                    cuts: list[int]) -> None:
    protocol, body = case
    chunks = split_at(body, cuts)
    parser = get_adapter(protocol).parser(_request(protocol))
    failed = None
    try:
        for chunk in chunks:
            for delta in parser.feed(chunk):
                assert isinstance(delta, str) and delta
        parser.close()
    except Exception as exc:
        _check_error(exc, body)
        failed = exc
    # close() after anything (again, or after a failed feed) says the same kind of thing
    for _ in range(2):
        try:
            parser.close()
        except Exception as exc:
            _check_error(exc, body)
        else:
            assert failed is None and parser.state.done
    # the whole body at once ends the same way: in an error or not
    whole = replay(protocol, [body])
    if whole.error is not None:
        _check_error(whole.error, body)
    assert (whole.error is None) == (failed is None)


def _request(protocol: str) -> Any:
    from _hardening import chat_request

    return chat_request(protocol)


@settings(max_examples=300, **SETTINGS)
@given(status=st.integers(100, 599), body=st.one_of(
    st.binary(max_size=600), grammar_bodies,
    st.dictionaries(st.sampled_from(_KEYS), json_values, max_size=4).map(_json_bytes),
    json_values.map(lambda v: _json_bytes({"error": v}))),
    retry_after=st.none() | st.text(max_size=12))
def test_any_error_body_maps_to_one_api_error(status: int, body: bytes,
                                              retry_after: str | None) -> None:
    headers = {} if retry_after is None else {"retry-after": retry_after}
    for protocol in ("openai", "anthropic", "gemini", "ollama"):
        adapter = get_adapter(protocol)
        err = adapter.error_from_response(status, headers, body, PROVIDER_ID, "m")
        assert isinstance(err, ProviderAPIError)
        assert err.status_code == status and err.provider == PROVIDER_ID
        assert "\n" not in str(err) and len(str(err)) <= 400
    assert isinstance(http_error(status, headers, b"[" * 100_000, PROVIDER_ID, None),
                      ProviderAPIError)


@settings(max_examples=200, **SETTINGS)
@given(protocol=st.sampled_from(["openai", "anthropic", "gemini", "ollama"]),
       body=st.one_of(st.binary(max_size=400), grammar_bodies,
                      st.dictionaries(st.sampled_from(["data", "models", "has_more",
                                                       "last_id", "nextPageToken"]),
                                      json_values, max_size=4).map(_json_bytes)))
def test_any_model_list_body_parses_or_is_a_response_error(protocol: str, body: bytes) -> None:
    adapter = get_adapter(protocol)
    request = HTTPRequest("GET", "http://127.0.0.1:9/models", {}, params={"limit": "100"})
    try:
        page = adapter.parse_models(body, request)
    except ProviderResponseError:
        return
    assert all(m.id and isinstance(m.id, str) for m in page.models)


# --------------------------------------------------------------------------- 100 MB


def _streams() -> list[tuple[str, bytes, bytes]]:
    """(protocol, prefix, filler) for: one endless line; one event of endless data: lines;
    and (Gemini) endless non-SSE text."""
    kib = b"x" * 1023
    return [
        ("openai", b"data: ", b"x"),
        ("anthropic", b"event: content_block_delta\ndata: ", b"x"),
        ("gemini", b"data: ", b"x"),
        ("ollama", b'{"message": {"content": "', b"x"),
        ("openai", b"", b"data: " + kib[:1017] + b"\n"),  # one event, never dispatched
        ("gemini", b"", kib + b"\n"),  # stray lines that never form JSON
    ]


@pytest.mark.parametrize("protocol,prefix,filler", _streams(),
                         ids=["sse-openai-line", "sse-anthropic-line", "sse-gemini-line",
                              "ndjson-ollama-line", "sse-event-data", "gemini-stray-text"])
def test_a_100_mb_line_is_refused_with_bounded_memory(protocol: str, prefix: bytes,
                                                      filler: bytes) -> None:
    mib = 1 << 20
    chunk = (filler * (mib // len(filler) + 1))[:mib]
    parser = get_adapter(protocol).parser(_request(protocol))
    fed = 0
    tracemalloc.start()
    try:
        with pytest.raises(ProviderResponseError, match=r"longer than|dropped") as info:
            parser.feed(prefix)
            while fed < 100 * mib:
                parser.feed(chunk)
                fed += len(chunk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fed <= MAX_LINE_BYTES + 2 * mib, fed  # refused at the limit, not at 100 MB
    assert peak < 64 * mib, f"peak {peak / mib:.1f} MiB"
    assert info.value.provider == PROVIDER_ID
    with pytest.raises(ProviderError):
        parser.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("shape", ["event", "stray", "error-body", "model-list"])
def test_json_nested_thousands_deep_is_malformed_not_a_crash(protocol: str, shape: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    adapter = get_adapter(protocol)
    if shape == "error-body":
        err = adapter.error_from_response(500, {}, deep, PROVIDER_ID, "m")
        assert isinstance(err, ProviderAPIError)
        err = adapter.error_from_response(500, {}, b"data: " + deep + b"\n\n", PROVIDER_ID,
                                          "m")
        assert isinstance(err, ProviderAPIError)
        return
    if shape == "model-list":
        with pytest.raises(ProviderResponseError):
            adapter.parse_models(deep, HTTPRequest("GET", "http://127.0.0.1:9/m", {}))
        return
    body = deep + b"\n" if protocol == "ollama" or shape == "stray" else \
        b"data: " + deep + b"\n\n"
    got = replay(protocol, split_at(body, range(0, len(body), 4096)))
    assert isinstance(got.error, ProviderResponseError), repr(got.error)


def test_long_non_json_text_is_not_parsed_again_on_every_chunk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Gemini keeps non-SSE lines to find a pretty-printed error; a long text with many lines
    starting with '}' (a JS or CSS file behind a wrong base_url) must stay linear."""
    import viagent_jupyter.adapters.gemini as gemini

    calls = []
    real = json.loads

    class CountingJSON:
        @staticmethod
        def loads(text: Any) -> Any:
            calls.append(len(text))
            return real(text)

        dumps = staticmethod(json.dumps)

    monkeypatch.setattr(gemini, "json", CountingJSON)
    parser = gemini.ADAPTER.parser(_request("gemini"))
    for _ in range(4000):
        parser.feed(b"function f() { return 1;\n}\n")
    assert len(calls) <= 2, len(calls)
    with pytest.raises(ProviderResponseError):
        parser.close()
    # a pretty-printed error still raises mid-stream
    parser = gemini.ADAPTER.parser(_request("gemini"))
    error = json.dumps({"error": {"code": 429, "message": "quota exhausted",
                                  "status": "RESOURCE_EXHAUSTED"}}, indent=2) + "\n"
    with pytest.raises(ProviderAPIError, match="quota"):
        for line in error.replace("\n", "\r\n").encode().splitlines(keepends=True):
            parser.feed(line)


# --------------------------------------------------------------------------- config dicts

_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["a", "oa", "p-1", "x_2", "A", "", "-a", "a" * 65, "é", " a ",
                           "a b", "a\n"]) | st.text(max_size=8),
    "provider_type": st.sampled_from([*PROVIDER_TYPES, "OpenAI", "", "grpc"]),
    "name": st.none() | st.sampled_from(["Work", "", " ", "n" * 201, "\x00", "a\nb",
                                         "<b>x</b>", "🦅"]) | texts,
    "base_url": st.none() | st.sampled_from([
        "https://api.example.test/v1", "http://127.0.0.1:1/v1", "http://example.test",
        "ftp://x", "https://u:p@h.test", "http://[::1", "http://h.test:99999",
        "https://h.test/#f", "", "https://h.test?api-version=1", "https://h.test/ v1",
        "http://", "https://h.test\n", "HTTPS://H.TEST/"]) | st.text(max_size=12),
    "default_model": st.none() | st.sampled_from(["gpt-x", "a b", "", "m" * 301, "x\u2028"])
    | st.text(max_size=8),
    "settings": st.none() | st.dictionaries(
        st.sampled_from(["temperature", "max_tokens", "top_p", "frequency_penalty",
                         "presence_penalty", "bogus", ""]),
        st.none() | st.floats(allow_nan=True) | st.integers(-5, 20_000_000)
        | st.sampled_from(["0.5", "hot", True]), max_size=4)
    | st.sampled_from([[], "temperature=1", 3, ModelSettings(temperature=0.3)]),
    "headers": st.dictionaries(
        st.sampled_from(["X-Title", "HTTP-Referer", "Authorization", "x-api-key", "bad name",
                         "é", "", "X-" + "a" * 120]) | st.text(max_size=5),
        st.sampled_from(["v", "a\nb", "café", "\x00", "t\tab", "x" * 4001, 1, None])
        | st.text(max_size=6), max_size=3) | st.sampled_from([None, [], "X: y"]),
    "timeout": st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5000)
    | st.sampled_from(["5", None, True]),
    "max_retries": st.integers(-2, 12) | st.sampled_from(["2", 2.5, True, None]),
    "allow_insecure_http": st.booleans() | st.sampled_from(["yes", 1, None, 2]),
    "created_at": st.sampled_from(["2020-01-01T00:00:00Z", "x"]),
    "version": st.integers(-1, 9),
    "has_api_key": st.booleans(),
    "api_key_hint": st.text(max_size=4),
    "key_source": st.sampled_from(["stored", "x"]),
    "api_key": st.none() | st.sampled_from([
        "sk-valid-key-0123456789", "plain-Secret-valid-1", "", "  ", "has space", "tëst-k3y",
        "k\x00", "x" * 9000, 123, b"sk-bytes"]),
    "persist_key": st.booleans() | st.sampled_from([None, "no"]),
}
junk_keys = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1,
                    max_size=8).filter(lambda k: k not in _FIELD_VALUES and k != "self")
config_dicts = st.fixed_dictionaries(
    {}, optional={**_FIELD_VALUES, "junk": st.dictionaries(junk_keys, json_leaf, max_size=2)})


def _kwargs(d: dict[str, Any]) -> dict[str, Any]:
    d = dict(d)
    junk = d.pop("junk", {})
    return {**junk, **d}


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, Any, dict[str, Any], Any]]:
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["create", "create", "update", "update", "set_key",
                                     "delete", "select"]))
        target = draw(st.sampled_from(["a", "oa", "p-1", "zz", "A"]))
        version = draw(st.none() | st.integers(0, 4) | st.sampled_from(["1", True]))
        ops.append((kind, target, _kwargs(draw(config_dicts)), version))
    return ops


def _rows(ws: Any) -> list[tuple[Any, ...]]:
    with ws.db.read() as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT p.id, p.data, p.version, p.position, c.ciphertext FROM providers p "
            "LEFT JOIN credentials c ON c.provider_id = p.id ORDER BY p.position").fetchall()
            ] + [tuple(r) for r in conn.execute(
                "SELECT key, value FROM meta WHERE key = 'selected'").fetchall()]


ALLOWED = (ConfigValidationError, ProviderConflictError, ProviderNotFoundError)


@pytest.fixture
def fuzz_ws(home: Path) -> Iterator[Any]:
    from viagent_jupyter import Workspace

    with Workspace(home=home) as ws:
        yield ws


def test_arbitrary_configs_raise_only_validation_errors_and_store_only_valid_data(
        fuzz_ws: Any) -> None:
    ws = fuzz_ws
    store = ws.providers
    seen = {"ok": 0, "rejected": 0}

    @settings(max_examples=250, **SETTINGS)
    @given(ops=operations())
    def run(ops: list[tuple[str, Any, dict[str, Any], Any]]) -> None:
        with ws.db.write() as conn:  # every example starts from an empty workspace
            for table in ("providers", "credentials", "model_cache"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM meta WHERE key = 'selected'")
            ws.db.bump(conn, "providers_rev")
        ws.vault._session.clear()
        store._reload(force=True)  # (our own connection's writes do not move data_version)
        for kind, target, kw, version in ops:
            before = _rows(ws)
            note(f"{kind} {target!r} {kw!r} expected_version={version!r}")
            try:
                if kind == "create":
                    kw.setdefault("id", target)
                    kw.setdefault("provider_type", "ollama")
                    store.create(**kw)
                elif kind == "update":
                    extra = {} if version is None else {"expected_version": version}
                    store.update(target, **kw, **extra)
                elif kind == "set_key":
                    store.set_key(target, kw.get("api_key", "sk-set-key-0123456789"),
                                  persist=kw.get("persist_key", True) is not False)
                elif kind == "delete":
                    store.delete(target)
                else:
                    store.select(target)
            except ALLOWED as exc:
                seen["rejected"] += 1
                assert "\n" not in str(exc)
                assert _rows(ws) == before, "a rejected write changed the database"
            except Exception as exc:
                if kind == "delete" and type(exc).__name__ == "ProviderInUseError":
                    assert _rows(ws) == before
                    continue
                raise
            else:
                seen["ok"] += 1
            # whatever happened, everything stored is valid and the views agree
            with ws.db.read() as conn:
                rows = conn.execute("SELECT id, data, version FROM providers").fetchall()
            for _pid, data, ver in rows:
                ProviderConfig.model_validate({**json.loads(data), "version": ver})
            assert store.load_errors == {}
            assert [p["id"] for p in store.providers] == [c.id for c in store.list()]
            assert sorted(c.id for c in store.list()) == sorted(r[0] for r in rows)
            json.dumps(store.providers)  # the trait stays JSON-able (widgets sync it)
            for p in store.providers:
                for value in p["headers"].values():
                    assert value.isascii()
        assert ws.db.integrity_check() == "ok"

    run()
    print(f"config operations: {seen}")
    assert seen["ok"] > 20 and seen["rejected"] > 100, seen


# --------------------------------------------------------------------------- magic arguments

_ARG_TOKENS = ["-p", "--provider", "-m", "--model", "-t", "--temperature", "--max-tokens",
               "-s", "--system", "-f", "--format", "--insert", "-o", "--output", "--chat",
               "--chat=", "--chat=t1", "--new", "--no-interpolate", "--no-stream", "-h",
               "--help", "--", "-", "---", "-x", "--bogus", "--prov", "'", '"', "\\", "'a b'",
               '"a b"', "'unclosed", '"unclosed', "0.2", "nan", "inf", "-1", "0", "1e999",
               "99999999999999999999", "markdown", "code", "json", "yaml", "x", "é", "🦅",
               "\u2028", "%", "%%llm", "{x}", "$x", "$(ls)", "`x`", "#", "models", "use",
               "key", "stats", "providers", "help", "reset", "history", "error", "class",
               "_llm", "a-b"]
arg_lines = st.one_of(
    st.lists(st.sampled_from(_ARG_TOKENS) | st.text(chars, max_size=6), max_size=10)
    .map(" ".join),
    st.text(chars, max_size=40),
)


@settings(max_examples=600, **SETTINGS)
@given(line=arg_lines)
def test_magic_argument_parsing_raises_only_usage_errors(line: str) -> None:
    from viagent_jupyter.magics import PromptArgs, _split, parse_prompt_args, split_line_prompt

    try:  # %%llm OPTIONS (the cell body is the prompt)
        args = parse_prompt_args(_split(line))
        assert isinstance(args, PromptArgs)
        assert args.output is None or args.output.isidentifier()
        assert args.max_tokens is None or args.max_tokens > 0
        assert args.format in (None, "markdown", "text", "code", "json")
    except UsageError as exc:
        assert str(exc)
    try:  # %llm OPTIONS PROMPT
        tokens, prompt = split_line_prompt(line)
        assert prompt == "" or prompt in line
        parse_prompt_args(tokens)
    except UsageError as exc:
        assert str(exc)


@pytest.fixture
def magic_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import getpass

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from viagent_jupyter import Workspace
    from viagent_jupyter.magics import LLMMagics, load, unload
    from viagent_jupyter.testing import FakeProviderServer

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": "")
    monkeypatch.setattr(LLMMagics, "_widget", lambda self, name: None)
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=cfg)
    with FakeProviderServer(delay=0) as srv, Workspace(home=tmp_path / "ws") as ws:
        ws.providers.create(id="fake", provider_type="openai_compatible", name="Fake",
                            base_url=srv.url_for("openai_compatible"),
                            default_model="demo-small", max_retries=0)
        ws.providers.select("fake")
        load(shell, workspace=ws)
        shell.user_ns["_fake_server"] = srv
        try:
            yield shell
        finally:
            unload(shell)
            shell.history_manager.end_session()
            InteractiveShell.clear_instance()


def test_magic_lines_through_a_real_shell(magic_shell: Any,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from viagent_jupyter.magics import LLMCellStopped

    shell = magic_shell
    outcomes = {"ok": 0, "usage": 0}

    @settings(max_examples=60, **SETTINGS)
    @given(line=arg_lines, cell=st.booleans(), body=texts)
    def run(line: str, cell: bool, body: str) -> None:
        line = line.replace("\n", " ").replace("\r", " ").replace("\x00", "")
        assume(line.strip() not in ("--help", "-h") or cell)
        source = f"%%llm {line}\n{body.replace(chr(0), '')}x" if cell else f"%llm {line}"
        res = shell.run_cell(source, store_history=False)
        out, err = capsys.readouterr()
        assert res.error_before_exec is None, res.error_before_exec
        error = res.error_in_exec
        assert error is None or isinstance(error, (UsageError, LLMCellStopped)), repr(error)
        assert "Traceback" not in out + err
        outcomes["usage" if error else "ok"] += 1

    run()
    print(f"magic cells through the shell: {outcomes}")
    assert outcomes["ok"] > 5 and outcomes["usage"] > 5, outcomes


def test_a_json_answer_nested_thousands_deep_is_shown_as_text(
        magic_shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Model output is untrusted: ``-f json`` must not crash on ``[[[[…]]]]``."""
    from viagent_jupyter.testing import Scripted

    srv = magic_shell.user_ns["_fake_server"]
    for depth in (100, 100_000):
        text = "[" * depth + "]" * depth
        body = b"".join(b"data: " + json.dumps(obj).encode() + b"\n\n" for obj in (
            {"choices": [{"delta": {"content": text}}]},
            {"choices": [{"delta": {}, "finish_reason": "stop"}]})) + b"data: [DONE]\n\n"
        srv.script("chat", Scripted(body=body, content_type="text/event-stream"))
        res = magic_shell.run_cell("%%llm -f json -o answer\nhi", store_history=False)
        out, err = capsys.readouterr()
        assert res.error_in_exec is None and "Traceback" not in out + err
        assert magic_shell.user_ns["answer"].text == text
        assert ("nested too deeply" in out) == (depth > 1000)  # shown as text, with a warning


def test_keys_and_header_values_outside_ascii_are_refused_before_any_request(
        fuzz_ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx can only send ASCII header values; a key or header that is not ASCII used to
    reach it and fail with a bare UnicodeEncodeError holding the whole header value."""
    from viagent_jupyter.errors import ProviderConnectionError
    from viagent_jupyter.testing import FakeProviderServer

    store = fuzz_ws.providers
    for key in ("sk-tëst-0123456789abcdef", "sk-€€€€-123456789012", "sk-\u200bzero-width1"):
        with pytest.raises(ConfigValidationError) as info:
            store.create(id="oa", provider_type="openai", api_key=key)
        assert key not in str(info.value) and key not in repr(info.value.errors)
    for value in ("Café", "naïve", "\x00x", "a\x7fb"):
        with pytest.raises(ConfigValidationError, match="printable ASCII"):
            store.create(id="oa", provider_type="openrouter", headers={"X-Title": value})
    assert store.list() == []
    with FakeProviderServer(delay=0) as srv:
        store.create(id="oa", provider_type="openai", base_url=srv.url_for("openai"),
                     default_model="demo-small", max_retries=0)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-tëst-from-the-environment")
        with pytest.raises(ProviderConnectionError, match="non-ASCII") as err:
            fuzz_ws.chat("hi", provider="oa").wait().text  # noqa: B018
        assert "tëst" not in str(err.value) and "\n" not in str(err.value)
        # a row written before this rule (or behind the API) still loads, and says why
        with fuzz_ws.db.write() as conn:
            data = json.loads(conn.execute("SELECT data FROM providers").fetchone()[0])
            data["headers"] = {"X-Title": "Café"}
            conn.execute("UPDATE providers SET data = ?", (json.dumps(data),))
        store._reload(force=True)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-ascii-environment-key-1")
        with pytest.raises(ProviderConnectionError, match="X-Title"):
            fuzz_ws.chat("hi", provider="oa").wait().text  # noqa: B018
        assert [r for r in srv.requests if r.route and r.route.endswith("chat")] == []


def test_update_merges_a_model_settings_object(fuzz_ws: Any) -> None:
    store = fuzz_ws.providers
    store.create(id="a", provider_type="ollama", settings={"max_tokens": 5})
    cfg = store.update("a", settings=ModelSettings(temperature=0.3))
    assert (cfg.settings.temperature, cfg.settings.max_tokens) == (0.3, 5)


def test_float_edge_values_are_rejected_as_settings(fuzz_ws: Any) -> None:
    store = fuzz_ws.providers
    store.create(id="a", provider_type="ollama")
    for value in (math.nan, math.inf, -math.inf, -0.0001, 2.0001):
        with pytest.raises(ConfigValidationError):
            store.update("a", settings={"temperature": value})
    assert store.get("a").version == 1
    with sqlite3.connect(fuzz_ws.db.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
