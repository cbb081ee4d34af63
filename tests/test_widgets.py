"""The widgets without a browser: a recording comm stands in for the front end.

Every front-end action is a custom message fed to the widget's comm (exactly what ipywidgets
does when the browser sends one); every message the widget sends is recorded. After each step
no synced trait and no sent message may contain a planted key.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import re
import subprocess
import sys
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import viagent_jupyter as vj
from viagent_jupyter import Workspace
from viagent_jupyter.widgets import ConfigPanel, StatsBar
from viagent_jupyter.widgets._base import asset

KEY = "sk-PLANTED-widget-0001"
ODD_KEY = "plain-Secret-4471-WIDGET-odd"  # not key-shaped: only exact scrubbing catches it
KEYS = (KEY, ODD_KEY)
JS_SRC = Path(__file__).resolve().parent.parent / "js" / "src"


class RecordingComm:
    """Stands in for ipykernel's comm: records what the widget sends; ``deliver`` plays the
    front end sending a message."""

    kernel = "recording"

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = uuid.uuid4().hex
        self.opened_with = kwargs
        self.sent: list[Any] = []
        self.threads: set[int] = set()
        self.closed = False
        self._handler: Callable[[dict[str, Any]], None] | None = None

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self._handler = callback

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.sent.append(data)
        self.threads.add(threading.get_ident())

    def close(self, *args: Any, **kwargs: Any) -> None:
        self.closed = True
        self._handler = None  # as the kernel's comm manager forgets a closed comm

    def deliver(self, data: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        assert self._handler is not None
        self._handler({"content": {"comm_id": self.comm_id, "data": data},
                       "buffers": [memoryview(b) for b in buffers or []]})

    def replies(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.sent
                if m.get("method") == "custom" and m["content"].get("type") == "reply"]

    def updates(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.sent if m.get("method") == "update"]


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> list[RecordingComm]:
    import comm

    made: list[RecordingComm] = []

    def create_comm(**kwargs: Any) -> RecordingComm:
        c = RecordingComm(**kwargs)
        made.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", create_comm)
    return made


@pytest.fixture
def widgets(comms: list[RecordingComm], ws: Workspace) -> Iterator[list[Any]]:
    """Every widget a test makes; all closed afterwards, and checked for the planted keys."""
    made: list[Any] = []
    yield made
    assert_no_key(made, comms)
    for w in made:
        w.close()


_ids = itertools.count(1)


def ask(widget: Any, op: str, **payload: Any) -> dict[str, Any]:
    """Send a request as the front end would; return the widget's reply to it."""
    rid = f"t-{next(_ids)}"
    # as the front end does: a key travels in the binary buffer, never in the JSON
    key = payload.pop("api_key", None)
    buffers = [key.encode()] if isinstance(key, str) else None
    widget.comm.deliver({"method": "custom", "content": {"id": rid, "op": op, **payload}},
                        buffers)
    found = [r for r in widget.comm.replies() if r["id"] == rid]
    assert len(found) == 1, f"expected one reply to {op}, got {found}"
    assert_no_key_anywhere()  # after every step
    return found[0]


def assert_no_key_anywhere() -> None:
    """No live widget's state and no message it ever sent carries a planted key."""
    from ipywidgets.widgets.widget import _instances

    live = list(_instances.values())
    assert_no_key(live, [w.comm for w in live if isinstance(w.comm, RecordingComm)])


def assert_no_key(widgets: list[Any], comms: list[RecordingComm]) -> None:
    for w in widgets:
        state = json.dumps(w.get_state(), default=str)
        for key in KEYS:
            assert key not in state, f"{type(w).__name__} state carries the key"
    for c in comms:
        text = json.dumps([c.opened_with.get("data"), c.sent], default=str)
        for key in KEYS:
            assert key not in text, "a message to the front end carries the key"


def fake_fields(url: str, **extra: Any) -> dict[str, Any]:
    return {"id": "fake", "provider_type": "openai_compatible", "name": "Fake", "base_url": url,
            "default_model": "demo-small", **extra}


