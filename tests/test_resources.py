"""No socket, transport or file is left for the garbage collector: under ``python -X dev``
(which shows every ResourceWarning) a workspace used from several event loops and closed
leaves nothing unclosed. pytest itself runs with ResourceWarning as an error (pyproject)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import asyncio, gc, sys
import viagent_jupyter as vj
from viagent_jupyter.testing import FakeProviderServer

with FakeProviderServer(delay=0) as srv:
    ws = vj.Workspace(home=sys.argv[1])
    ws.providers.create(id="ol", provider_type="ollama", base_url=srv.url_for("ollama"),
                        default_model="demo-small")

    async def one(prompt, stop_early=False):
        s = ws.achat(prompt, provider="ol")
        async for _ in s:
            if stop_early:
                await s.aclose()
                break
        return s.finish_reason

    # two loops, one after the other, as two asyncio.run() calls or two notebooks do
    assert asyncio.run(one("first")) == "stop"
    assert asyncio.run(one("second", stop_early=True)) == "cancelled"
    assert ws.chat("sync", provider="ol").wait().finish_reason == "stop"
    ws.models("ol")
    ws.close()
    del ws
    gc.collect()
print("clean")
"""


def test_no_resource_warning_under_dev_mode(tmp_path: Path) -> None:
    env = {**os.environ, "VIAGENT_KEYRING": "0"}
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", SCRIPT,
         str(tmp_path / "home")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ResourceWarning" not in proc.stderr, proc.stderr[-3000:]
    assert "unclosed" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.strip() == "clean"
