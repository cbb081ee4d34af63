"""What the wheel declares and carries: license, typing marker, every directly imported
distribution declared, and no development tooling among the shipped notebooks."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def imported_top_level_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "viagent_jupyter").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"viagent_jupyter", "__future__"}


def test_every_direct_import_is_declared() -> None:
    project = PYPROJECT["project"]
    declared = {_name(r) for r in project["dependencies"]}
    optional = {_name(r) for extra in project["optional-dependencies"].values()
                for r in extra if not r.startswith("viagent_jupyter")}
    dists = packages_distributions()
    missing = []
    for module in sorted(imported_top_level_names()):
        names = {_name(d) for d in dists.get(module, [module])}
        if not names & (declared | optional):
            missing.append(f"{module} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not declared in pyproject: {missing}"
    # the ones imported unconditionally on the main paths are real dependencies
    for dist in ("anyio", "ipywidgets", "httpx", "anywidget", "ipython"):
        assert dist in declared, dist


def test_license_typing_and_classifiers() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert (ROOT / "viagent_jupyter" / "py.typed").is_file()
    assert "Typing :: Typed" in project["classifiers"]
    assert any(c.startswith("Framework :: Jupyter") for c in project["classifiers"])
    for url in project.get("urls", {}).values():
        assert "example" not in url and "TODO" not in url, url


def test_shipped_notebooks_are_only_notebooks() -> None:
    """notebooks/ travels in the wheel (viagent-demo serves it): dev tooling lives in
    scripts/ (make_notebooks.py, the nbval sanitize file)."""
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    shipped = [src for src in wheel.get("force-include", {}) if src.startswith("notebooks")]
    assert shipped == ["notebooks"]
    files = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    assert files and all(name.endswith(".ipynb") for name in files), files
    assert (ROOT / "scripts" / "make_notebooks.py").is_file()
    assert (ROOT / "scripts" / "nbval_sanitize.cfg").is_file()
