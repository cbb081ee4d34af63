"""``%%llm --tools`` in a real IPython kernel: approval on stdin, --approve all, builtins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel import Kernel, kernel

from viagent_jupyter.testing import FakeProviderServer

SETUP = '''
%load_ext viagent_jupyter
import viagent_jupyter as vj
ran = []

@vj.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    ran.append((a, b))
    return a + b

xs = [1, 2, 3]
'''


@pytest.fixture
def k(ws: Any, tmp_path: Path) -> Iterator[tuple[Kernel, FakeProviderServer]]:
    with FakeProviderServer(delay=0) as srv:
        ws.providers.create(id="fake", provider_type="anthropic", name="Fake",
                            base_url=srv.url_for("anthropic"), api_key="sk-test-anthropic-01",
                            default_model="demo-small", max_retries=0)
        ws.providers.select("fake")
        with kernel({"IPYTHONDIR": str(tmp_path / "ipython"),
                     "VIAGENT_HOME": os.environ["VIAGENT_HOME"]}) as kern:
            kern.check(SETUP)
            yield kern, srv


def _shown(res: Any) -> str:
    return "\n".join(o["data"].get("text/plain", "") for o in res.outputs
                     if o["type"] in ("display_data", "update_display_data"))


@pytest.mark.slow
def test_approval_on_stdin_yes_and_no(k: tuple[Kernel, FakeProviderServer]) -> None:
    kern, _srv = k
    res = kern.run("%%llm --tools add\nuse add", stdin=["y"])
    assert res.error is None, res.error
    assert res.prompts == ["Run tool add({\"a\": 2, \"b\": 2})? [y/N] "]
    shown = _shown(res)
    assert "✓ add(a=2, b=2) → 4" in shown
    assert "The tool add returned 4." in shown
    assert kern.check("print(ran)").strip() == "[(2, 2)]"
    assert kern.check("print([(r.name, r.status) for st in _llm.steps for r in st.results])"
                      ).strip() == "[('add', 'ok')]"

    res = kern.run("%%llm --tools add\nuse add", stdin=["n"])
    assert res.error is None and len(res.prompts) == 1
    assert "⊘ add(a=2, b=2)" in _shown(res) and "[denied]" in _shown(res)
    assert kern.check("print(ran)").strip() == "[(2, 2)]"  # did not run again


@pytest.mark.slow
def test_no_stdin_denies_and_approve_all_runs(k: tuple[Kernel, FakeProviderServer]) -> None:
    kern, _srv = k
    res = kern.run("%%llm --tools add\nuse add")  # like nbval: no stdin
    assert res.error is None and "[denied]" in _shown(res)
    assert kern.check("print(ran)").strip() == "[]"
    res = kern.run("%%llm --tools add --approve all --max-steps 3\nuse add")
    assert res.error is None and "✓ add(a=2, b=2) → 4" in _shown(res)
    assert kern.check("print(ran)").strip() == "[(2, 2)]"
    res = kern.run("%%llm --tools nothere\nuse add")
    assert "no function named 'nothere'" in _shown(res) + res.stdout + res.stderr + str(
        res.error)


@pytest.mark.slow
def test_builtins_are_safe_and_read_the_namespace(k: tuple[Kernel, FakeProviderServer]
                                                  ) -> None:
    kern, srv = k
    res = kern.run("%%llm --tools builtins\nuse describe_variable")  # no stdin: safe ones run
    assert res.error is None, res.error
    shown = _shown(res)  # the demo model passes name="demo": there is no such variable
    assert "✗ describe_variable(name=\"demo\") → Error: the tool raised KeyError" in shown
    assert "[error]" in shown
    res = kern.run("%%llm --tools builtins\nuse list_variables")
    shown = _shown(res)
    assert '"name": "xs"' in shown and '"shape": "len 3"' in shown
    tools = [t["name"] for t in srv.requests[-1].json["tools"]]
    assert tools == ["list_variables", "describe_variable", "read_cell", "last_error"]


@pytest.mark.slow
def test_interrupting_the_kernel_during_a_tool_cancels(ws: Any, tmp_path: Path) -> None:
    """Documented: Ctrl-C (interrupt) while a tool runs ends the answer as cancelled, no
    traceback, no further request."""
    import time

    from jupyter_client.manager import start_new_kernel

    with FakeProviderServer(delay=0) as srv:
        ws.providers.create(id="fake", provider_type="openai", name="Fake",
                            base_url=srv.url_for("openai"), api_key="sk-test-openai-0001",
                            default_model="demo-small", max_retries=0)
        ws.providers.select("fake")
        env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
        km, kc = start_new_kernel(kernel_name="python3", env=env)
        try:
            Kernel(kc).check(SETUP + '''
import time

@vj.tool
def slow(n: int) -> int:
    """Takes long."""
    print("tool started", flush=True)
    time.sleep(60)
    return n
''')
            msg_id = kc.execute("%%llm --tools slow --approve all\nuse slow")
            interrupted = False
            deadline = time.monotonic() + 60
            while True:
                msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                assert kind != "error", content
                if kind == "stream" and "tool started" in content["text"] and not interrupted:
                    km.interrupt_kernel()
                    interrupted = True
                if kind == "status" and content["execution_state"] == "idle":
                    break
            assert interrupted
            assert kc.get_shell_msg(timeout=10)["content"]["status"] == "ok"
            out = Kernel(kc).check("print(_llm.finish_reason, _llm.error)")
            assert out.strip() == "cancelled None"
            assert len([r for r in srv.requests if r.method == "POST"]) == 1
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
