"""The server extension's REST API on a real Jupyter server (a subprocess on 127.0.0.1).

Jupyter Server's own machinery guards every route: no token/cookie → 403; a cookie session
without the XSRF token → 403 on every write (a token header is not a cookie session and needs
no XSRF token, as in Jupyter Server itself). Errors are typed JSON; a planted key never comes
back in any body nor reaches the server log, and is stored encrypted.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from viagent_jupyter import Workspace
from viagent_jupyter.testing import FakeProviderServer

pytestmark = pytest.mark.slow

KEY = "sk-PLANTED-rest-0042-abcdefghijklmnop"
KEY2 = "sk-PLANTED-rest-0043-qrstuvwxyzabcdef"
ROUTES: list[tuple[str, str]] = [
    ("GET", "state"), ("GET", "changes?since=0&timeout=0"), ("GET", "schema"),
    ("GET", "providers"), ("POST", "providers"),
    ("GET", "providers/x"), ("PATCH", "providers/x"), ("DELETE", "providers/x"),
    ("PUT", "providers/x/key"), ("DELETE", "providers/x/key"),
    ("GET", "providers/x/models"), ("POST", "providers/x/models"),
    ("POST", "providers/x/test"),
    ("GET", "selected"), ("PUT", "selected"), ("GET", "usage"), ("GET", "budgets"),
    ("GET", "prices?provider=x"),
]
WRITES = [(m, p) for m, p in ROUTES if m != "GET"]


@dataclass
class Server:
    url: str
    token: str
    home: Path
    log: Path
    bodies: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None, *, auth: bool = True,
             headers: dict[str, str] | None = None,
             opener: urllib.request.OpenerDirector | None = None) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        h = {"Content-Type": "application/json", **(headers or {})}
        if auth:
            h["Authorization"] = f"token {self.token}"
        req = urllib.request.Request(self.url + "viagent/api/" + path, data=data, method=method,
                                     headers=h)
        try:
            with (opener or urllib.request.build_opener()).open(req, timeout=30) as r:
                status, raw = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read().decode()
        self.bodies.append(raw)
        return status, (json.loads(raw) if raw else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _jupyter_server(base: Path, **extra_env: str) -> Iterator[Server]:
    """A real jupyter_server on 127.0.0.1 over a fresh home (``extra_env`` on top)."""
    home, root, jdirs = base / "home", base / "root", base / "jupyter"
    root.mkdir()
    token = secrets.token_hex(16)
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_API_KEY") and k not in ("VIAGENT_VAULT_KEY", "JUPYTER_PATH")}
    env.update(VIAGENT_HOME=str(home), VIAGENT_KEYRING="0", VIAGENT_PRICES_URL="off",
               JUPYTER_CONFIG_DIR=str(jdirs / "config"), JUPYTER_DATA_DIR=str(jdirs / "data"),
               JUPYTER_RUNTIME_DIR=str(jdirs / "runtime"), JUPYTER_PLATFORM_DIRS="1",
               **extra_env)
    log = base / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             "--ServerApp.log_level=DEBUG"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(url + "api/status",
                                             headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter server did not start:\n{log.read_text()}"
                                       ) from None
                time.sleep(0.1)
        yield Server(url=url, token=token, home=home, log=log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _jupyter_server(tmp_path_factory.mktemp("rest")) as s:
        yield s


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0.0) as f:
        yield f


def _cookie_session(server: Server) -> tuple[urllib.request.OpenerDirector, str]:
    """A browser-like session: log in with the token once, then only the cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{server.url}login?next=%2F", timeout=10):
        pass
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    body = urllib.parse.urlencode({"password": server.token, "_xsrf": xsrf}).encode()
    with opener.open(urllib.request.Request(f"{server.url}login?next=%2F", data=body),
                     timeout=10):
        pass
    assert any(c.name.startswith("username-") for c in jar), "login did not set a cookie"
    return opener, xsrf


