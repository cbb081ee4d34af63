"""Hatch build hook: bundle the widgets' front end (``js/``) into ``viagent_jupyter/static/``.

Runs on every wheel build, editable installs included (``pip install -e .``): when a bundle
is missing or older than its sources it runs ``npm ci`` (only when ``node_modules`` is missing
or older than ``package-lock.json``) and ``npm run build`` in ``js/``. Up-to-date bundles are
left alone, so a rebuild costs nothing. ``VIAGENT_SKIP_JS_BUILD=1`` skips it (the widgets then
show how to build their front end instead of rendering).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLES = ("config_panel.js", "config_panel.css", "stats_bar.js", "stats_bar.css")
SOURCES = ("src", "build.mjs", "package.json", "package-lock.json")


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        if path.is_dir():
            newest = max([newest, *(p.stat().st_mtime for p in path.rglob("*") if p.is_file())])
        elif path.exists():
            newest = max(newest, path.stat().st_mtime)
    return newest


def bundle_is_stale(root: Path) -> bool:
    js, static = root / "js", root / "viagent_jupyter" / "static"
    outputs = [static / name for name in BUNDLES]
    if not all(p.is_file() for p in outputs):
        return True
    if not js.is_dir():  # an sdist with a prebuilt bundle and no sources
        return False
    return _newest([js / s for s in SOURCES]) > min(p.stat().st_mtime for p in outputs)


def build_frontend(root: Path, log: Any = print) -> None:
    js = root / "js"
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "Building viagent_jupyter's widgets needs Node.js (>= 20) and npm on PATH: install "
            "them and retry, or set VIAGENT_SKIP_JS_BUILD=1 to install without the widgets' "
            "front end."
        )
    lock_stamp = js / "node_modules" / ".package-lock.json"
    steps = []
    if not lock_stamp.exists() or \
            lock_stamp.stat().st_mtime < (js / "package-lock.json").stat().st_mtime:
        steps.append([npm, "ci", "--no-audit", "--no-fund"])
    steps.append([npm, "run", "build"])
    for cmd in steps:
        log(f"viagent_jupyter: {' '.join(cmd[1:])} in js/")
        proc = subprocess.run(cmd, cwd=js, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
            raise RuntimeError(f"`npm {' '.join(cmd[1:])}` failed in {js}:\n{tail}")


class FrontendBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        if os.environ.get("VIAGENT_SKIP_JS_BUILD") == "1":
            self.app.display_warning("viagent_jupyter: VIAGENT_SKIP_JS_BUILD=1, no front end")
            return
        if bundle_is_stale(root):
            build_frontend(root, self.app.display_info)
        else:
            self.app.display_info("viagent_jupyter: widget bundle is up to date")
