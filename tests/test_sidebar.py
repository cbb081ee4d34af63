"""``vj.sidebar()`` / ``%llm sidebar`` in a real IPython kernel: the lab extension's output
under a Jupyter server, else sidecar, else the panel inline with a note — always something
shown, never an exception, and no duplicate output when it is a cell's last expression."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kernel import Kernel, kernel

pytestmark = pytest.mark.slow

MIME = "application/vnd.viagent.sidebar+json"


def _displays(res: Any) -> list[dict[str, Any]]:
    return [o for o in res.outputs if o["type"] in ("display_data", "execute_result")]


@pytest.fixture(scope="module")
def k(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("sidebar-home")
    with kernel({"VIAGENT_HOME": str(home), "VIAGENT_KEYRING": "0"}) as kn:
        kn.check("import os, viagent_jupyter as vj\n%load_ext viagent_jupyter")
        yield kn


def test_under_a_jupyter_server_with_the_lab_extension_it_displays_the_opener(k: Kernel
                                                                            ) -> None:
    k.check("os.environ['JPY_SESSION_NAME'] = 'x.ipynb'\n"
            "import viagent_jupyter.widgets.llm_sidebar as ls\n"
            "ls.lab_extension_installed = lambda: True")
    for code in ("vj.sidebar()", "%llm sidebar", "s = vj.sidebar()"):
        res = k.run(code)
        assert res.error is None, res.error
        shown = _displays(res)
        assert len(shown) == 1, (code, shown)  # once: no duplicate from the cell's result
        data = shown[0]["data"]
        assert set(data) == {MIME, "text/plain"}
        assert data[MIME]["id"] and data[MIME]["created"] > 0
        assert "right sidebar" in data["text/plain"]
    res = k.run("s")  # displaying it again (a later cell) shows it again
    assert len(_displays(res)) == 1


def test_without_the_lab_extension_and_sidecar_it_shows_the_panel_inline(k: Kernel) -> None:
    k.check("os.environ.pop('JPY_SESSION_NAME', None)\n"
            "import sys\nsys.modules['sidecar'] = None  # not installed")
    for code in ("vj.sidebar()", "%llm sidebar"):
        res = k.run(code)
        assert res.error is None, res.error
        assert "LLM providers (shown here:" in res.stdout and "sidecar is not installed" \
            in res.stdout
        shown = _displays(res)
        assert len(shown) == 1
        assert "application/vnd.jupyter.widget-view+json" in shown[0]["data"]


def test_with_sidecar_it_opens_one_and_says_so(k: Kernel) -> None:
    pytest.importorskip("sidecar")
    k.check("import sys\nsys.modules.pop('sidecar', None)")
    res = k.run("%llm sidebar")
    assert res.error is None, res.error
    assert "sidebar: open on the right (sidecar)" in res.stdout
    res = k.run("side = vj.sidebar()\nside")
    assert res.stdout.count("open on the right") == 1


def test_it_never_raises_even_when_the_widgets_cannot_load(k: Kernel) -> None:
    res = k.run("import sys\nsys.modules['sidecar'] = None\n"
                "sys.modules['ipywidgets'] = None\n"
                "print(repr(vj.sidebar(mode='inline')))")
    assert res.error is None, res.error
    assert "sidebar unavailable" in res.stdout and "None" in res.stdout


def test_lab_extension_installed_looks_in_the_jupyter_path(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from viagent_jupyter.widgets.llm_sidebar import lab_extension_installed

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    ext = tmp_path / "labextensions" / "viagent-jupyter"
    ext.mkdir(parents=True)
    (ext / "package.json").write_text("{}")
    assert lab_extension_installed()
