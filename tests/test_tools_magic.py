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
