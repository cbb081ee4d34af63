"""Leak audit (issue 8): a planted key enters through every path and is searched for on
every surface a user, a log or a saved notebook could expose.

Entry paths: ``providers.create`` and ``update`` (Python API), the ConfigPanel's ``create`` and
``set_key`` messages (the one message that carries a key), ``$OPENAI_API_KEY``, ``%llm key``
(stored) and ``%llm key --session``. Then everything is exercised — chats (sync, async, the
magic, the panel's Test button), model refreshes, stats, ``%llm providers/stats/error``,
the panel and stats bar on display — including errors whose bodies echo the key, and errors
inside our own code under ``%xmode Verbose`` (which prints frame arguments and locals).

Surfaces searched afterwards: every file under the home, the IPython dir and the test's
temporary dir; a notebook saved with the widget state and every output; every comm message
out (and every message in, except the one that deliberately carries the key); every log
record at DEBUG (message, args, formatted traceback); every display output, stdout and
stderr; every verbose traceback; str/repr/pickle/traceback of every error; reprs and dumps
of configs, streams, results, stats and traits; warnings; the shell's input history; every
request the fake provider received (the key only in its own auth header); ``os.environ``.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import pickle
import traceback
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _hardening import files_under, needles
from _util import PLANTED_KEY, PLANTED_ODD_KEY
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import viagent_jupyter as vj
from viagent_jupyter.magics import load, unload
from viagent_jupyter.registry import StaleModelListWarning
from viagent_jupyter.testing import FakeProviderServer, Scripted

_AUTH_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")


class RecordingPublisher(DisplayPublisher):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls: list[dict[str, Any]] = []

    def publish(self, data: dict[str, Any], metadata: Any = None, source: Any = None, *,
                transient: dict[str, Any] | None = None, update: bool = False,
                **kwargs: Any) -> None:
        self.calls.append({"data": dict(data), "metadata": metadata or {},
                           "transient": transient or {}, "update": update})


class RecordingComm:
    """ipykernel's comm stand-in: records every message both ways."""

    kernel = "recording"

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = uuid.uuid4().hex
        self.opened_with = kwargs
        self.sent: list[Any] = []
        self.received: list[Any] = []
        self.received_buffers: list[list[bytes]] = []
        self._handler: Callable[[dict[str, Any]], None] | None = None

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self._handler = callback

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.sent.append(data)

    def close(self, *args: Any, **kwargs: Any) -> None:
        self._handler = None

    def deliver(self, data: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.received.append(data)
        self.received_buffers.append(list(buffers or []))
        assert self._handler is not None
        self._handler({"content": {"comm_id": self.comm_id, "data": data},
                       "buffers": [memoryview(b) for b in buffers or []]})


@dataclass
class Audit:
    key: str
    surfaces: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, *texts: Any) -> None:
        bucket = self.surfaces.setdefault(kind, [])
        for text in texts:
            bucket.append(text if isinstance(text, str) else repr(text))

    def error(self, exc: BaseException) -> None:
        texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)),
                 repr(vars(exc)), repr(pickle.loads(pickle.dumps(exc)).__dict__)]
        for attr in ("provider_message", "errors", "message"):
            texts.append(repr(getattr(exc, attr, None)))
        self.add("exceptions", *texts)

    def leaks(self) -> dict[str, list[str]]:
        found = {}
        for kind, texts in self.surfaces.items():
            hits = [t for t in texts if self.key in t]
            if hits:
                found[kind] = [h[max(0, h.find(self.key) - 150):h.find(self.key) + 80]
                               for h in hits[:3]]
        return found