def test_the_server_extension_does_not_load_the_widgets() -> None:
    """The REST side shares the form helpers (viagent_jupyter/_forms.py), not anywidget."""
    code = ("import sys, viagent_jupyter.server._service, viagent_jupyter.server.handlers\n"
            "s = viagent_jupyter.server._service.Service()\n"
            "assert s.schema()['provider_types']\n"
            "print(sorted(m for m in sys.modules if m.startswith(('anywidget', "
            "'viagent_jupyter.widgets'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_extension_is_loaded_and_answers(server: Server) -> None:
    status, state = server.call("GET", "state")
    assert status == 200
    assert state["providers"] == [] and state["selected"] is None
    assert Path(state["home"]) == server.home
    assert state["usage"]["period"] in ("today", "all")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_an_unauthenticated_request(server: Server, method: str,
                                                        path: str) -> None:
    status, body = server.call(method, path, {} if method != "GET" else None, auth=False)
    assert status == 403
    assert body["code"] == "FORBIDDEN" and "Traceback" not in json.dumps(body)


def test_every_write_refuses_a_cookie_session_without_the_xsrf_token(server: Server) -> None:
    opener, xsrf = _cookie_session(server)
    # the session works: a read, and a write that carries the token
    assert server.call("GET", "state", auth=False, opener=opener)[0] == 200
    status, body = server.call("PUT", "selected", {"provider": None}, auth=False, opener=opener,
                               headers={"X-XSRFToken": xsrf})
    assert (status, body) == (200, {"selected": None})
    for method, path in WRITES:
        status, body = server.call(method, path, {}, auth=False, opener=opener)
        assert status == 403, (method, path, status, body)
        assert "xsrf" in body["message"].lower(), body


def test_validation_errors_come_back_as_typed_json(server: Server) -> None:
    status, body = server.call("POST", "providers", {"fields": {
        "id": "bad", "provider_type": "nope", "settings": {"temperature": 7}}})
    assert status == 400
    assert body["code"] == "VALIDATION_ERROR"
    assert {e["field"] for e in body["errors"]} >= {"provider_type"}
    assert "\n" not in body["message"]

    status, body = server.call("POST", "providers", b"{not json")
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["errors"] == [{"field": "(body)", "message": "is not JSON"}]

    status, body = server.call("POST", "providers", {"fields": {
        "id": "v1", "provider_type": "openai_compatible"}})
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["errors"][0]["field"] == "base_url"

    status, body = server.call("GET", "providers/ghost")
    assert (status, body["code"]) == (404, "PROVIDER_NOT_FOUND")
    status, body = server.call("GET", "budgets")  # a typed 501 until budgets exist
    assert status == 200 or (status, body["code"]) == (501, "NOT_AVAILABLE")


def test_crud_select_and_conflicts(server: Server, fake: FakeProviderServer) -> None:
    status, created = server.call("POST", "providers", {"fields": {
        "id": "crud", "provider_type": "openai_compatible", "name": "CRUD",
        "base_url": fake.url_for("openai_compatible"), "default_model": "demo-small"}})
    assert status == 201 and created["id"] == "crud" and created["version"] == 1
    status, body = server.call("POST", "providers", {"fields": {
        "id": "crud", "provider_type": "ollama"}})
    assert (status, body["code"]) == (409, "PROVIDER_CONFLICT")
    status, updated = server.call("PATCH", "providers/crud", {
        "fields": {"name": "Renamed", "settings": {"temperature": 0.3}}, "expected_version": 1})
    assert status == 200 and updated["name"] == "Renamed" and updated["version"] == 2
    status, body = server.call("PATCH", "providers/crud", {"fields": {"name": "X"},
                                                           "expected_version": 1})
    assert (status, body["code"]) == (409, "PROVIDER_CONFLICT")
    status, body = server.call("PATCH", "providers/crud", {"fields": {
        "settings": {"temperature": 9}}})
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["errors"][0]["field"].startswith("settings")
    assert server.call("PUT", "selected", {"provider": "crud"})[0] == 200
    status, body = server.call("DELETE", "providers/crud")
    assert (status, body["code"]) == (409, "PROVIDER_IN_USE")
    status, models = server.call("POST", "providers/crud/models", {"refresh": True})
    assert status == 200 and models["count"] > 0 and models["refreshed"] is True
    status, result = server.call("POST", "providers/crud/test")
    assert status == 200 and result["latency_ms"] >= 0, result
    status, usage = server.call("GET", "usage")
    assert usage["totals"]["requests"] >= 1
    assert server.call("PUT", "selected", {"provider": None})[0] == 200
    assert server.call("DELETE", "providers/crud") == (200, {"deleted": "crud"})


def test_a_planted_key_is_stored_encrypted_and_never_returned(server: Server) -> None:
    server.bodies.clear()
    status, created = server.call("POST", "providers", {
        "fields": {"id": "secret", "provider_type": "openai"}, "api_key": KEY})
    assert status == 201 and created["has_api_key"] and created["key_source"] == "stored"
    assert created["api_key_hint"] and KEY not in created["api_key_hint"]
    status, body = server.call("PUT", "providers/secret/key", {"api_key": KEY2})
    assert status == 200 and body["has_api_key"]
    # a key refused by validation (a newline) is not echoed either
    status, body = server.call("PUT", "providers/secret/key", {"api_key": KEY + "\nX"})
    assert status == 400 and body["code"] == "VALIDATION_ERROR"
    status, body = server.call("PUT", "providers/ghost/key", {"api_key": KEY})
    assert status == 404
    status, body = server.call("PUT", "providers/secret/key", {})
    assert (status, body["errors"][0]["field"]) == (400, "api_key")
    for path in ("state", "providers", "providers/secret", "changes?since=0&timeout=0",
                 "usage", "selected"):
        server.call("GET", path)
    everything = "\n".join(server.bodies)
    for key in (KEY, KEY2):
        assert key not in everything
        assert key[-12:] not in everything
    assert KEY not in server.log.read_text() and KEY2 not in server.log.read_text()
    raw = b"".join(p.read_bytes() for p in server.home.rglob("*") if p.is_file())
    assert KEY.encode() not in raw and KEY2.encode() not in raw
    with Workspace(home=server.home) as ws:  # the same store: the kernel side decrypts it
        assert ws.providers.resolve_key("secret") == (KEY2, "stored")
    status, body = server.call("DELETE", "providers/secret/key")
    assert status == 200 and not body["has_api_key"]
    assert server.call("DELETE", "providers/secret")[0] == 200


def test_a_write_by_another_process_wakes_the_long_poll(server: Server) -> None:
    """The change reaches a waiting long poll within a poll tick (measured, bound generous)."""
    _, state = server.call("GET", "state")
    since = state["version"]
    import threading

    answer: dict[str, Any] = {}

    def poll() -> None:
        answer["t0"] = time.monotonic()
        answer["r"] = server.call("GET", f"changes?since={since}&timeout=20")
        answer["t1"] = time.monotonic()

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    with Workspace(home=server.home) as ws:
        written = time.monotonic()
        ws.providers.create(id="elsewhere", provider_type="ollama")
    t.join(30)
    status, changed = answer["r"]
    assert status == 200 and changed["version"] != since
    assert any(p["id"] == "elsewhere" for p in changed["providers"])
    latency = answer["t1"] - written
    print(f"long-poll latency after another process's write: {latency * 1000:.0f} ms")
    assert latency < 10
    assert server.call("DELETE", "providers/elsewhere")[0] == 200


def test_usage_is_today_and_budgets_are_listed(server: Server) -> None:
    with Workspace(home=server.home) as ws:
        ws.stats.record("p", "m", None, cost=0.25)
        ws.budgets.set(5, period="day")
    status, usage = server.call("GET", "usage")
    assert status == 200 and usage["period"] == "today"
    assert usage["totals"]["cost"] >= 0.25
    assert usage["budget"]["usd"] == 5 and usage["budget"]["spent"] >= 0.25
    status, body = server.call("GET", "budgets")
    assert status == 200
    assert [(b["period"], b["usd"], b["provider"]) for b in body["budgets"]] == [("day", 5.0, None)]
    with Workspace(home=server.home) as ws:
        ws.budgets.remove("day")


def test_prices_are_exact_decimals_per_million_tokens(server: Server) -> None:
    """The price of a model, or of the provider's default model; null when unknown."""
    with Workspace(home=server.home) as ws:
        ws.providers.create(id="priced", provider_type="openai", default_model="my-mini")
        ws.pricing.set("priced", "my-mini", input_per_mtok="0.15", output_per_mtok="0.60",
                       cached_input_per_mtok="0.075")
    status, body = server.call("GET", "prices?provider=priced")  # the default model
    assert status == 200, body
    assert body["model"] == "my-mini"
    price = body["price"]
    assert (price["input"], price["output"], price["cached_input"]) == ("0.15", "0.6", "0.075")
    assert price["cache_write"] is None and price["source"] == "user"
    assert price["unit"] == "USD per million tokens" and price["as_of"]
    status, body = server.call("GET", "prices?provider=priced&model=no-such-model-xyz")
    assert (status, body["price"]) == (200, None)
    status, body = server.call("GET", "prices?provider=ghost")
    assert (status, body["code"]) == (404, "PROVIDER_NOT_FOUND")
    status, body = server.call("GET", "prices")
    assert (status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["errors"][0]["field"] == "provider"
    with Workspace(home=server.home) as ws:
        ws.pricing.unset("priced", "my-mini")
        ws.providers.delete("priced")


def test_a_managed_provider_is_listed_read_only_and_writes_are_refused(
        tmp_path: Path) -> None:
    """An administrator's viagent.toml on the server's JUPYTER_CONFIG_PATH (as in
    tests/test_admin.py): the provider is listed managed, PATCH/DELETE/key writes answer 403
    PROVIDER_MANAGED naming the file; a user provider the policy forbids is POLICY_REFUSED."""
    etc = tmp_path / "etc-jupyter"
    etc.mkdir()
    admin_file = etc / "viagent.toml"
    admin_file.write_text(textwrap.dedent("""
        [policy]
        allow_user_providers = false

        [providers.campus]
        provider_type = "openai_compatible"
        name = "Campus gateway"
        base_url = "http://127.0.0.1:9/v1"
        default_model = "demo-small"
    """), encoding="utf-8")
    with _jupyter_server(tmp_path, JUPYTER_CONFIG_PATH=str(etc)) as srv:
        status, body = srv.call("GET", "providers")
        assert status == 200
        (campus,) = body["providers"]
        assert campus["id"] == "campus" and campus["managed"] is True
        assert campus["managed_by"] == str(admin_file)
        for method, path, payload in [
                ("PATCH", "providers/campus", {"fields": {"name": "Mine"}}),
                ("DELETE", "providers/campus", None),
                ("PUT", "providers/campus/key", {"api_key": KEY}),
                ("DELETE", "providers/campus/key", None)]:
            status, err = srv.call(method, path, payload)
            assert (status, err["code"]) == (403, "PROVIDER_MANAGED"), (method, path, err)
            assert err["managed_by"] == str(admin_file) and "\n" not in err["message"]
            assert KEY not in json.dumps(err)
        status, err = srv.call("POST", "providers", {"fields": {
            "id": "mine", "provider_type": "ollama"}})
        assert (status, err["code"]) == (403, "POLICY_REFUSED"), err
        assert srv.call("PUT", "selected", {"provider": "campus"})[0] == 200  # Use still works
