"""A real JupyterHub on loopback for the administrator tests (tests/hub).

``hub`` (module): JupyterHub (``python -m jupyterhub``) with the dummy authenticator, the
simple local process spawner (one home per user under a temp dir), configurable-http-proxy on
127.0.0.1, and an API token for a test service. Each user's server is reached through the
hub's proxy with a token of that user, and code runs in a kernel of that server over its
websocket — exactly what a browser does.

Missing tools (jupyterhub, configurable-http-proxy): the tests fail in CI (``CI=true`` or
``HUB_REQUIRE=1``), else skip with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT_S = 90
REQUIRED = bool(os.environ.get("HUB_REQUIRE")) or os.environ.get("CI", "").lower() == "true"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_tools() -> str | None:
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed (pip install -e '.[test]')"
    if shutil.which("configurable-http-proxy") is None:
        return "configurable-http-proxy is not on PATH (npm install -g configurable-http-proxy)"
    return None


@dataclass
class Hub:
    url: str
    token: str  # the test service's admin token
    homes: Path
    log: Path
    user_tokens: dict[str, str] = field(default_factory=dict)

    # -- the hub's REST API -------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, token: str | None = None,
            timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"token {token or self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def add_user(self, name: str) -> str:
        """Create the user, start their server, return a token of theirs."""
        status, _ = self.api("POST", f"/hub/api/users/{name}")
        assert status in (201, 409), (status, self.tail())
        status, body = self.api("POST", f"/hub/api/users/{name}/tokens",
                                {"note": "viagent hub test", "expires_in": 3600})
        assert status == 201, (status, body)
        token = body["token"]
        self.user_tokens[name] = token
        status, body = self.api("POST", f"/hub/api/users/{name}/server")
        assert status in (201, 202), (status, body, self.tail())
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            status, body = self.api("GET", f"/hub/api/users/{name}")
            server = (body or {}).get("servers", {}).get("")
            if server and server.get("ready"):
                return token
            time.sleep(0.5)
        raise AssertionError(f"the server of {name} did not start: {self.tail()}")

    # -- a user's server, through the proxy -----------------------------------------------------
    def user_api(self, user: str, method: str, path: str, body: Any = None,
                 token: str | None = None) -> tuple[int, Any]:
        return self.api(method, f"/user/{user}{path}", body,
                        token=token or self.user_tokens[user])

    def start_kernel(self, user: str) -> str:
        status, body = self.user_api(user, "POST", "/api/kernels", {"name": "python3"})
        assert status == 201, (status, body)
        return str(body["id"])

    def execute(self, user: str, kernel: str, code: str, timeout: float = 60) -> dict[str, Any]:
        """Run ``code`` in the kernel over its websocket: stdout, stderr, displayed bundles
        (as JSON text) and the error."""
        ws_url = (self.url.replace("http://", "ws://")
                  + f"/user/{user}/api/kernels/{kernel}/channels")
        return asyncio.run(_execute(ws_url, self.user_tokens[user], code, timeout))

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no hub log)"


async def _execute(url: str, token: str, code: str, timeout: float) -> dict[str, Any]:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    conn = await asyncio.wait_for(websocket_connect(HTTPRequest(
        url, headers={"Authorization": f"token {token}"})), timeout)
    msg_id = uuid.uuid4().hex
    await conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    out: dict[str, Any] = {"stdout": "", "stderr": "", "display": "", "error": None}
    deadline = time.monotonic() + timeout
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            if raw is None:
                raise AssertionError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "error":
                out["error"] = content
            elif kind in ("display_data", "update_display_data", "execute_result"):
                out["display"] += json.dumps(content.get("data", {}), ensure_ascii=False)
            elif kind == "status" and content["execution_state"] == "idle":
                return out
    finally:
        conn.close()  # then wait for the close handshake, so the socket is really closed
        with contextlib.suppress(Exception):
            while await asyncio.wait_for(conn.read_message(), 5) is not None:
                pass


HUB_CONFIG = """
import sys
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{dir}/cookie_secret"
c.JupyterHub.pid_file = "{dir}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {args!r}
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.Spawner.environment = {environment!r}
c.JupyterHub.services = [{{"name": "viagent-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "viagent-test",
    "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
    "services": ["viagent-test"],
}}]
"""


@contextlib.contextmanager
def run_hub(tmp: Path, environment: dict[str, str], extra_config: str = "") -> Iterator[Hub]:
    reason = missing_tools()
    if reason:
        if REQUIRED:
            pytest.fail(f"the JupyterHub tests must run here: {reason}")
        pytest.skip(reason)
    hub_dir, homes = tmp / "hub", tmp / "homes"
    hub_dir.mkdir()
    homes.mkdir()
    port, token = _free_port(), secrets.token_hex(24)
    args = ["--allow-root"] if os.geteuid() == 0 else []
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VIAGENT_KEYRING": "0",
           **environment}
    config = HUB_CONFIG.format(
        port=port, hub_port=_free_port(), proxy_api_port=_free_port(),
        chp=shutil.which("configurable-http-proxy"), dir=hub_dir, homes=homes, args=args,
        environment=env, token=token) + textwrap.dedent(extra_config)
    (hub_dir / "jupyterhub_config.py").write_text(config)
    log = hub_dir / "hub.log"
    hub_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VIAGENT"))}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(hub_dir / "jupyterhub_config.py")],
            cwd=hub_dir, stdout=out, stderr=subprocess.STDOUT, env=hub_env,
            start_new_session=True)
    hub = Hub(f"http://127.0.0.1:{port}", token, homes, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"jupyterhub exited ({proc.returncode}): {hub.tail()}")
            with contextlib.suppress(OSError):
                status, _ = hub.api("GET", "/hub/api/", timeout=2)
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"jupyterhub did not answer: {hub.tail()}")
            time.sleep(0.3)
        yield hub
    finally:
        for user in list(hub.user_tokens):
            with contextlib.suppress(Exception):
                hub.api("DELETE", f"/hub/api/users/{user}/server", timeout=20)
        proc.send_signal(signal.SIGTERM)  # the hub stops the proxy and what it spawned
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
