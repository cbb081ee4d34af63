"""``%%llm`` / ``%llm`` driven through a real IPython InteractiveShell (and a real kernel)
against the local fake provider."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _util import PLANTED_KEY, PLANTED_ODD_KEY
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from test_render import assert_safe_bundle
from traitlets.config import Config

import viagent_jupyter as vj
from viagent_jupyter.magics import (
    LLMCellStopped,
    LLMMagics,
    PromptArgs,
    interpolate,
    load,
    parse_prompt_args,
    split_line_prompt,
    unload,
)
from viagent_jupyter.testing import FakeProviderServer, Scripted

# -- fixtures --------------------------------------------------------------------------------


@dataclass
class Published:
    data: dict[str, Any]
    display_id: str | None
    update: bool
    at: float = field(default_factory=time.monotonic)


class RecordingPublisher(DisplayPublisher):
    """Counts and keeps what the magic publishes (the rendering itself runs for real)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls: list[Published] = []

    def publish(self, data: dict[str, Any], metadata: Any = None, source: Any = None, *,
                transient: dict[str, Any] | None = None, update: bool = False,
                **kwargs: Any) -> None:
        self.calls.append(Published(dict(data), (transient or {}).get("display_id"), update))

    def texts(self) -> list[str]:
        return [c.data["text/plain"] for c in self.calls]


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    old = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=cfg)
    try:
        yield sh
    finally:
        sh.history_manager.end_session()
        InteractiveShell.clear_instance()
        if old is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = old


@pytest.fixture
def srv() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as server:
        yield server


@dataclass
class Env:
    shell: InteractiveShell
    magics: LLMMagics
    pub: RecordingPublisher
    ws: Any
    srv: FakeProviderServer
    capsys: pytest.CaptureFixture[str]

    def run(self, code: str) -> Any:
        return self.shell.run_cell(code)

    def outputs(self) -> str:
        """Everything the user could see: bundles, stdout, stderr."""
        out, err = self.capsys.readouterr()
        self._seen = getattr(self, "_seen", "") + out + err
        return self._seen + json.dumps([c.data for c in self.pub.calls], ensure_ascii=False)

    def chats(self) -> list[Any]:
        return [r for r in self.srv.requests if r.route and r.route.endswith(".chat")]


@contextmanager
def magics_on(shell: InteractiveShell, ws: Any, monkeypatch: pytest.MonkeyPatch,
              forget: tuple[str, ...] = ("_llm",)
              ) -> Iterator[tuple[LLMMagics, RecordingPublisher]]:
    """The magics loaded on ``ws`` with a recording publisher; afterwards unloaded, the
    names in ``forget`` dropped, and every bundle the magic ever published checked safe."""
    pub = RecordingPublisher(shell=shell)
    monkeypatch.setattr(shell, "display_pub", pub)
    magics = load(shell, workspace=ws)
    try:
        yield magics, pub
    finally:
        unload(shell)
        for name in forget:
            shell.user_ns.pop(name, None)
        for call in pub.calls:
            assert_safe_bundle(call.data)


@pytest.fixture
def env(shell: InteractiveShell, ws: Any, srv: FakeProviderServer,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Env]:
    ws.providers.create(id="fake", provider_type="openai_compatible", name="Fake",
                        base_url=srv.url_for("openai_compatible"), default_model="demo-small",
                        max_retries=0)
    ws.providers.select("fake")
    forget = ("_llm", "answer", "x", "cfg", "items", "data", "secret")
    with magics_on(shell, ws, monkeypatch, forget) as (magics, pub):
        yield Env(shell, magics, pub, ws, srv, capsys)


def sse_script(pieces: list[str], *, delay: float = 0.0, usage: tuple[int, int] | None = (5, 7),
               finish: str = "stop") -> Scripted:
    """An OpenAI-style stream of exactly these deltas, one event per chunk."""
    head = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "demo-small"}

    def event(obj: Any) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    events = [event({**head, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                  "content": ""}}]})]
    events += [event({**head, "choices": [{"index": 0, "delta": {"content": p}}]})
               for p in pieces]
    events.append(event({**head, "choices": [{"index": 0, "delta": {},
                                              "finish_reason": finish}]}))
    if usage:
        events.append(event({**head, "choices": [], "usage": {
            "prompt_tokens": usage[0], "completion_tokens": usage[1],
            "total_tokens": sum(usage)}}))
    events.append(b"data: [DONE]\n\n")
    return Scripted(body=b"".join(events), content_type="text/event-stream",
                    chunks=[len(e) for e in events], delay=delay)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- loading ---------------------------------------------------------------------------------


