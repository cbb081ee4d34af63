"""Security round 2 (issue 11), the items that need a real IPython kernel: 6 (a panel key and
DEBUG logs), 8 (display cap), 9 (lone surrogates), 11 (interpolation), 12 (-o names), 13 (where
the master key lives). One kernel for the module; each test uses its own provider."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _util import PLANTED_KEY
from kernel import Kernel, kernel

import viagent_jupyter as vj
from viagent_jupyter.testing import FakeProviderServer, Scripted

KEY = PLANTED_KEY
HEAD = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "demo-small"}


def _sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(obj).encode() + b"\n\n"  # ensure_ascii: \ud800 stays


def openai_body(pieces: list[str]) -> bytes:
    events = [_sse({**HEAD, "choices": [{"index": 0, "delta": {"content": p}}]}) for p in pieces]
    events.append(_sse({**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    return b"".join(events) + b"data: [DONE]\n\n"


def anthropic_body(pieces: list[str]) -> bytes:
    out = [_sse({"type": "message_start", "message": {
        "id": "m", "type": "message", "role": "assistant", "model": "demo-small", "content": [],
        "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}}, "message_start"),
        _sse({"type": "content_block_start", "index": 0,
              "content_block": {"type": "text", "text": ""}}, "content_block_start")]
    out += [_sse({"type": "content_block_delta", "index": 0,
                  "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
            for p in pieces]
    out += [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                  "usage": {"output_tokens": 2}}, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop")]
    return b"".join(out)


def gemini_body(pieces: list[str]) -> bytes:
    out = [_sse({"candidates": [{"content": {"role": "model", "parts": [{"text": p}]},
                                 "index": 0}], "modelVersion": "demo-small"}) for p in pieces]
    out.append(_sse({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                     "finishReason": "STOP", "index": 0}],
                     "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2}}))
    return b"".join(out)


def ollama_body(pieces: list[str]) -> bytes:
    lines = [json.dumps({"model": "demo-small", "message": {"role": "assistant", "content": p},
                         "done": False}) for p in pieces]
    lines.append(json.dumps({"model": "demo-small", "message": {"role": "assistant",
                                                                 "content": ""},
                             "done": True, "done_reason": "stop", "prompt_eval_count": 1,
                             "eval_count": 2}))
    return ("\n".join(lines) + "\n").encode()


BODIES = {"openai": (openai_body, "text/event-stream"),
          "anthropic": (anthropic_body, "text/event-stream"),
          "gemini": (gemini_body, "text/event-stream"),
          "ollama": (ollama_body, "application/x-ndjson")}


@pytest.fixture(scope="module")
def srv() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as server:
        yield server


@pytest.fixture(scope="module")
def k(tmp_path_factory: pytest.TempPathFactory, srv: FakeProviderServer) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("kernel") / "home"
    with kernel({"VIAGENT_HOME": str(home), "VIAGENT_KEYRING": "0"}) as km:
        km.check("%load_ext viagent_jupyter\nimport viagent_jupyter as vj\nws = vj.workspace()")
        km.check(f"ws.providers.create(id='big', provider_type='openai_compatible', "
                 f"base_url={srv.url_for('openai')!r}, default_model='demo-small')")
        yield km


def displays(res: Any) -> list[dict[str, Any]]:
    return [o for o in res.outputs if o["type"] in ("display_data", "update_display_data")]


# -- 6. a key typed in the panel reaches no log, at any level, on any logger -----------------

GRAB = """
import json, logging
_records = []
class _Grab(logging.Handler):
    def emit(self, record):
        try:
            _records.append(record.getMessage() + " | " + repr(record.args))
        except Exception:
            _records.append(repr(record.__dict__))
_grab = _Grab(level=logging.DEBUG)
_root = logging.getLogger()
_root.addHandler(_grab)
_root.setLevel(logging.DEBUG)
for _name in list(logging.root.manager.loggerDict):
    _lg = logging.getLogger(_name)
    _lg.setLevel(logging.DEBUG)
    _lg.disabled = False
    _lg.addHandler(_grab)
_klog = get_ipython().kernel.log
_klog.setLevel(logging.DEBUG)
_klog.addHandler(_grab)
from viagent_jupyter.widgets import ConfigPanel
_panel = ConfigPanel(ws)
print(_panel.comm.comm_id)
"""

RELEASE = """
for _lg in [logging.getLogger(), _klog, *map(logging.getLogger, logging.root.manager.loggerDict)]:
    _lg.removeHandler(_grab)