def test_the_leak_check_would_see_a_key(widgets: list[Any], ws: Workspace) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    panel.last_error = f"oops {ODD_KEY}"  # what a leak would look like
    with pytest.raises(AssertionError, match="carries the key"):
        assert_no_key_anywhere()
    panel.last_error = ""
    panel.comm.sent.clear()
    assert_no_key_anywhere()


# -- import cost ---------------------------------------------------------------------------------
def test_importing_the_package_does_not_import_anywidget() -> None:
    code = ("import sys, viagent_jupyter as vj\n"
            "assert 'anywidget' not in sys.modules and 'ipywidgets' not in sys.modules\n"
            "assert callable(vj.panel) and callable(vj.stats_bar) and callable(vj.sidebar)\n"
            "assert 'anywidget' in sys.modules\n"
            "assert 'sidecar' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_public_functions_make_views_of_the_given_workspace(widgets: list[Any],
                                                             ws: Workspace) -> None:
    p, b = vj.panel(ws), vj.stats_bar(ws)
    widgets += [p, b]
    assert isinstance(p, ConfigPanel) and isinstance(b, StatsBar)
    assert p.workspace is ws and b.workspace is ws


# -- one edit, every view --------------------------------------------------------------------------
def test_an_edit_in_panel_a_reaches_panel_b_and_the_stats_bar(widgets: list[Any],
                                                              ws: Workspace) -> None:
    a, b, bar = ConfigPanel(ws), ConfigPanel(ws), StatsBar(ws)
    widgets += [a, b, bar]

    reply = ask(a, "create", fields={"id": "oa", "provider_type": "openai", "name": "Work",
                                     "default_model": "gpt-4o-mini"}, api_key=KEY)
    assert reply == {"type": "reply", "id": reply["id"], "ok": True,
                     "result": {"provider": "oa", "version": 1}}
    assert [p["id"] for p in b.providers] == ["oa"]
    assert b.providers[0]["key_source"] == "stored"
    assert b.providers[0]["api_key_hint"] == "sk-…0001"
    assert b.comm.updates()[-1]["providers"][0]["name"] == "Work"  # b's browser was told
    assert_no_key(widgets, [a.comm, b.comm, bar.comm])

    assert ask(a, "select", provider="oa")["ok"]
    assert b.selected == "oa"
    assert bar.active == {"id": "oa", "label": "Work (OpenAI)", "model": "gpt-4o-mini"}

    assert ask(a, "update", provider="oa", fields={"name": "Renamed"}, expected_version=1)["ok"]
    assert b.providers[0]["name"] == "Renamed" and b.providers[0]["version"] == 2
    assert bar.active["label"] == "Renamed (OpenAI)"
    assert bar.comm.updates()[-1] == {"active": bar.active}
    assert ws.providers.get("oa").name == "Renamed"
    assert_no_key(widgets, [a.comm, b.comm, bar.comm])


def test_python_api_edits_reach_every_widget(widgets: list[Any], ws: Workspace) -> None:
    panel, bar = ConfigPanel(ws), StatsBar(ws)
    widgets += [panel, bar]
    ws.providers.create(id="x", provider_type="ollama", name="Local")
    ws.providers.select("x")
    assert [p["label"] for p in panel.providers] == ["OLLAMA - Local"]
    assert panel.selected == "x" and bar.active["id"] == "x"
    ws.providers.update("x", name="<img src=x onerror=alert(1)>")
    assert panel.providers[0]["name"] == "<img src=x onerror=alert(1)>"  # inert data, as is
    ws.stats.record("x", "llama3", None)
    assert bar.totals["requests"] == 1 and bar.records[0]["model"] == "llama3"
    assert bar.comm.updates()[-1]["totals"]["requests"] == 1