def test_load_ext_registers_and_unload_ext_removes(shell: InteractiveShell) -> None:
    mm = shell.magics_manager
    assert "llm" not in mm.magics["line"]
    shell.run_line_magic("load_ext", "viagent_jupyter")
    try:
        assert "llm" in mm.magics["line"] and "llm" in mm.magics["cell"]
        assert isinstance(mm.registry["LLMMagics"], LLMMagics)
    finally:
        shell.run_line_magic("unload_ext", "viagent_jupyter")
    assert "llm" not in mm.magics["line"] and "llm" not in mm.magics["cell"]
    assert "LLMMagics" not in mm.registry
    assert not any(isinstance(c, LLMMagics) for c in shell.configurables)


def test_loading_is_light(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import json, sys, time
        from traitlets.config import Config
        from IPython.core.interactiveshell import InteractiveShell
        cfg = Config(); cfg.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=cfg)
        before = set(sys.modules)
        t0 = time.perf_counter()
        shell.run_line_magic("load_ext", "viagent_jupyter")
        dt = time.perf_counter() - t0
        print(json.dumps({"dt": dt, "new": sorted(set(sys.modules) - before)}))
    """)
    env = {**os.environ, "IPYTHONDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    heavy = [m for m in report["new"] if m.split(".")[0] in (
        "httpx", "httpcore", "markdown_it", "nh3", "pydantic", "anywidget", "ipywidgets",
        "cryptography", "sqlite3")
        or m in ("viagent_jupyter.chat", "viagent_jupyter._workspace", "viagent_jupyter.store",
                 "viagent_jupyter.schema")]
    assert heavy == []  # the import time itself is measured by bench/, not asserted here


def test_extension_loads_from_ipython_config(tmp_path: Path) -> None:
    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['viagent_jupyter']\n"
        "c.LLMMagics.default_format = 'text'\n"
        "c.HistoryManager.hist_file = ':memory:'\n")
    code = ("m = get_ipython().magics_manager.registry['LLMMagics']; "
            "print('FORMAT', m.default_format)")
    env = {**os.environ, "IPYTHONDIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor",
                          "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "FORMAT text" in res.stdout, res.stdout + res.stderr


# -- parsing ---------------------------------------------------------------------------------


def test_arguments_parse_like_a_shell() -> None:
    args = parse_prompt_args(["-p", "oa", "-m", "gpt-x", "-t", "0.2", "--max-tokens", "64",
                              "-s", "You are terse. Very.", "-f", "json", "-o", "answer",
                              "--chat", "t1", "--no-interpolate", "--no-stream"])
    assert args == PromptArgs(provider="oa", model="gpt-x", temperature=0.2, max_tokens=64,
                              system="You are terse. Very.", format="json", output="answer",
                              chat="t1", interpolate=False, stream=False)
    assert parse_prompt_args(["--chat"]).thread == "default"
    assert parse_prompt_args(["--new"]).thread == "default"
    assert parse_prompt_args([]).thread is None
    assert parse_prompt_args(["--insert"]).format == "code"
    for bad in (["--bogus"], ["-t", "hot"], ["--max-tokens", "0"], ["-f", "yaml"],
                ["-o", "1x"], ["-o", "class"], ["--insert", "-f", "json"], ["extra"]):
        with pytest.raises(UsageError) as info:
            parse_prompt_args(bad)
        assert "%%llm [-p ID]" in str(info.value)


def test_a_one_line_prompt_keeps_its_text() -> None:
    assert split_line_prompt("-p x What's 2+2?") == (["-p", "x"], "What's 2+2?")
    assert split_line_prompt('-s "be terse" -t 0.5 Hi "there"') == (
        ["-s", "be terse", "-t", "0.5"], 'Hi "there"')
    assert split_line_prompt("--chat=t2 -- -5 is negative") == (["--chat=t2"], "-5 is negative")
    assert split_line_prompt("-t -1 x") == (["-t", "-1"], "x")
    assert split_line_prompt("--no-stream") == (["--no-stream"], "")
    assert split_line_prompt("  plain question ") == ([], "plain question")


# -- interpolation ---------------------------------------------------------------------------


class _Obj:
    name = "obj-name"
    _private = "hidden"

    @property
    def broken(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(("template", "expected"), [
    ("Hi {x}!", "Hi 42!"),
    ("{obj.name} / {items[0]} / {items[-1]} / {d[k]} / {d['k']} / {Out[3]}",
     "obj-name / a / c / v / v / three"),
    ("{In[1]}", "x = 42"),
    ('JSON stays: {"a": 1, "b": {"c": [1, 2]}}', 'JSON stays: {"a": 1, "b": {"c": [1, 2]}}'),
    ("code: def f(): return {k: v for k, v in d.items()}",
     "code: def f(): return {k: v for k, v in d.items()}"),
    ("unknown {nope} {nope.attr} {items[9]} {obj.missing}",
     "unknown {nope} {nope.attr} {items[9]} {obj.missing}"),
    ("private {obj._private} {obj.__class__}",
     "private {obj._private} {obj.__class__}"),
    ("specs stay {x:>10} {x!r} {x + 1} {}", "specs stay {x:>10} {x!r} {x + 1} {}"),
    ("escapes {{x}} and {{{x}}}", "escapes {x} and {42}"),
    ("nested JSON end }} stays", "nested JSON end }} stays"),
    ("lone { and } braces", "lone { and } braces"),
])
def test_interpolate(template: str, expected: str) -> None:
    ns = {"x": 42, "obj": _Obj(), "items": ["a", "b", "c"], "d": {"k": "v"},
          "Out": {3: "three"}, "In": ["", "x = 42"]}
    assert interpolate(template, ns) == expected


def test_prompt_interpolation_reaches_the_provider(env: Env) -> None:
    env.run("x = 42\ncfg = {'name': 'prod'}")
    env.run('%%llm\nx={x} name={cfg[name]} json={"a": 1} {{literal}}')
    sent = env.chats()[-1].json["messages"][-1]["content"]
    assert sent == 'x=42 name=prod json={"a": 1} {literal}'
    env.run("%%llm --no-interpolate\nx={x} {{y}}")
    assert env.chats()[-1].json["messages"][-1]["content"] == "x={x} {{y}}"


def test_ipython_does_not_expand_the_line_either(env: Env) -> None:
    env.run("x = 41\ny = 'dollar'")
    assert env.run("%llm What is {x} and {x+1} and $y and {__import__('os').getpid()}?").success
    assert env.chats()[-1].json["messages"][-1]["content"] == (
        "What is 41 and {x+1} and $y and {__import__('os').getpid()}?")
    assert env.run('%%llm -s "{y} $y"\nhi').success
    assert env.chats()[-1].json["messages"][0]["content"] == "{y} $y"


# -- streaming display -----------------------------------------------------------------------


def test_slow_stream_updates_the_display_before_it_ends(env: Env) -> None:
    env.srv.script("chat", Scripted(delay=0.05))  # the demo answer, ~20 words, 0.05 s apart
    res = env.run("%%llm\nPlease stream slowly")
    assert res.success
    calls = env.pub.calls
    ids = {c.display_id for c in calls}
    assert len(ids) == 1 and None not in ids  # one output, updated in place
    assert not calls[0].update and all(c.update for c in calls[1:])
    partial = [c for c in calls[1:-1] if "streaming" in c.data["text/plain"]]
    assert len(partial) >= 2
    final = calls[-1].data["text/plain"]
    answer = env.shell.user_ns["_llm"].text
    assert answer.startswith("You said: Please stream slowly.")
    assert answer.endswith("no real model was called.")
    assert final.startswith(answer) and "streaming" not in final
    assert "Fake (OpenAI-compatible) · demo-small" in final
    assert "tokens" in final
    # updates are coalesced: never faster than update_interval apart (small jitter allowed)
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls[1:-1])]
    assert all(g >= 0.04 for g in gaps), gaps


@pytest.mark.parametrize("delay", [0.0, 0.0002])  # as fast as possible; ~1.5 s in all
def test_fast_stream_of_5000_deltas_is_coalesced(env: Env, delay: float) -> None:
    pieces = [f"w{i} " for i in range(5000)]
    env.srv.script("chat", sse_script(pieces, delay=delay))
    t0 = time.monotonic()
    assert env.run("%%llm\nGo fast").success
    elapsed = time.monotonic() - t0
    assert env.shell.user_ns["_llm"].text == "".join(pieces)
    updates = len(env.pub.calls)
    assert updates <= 50, updates
    assert updates <= 2 + elapsed / env.magics.update_interval + 1
    assert env.pub.calls[-1].data["text/plain"].startswith("w0 w1 w2")
    assert env.magics._last_view is not None and env.magics._last_view.updates == updates


def test_model_output_never_becomes_active_html(env: Env) -> None:
    evil = ["Look: ", "<img src=x onerror=alert(1)>", " and ", "<script>alert(1)</script>",
            "\n\n", "[x](javascript:alert(1))", " ", "<a href='javascript:alert(2)'>y</a>"]
    for fmt in ("markdown", "code", "text", "json"):
        env.srv.script("chat", sse_script(evil))
        assert env.run(f"%%llm -f {fmt}\nbe evil").success
    html = "".join(c.data.get("text/html", "") for c in env.pub.calls)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # visible as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # assert_safe_bundle (in the fixture) parses every bundle with html.parser


def test_no_stream_shows_one_output(env: Env) -> None:
    env.srv.script("chat", Scripted(delay=0.02))
    assert env.run("%%llm --no-stream\nhello").success
    assert len(env.pub.calls) == 1 and not env.pub.calls[0].update
    assert env.pub.calls[0].data["text/plain"].startswith("You said: hello.")


# -- results, formats ------------------------------------------------------------------------


def test_result_object_and_output_variable(env: Env) -> None:
    assert env.run("%%llm -o answer -m demo-large -t 0.3 --max-tokens 50\nhi").success
    ns = env.shell.user_ns
    r = ns["answer"]
    assert r is ns["_llm"]
    assert str(r) == r.text and r.text.startswith("You said: hi.")
    assert (r.provider, r.model, r.finish_reason) == ("fake", "demo-large", "stop")
    assert r.usage.completion_tokens and r.usage.prompt_tokens
    assert r.elapsed is not None and r.elapsed > 0
    body = env.chats()[-1].json
    assert body["model"] == "demo-large" and body["temperature"] == 0.3
    assert 50 in (body.get("max_tokens"), body.get("max_completion_tokens"))
    assert "text/html" in r._repr_mimebundle_()
    # the next run replaces _llm but not answer
    assert env.run("%%llm\nagain").success
    assert ns["_llm"] is not r and ns["answer"] is r


def test_system_prompt_and_one_line_prompt(env: Env) -> None:
    assert env.run('%llm -s "You are terse." -t 0.1 What\'s 2+2?').success
    messages = env.chats()[-1].json["messages"]
    assert messages[0] == {"role": "system", "content": "You are terse."}
    assert messages[-1] == {"role": "user", "content": "What's 2+2?"}


def test_truncated_answer_is_marked(env: Env) -> None:
    assert env.run("%%llm --max-tokens 3\nhello there").success
    r = env.shell.user_ns["_llm"]
    assert r.finish_reason == "length"
    assert "truncated" in env.pub.calls[-1].data["text/plain"]


def test_text_format(env: Env) -> None:
    assert env.run("%%llm -f text\nplain please").success
    assert set(env.pub.calls[-1].data) == {"text/plain"}


def test_code_format_and_insert(env: Env) -> None:
    code = ["Sure:\n", "```python\n", "print('<hi>')\n", "```\n", "Done."]
    env.srv.script("chat", sse_script(code))
    assert env.run("%%llm -f code --insert\nwrite code").success
    final = env.pub.calls[-1].data
    assert final["text/html"].startswith(
        '<pre class="viagent-llm-code"><code>print(&#x27;&lt;hi&gt;&#x27;)</code></pre>')
    assert env.shell.rl_next_input == "print('<hi>')"


def test_json_format(env: Env) -> None:
    env.srv.script("chat", sse_script(["```json\n", '{"a": ', "[1, 2]}", "\n```"]),
                   sse_script(["{'not': json}"]))
    assert env.run("%%llm -f json -o data\nas json").success
    final = env.pub.calls[-1].data
    assert final["application/json"] == {"a": [1, 2]}
    assert "text/html" not in final
    assert env.shell.user_ns["data"].data == {"a": [1, 2]}
    assert env.run("%%llm -f json\nas json").success
    final = env.pub.calls[-1].data
    assert set(final) == {"text/plain"}
    assert "Warning: The answer is not valid JSON" in final["text/plain"]
    assert env.shell.user_ns["_llm"].data is None


def test_configured_defaults(env: Env) -> None:
    env.ws.providers.create(id="other", provider_type="openai_compatible", name="Other",
                            base_url=env.srv.url_for("openai_compatible"),
                            default_model="demo-large")
    env.magics.default_provider = "other"
    env.magics.default_format = "text"
    assert env.run("%%llm\nhi").success
    r = env.shell.user_ns["_llm"]
    assert (r.provider, r.model, r.format) == ("other", "demo-large", "text")
    assert set(env.pub.calls[-1].data) == {"text/plain"}
    assert env.run("%%llm -p fake -f markdown\nhi").success
    assert env.shell.user_ns["_llm"].provider == "fake"


# -- conversations ---------------------------------------------------------------------------


def test_chat_threads_send_their_history(env: Env) -> None:
    env.run("%%llm --chat\nfirst question")
    first_answer = env.shell.user_ns["_llm"].text
    env.run("%%llm --chat\nsecond question")
    assert env.chats()[-1].json["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": "second question"},
    ]
    # another thread is independent; a plain %%llm sends no history
    env.run("%%llm --chat side\nelsewhere")
    assert len(env.chats()[-1].json["messages"]) == 1
    env.run("%%llm\nno memory")
    assert len(env.chats()[-1].json["messages"]) == 1
    assert len(env.magics.threads["default"]) == 4

    env.capsys.readouterr()
    env.run("%llm history default")
    out = env.capsys.readouterr().out
    assert "== default (4 messages)" in out and "[user] second question" in out

    env.run("%%llm --new\nfresh start")
    assert len(env.chats()[-1].json["messages"]) == 1
    assert len(env.magics.threads["default"]) == 2

    env.run("%llm reset default")
    env.run("%%llm --chat\nafter reset")
    assert len(env.chats()[-1].json["messages"]) == 1
    env.run("%llm reset")
    assert env.magics.threads == {}


def test_chat_history_is_capped(env: Env) -> None:
    env.magics.max_history = 4
    for i in range(4):
        env.run(f"%%llm --chat\nq{i}")
    history = env.magics.threads["default"]
    assert len(history) == 4
    assert history[0] == {"role": "user", "content": "q2"}
    assert len(env.chats()[-1].json["messages"]) == 5  # 4 kept + the new question


def test_a_failed_or_cancelled_exchange_is_not_remembered(env: Env) -> None:
    env.srv.script("chat", Scripted(status=500))
    env.run("%%llm --chat\nwill fail")
    assert env.magics.threads.get("default", []) == []


# -- cancel ----------------------------------------------------------------------------------


def test_interrupt_keeps_the_partial_answer_marked_cancelled(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt while the display code runs (the stream is suspended)."""
    from viagent_jupyter._display import StreamDisplay

    real_add = StreamDisplay.add
    seen = []

    def add(self: StreamDisplay, delta: str) -> None:
        seen.append(delta)
        if len(seen) == 5:
            raise KeyboardInterrupt
        real_add(self, delta)

    monkeypatch.setattr(StreamDisplay, "add", add)
    env.srv.script("chat", Scripted(delay=0.05))
    res = env.run("%%llm --chat\nstop me")
    assert res.success  # swallowed: the cell ends normally
    r = env.shell.user_ns["_llm"]
    assert r.finish_reason == "cancelled"
    assert r.text == "".join(seen)
    final = env.pub.calls[-1].data
    assert final["text/plain"].startswith(r.text)
    assert "cancelled" in final["text/plain"] and "cancelled" in final["text/html"]
    rec = env.chats()[-1]
    assert rec.finished.wait(5) and rec.disconnected  # the connection was closed
    assert env.ws.stats.get("fake", "demo-small").requests == 1
    assert "Traceback" not in env.outputs()
    assert env.magics.threads.get("default", []) == []