@dataclass
class Env:
    ws: Any
    shell: InteractiveShell
    pub: RecordingPublisher
    srv: FakeProviderServer
    comms: list[RecordingComm]
    audit: Audit
    capsys: pytest.CaptureFixture[str]
    widgets: list[Any] = field(default_factory=list)

    def run(self, code: str, kind: str = "outputs") -> Any:
        res = self.shell.run_cell(code, store_history=True)
        out, err = self.capsys.readouterr()
        self.audit.add(kind, out, err)
        return res

    def ask(self, widget: Any, op: str, **payload: Any) -> dict[str, Any]:
        rid = uuid.uuid4().hex
        key = payload.pop("api_key", None)  # as the front end sends it: a binary buffer
        widget.comm.deliver({"method": "custom", "content": {"id": rid, "op": op, **payload}},
                            [key.encode()] if isinstance(key, str) else None)
        replies = [m["content"] for m in widget.comm.sent
                   if m.get("method") == "custom" and m["content"].get("id") == rid]
        assert len(replies) == 1, replies
        reply: dict[str, Any] = replies[0]
        return reply

    def chat_error(self, pid: str, script: Scripted | None = None) -> BaseException:
        if script is not None:
            self.srv.script("chat", script)
        with pytest.raises(vj.ProviderError) as info:
            s = self.ws.chat("hello", provider=pid)
            try:
                s.wait()
            finally:
                self.audit.add("reprs", repr(s), repr(vars(s)))
        self.audit.error(info.value)
        return info.value


@pytest.fixture
def env(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> Iterator[Env]:
    import comm

    key: str = request.param
    comms: list[RecordingComm] = []

    def create_comm(**kwargs: Any) -> RecordingComm:
        c = RecordingComm(**kwargs)
        comms.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", create_comm)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": f"  {key}\n")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=cfg)
    pub = RecordingPublisher(shell=shell)
    monkeypatch.setattr(shell, "display_pub", pub)
    with FakeProviderServer(delay=0, require_key=key) as srv, vj.Workspace(home=home) as ws:
        load(shell, workspace=ws)
        e = Env(ws, shell, pub, srv, comms, Audit(key), capsys)
        try:
            yield e
        finally:
            for w in e.widgets:
                w.close()
            unload(shell)
            shell.history_manager.end_session()
            InteractiveShell.clear_instance()


KEYS = [pytest.param(PLANTED_KEY, id="key-shaped"), pytest.param(PLANTED_ODD_KEY, id="odd")]