def test_another_processs_change_reaches_widgets_on_refresh(widgets: list[Any], ws: Workspace,
                                                            home: Path) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    with Workspace(home=home) as other:  # its own connection, as another kernel would have
        other.providers.create(id="elsewhere", provider_type="ollama")
    assert panel.providers == []
    ws.poll()  # what the kernel's auto-refresh does every 0.25 s
    assert [p["id"] for p in panel.providers] == ["elsewhere"]


# -- the store's rules, not a copy ---------------------------------------------------------------
def test_a_failed_validation_returns_field_errors_and_changes_nothing(widgets: list[Any],
                                                                      ws: Workspace) -> None:
    a, b = ConfigPanel(ws), ConfigPanel(ws)
    widgets += [a, b]
    reply = ask(a, "create", fields={"id": "Bad Id", "provider_type": "openai"}, api_key=KEY)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in reply["errors"]] == ["id"]
    assert ws.providers.providers == () and b.providers == []
    assert ws.vault.hints() == {}  # the key of a refused create is not stored

    ask(a, "create", fields={"id": "oa", "provider_type": "openai"})
    sent_to_b = len(b.comm.sent)
    for fields, field in [({"base_url": "ftp://x"}, "base_url"),
                          ({"timeout": -1}, "timeout"),
                          ({"headers": "no colon here"}, "headers"),
                          ({"headers": "Authorization: Bearer x"}, "headers"),
                          ({"version": 9}, "version"),
                          ({"nonsense": 1}, "nonsense")]:
        reply = ask(a, "update", provider="oa", fields=fields, api_key=ODD_KEY)
        assert reply["ok"] is False, fields
        assert reply["errors"][0]["field"] == field, reply
    reply = ask(a, "settings", provider="oa", settings={"temperature": 5})
    assert reply["errors"] == [{"field": "settings.temperature",
                                "message": "Input should be less than or equal to 2"}]
    reply = ask(a, "update", provider="oa", fields={}, api_key="has a space")
    assert reply["errors"][0]["field"] == "api_key"
    assert "has a space" not in json.dumps(reply)
    assert ws.providers.get("oa").version == 1
    assert not ws.providers.get("oa").has_api_key
    assert len(b.comm.sent) == sent_to_b  # nothing changed, so nothing was pushed


def test_the_key_is_never_synced_nor_echoed(widgets: list[Any], ws: Workspace) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    # a validation error in the same message as the key: the reply names the field only
    reply = ask(panel, "create", fields={"id": "oa", "provider_type": "openai",
                                         "base_url": f"https://x/{ODD_KEY}#f"}, api_key=ODD_KEY)
    assert reply["ok"] is False
    assert ask(panel, "create", fields={"id": "oa", "provider_type": "openai"},
               api_key=ODD_KEY)["ok"]
    assert ws.providers.resolve_key("oa") == (ODD_KEY, "stored")
    assert ask(panel, "set_key", provider="oa", api_key=KEY, persist_key=False)["ok"]
    assert panel.providers[0]["key_source"] == "session"
    assert ask(panel, "update", provider="oa", fields={}, remove_key=True)["ok"]
    assert panel.providers[0]["key_source"] == "none"
    reply = ask(panel, "create", fields={"id": "oa2", "provider_type": "openai",
                                         "api_key": KEY})  # smuggled into the fields
    assert reply["errors"] == [{"field": "api_key", "message": "cannot be sent as a config field"}]
    # keys the process has seen are scrubbed from anything a reply could quote
    assert ask(panel, "select", provider=KEY)["error"]["code"] == "PROVIDER_NOT_FOUND"


def test_front_end_state_is_ignored(widgets: list[Any], ws: Workspace) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    panel.comm.deliver({"method": "update", "state": {
        "providers": [{"id": "injected", "provider_type": "openai"}], "selected": "injected"}})
    assert panel.providers == [] and panel.selected is None
    assert ws.providers.providers == ()