def test_stop_on_error_ends_the_cell_with_one_line(env: Env) -> None:
    env.magics.stop_on_error = True
    env.srv.script("chat", Scripted(status=500))
    res = env.run("%%llm\nfail")
    assert isinstance(res.error_in_exec, LLMCellStopped)
    out = env.outputs()
    assert "Traceback" not in out and "LLM error:" in out


# -- errors ----------------------------------------------------------------------------------


def _assert_one_line_error(env: Env, res: Any, *needles: str) -> str:
    assert res.success, res.error_in_exec  # shown, not raised
    errors = [c.data for c in env.pub.calls if c.data["text/plain"].startswith("LLM error:")]
    assert errors, env.pub.texts()
    line = errors[-1]["text/plain"]
    assert "\n" not in line
    assert 'border-left' in errors[-1]["text/html"]
    for needle in needles:
        assert needle in line, line
    out = env.outputs()
    assert "Traceback" not in out
    return line


@pytest.mark.parametrize("key", [PLANTED_KEY, PLANTED_ODD_KEY])
def test_401_echoing_the_key_is_one_line_without_the_key(env: Env, key: str) -> None:
    env.ws.providers.create(id="oa", provider_type="openai", name="OpenAI",
                            base_url=env.srv.url_for("openai"), api_key=key,
                            default_model="demo-small", max_retries=0)
    env.srv.script("chat", Scripted(status=401, message=f"Incorrect API key provided: {key}. "
                                                        "Find yours at https://example.com."))
    res = env.run("%%llm -p oa\nhello")
    line = _assert_one_line_error(env, res, "oa")
    assert env.chats()[-1].headers["authorization"] == f"Bearer {key}"  # it was sent...
    env.run("%llm error")
    out = env.outputs()
    assert "401" in out and "AuthenticationError" in out
    r = env.shell.user_ns["_llm"]
    assert r.finish_reason == "error" and r.error is not None
    for surface in (out, line, repr(r), str(r.error), repr(vars(r))):
        assert key not in surface  # ...and is nowhere on screen


