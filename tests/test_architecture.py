"""The module graph: layers import only downwards, with no cycle (not even a type-only one),
and each part is built from the narrow pieces it uses rather than from a Workspace."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from viagent_jupyter.budgets import Budgets
from viagent_jupyter.chat import ChatServices, start_chat
from viagent_jupyter.db import Database
from viagent_jupyter.registry import ModelRegistry
from viagent_jupyter.schema import Usage
from viagent_jupyter.store import ProviderStore
from viagent_jupyter.testing import FakeProviderServer, demo_text
from viagent_jupyter.vault import CredentialVault

PACKAGE = Path(__file__).resolve().parent.parent / "viagent_jupyter"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Every import of one package module by another, wherever it stands: module level,
    inside a function (lazy) or under ``if TYPE_CHECKING:``."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                for alias in node.names:
                    sub = f"{name}.{alias.name}"
                    deps.add(sub if sub in mods else name)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[mod] = {d for d in deps if d in mods and d != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_sees_a_type_only_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "viagent_jupyter.chat" in graph and "viagent_jupyter._workspace" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_registry_and_chat_do_not_import_the_workspace() -> None:
    graph = import_graph()
    for mod in ("viagent_jupyter.chat", "viagent_jupyter.registry", "viagent_jupyter.usage",
                "viagent_jupyter.store"):
        assert "viagent_jupyter._workspace" not in graph[mod], mod


def test_every_module_imports_on_its_own() -> None:
    """Each module imports first in a fresh interpreter (catches order-dependent imports)."""
    names = sorted(m for m in _modules() if not m.endswith("__main__"))
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    for loaded in [m for m in sys.modules if m.startswith('viagent_jupyter')]:\n"
            "        del sys.modules[loaded]\n"
            "    importlib.import_module(name)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_registry_and_chat_work_from_their_narrow_parts(tmp_path: Path) -> None:
    db = Database(tmp_path / "home")
    store = ProviderStore(db, CredentialVault(db, tmp_path / "home"))
    recorded: list[tuple[Any, ...]] = []
    with FakeProviderServer(delay=0) as srv, httpx.Client() as client:
        store.create(id="ol", provider_type="ollama", base_url=srv.url_for("ollama"),
                     default_model="demo-small")
        registry = ModelRegistry(db, store, lambda: client)
        assert "demo-small" in {m.id.removesuffix(":latest") for m in registry.models("ol")}

        def record(p: str, m: str, usage: Usage, cost: Any, error: bool, hold: Any) -> None:
            recorded.append((p, m, usage.completion_tokens, error))

        budgets = Budgets(SimpleNamespace(db=db))  # a workspace-less budget gate
        services = ChatServices(providers=store, http=lambda: client,
                                new_aclient=httpx.AsyncClient, record_usage=record,
                                price=lambda *_: None, budgets=lambda: budgets)
        s = start_chat(services, "narrow", provider="ol", model=None, system=None,
                       temperature=None, max_tokens=None)
        assert s.wait().text == demo_text("narrow")
    db.close()
    assert recorded == [("ol", "demo-small", s.usage.completion_tokens, False)]