def test_unknown_and_malformed_requests(widgets: list[Any], ws: Workspace) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    reply = ask(panel, "explode")
    assert reply["ok"] is False and "Unknown request" in reply["error"]["message"]
    before = len(panel.comm.sent)
    panel.comm.deliver({"method": "custom", "content": "not a request"})
    panel.comm.deliver({"method": "custom", "content": {"id": 1}})
    assert len(panel.comm.sent) == before
    assert ask(panel, "update", provider="nope", fields={})["error"]["code"] == \
        "PROVIDER_NOT_FOUND"
    reply = ask(panel, "create", fields=["not", "a", "dict"])
    assert reply["errors"][0]["field"] == "(config)"


# -- delete, conflicts, settings -------------------------------------------------------------------
def test_deleting_the_selected_provider_returns_the_in_use_error(widgets: list[Any],
                                                                  ws: Workspace) -> None:
    a, b = ConfigPanel(ws), ConfigPanel(ws)
    widgets += [a, b]
    ask(a, "create", fields={"id": "one", "provider_type": "ollama"})
    ask(a, "create", fields={"id": "two", "provider_type": "ollama"})
    ask(a, "select", provider="one")
    reply = ask(a, "delete", provider="one")
    assert reply["ok"] is False
    assert reply["error"]["code"] == "PROVIDER_IN_USE"
    assert "select another one first" in reply["error"]["message"]
    assert [p["id"] for p in b.providers] == ["one", "two"]
    assert ask(a, "delete", provider="two")["ok"]
    assert [p["id"] for p in b.providers] == ["one"]
    assert ask(a, "select", provider=None)["result"] == {"selected": None}
    assert ask(a, "delete", provider="one")["ok"]
    assert b.providers == []


def test_a_stale_edit_gets_the_conflict_error(widgets: list[Any], ws: Workspace) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    ask(panel, "create", fields={"id": "oa", "provider_type": "openai", "name": "Mine"})
    ws.providers.update("oa", name="Theirs")  # e.g. another kernel, while the form was open
    reply = ask(panel, "update", provider="oa", fields={"name": "Late"}, expected_version=1)
    assert reply["error"]["code"] == "PROVIDER_CONFLICT"
    assert "changed elsewhere" in reply["error"]["message"]
    assert ws.providers.get("oa").name == "Theirs"
    assert ask(panel, "update", provider="oa", fields={"name": "Late"},
               expected_version=2)["ok"]


def test_settings_saved_as_you_drag_land_the_last_value(widgets: list[Any],
                                                        ws: Workspace) -> None:
    a, b = ConfigPanel(ws), ConfigPanel(ws)
    widgets += [a, b]
    ask(a, "create", fields={"id": "oa", "provider_type": "openai"})
    # what the front end's debouncer sends while a slider is dragged (merged batches) ...
    drag = [round(0.05 * i, 2) for i in range(1, 31)]
    for i, t in enumerate(drag):
        batch: dict[str, Any] = {"temperature": t}
        if i % 7 == 0:
            batch["top_p"] = round(1 - i / 100, 2)
        reply = ask(a, "settings", provider="oa", settings=batch)
        assert reply["ok"] and reply["result"]["settings"]["temperature"] == t
    # ... then a number typed and one setting reset
    ask(a, "settings", provider="oa", settings={"max_tokens": 512, "top_p": None})
    settings = ws.providers.get("oa").settings
    assert settings.temperature == drag[-1] == 1.5
    assert settings.max_tokens == 512 and settings.top_p is None
    assert b.providers[0]["settings"]["temperature"] == 1.5
    assert b.providers[0]["version"] == 1 + len(drag) + 1


# -- models and test (the slow requests run off the kernel's thread) -------------------------------
@pytest.fixture
def fake_server() -> Iterator[Any]:
    from viagent_jupyter.testing import FakeProviderServer

    with FakeProviderServer(delay=0) as srv:
        yield srv