def test_connection_refused_is_one_line(env: Env) -> None:
    env.ws.providers.create(id="down", provider_type="openai_compatible", name="Down",
                            base_url=f"http://127.0.0.1:{free_port()}/v1",
                            default_model="m", max_retries=0)
    res = env.run("%%llm -p down\nhello")
    _assert_one_line_error(env, res, "down")
    env.run("%llm error")
    assert "PROVIDER_UNREACHABLE" in env.outputs()


def test_configuration_errors_are_one_line(env: Env) -> None:
    env.ws.providers.create(id="nokey", provider_type="anthropic", name="NoKey",
                            default_model="claude-x")
    line = _assert_one_line_error(env, env.run("%%llm -p nokey\nhello"), "%llm key nokey")
    assert "no API key" in line
    _assert_one_line_error(env, env.run("%%llm -p missing\nhello"), "missing")
    _assert_one_line_error(env, env.run("%%llm -t 7\nhello"), "temperature")
    env.ws.providers.select(None)
    env.ws.providers.create(id="second", provider_type="ollama", name="Second")
    _assert_one_line_error(env, env.run("%%llm\nhello"), "%llm use ID")
    assert env.chats() == []


def test_bad_options_print_the_usage(env: Env) -> None:
    for cell in ("%%llm --bogus\nhi", "%%llm -t hot\nhi", "%%llm -f yaml\nhi"):
        res = env.run(cell)
        assert isinstance(res.error_in_exec, UsageError)
        out = env.outputs()
        assert "UsageError:" in out and "%%llm [-p ID]" in out
        assert "Traceback" not in out
    res = env.run('%%llm -s "unclosed\nhi')
    assert isinstance(res.error_in_exec, UsageError)
    res = env.run("%%llm\n   \n")
    assert isinstance(res.error_in_exec, UsageError)
    assert "needs a prompt" in str(res.error_in_exec)
    assert env.chats() == []