_panel.close()
print(json.dumps({"source": ws.providers.get("keyed").key_source, "records": _records}))
"""


def test_item06_a_panel_key_reaches_no_debug_log(k: Kernel, srv: FakeProviderServer) -> None:
    """Drives the real path: a comm_msg on the shell channel, as the browser sends it (the
    key in the message's binary buffer), into a kernel logging DEBUG on every logger."""
    k.check(f"ws.providers.create(id='keyed', provider_type='openai', "
            f"base_url={srv.url_for('openai')!r})")
    comm_id = k.check(GRAB).strip().splitlines()[-1]
    kc = k.kc
    content = {"comm_id": comm_id, "data": {"method": "custom", "content": {
        "id": "r1", "op": "set_key", "provider": "keyed"}}}
    kc.session.send(kc.shell_channel.socket, "comm_msg", content, buffers=[KEY.encode()])
    out = json.loads(k.check(RELEASE).strip().splitlines()[-1])
    assert out["source"] == "stored"  # the key arrived
    records = out["records"]
    assert any("comm_msg" in r or "custom" in r for r in records), "DEBUG was not captured"
    windows = {KEY[i:i + 8] for i in range(len(KEY) - 7)}
    hits = [r[:200] for r in records if any(w in r for w in windows)]
    assert hits == []


def test_item06_a_key_in_the_json_content_is_refused(ws: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from viagent_jupyter.widgets import ConfigPanel

    ws.providers.create(id="oa", provider_type="openai")
    panel = ConfigPanel(ws)
    sent: list[Any] = []
    monkeypatch.setattr(panel, "send", lambda msg, buffers=None: sent.append(msg))
    panel._on_custom_msg(panel, {"id": "r", "op": "set_key", "provider": "oa",
                                 "api_key": KEY}, [])
    panel._on_custom_msg(panel, {"id": "s", "op": "set_key", "provider": "oa"},
                         [memoryview(KEY.encode())])
    panel.close()
    assert [m["ok"] for m in sent] == [False, True]
    assert "binary buffer" in sent[0]["error"]["message"] and KEY not in json.dumps(sent)
    assert ws.providers.get("oa").key_source == "stored"


# -- 8. what %%llm displays is capped; _llm keeps the text up to its own cap -----------------

def test_item08_display_and_result_are_capped(k: Kernel, srv: FakeProviderServer) -> None:
    pieces = [f"{i:05d}" + "x" * 995 + "\n" for i in range(2500)]  # 2.5 MB of answer
    full = "".join(pieces)
    body = openai_body(pieces)

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    k.check("%config LLMMagics.display_max_bytes = 100000\n"
            "%config LLMMagics.result_max_bytes = 1000000")
    srv.script("chat", Scripted(body=body, content_type="text/event-stream", chunks=65536))
    res = k.run("%%llm -p big -f text\nhi", timeout=120)
    assert res.error is None, res.error
    shown = displays(res)
    assert shown and max(len(json.dumps(o["data"])) for o in shown) < 110_000
    assert "display truncated" in shown[-1]["data"]["text/plain"]
    assert "stopped at" in shown[-1]["data"]["text/plain"]
    probe = ("import hashlib; print(len(_llm.text.encode()), _llm.truncated_at, "
             "hashlib.sha256(_llm.text.encode()).hexdigest())")
    assert k.check(probe).split() == ["1000000", "1000000", sha(full[:1_000_000])]
    # a cap above the answer keeps all of it; the display stays capped
    k.check("%config LLMMagics.result_max_bytes = 4000000")
    srv.script("chat", Scripted(body=body, content_type="text/event-stream", chunks=65536))
    res = k.run("%%llm -p big -f text -o whole\nhi", timeout=120)
    assert max(len(json.dumps(o["data"])) for o in displays(res)) < 110_000
    assert k.check(probe.replace("_llm", "whole")).split() == [str(len(full)), "None", sha(full)]
    k.check("%config LLMMagics.display_max_bytes = 4000000\n"
            "%config LLMMagics.result_max_bytes = 64000000")


def test_item08_compare_columns_are_capped_too(k: Kernel, srv: FakeProviderServer) -> None:
    pieces = ["y" * 999 + "\n" for _ in range(1000)]  # 1 MB per column
    k.check("%config LLMMagics.display_max_bytes = 50000")
    for _ in range(2):
        srv.script("chat", Scripted(body=openai_body(pieces), content_type="text/event-stream",
                                    chunks=65536))
    res = k.run("%%llm -p big -m demo-small -m demo-large -f text\nhi", timeout=120)
    assert res.error is None, res.error
    shown = displays(res)
    # two columns, each in text/plain and text/html
    assert shown and max(len(json.dumps(o["data"])) for o in shown) < 4 * 50_000 + 10_000
    assert shown[-1]["data"]["text/plain"].count("display truncated") == 2
    assert k.check("print([len(r.text) for r in _llm])").strip() == "[1000000, 1000000]"
    k.check("%config LLMMagics.display_max_bytes = 4000000")


# -- 9. a lone surrogate in model output -------------------------------------------------------

@pytest.mark.parametrize("protocol", sorted(BODIES))
def test_item09_lone_surrogate_in_output_through_chat(ws: Any, srv: FakeProviderServer,
                                                      protocol: str) -> None:
    build, ctype = BODIES[protocol]
    pid = f"s-{protocol}"
    ws.providers.create(id=pid, provider_type=protocol, base_url=srv.url_for(protocol),
                        api_key=None if protocol == "ollama" else "sk-test-000000000001",
                        default_model="demo-small")
    srv.script("chat", Scripted(body=build(["ok ", "\ud800", " \udfff done"]),
                                content_type=ctype))
    s = ws.chat("hi", provider=pid).wait()
    assert s.text == "ok \ufffd \ufffd done" and s.finish_reason == "stop"
    s.text.encode("utf-8")  # encodable: display, storage and the next request work


def test_item09_lone_surrogate_in_a_prompt_is_sent_replaced(ws: Any,
                                                            srv: FakeProviderServer) -> None:
    """The other direction: a prompt holding one (e.g. a variable filled in from text that
    had a ``\\ud800`` escape) is sent with U+FFFD instead of an untyped UnicodeEncodeError."""
    ws.providers.create(id="in-sur", provider_type="ollama", base_url=srv.url_for("ollama"),
                        default_model="demo-small")
    s = ws.chat("a\ud800b", provider="in-sur").wait()
    assert s.finish_reason == "stop"
    assert srv.requests[-1].json["messages"][-1]["content"] == "a\ufffdb"


def test_item09_lone_surrogate_through_the_magic(k: Kernel, srv: FakeProviderServer) -> None:
    srv.script("chat", Scripted(body=openai_body(["a\ud800b"]), content_type="text/event-stream"))
    res = k.run("%%llm -p big\nhi")
    assert res.error is None and "Traceback" not in json.dumps(res.outputs)
    final = displays(res)[-1]["data"]["text/plain"]
    assert "a\ufffdb" in final and "streaming" not in final
    assert k.check("print(_llm.text == 'a\\ufffdb', _llm.finish_reason)").split() == \
        ["True", "stop"]


# -- 11. interpolation never reaches os.environ, a key, or a getter --------------------------

def test_item11_interpolation_refuses_environ_keys_and_getters(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from viagent_jupyter.magics import InterpolationRefused, interpolate

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    ran: list[str] = []

    class Obj:
        plain = "plain data"

        def __init__(self) -> None:
            self.field = "instance data"

        @property
        def prop(self) -> str:
            ran.append("getter")
            return "from a getter"

    ns = {"os": os, "cfg": {"k": KEY, "ok": "fine"}, "o": Obj(), "env": os.environ}
    for template in ("{os.environ[OPENAI_API_KEY]}", "{os.environ}", "{env}", "{env[HOME]}",
                     "{cfg[k]}", "{cfg}", "{o.prop}"):
        with pytest.raises(InterpolationRefused) as info:
            interpolate(template, ns)
        assert template in str(info.value) and KEY not in str(info.value)
        assert "\n" not in str(info.value)
    assert ran == []  # no getter ran
    assert interpolate("{o.field} {o.plain} {cfg[ok]}", ns) == "instance data plain data fine"


def test_item11_the_magic_sends_nothing_refused(k: Kernel, srv: FakeProviderServer) -> None:
    before = len(srv.requests)
    res = k.run("import os\nos.environ['OPENAI_API_KEY'] = " + repr(KEY[:6]) + " + "
                + repr(KEY[6:]) + "\n")
    assert res.error is None
    for cell in ("%%llm -p big\nleak {os.environ[OPENAI_API_KEY]}", "%%llm -p big\n{os.environ}"):
        res = k.run(cell)
        text = json.dumps(res.outputs) + json.dumps(res.error)
        assert "Not sent" in text and KEY not in text
    assert len(srv.requests) == before
    k.check("del os.environ['OPENAI_API_KEY']")


# -- 12. -o refuses names the kernel relies on ------------------------------------------------

@pytest.mark.parametrize("name", ["__builtins__", "__name__", "In", "Out", "get_ipython",
                                  "exit", "quit", "_", "__", "___", "_ih", "_oh", "_dh", "_i3",
                                  "_7", "class", "match", "1x", "a-b"])
def test_item12_output_refuses_reserved_names(name: str) -> None:
    from IPython.core.error import UsageError

    from viagent_jupyter.magics import parse_prompt_args

    with pytest.raises(UsageError) as info:
        parse_prompt_args(["-o", name])
    assert name in str(info.value).splitlines()[0]
    assert parse_prompt_args(["-o", "answer"]).output == "answer"


def test_item12_output_builtins_keeps_the_kernel_working(k: Kernel) -> None:
    res = k.run("%%llm -p big -o __builtins__\nhi")
    assert "UsageError" in res.stderr and "reserved" in res.stderr  # one line, no traceback
    assert k.check("print(len('abc'), type(__builtins__).__name__)").split()[0] == "3"


# -- 13. where the master key lives is said visibly -------------------------------------------

def test_item13_llm_key_and_panel_show_the_master_key_location(k: Kernel) -> None:
    out = k.check("import getpass\ngetpass.getpass = lambda prompt='': 'sk-typed-000000000042'\n"
                  "%llm key big")
    assert "master key is in the key file" in out and "master.key" in out
    panel = k.check("from viagent_jupyter.widgets import ConfigPanel\n_p = ConfigPanel(ws)\n"
                    "print(_p.vault_location)\n_p.close()")
    assert "key file" in panel and "master.key" in panel


def test_item13_env_source_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import os

    monkeypatch.setenv("VIAGENT_VAULT_KEY", base64.b64encode(os.urandom(32)).decode())
    with vj.Workspace(home=home) as ws:
        assert "VIAGENT_VAULT_KEY" in ws.vault.location()