def test_model_picker_lists_refreshes_and_reports_the_diff(widgets: list[Any], ws: Workspace,
                                                           fake_server: Any) -> None:
    from viagent_jupyter.testing import DEMO_MODELS

    panel = ConfigPanel(ws)
    widgets.append(panel)
    ask(panel, "create", fields=fake_fields(fake_server.url_for("openai_compatible")))
    reply = ask(panel, "models", provider="fake", refresh=False)
    assert reply["ok"], reply
    ids = [m["id"] for m in panel.models]
    assert ids == [m.id for m in DEMO_MODELS]
    assert panel.models_provider == "fake" and panel.busy == []
    fake_server.models = (*DEMO_MODELS[1:], type(DEMO_MODELS[0])(id="demo-new"))
    reply = ask(panel, "models", provider="fake", refresh=True)
    assert reply["result"]["added"] == ["demo-new"]
    assert reply["result"]["removed"] == [DEMO_MODELS[0].id]
    assert panel.models_status["refreshed"] is True
    assert panel.models_status["added"] == ["demo-new"]
    assert "demo-new" in [m["id"] for m in panel.models]
    # the provider goes away: a refresh falls back to the cached list and says so
    fake_server.stop()
    reply = ask(panel, "models", provider="fake", refresh=True)
    assert reply["ok"] and reply["result"]["stale"] is True
    assert "Could not refresh" in panel.models_status["error"]
    assert panel.last_error == panel.models_status["error"]


def test_model_list_error_without_cache(widgets: list[Any], ws: Workspace) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    ask(panel, "create", fields=fake_fields("http://127.0.0.1:9/v1"))
    reply = ask(panel, "models", provider="fake", refresh=True)
    assert reply["error"]["code"] == "PROVIDER_UNREACHABLE"
    assert panel.models_status["error"] == reply["error"]["message"]
    assert panel.busy == []


def test_the_test_button_reports_latency_and_the_stats_bar_counts_it(
        widgets: list[Any], ws: Workspace, fake_server: Any) -> None:
    panel, bar = ConfigPanel(ws), StatsBar(ws)
    widgets += [panel, bar]
    ask(panel, "create", fields=fake_fields(fake_server.url_for("openai_compatible")),
        api_key=ODD_KEY)
    reply = ask(panel, "test", provider="fake")
    assert reply["ok"], reply
    assert isinstance(reply["result"]["latency_ms"], int) and reply["result"]["latency_ms"] >= 0
    assert reply["result"]["text"]
    assert fake_server.requests[-1].json["max_tokens"] == 8
    assert bar.totals["requests"] == 1
    assert bar.records[0]["provider"] == "fake" and bar.records[0]["model"] == "demo-small"
    assert len(ws.history) == 0  # a connection test is not recorded in the history
    assert any("totals" in u for u in bar.comm.updates())


def test_the_test_button_shows_the_providers_error(widgets: list[Any], ws: Workspace) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    ask(panel, "create", fields=fake_fields("http://127.0.0.1:9/v1"))
    reply = ask(panel, "test", provider="fake")
    assert reply["error"]["code"] == "PROVIDER_UNREACHABLE"
    assert "fake" in reply["error"]["message"]
    assert ask(panel, "test", provider="missing")["error"]["code"] == "PROVIDER_NOT_FOUND"


def test_slow_requests_leave_the_event_loop_free(widgets: list[Any], ws: Workspace,
                                                 fake_server: Any) -> None:
    """Inside a kernel (a running loop) the test request runs in a thread and answers later."""
    panel = ConfigPanel(ws)
    widgets.append(panel)
    ask(panel, "create", fields=fake_fields(fake_server.url_for("openai_compatible")))
    fake_server.delay = 0.05

    async def scenario() -> tuple[list[str], int, float]:
        panel.comm.deliver({"method": "custom",
                            "content": {"id": "slow", "op": "test", "provider": "fake"}})
        busy_right_after = list(panel.busy)
        replies_right_after = len([r for r in panel.comm.replies() if r["id"] == "slow"])
        ticks = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not any(r["id"] == "slow" for r in panel.comm.replies()):
            await asyncio.sleep(0.01)
            ticks += 1
            assert loop.time() - started < 30
        return busy_right_after, replies_right_after, ticks

    busy, replies, ticks = asyncio.run(scenario())
    assert busy == ["test:fake"] and replies == 0
    assert ticks >= 2  # the loop kept running while the request was out
    assert next(r for r in panel.comm.replies() if r["id"] == "slow")["ok"]
    assert panel.busy == []