# -- line commands ---------------------------------------------------------------------------


def test_a_prompt_may_start_with_a_command_word_after_dashes(env: Env) -> None:
    assert env.run("%llm -- models are fun").success
    assert env.chats()[-1].json["messages"][-1]["content"] == "models are fun"


def test_providers_and_use(env: Env) -> None:
    env.ws.providers.create(id="oa", provider_type="openai", name="<b>OpenAI</b>",
                            api_key=PLANTED_KEY, default_model="gpt-x")
    env.run("%llm providers")
    table = env.pub.calls[-1].data
    lines = table["text/plain"].splitlines()
    assert lines[0].split() == ["id", "name", "type", "model", "key"]
    assert any(ln.startswith("*") and "fake" in ln for ln in lines)
    assert any(ln.split()[:3] == ["oa", "<b>OpenAI</b>", "OpenAI"] for ln in lines)  # readable
    assert "OPENAI" not in table["text/plain"]
    assert any("oa" in ln and "…" in ln and "(stored)" in ln for ln in lines)
    assert "&lt;b&gt;OpenAI&lt;/b&gt;" in table["text/html"]
    env.run("%llm use oa")
    assert env.ws.providers.selected == "oa"
    assert "Using 'oa' (<b>OpenAI</b>, model gpt-x)." in env.capsys.readouterr().out
    _assert_one_line_error(env, env.run("%llm use nope"), "nope")
    assert PLANTED_KEY not in env.outputs()


