"""Browser fixtures: one JupyterLab 4 server per module, Debian's Chromium via Playwright.

Everything is module-scoped: shared by the tests of a module, gone before the rest of the
suite runs (nothing keeps a loop, a server or a kernel busy behind later tests).

* ``lab_server`` (module): JupyterLab on 127.0.0.1, a random token, a temp root dir, isolated
  Jupyter config/data/runtime/settings dirs, widget-state saving on, no phoning home. Its
  kernels get ``VIAGENT_HOME`` (a temp dir), no provider keys from the environment, and no OS
  keyring.
* ``fake_provider`` (module): ``python -m viagent_jupyter.testing`` in a subprocess.
* ``browser`` (module): the system Chromium (never a downloaded one).
* ``lab`` (function): a fresh page with helpers (:class:`Lab`); on failure a screenshot, the
  browser console and the server log go to ``test-artifacts/``.

No browser: the tests fail in CI (``CI=true`` or ``E2E_REQUIRE_BROWSER=1``), else skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lab import ARTIFACTS, PAGE_TIMEOUT_MS, REPORT, FakeProvider, Lab, LabServer

CHROMIUM = os.environ.get("E2E_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # every name but localhost fails at once: a CDN import would break the test, not hang it
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]
SERVER_TIMEOUT_S = 90
EXPECT_TIMEOUT_MS = 20_000

LAB_SETTINGS = {
    # save widget state into the notebook: the key must still never reach the file
    "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
PROVIDER_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                "OPENROUTER_API_KEY", "OLLAMA_HOST", "VIAGENT_VAULT_KEY")


def _must_have_browser() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or \
        os.environ.get("E2E_REQUIRE_BROWSER") == "1"


def _missing(reason: str) -> None:
    if _must_have_browser():
        pytest.fail(f"{reason} (browser tests are required here: CI / E2E_REQUIRE_BROWSER)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Not session-scoped: Playwright's sync API keeps an asyncio loop marked as running on
    # this thread while it lives, which would break every later test that uses asyncio.
    if not os.path.exists(CHROMIUM):
        _missing(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set E2E_CHROMIUM)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install -e '.[test]'")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                              headless=os.environ.get("E2E_HEADED") != "1")
        yield b
        b.close()


# -- processes -----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # kernels left behind share its process group


@pytest.fixture(scope="module")
def fake_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProvider]:
    log = tmp_path_factory.mktemp("fake") / "fake-provider.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "viagent_jupyter.testing", "--port", "0", "--delay", "0.01"],
            stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"fake provider did not start: {line!r} {log.read_text()}")
        yield FakeProvider(line)
    finally:
        _stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    base = tmp_path_factory.mktemp("jlab")
    root, home, dirs = base / "root", base / "viagent-home", base / "jupyter"
    root.mkdir()
    etc = base / "etc-jupyter"
    etc.mkdir()
    for rel, data in LAB_SETTINGS.items():
        f = dirs / "user-settings" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(data))
    token = secrets.token_hex(16)
    log_path = base / "jupyterlab-server.log"
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV and k != "JUPYTER_PATH"}
    env.update(
        VIAGENT_HOME=str(home), VIAGENT_KEYRING="0", VIAGENT_PRICES_URL="off",
        JUPYTER_CONFIG_PATH=str(etc),
        JUPYTER_CONFIG_DIR=str(dirs / "config"), JUPYTER_DATA_DIR=str(dirs / "data"),
        JUPYTER_RUNTIME_DIR=str(dirs / "runtime"), IPYTHONDIR=str(dirs / "ipython"),
        JUPYTER_PLATFORM_DIRS="1", PYDEVD_DISABLE_FILE_VALIDATION="1",
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={_free_port()}",
        "--ServerApp.port_retries=20", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={dirs / 'user-settings'}",
        f"--LabApp.workspaces_dir={dirs / 'workspaces'}",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = _wait_for_lab(proc, dirs / "runtime", log_path, token)
        yield LabServer(url=url, token=token, root=root, home=home, log_path=log_path,
                        etc=etc)
    finally:
        _stop(proc)
        if log_path.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(log_path, ARTIFACTS / "jupyterlab-server.log")


def _wait_for_lab(proc: subprocess.Popen[Any], runtime: Path, log_path: Path, token: str) -> str:
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    info = runtime / f"jpserver-{proc.pid}.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited ({proc.returncode}):\n{log_path.read_text()}")
        try:
            url = str(json.loads(info.read_text())["url"])
            req = urllib.request.Request(url + "api/status",
                                         headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return url
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"jupyter lab not ready in {SERVER_TIMEOUT_S} s:\n{log_path.read_text()}")


# -- the page --------------------------------------------------------------------------------------
@pytest.fixture
def lab(browser: Any, lab_server: LabServer, request: pytest.FixtureRequest) -> Iterator[Lab]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    helper = Lab(page, lab_server)
    try:
        yield helper
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = request.node.name
            try:
                page.screenshot(path=str(ARTIFACTS / f"FAILED-{name}.png"), full_page=True)
            except Exception as exc:  # the page may be gone; keep the rest of the evidence
                print(f"screenshot failed: {exc}")
            (ARTIFACTS / f"FAILED-{name}.console.txt").write_text("\n".join(helper.console))
            shutil.copy(lab_server.log_path, ARTIFACTS / f"FAILED-{name}.server.log")
            print("---- browser console ----", *helper.console, sep="\n")
            print("---- server log ----", lab_server.log_tail(), sep="\n")
        context.close()
        lab_server.stop_kernels()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("browser measurements")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + report.when, report)


