"""The offline demo: a working `demo` provider in a workspace and scratch directory of its
own; the user's workspace and the tracked notebooks are never touched."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import viagent_jupyter as vj
from viagent_jupyter.demo import DEMO_NAME, ensure_demo, lab_command, make_scratch, register_demo
from viagent_jupyter.testing import FakeProviderServer

ROOT = Path(__file__).resolve().parent.parent


def test_demo_command_registers_a_working_provider_in_its_own_workspace(home: Path) -> None:
    """The user's workspace (``VIAGENT_HOME``) is never touched: the demo works in a scratch
    directory of its own, removed when it stops."""
    with vj.Workspace(home=home) as mine:
        mine.providers.create(id="mine", provider_type="ollama")
        mine.providers.select("mine")
        before = mine.providers.get("mine").version
    proc = subprocess.Popen(
        [sys.executable, "-m", "viagent_jupyter.demo", "--no-lab", "--provider-port", "0",
         "--delay", "0"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "VIAGENT_HOME": str(home)},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "demo" in first and "127.0.0.1" in first and DEMO_NAME in first
        demo_home = Path(proc.stdout.readline().removeprefix("workspace:").strip())
        scratch = Path(proc.stdout.readline().split(":", 1)[1].split(" (")[0].strip())
        assert demo_home != home and demo_home.is_relative_to(scratch)
        assert sorted(p.name for p in (scratch / "notebooks").glob("*.ipynb")) == \
            sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
        with vj.Workspace(home=demo_home) as ws:
            cfg = ws.providers.get("demo")
            assert ws.providers.selected == "demo"
            assert cfg.label == "OPENAI_COMPATIBLE - Local demo (offline)"
            s = ws.chat("Is this offline?")
            assert "offline" in s.wait().text and s.finish_reason == "stop"
            assert s.usage.completion_tokens
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert not scratch.exists()  # the temporary scratch directory went with the demo
    with vj.Workspace(home=home) as mine:
        assert [p.id for p in mine.providers.list()] == ["mine"]
        assert mine.providers.selected == "mine"
        assert mine.providers.get("mine").version == before


def test_lab_serves_a_scratch_copy_with_the_demo_home(tmp_path: Path) -> None:
    """JupyterLab gets copies (autosave never edits tracked notebooks; nothing lands where
    pytest collects) and kernels that use the demo's workspace."""
    scratch = make_scratch(str(tmp_path / "work"))
    cmd, env = lab_command(scratch, 8899)
    assert env["VIAGENT_HOME"] == str(scratch.home) == str(tmp_path / "work" / "home")
    assert f"--ServerApp.root_dir={scratch.notebooks}" in cmd and "--ip=127.0.0.1" in cmd
    assert not scratch.notebooks.is_relative_to(ROOT) and not scratch.temporary
    copied = scratch.notebooks / "quickstart.ipynb"
    assert copied.read_bytes() == (ROOT / "notebooks" / "quickstart.ipynb").read_bytes()
    copied.write_text("{}")  # the user's edits in a kept --workdir survive the next run
    again = make_scratch(str(tmp_path / "work"))
    assert (again.notebooks / "quickstart.ipynb").read_text() == "{}"
    other = make_scratch(None, home=str(tmp_path / "explicit"))
    try:
        assert other.temporary and other.home == tmp_path / "explicit"
    finally:
        shutil.rmtree(other.root)


def test_register_demo_repoints_and_keeps_the_users_selection(ws: Any) -> None:
    ws.providers.create(id="mine", provider_type="ollama")
    ws.providers.select("mine")
    register_demo(ws, "http://127.0.0.1:1/v1")
    register_demo(ws, "http://127.0.0.1:2/v1")
    assert ws.providers.get("demo").base_url == "http://127.0.0.1:2/v1"
    assert ws.providers.selected == "mine"


def test_ensure_demo_starts_a_server_when_none_answers(ws: Any) -> None:
    from viagent_jupyter import demo

    register_demo(ws, "http://127.0.0.1:9/v1")  # nothing listens there
    try:
        assert ensure_demo(ws, delay=0) == "demo"
        assert "You said: ping" in ws.chat("ping", provider="demo").wait().text
        url = ws.providers.get("demo").base_url
        assert ensure_demo(ws) == "demo" and ws.providers.get("demo").base_url == url
    finally:
        server = demo._in_kernel_server
        demo._in_kernel_server = None
        if isinstance(server, FakeProviderServer):
            server.stop()