def test_models_refresh_shows_added_and_removed(env: Env) -> None:
    from viagent_jupyter.testing import DEMO_MODELS, DemoModel

    env.ws.providers.create(id="or", provider_type="openrouter", name="Router",
                            base_url=env.srv.url_for("openrouter"), api_key="or-test-key-1",
                            max_retries=0)
    env.run("%llm models or")
    text = env.pub.calls[-1].data["text/plain"]
    small = next(ln for ln in text.splitlines() if ln.startswith("demo-small"))
    assert small.split()[:2] == ["demo-small", "32,768"]
    assert "$0.5 / $1.5" in small  # USD per million tokens
    assert "added" not in text
    env.srv.models = (DEMO_MODELS[0], DemoModel("demo-new"))
    env.run("%llm models or --refresh")
    text = env.pub.calls[-1].data["text/plain"]
    assert [ln.split()[0] for ln in text.splitlines()[2:4]] == ["demo-small", "demo-new"]
    assert "added: demo-new; removed: demo-large" in text
    env.run("%llm models")  # the selected provider
    assert "demo-small" in env.pub.calls[-1].data["text/plain"]
    env.srv.script("models", Scripted(status=500))
    assert env.run("%llm models or --refresh").success  # the cached list, with a warning
    text = env.pub.calls[-1].data["text/plain"]
    assert "demo-new" in text and "Warning: Could not refresh" in text and "added" not in text


