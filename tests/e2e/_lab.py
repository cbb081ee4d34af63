"""What the browser tests work with: the server, the fake provider and a JupyterLab page."""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", REPO / "test-artifacts"))
PAGE_TIMEOUT_MS = 60_000
# Measurements the tests report at the end of the run (see pytest_terminal_summary).
REPORT: list[str] = []


@dataclass
class FakeProvider:
    base_url: str

    def url_for(self, provider_type: str) -> str:
        return self.base_url + ("/v1" if provider_type in ("openai", "openai_compatible") else "")


@dataclass
class LabServer:
    url: str
    token: str
    root: Path
    home: Path  # VIAGENT_HOME of the kernels
    log_path: Path
    etc: Path  # the administrator's config dir (JUPYTER_CONFIG_PATH), empty unless a test writes

    def browser_url(self, path: str) -> str:
        return f"{self.url}{path}{'&' if '?' in path else '?'}token={self.token}"

    def api(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def stop_kernels(self) -> None:
        for s in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{s['id']}")
        for k in self.api("GET", "api/kernels"):
            self.api("DELETE", f"api/kernels/{k['id']}")

    def log_tail(self, n: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no server log>"


_NOTEBOOK_JS = """(path) => {
  for (const w of window.jupyterapp.shell.widgets('main')) {
    if (w.context && w.context.path === path) return w;
  }
  return null;
}"""


class Lab:
    """Helpers over a Playwright page showing JupyterLab (``window.jupyterapp`` exposed)."""

    def __init__(self, page: Any, server: LabServer) -> None:
        self.page = page
        self.server = server
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def write_notebook(self, name: str, cells: list[str]) -> str:
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nbformat.write(nb, self.server.root / name)
        return name

    def start(self) -> None:
        self.page.goto(self.server.browser_url("lab?reset"))
        self.page.wait_for_function("() => window.jupyterapp !== undefined")
        self.page.evaluate("() => window.jupyterapp.restored")

    def open(self, path: str, split: bool = False) -> None:
        """Open a notebook (beside the current one with ``split``) and wait for its kernel."""
        options = {"mode": "split-right"} if split else {}
        self.page.evaluate(
            "([path, options]) => window.jupyterapp.commands.execute('docmanager:open', "
            "{path, factory: 'Notebook', options})", [path, options])
        self.wait_kernel_idle(path)

    def wait_kernel_idle(self, path: str) -> None:
        self.page.wait_for_function(
            f"""(path) => {{
              const w = ({_NOTEBOOK_JS})(path);
              const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
              return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
            }}""", arg=path, timeout=PAGE_TIMEOUT_MS)

    def run_cells(self, path: str, indexes: list[int] | None = None) -> None:
        """Run some cells (default: all) of notebook ``path``; fail on an error output."""
        errors = self.page.evaluate(
            f"""async ([path, indexes]) => {{
              const w = ({_NOTEBOOK_JS})(path);
              window.jupyterapp.shell.activateById(w.id);
              const nb = w.content;
              const which = indexes || nb.widgets.map((_, i) => i);
              for (const i of which) {{
                nb.activeCellIndex = i;
                await window.jupyterapp.commands.execute('notebook:run-cell');
              }}
              const errs = [];
              for (const i of which) {{
                for (const o of nb.model.cells.get(i).toJSON().outputs || []) {{
                  if (o.output_type === 'error') errs.push(o.ename + ': ' + o.evalue);
                }}
              }}
              return errs;
            }}""", [path, indexes])
        assert not errors, f"{path} raised: {errors}"
        self.wait_kernel_idle(path)

    def kernel_exec(self, path: str, code: str, timeout_ms: int = PAGE_TIMEOUT_MS) -> str:
        """Run ``code`` on the kernel of notebook ``path`` (no cell); return its stdout."""
        res = self.page.evaluate(
            f"""async ([path, code, ms]) => {{
              const w = ({_NOTEBOOK_JS})(path);
              const future = w.sessionContext.session.kernel.requestExecute(
                {{ code, store_history: false }});
              let out = '', err = null;
              future.onIOPub = (msg) => {{
                const t = msg.header.msg_type;
                if (t === 'stream') out += msg.content.text;
                else if (t === 'error') err = msg.content.ename + ': ' + msg.content.evalue;
              }};
              await Promise.race([future.done, new Promise((_, no) =>
                setTimeout(() => no(new Error('kernel_exec timed out')), ms))]);
              return {{ out, err }};
            }}""", [path, code, timeout_ms])
        if res["err"]:
            raise AssertionError(f"kernel error in {path}: {res['err']}")
        return str(res["out"])

    def save(self, path: str) -> None:
        self.page.evaluate(
            f"""async (path) => {{
              const w = ({_NOTEBOOK_JS})(path);
              await w.context.save();
            }}""", path)

    def notebook(self, path: str) -> Any:
        """A locator for the notebook panel of ``path``."""
        wid = self.page.evaluate(f"(path) => ({_NOTEBOOK_JS})(path).id", path)
        return self.page.locator(f'[id="{wid}"]')

    def screenshot(self, name: str, locator: Any = None) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        (locator or self.page).screenshot(path=str(path))
        return path

    def console_errors(self) -> list[str]:
        return [c for c in self.console
                if (c.startswith("error") or c.startswith("pageerror")) and "favicon" not in c]
