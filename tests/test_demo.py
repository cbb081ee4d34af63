"""The offline demo: `viagent-demo --no-lab` registers a working `demo` provider."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import viagent_jupyter as vj
from viagent_jupyter.demo import DEMO_NAME, ensure_demo, register_demo
from viagent_jupyter.testing import FakeProviderServer


def test_demo_command_registers_a_working_local_provider(home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "viagent_jupyter.demo", "--no-lab", "--provider-port", "0",
         "--delay", "0"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "VIAGENT_HOME": str(home)},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "demo" in first and "127.0.0.1" in first and DEMO_NAME in first
        with vj.Workspace(home=home) as ws:
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