def test_stats(env: Env) -> None:
    env.run("%%llm\nhello")
    env.run("%llm stats")
    text = env.pub.calls[-1].data["text/plain"]
    row = next(ln for ln in text.splitlines() if ln.startswith("fake"))
    assert row.split()[:3] == ["fake", "demo-small", "1"]
    assert "total: 1 requests" in text


def test_key_is_asked_hidden_and_never_shown(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    env.ws.providers.create(id="oa", provider_type="openai", name="OpenAI")
    prompts: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": prompts.append(prompt)
                        or f"  {PLANTED_KEY}\n")
    env.run("%llm key oa")
    assert prompts and "OpenAI" in prompts[0]
    assert env.ws.providers.resolve_key("oa") == (PLANTED_KEY, "stored")
    out = env.outputs()
    assert "stored encrypted" in out and PLANTED_KEY not in out
    env.run("%llm key oa --session")
    assert env.ws.providers.resolve_key("oa")[1] == "session"
    # a key typed on the line is refused without being echoed (nor stored)
    res = env.run(f"%llm key oa {PLANTED_ODD_KEY}")
    assert isinstance(res.error_in_exec, UsageError)
    out = env.outputs()
    assert PLANTED_ODD_KEY not in out and PLANTED_KEY not in out
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": "")
    env.run("%llm key oa")
    assert "nothing changed" in env.capsys.readouterr().out


