"""``viagent-demo``: JupyterLab on the quickstart notebook, offline, with a local demo provider.

It starts the local fake provider (``viagent_jupyter.testing``) on 127.0.0.1, registers it as
the provider ``demo`` (labelled *Local demo (offline)*) in a workspace of its own, and runs
JupyterLab on loopback with the quickstart notebook open. No key and no network are needed.
Ctrl-C stops both.

The demo never touches your own workspace or the repository: it works in a scratch directory
(``--workdir``, default a new temporary one, deleted on exit) holding its workspace home
(``home/``, unless ``--home``) and a copy of the notebooks (``notebooks/``), which JupyterLab
serves and may autosave. Its kernels get ``VIAGENT_HOME`` pointing at that home.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEMO_ID", "DEMO_NAME", "Scratch", "ensure_demo", "lab_command", "main",
           "make_scratch", "register_demo"]

DEMO_ID = "demo"
DEMO_NAME = "Local demo (offline)"
DEFAULT_PORT = 18_765


def register_demo(ws: object, base_url: str, *, select: bool = True) -> None:
    """Create or re-point the ``demo`` provider at ``base_url`` (an OpenAI-style ``/v1``)."""
    from ._workspace import Workspace
    from .errors import ProviderNotFoundError

    assert isinstance(ws, Workspace)
    try:
        cfg = ws.providers.get(DEMO_ID)
    except ProviderNotFoundError:
        ws.providers.create(id=DEMO_ID, provider_type="openai_compatible", name=DEMO_NAME,
                            base_url=base_url, default_model="demo-small",
                            settings={"temperature": 0.7})
    else:
        if cfg.base_url != base_url or cfg.provider_type != "openai_compatible":
            ws.providers.update(DEMO_ID, provider_type="openai_compatible", base_url=base_url)
    if select and not ws.providers.selected:
        ws.providers.select(DEMO_ID)


_in_kernel_server: object | None = None


def _answers(base_url: str) -> bool:
    import httpx

    try:
        return httpx.get(base_url + "/models", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_demo(ws: object | None = None, *, delay: float = 0.02) -> str:
    """Make sure the ``demo`` provider answers: reuse the one ``viagent-demo`` runs, else start
    a local demo server inside this process (kept until it exits). Returns ``"demo"``."""
    global _in_kernel_server
    from . import workspace
    from ._workspace import Workspace
    from .errors import ProviderNotFoundError
    from .testing import FakeProviderServer

    ws = ws or workspace()
    assert isinstance(ws, Workspace)
    try:
        cfg = ws.providers.get(DEMO_ID)
        if cfg.base_url and _answers(cfg.base_url):
            if not ws.providers.selected:
                ws.providers.select(DEMO_ID)
            return DEMO_ID
    except ProviderNotFoundError:
        pass
    if _in_kernel_server is None:
        _in_kernel_server = FakeProviderServer(port=0, delay=delay).start()
    assert isinstance(_in_kernel_server, FakeProviderServer)
    register_demo(ws, _in_kernel_server.url_for("openai_compatible"))
    return DEMO_ID


def _notebooks_source() -> Path:
    """The repository's ``notebooks/`` when run from a clone, else the copy in the wheel."""
    here = Path(__file__).resolve().parent.parent / "notebooks"
    if (here / "quickstart.ipynb").exists():
        return here
    return Path(__file__).resolve().parent / "_notebooks"


@dataclass(frozen=True)
class Scratch:
    """Where a demo run works: its workspace home and the notebooks JupyterLab serves."""

    root: Path
    home: Path
    notebooks: Path
    temporary: bool  # made by us: removed when the demo stops


def make_scratch(workdir: str | None = None, home: str | None = None,
                 source: Path | None = None) -> Scratch:
    """A scratch directory with a copy of the notebooks (existing copies are kept: they may
    hold the user's edits) and the demo's workspace home."""
    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix="viagent-demo-") if workdir is None else workdir)
    root = root.expanduser().resolve()
    notebooks = root / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    for nb in sorted((source or _notebooks_source()).glob("*.ipynb")):
        if not (notebooks / nb.name).exists():
            shutil.copy2(nb, notebooks / nb.name)
    return Scratch(root, Path(home).expanduser() if home else root / "home", notebooks,
                   temporary)


def lab_command(scratch: Scratch, port: int) -> tuple[list[str], dict[str, str]]:
    """JupyterLab's command line and environment: loopback, the scratch notebooks, and
    kernels that use the demo's workspace home."""
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--ServerApp.root_dir={scratch.notebooks}", "quickstart.ipynb"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI machines run as root
        cmd.append("--allow-root")
    return cmd, {**os.environ, "VIAGENT_HOME": str(scratch.home)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="viagent-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8888, help="JupyterLab port (default 8888)")
    parser.add_argument("--provider-port", type=int, default=DEFAULT_PORT,
                        help=f"demo provider port (default {DEFAULT_PORT}; 0 = any free one)")
    parser.add_argument("--delay", type=float, default=0.03,
                        help="seconds between streamed words of the demo answer")
    parser.add_argument("--workdir", help="scratch directory for the notebooks' copy and "
                        "the workspace (default: a new temporary one, deleted on exit)")
    parser.add_argument("--home", help="the demo's workspace directory (default: home/ in "
                        "the scratch directory; never your usual one unless you name it)")
    parser.add_argument("--no-lab", action="store_true",
                        help="only run the demo provider (for your own Jupyter)")
    args = parser.parse_args(argv)

    scratch = make_scratch(args.workdir, args.home)
    try:
        return _run(args, scratch)
    finally:
        if scratch.temporary:
            shutil.rmtree(scratch.root, ignore_errors=True)


def _run(args: argparse.Namespace, scratch: Scratch) -> int:
    from . import Workspace
    from .testing import FakeProviderServer

    try:
        server = FakeProviderServer(port=args.provider_port, delay=args.delay).start()
    except OSError:
        server = FakeProviderServer(port=0, delay=args.delay).start()
    base_url = server.url_for("openai_compatible")
    with Workspace(home=scratch.home) as ws:
        register_demo(ws, base_url)
        print(f"viagent demo provider '{DEMO_ID}' ({DEMO_NAME}) at {base_url}", flush=True)
        print(f"workspace: {ws.home}", flush=True)
    gone = " (deleted when the demo stops; --workdir DIR keeps it)" if scratch.temporary else ""
    print(f"scratch directory: {scratch.root}{gone}", flush=True)
    if args.no_lab:
        print(f"Start your own Jupyter with VIAGENT_HOME={scratch.home} to use it. "
              "Press Ctrl-C to stop.", flush=True)
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        try:
            signal.sigwait(stop)
        finally:
            server.stop()
        return 0

    cmd, env = lab_command(scratch, args.port)
    print(f"Starting JupyterLab on http://127.0.0.1:{args.port}/lab/tree/quickstart.ipynb "
          "(the full URL with its token follows)", flush=True)
    proc = subprocess.Popen(cmd, cwd=scratch.notebooks, env=env)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # also when started in the background
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()  # JupyterLab shuts down cleanly on SIGTERM, without asking
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return 1
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