def test_changes_made_on_other_threads_reach_the_front_end_from_the_kernels_thread(
        widgets: list[Any], ws: Workspace) -> None:
    async def scenario() -> StatsBar:
        bar = StatsBar(ws)  # made on the kernel's loop, as in a cell
        widgets.append(bar)
        worker = threading.Thread(target=ws.stats.record, args=("p", "m", None))
        worker.start()
        worker.join()
        assert bar.totals.get("requests", 0) == 0  # not yet: queued for the loop
        for _ in range(100):
            await asyncio.sleep(0.01)
            if bar.totals.get("requests") == 1:
                break
        return bar

    bar = asyncio.run(scenario())
    assert bar.totals["requests"] == 1
    assert bar.comm.threads == {threading.get_ident()}


# -- lifecycle -------------------------------------------------------------------------------------
def _observer_count(obj: Any) -> int:
    return sum(len(handlers) for by_type in obj._trait_notifiers.values()
               for handlers in by_type.values())


def test_closed_widgets_stop_observing_and_can_be_collected(comms: list[RecordingComm],
                                                            ws: Workspace) -> None:
    stats = ws.stats
    base_store, base_stats = _observer_count(ws.providers), _observer_count(stats)
    panel, bar = ConfigPanel(ws), StatsBar(ws)
    assert _observer_count(ws.providers) > base_store
    assert _observer_count(stats) > base_stats
    refs = [weakref.ref(panel), weakref.ref(bar)]
    panel.close()
    bar.close()
    assert _observer_count(ws.providers) == base_store
    assert _observer_count(stats) == base_stats
    sent = [len(c.sent) for c in comms]
    ws.providers.create(id="after", provider_type="ollama")
    ws.stats.record("after", "m", None)
    assert [len(c.sent) for c in comms] == sent  # a closed widget says nothing
    del panel, bar
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_sidebar_holds_a_stats_bar_and_a_panel_and_closes_them(comms: list[RecordingComm],
                                                               ws: Workspace) -> None:
    pytest.importorskip("sidecar")
    base = _observer_count(ws.providers)
    side = vj.sidebar(ws)
    try:
        assert side.anchor == "right" and side.title == "LLM"
        shown = side.outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        assert shown == side.box.model_id
        assert side.box.children == (side.stats_bar, side.panel)
        assert side.panel.workspace is ws and side.stats_bar.workspace is ws
        again = vj.sidebar(ws)  # one per kernel: the first one is replaced
        assert side.comm is None
        side = again
    finally:
        side.close()
    assert _observer_count(ws.providers) == base


# -- the front end ---------------------------------------------------------------------------------
def test_bundle_is_inlined_and_a_missing_one_explains_how_to_build() -> None:
    from viagent_jupyter.widgets._base import STATIC

    if (STATIC / "stats_bar.js").is_file():
        assert asset("stats_bar.js") == (STATIC / "stats_bar.js").read_text()
    module = asset("does-not-exist.js")
    assert isinstance(module, str) and "npm --prefix js ci" in module and "\n" in module
    assert asset("does-not-exist.css") == "\n"


@pytest.mark.parametrize("widget, entry", [(ConfigPanel, "config_panel.js"),
                                           (StatsBar, "stats_bar.js")])
def test_python_and_js_trait_names_are_identical(widget: type, entry: str) -> None:
    """Each entry declares ``TRAITS``; the JS tests check it reads nothing else."""
    synced = {name for name in widget.class_trait_names(sync=True) if not name.startswith("_")}
    synced -= {"layout", "tabbable", "tooltip"}  # ipywidgets' own
    found = re.search(r"export const TRAITS = \[([^\]]*)\]", (JS_SRC / entry).read_text())
    assert found, f"{entry} declares no TRAITS"
    assert set(re.findall(r'"(\w+)"', found.group(1))) == synced