@pytest.mark.parametrize("env", KEYS, indirect=True)
def test_a_planted_key_leaks_through_no_surface(env: Env, home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from viagent_jupyter.widgets import ConfigPanel, StatsBar

    caplog.set_level(logging.DEBUG)  # the root logger: ours, httpx, httpcore, asyncio...
    key, ws, srv, audit = env.audit.key, env.ws, env.srv, env.audit
    environ_before = dict(os.environ)
    url = srv.url_for
    common = {"default_model": "demo-small", "max_retries": 0}

    # -- every entry path ----------------------------------------------------------------------
    ws.providers.create(id="p-api", provider_type="openai", base_url=url("openai"),
                        api_key=key, **common)
    ws.providers.create(id="p-upd", provider_type="anthropic", base_url=url("anthropic"),
                        **common)
    ws.providers.update("p-upd", api_key=key)
    panel, bar = ConfigPanel(ws), StatsBar(ws)
    env.widgets += [panel, bar]
    key_messages = 0
    assert env.ask(panel, "create", api_key=key, fields={
        "id": "p-widget", "provider_type": "gemini", "base_url": url("gemini"),
        "name": "Via panel", **common})["ok"]
    key_messages += 1
    ws.providers.create(id="p-wkey", provider_type="openrouter", base_url=url("openrouter"),
                        **common)
    assert env.ask(panel, "set_key", provider="p-wkey", api_key=key)["ok"]
    key_messages += 1
    monkeypatch.setenv("OPENAI_API_KEY", key)
    ws.providers.create(id="p-env", provider_type="openai", base_url=url("openai"), **common)
    ws.providers.create(id="p-magic", provider_type="openai_compatible",
                        base_url=url("openai_compatible"), **common)
    env.run("%llm key p-magic")
    ws.providers.create(id="p-sess", provider_type="anthropic", base_url=url("anthropic"),
                        **common)
    env.run("%llm key p-sess --session")
    sources = {c.id: c.key_source for c in ws.providers.list()}
    assert sources == {"p-api": "stored", "p-upd": "stored", "p-widget": "stored",
                       "p-wkey": "stored", "p-env": "environment", "p-magic": "stored",
                       "p-sess": "session"}
    pids = list(sources)

    # -- everything working ----------------------------------------------------------------------
    for pid in pids:
        s = ws.chat("hello", provider=pid)
        assert s.wait().text.startswith("You said") and s.finish_reason == "stop", pid
        audit.add("reprs", repr(s), repr(vars(s)))

    async def achat() -> str:
        parts = [d async for d in ws.achat("hello", provider="p-upd")]
        await ws.aclose()
        return "".join(parts)

    assert asyncio.run(achat()).startswith("You said")
    assert env.run("%%llm -p p-magic -o answer\nhello").success
    assert env.shell.user_ns["answer"].error is None
    for pid in pids:
        audit.add("reprs", repr(ws.models(pid, refresh=True)))
    env.run("%llm models p-api --refresh")
    assert env.ask(panel, "models", provider="p-widget", refresh=True)["ok"]
    assert env.ask(panel, "test", provider="p-wkey")["ok"]
    assert env.ask(panel, "update", provider="p-api", fields={"name": "Renamed"})["ok"]
    assert env.ask(panel, "settings", provider="p-api", settings={"temperature": 0.5})["ok"]
    assert env.ask(panel, "select", provider="p-api")["ok"]
    env.run("%llm providers")
    env.run("%llm stats")
    env.run("%llm use p-env")
    env.shell.user_ns.update(panel=panel, bar=bar)
    env.run("display(panel, bar)")
    res = env.run("%llm panel")
    assert isinstance(res.result, ConfigPanel)
    env.widgets.append(res.result)
    data, metadata = env.shell.display_formatter.format(res.result)  # the cell's result,
    env.pub.publish(data, metadata)  # as a kernel's displayhook would publish it

    # -- errors whose bodies echo the key ------------------------------------------------------
    echo = f"Incorrect API key provided: {key}. You can find your API key at https://x.test."
    for pid in ("p-api", "p-env", "p-upd", "p-widget"):
        err = env.chat_error(pid, Scripted(status=401, message=echo))
        assert isinstance(err, vj.AuthenticationError)
    env.chat_error("p-api", Scripted(status=500, content_type="text/html",
                                     body=f"<html><title>Upstream {key}</title></html>"))
    env.chat_error("p-api", Scripted(status=429, message=echo, retry_after=120))
    env.chat_error("p-api", Scripted(content_type="text/event-stream", body=(
        'data: {"error": {"message": "bad key ' + key + '", "code": 401}}\n\n').encode()))
    env.chat_error("p-upd", Scripted(content_type="text/event-stream", body=(
        'event: error\ndata: {"type": "error", "error": {"type": "authentication_error", '
        '"message": "key ' + key + '"}}\n\n').encode()))
    srv.script("chat", Scripted(status=401, message=echo))
    env.run("%%llm -p p-magic\nhello")
    env.run("%llm error")
    srv.script("models", Scripted(status=401, message=echo))
    with pytest.warns(StaleModelListWarning) as caught:
        ws.models("p-api", refresh=True)
    audit.add("warnings", *[str(w.message) for w in caught])
    ws.registry.forget("p-upd")
    srv.script("models", Scripted(status=403, message=echo))
    with pytest.raises(vj.AuthenticationError) as info:
        ws.models("p-upd", refresh=True)
    audit.error(info.value)
    srv.script("chat", Scripted(status=401, message=echo))
    assert not env.ask(panel, "test", provider="p-widget")["ok"]
    srv.script("models", Scripted(status=401, message=echo))
    env.ask(panel, "models", provider="p-wkey", refresh=True)
    # the key in the same message as an invalid field, and a key that is itself invalid
    assert not env.ask(panel, "create", api_key=key, fields={
        "id": "Bad Id", "provider_type": "openai", "base_url": f"https://{key}@x.test"})["ok"]
    assert not env.ask(panel, "set_key", provider="p-api", api_key=key + " tail")["ok"]
    key_messages += 2
    for call in (lambda: ws.providers.update("p-api", api_key=key, settings={"top_p": 9}),
                 lambda: ws.providers.create(id="p-api", provider_type="openai", api_key=key),
                 lambda: ws.providers.set_key("p-api", "Bearer " + key),
                 lambda: ws.providers.get(key)):
        with pytest.raises(vj.ViagentError) as err_info:
            call()
        audit.error(err_info.value)

    # -- our own frames under %xmode Verbose (it prints arguments and locals) ---------------------
    env.run("%xmode Verbose")
    env.run("import getpass")
    verbose_cells = [
        ('srv.script("chat", Scripted(status=401, message=echo))',
         'ws.chat("hi", provider="p-api").wait().text'),
        ('srv.script("chat", Scripted(truncate_after=40))',
         'ws.chat("hi", provider="p-env").wait().text'),
        ('srv.script("chat", Scripted(reset=True))',
         'ws.chat("hi", provider="p-upd").wait().text'),
        ('srv.script("models", Scripted(status=401, message=echo)); ws.registry.forget("p-api")',
         'ws.models("p-api", refresh=True)'),
        ("", 'ws.providers.update("p-api", api_key=getpass.getpass(), settings={"top_p": 9})'),
        ("", 'ws.providers.create(id="x", provider_type="openai", api_key=getpass.getpass(), '
             'base_url="ftp://x")'),
        ("", 'ws.providers.set_key("p-api", "Bearer " + getpass.getpass())'),
        ('ws.db._conn.execute("PRAGMA query_only=ON")',
         'ws.providers.update("p-api", api_key=getpass.getpass())'),
        ('ws.db._conn.execute("PRAGMA query_only=OFF")',
         'ws.providers.update("p-api", base_url="http://example.invalid/v1"); '
         'ws.chat("hi", provider="p-api").wait().text'),
        ('srv.script("chat", Scripted(status=401, message=echo))',
         'async for d in ws.achat("hi", provider="p-wkey"): pass'),
    ]
    env.shell.user_ns.update(ws=ws, srv=srv, Scripted=Scripted, echo=echo)
    errors = 0
    for setup, cell in verbose_cells:
        if setup:
            exec(setup, {"ws": ws, "srv": srv, "Scripted": Scripted, "echo": echo})
        res = env.run(cell, kind="verbose tracebacks")
        assert isinstance(res.error_in_exec, vj.ViagentError), (cell, res.error_in_exec)
        errors += 1
    env.shell.user_ns.pop("echo")
    env.run("%xmode Context")
    assert "Traceback" in "".join(audit.surfaces["verbose tracebacks"])

    # -- collect every surface ---------------------------------------------------------------------
    audit.add("reprs", repr(ws), repr(ws.providers), repr(ws.stats.all()),
              repr(env.shell.user_ns.get("_llm")), repr(vars(env.shell.user_ns["_llm"])),
              repr(env.shell.user_ns.get("Out")), repr(env.shell.user_ns.get("answer")))
    for cfg in ws.providers.list():
        audit.add("reprs", repr(cfg), cfg.model_dump_json(), json.dumps(cfg.to_public_dict()))
    audit.add("traits", json.dumps(ws.providers.providers), json.dumps(ws.stats.records),
              json.dumps(ws.stats.totals), repr(ws.providers.trait_values()))
    all_widgets = [w for w in env.widgets if w is not None]
    for w in all_widgets:
        audit.add("widget state", json.dumps(w.get_state(), default=str))
    for c in env.comms:
        audit.add("comm messages out", json.dumps(c.opened_with.get("data"), default=str),
                  *[json.dumps(m, default=str) for m in c.sent])
        for m, bufs in zip(c.received, c.received_buffers, strict=True):
            if any(key.encode() in b for b in bufs):
                continue  # a message that carries a key to the kernel (in a buffer), by design
            audit.add("comm messages in", json.dumps(m, default=str))
    carried = sum(1 for c in env.comms for bufs in c.received_buffers
                  if any(key.encode() in b for b in bufs))
    assert carried == key_messages
    audit.add("outputs", *[json.dumps(c, default=str) for c in env.pub.calls])
    fmt = logging.Formatter("%(levelname)s %(name)s %(message)s")
    for rec in caplog.records:
        audit.add("log records", fmt.format(rec), repr(rec.args), repr(rec.__dict__))
    audit.add("input history", *env.shell.history_manager.input_hist_raw)
    for r in srv.requests:
        audit.add("requests (outside auth headers)", r.path, json.dumps(r.query),
                  r.body.decode("utf-8", "replace"),
                  json.dumps({k: v for k, v in r.headers.items() if k not in _AUTH_HEADERS}))
    assert all(key in json.dumps(r.headers) for r in srv.requests if r.status == 200)

    # a notebook saved with the widget state and every output
    import ipywidgets
    import nbformat

    state = ipywidgets.Widget.get_manager_state(widgets=all_widgets)
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    outputs = [nbformat.v4.new_output("display_data", data=c["data"])
               for c in env.pub.calls if not c["update"]]
    outputs += [nbformat.v4.new_output("stream", name="stdout", text=t)
                for t in audit.surfaces["verbose tracebacks"] if t]
    nb.cells.append(nbformat.v4.new_code_cell("%%llm\nhello", outputs=outputs))
    notebook = tmp_path / "saved.ipynb"
    nbformat.write(nb, notebook)
    assert len(state["state"]) >= len(all_widgets)

    # files: the home, the IPython dir, the notebook, everything the test wrote; while the
    # workspace is open (with its -wal/-shm) and after it closed
    files = files_under(tmp_path)
    ws.close()
    files += files_under(tmp_path)
    names = {p.name for p in files}
    assert {"viagent.sqlite3", "viagent.sqlite3-wal", "master.key", "saved.ipynb"} <= names
    file_hits = [str(p) for p in files
                 if p.exists() and any(n in p.read_bytes() for n in needles(key))]

    env_leaks = [name for name, value in os.environ.items()
                 if key in value and name != "OPENAI_API_KEY"]
    assert {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"} == \
        {k: v for k, v in environ_before.items() if k != "OPENAI_API_KEY"}

    leaks = audit.leaks()
    counts = Counter({kind: len(texts) for kind, texts in audit.surfaces.items()})
    counts["files"] = len(files)
    counts["environment variables"] = len(os.environ)
    counts["notebook widget models"] = len(state["state"])
    print(f"\nleak audit ({key[:5]}…): {sum(counts.values())} surfaces: {dict(counts)}; "
          f"verbose error cells: {errors}")
    assert leaks == {}
    assert file_hits == []
    assert env_leaks == []
    assert counts["log records"] > 50 and counts["comm messages out"] > 20
    assert counts["files"] >= 3 and counts["exceptions"] > 50


def test_verbose_tracebacks_of_our_frames_show_a_masked_key() -> None:
    """The mechanism: a key that enters our functions is rebound to a masked Secret."""
    from viagent_jupyter.errors import Secret, conceal

    s = conceal(PLANTED_ODD_KEY)
    assert isinstance(s, Secret) and s.reveal() == PLANTED_ODD_KEY
    for text in (repr(s), str(s), f"{s}", repr([s]), repr({"k": s})):
        assert PLANTED_ODD_KEY not in text
    assert conceal(None) is None and conceal(s) is s and conceal(3) == 3
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s == Secret(PLANTED_ODD_KEY) and len({s, Secret(PLANTED_ODD_KEY)}) == 1
