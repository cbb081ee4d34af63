"""Inside a running kernel, another process's change reaches trait observers by itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import viagent_jupyter as vj

pytestmark = pytest.mark.slow


def test_change_from_another_process_reaches_a_kernel_observer_automatically(
    home: Path,
) -> None:
    from kernel import kernel

    with vj.Workspace(home=home) as ws:
        ws.providers.create(id="shared", provider_type="openai", name="Before")
        with kernel({"VIAGENT_HOME": str(home)}) as k:
            k.check(
                "import viagent_jupyter as vj, time\n"
                "ws = vj.workspace()\n"
                "seen = []\n"
                "ws.providers.observe(lambda ch: seen.append((time.time(), "
                "[p['name'] for p in ch['new']])), names=['providers'])\n"
                "print(ws.providers.get('shared').name)\n"
            )
            changed_at = time.time()
            ws.providers.update("shared", name="After")
            time.sleep(1.0)  # the kernel is idle: no cell runs, nobody calls refresh()
            out = k.check("print(repr(seen[-1][1]) if seen else 'nothing'); "
                          "print(seen[-1][0] if seen else 0)")
            names, when = out.strip().splitlines()
            assert names == "['After']"  # seen by the 0.25 s poll while no cell ran
            latency = float(when) - changed_at
            assert 0 <= latency < 1.0 + 0.5, latency  # within the second we slept, plus slack
            # the selection travels the same way
            ws.providers.select("shared")
            time.sleep(1.0)
            assert k.check("print(ws.providers.selected)").strip() == "shared"