def test_panel_and_sidebar(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import viagent_jupyter.widgets as widgets

    made: list[tuple[str, Any]] = []
    monkeypatch.setattr(widgets, "panel", lambda ws: made.append(("panel", ws)) or "PANEL")
    monkeypatch.setattr(widgets, "sidebar", lambda ws: made.append(("sidebar", ws)) or "SIDE")
    res = env.run("%llm panel")
    assert res.result == "PANEL"
    res = env.run("%llm sidebar")
    assert res.result is None
    assert made == [("panel", env.ws), ("sidebar", env.ws)]

    monkeypatch.delattr(vj, "widgets")
    monkeypatch.setitem(sys.modules, "viagent_jupyter.widgets", None)
    env.capsys.readouterr()
    res = env.run("%llm panel")
    assert res.success and res.result is None
    assert "widgets not available" in env.capsys.readouterr().out


# -- a real kernel ---------------------------------------------------------------------------


@contextmanager
def real_kernel(tmp: Path) -> Iterator[tuple[Any, Any]]:
    """A kernel (and its KernelManager, for interrupts) with its own IPython dir."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "IPYTHONDIR": str(tmp / "ipython")}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _run(kc: Any, code: str, timeout: float = 60) -> list[dict[str, Any]]:
    from kernel import Kernel

    res = Kernel(kc).run(code, timeout)
    assert res.error is None, res.error
    return res.outputs


def _displays(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in outputs if o["type"] in ("display_data", "update_display_data")]


@pytest.mark.slow
def test_end_to_end_and_interrupt_in_a_real_kernel(ws: Any, tmp_path: Path) -> None:
    with FakeProviderServer(delay=0) as srv:
        ws.providers.create(id="fake", provider_type="openai_compatible", name="Fake",
                            base_url=srv.url_for("openai_compatible"),
                            default_model="demo-small", max_retries=0)
        ws.providers.select("fake")
        with real_kernel(tmp_path) as (km, kc):
            _run(kc, "%load_ext viagent_jupyter")

            # end to end
            outputs = _run(kc, "%%llm -o answer\nHello from a kernel")
            shown = _displays(outputs)
            assert shown[0]["type"] == "display_data"
            assert all(o["type"] == "update_display_data" for o in shown[1:])
            assert len({o["transient"]["display_id"] for o in shown}) == 1
            for o in shown:
                assert_safe_bundle(o["data"])
            final = shown[-1]["data"]["text/plain"]
            assert final.startswith("You said: Hello from a kernel.")
            assert "tokens" in final
            assert not [o for o in outputs if o["type"] == "error"]

            # interrupt mid-stream
            srv.script("chat", Scripted(delay=1.0))  # ~20 words over ~20 s
            msg_id = kc.execute("%%llm\nA long answer please")
            seen: list[dict[str, Any]] = []
            interrupted_at = None
            deadline = time.monotonic() + 30
            while True:
                msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                seen.append({"type": kind, **content})
                if (interrupted_at is None and kind == "update_display_data"
                        and "You said" in content["data"]["text/plain"]):
                    km.interrupt_kernel()
                    interrupted_at = time.monotonic()
                if kind == "status" and content["execution_state"] == "idle":
                    break
            assert interrupted_at is not None
            # stops at once: well before the end of the answer (~20 s)
            assert time.monotonic() - interrupted_at < 10.0
            reply = kc.get_shell_msg(timeout=10)
            assert reply["content"]["status"] == "ok"  # swallowed: no error, no traceback
            assert not [m for m in seen if m["type"] == "error"]
            last = _displays(seen)[-1]
            assert last["type"] == "update_display_data"
            text = last["data"]["text/plain"]
            assert text.startswith("You said:") and "cancelled" in text
            assert "no real model was called" not in text  # it really stopped early
            assert "cancelled" in last["data"]["text/html"]
            assert_safe_bundle(last["data"])

            rec = srv.requests[-1]
            assert rec.finished.wait(15) and rec.disconnected  # the connection was closed
            out = "".join(o.get("text", "") for o in _run(
                kc, "print(_llm.finish_reason, answer.finish_reason)") if o["type"] == "stream")
            assert out.split() == ["cancelled", "stop"]
        assert ws.stats.get("fake", "demo-small").requests == 2


@pytest.mark.slow
def test_errors_in_a_real_kernel_are_one_line_without_the_key(ws: Any,
                                                             tmp_path: Path) -> None:
    with FakeProviderServer(delay=0) as srv:
        ws.providers.create(id="oa", provider_type="openai", name="OpenAI",
                            base_url=srv.url_for("openai"), api_key=PLANTED_ODD_KEY,
                            default_model="demo-small", max_retries=0)
        ws.providers.create(id="down", provider_type="openai_compatible", name="Down",
                            base_url=f"http://127.0.0.1:{free_port()}/v1",
                            default_model="m", max_retries=0)
        srv.script("chat", Scripted(status=401, message=f"Bad key {PLANTED_ODD_KEY}."))
        with real_kernel(tmp_path) as (_km, kc):
            _run(kc, "%load_ext viagent_jupyter")
            for cell, code in (("%%llm -p oa\nhi", "PROVIDER_AUTH_ERROR"),
                               ("%%llm -p down\nhi", "PROVIDER_UNREACHABLE")):
                outputs = _run(kc, cell)  # asserts: no error message (no traceback)
                shown = _displays(outputs)
                assert len({o["transient"]["display_id"] for o in shown}) == 1
                line = shown[-1]["data"]["text/plain"]  # the "waiting" output became the error
                assert line.startswith("LLM error:") and "\n" not in line
                details = _run(kc, "%llm error")
                everything = json.dumps(outputs + details)
                assert code in everything
                assert PLANTED_ODD_KEY not in everything
