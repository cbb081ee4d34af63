"""``%%llm --tools f,g [--approve ask|all] [--max-steps N]``: the magic's side of tools.

Approval asks on stdin (``input()``): a kernel forwards it to the front end as an
``input_request`` (JupyterLab, Notebook, VS Code show a text box; a terminal IPython reads
the terminal). Widget buttons would need the kernel to process comm messages while this
cell is still running, which it does not do unless the shell channel is pumped by hand
(what ``ipython_blocking``/``jupyter-ui-poll`` do, against ipykernel internals that changed
across versions); stdin is the channel kernels serve natively during a cell. Where there is
no stdin (nbval, ``jupyter nbconvert --execute``) the answer is "deny": nothing runs
without approval, a safe tool, or ``--approve all``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigValidationError, one_line
from .tools import Step, Tool, ToolCall, ToolResult, ask_input, tool_list

__all__ = ["StepLines", "resolve_tools", "tool_options"]

BUILTINS = "builtins"


def resolve_tools(names: str, namespace: Mapping[str, Any], shell: Any) -> list[Tool]:
    """``f,g,builtins`` → tools, looked up in the notebook's namespace."""
    out: list[Any] = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name == BUILTINS:
            from ._builtin_tools import builtin_tools

            out.extend(builtin_tools(shell))
            continue
        if name not in namespace:
            raise ConfigValidationError(
                f"--tools: no function named '{name}' in the notebook: define it (and "
                "decorate it with @vj.tool) first, or use --tools builtins.",
                [{"field": "tools", "message": f"'{name}' is not defined"}])
        obj = namespace[name]
        if not callable(obj):
            raise ConfigValidationError(
                f"--tools: '{name}' is a {type(obj).__name__}, not a function.",
                [{"field": "tools", "message": f"'{name}' is not callable"}])
        out.append(obj)
    return tool_list(out)


def _args_text(call: ToolCall, result: ToolResult | None) -> str:
    args = result.arguments if result is not None and result.arguments else None
    if args is None:
        try:
            args = call.parsed()
        except ValueError:
            return one_line(str(call.arguments), 120)
    return one_line(", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=repr)}"
                              for k, v in args.items()), 120)


_MARK = {"ok": "✓", "error": "✗", "invalid": "✗", "denied": "⊘", "skipped": "…",
         "cancelled": "⊘"}


class StepLines:
    """Shows each finished tool call as one compact, collapsible line."""

    def __init__(self, display: Callable[[dict[str, str]], None]) -> None:
        self._display = display
        self.lines: list[str] = []

    def __call__(self, step: Step, result: ToolResult | None) -> None:
        if result is None:
            return
        self.show(result)

    def show(self, r: ToolResult) -> None:
        head = (f"{_MARK.get(r.status, '?')} {r.name}({_args_text(r.call, r)}) → "
                f"{one_line(r.output, 80)} · {r.elapsed:.2f} s"
                + ("" if r.status == "ok" else f" [{r.status}]"))
        self.lines.append(head)
        body = html.escape(r.output[:4000])
        self._display({
            "text/plain": head,
            "text/html": (f"<details class='vj-tool-step'><summary><code>"
                          f"{html.escape(head)}</code></summary><pre>{body}</pre></details>"),
        })


def magic_approver(prompt: Callable[[str], str] = input) -> Callable[[ToolCall], bool]:
    return lambda call: ask_input(call, prompt)


def tool_options(tools: str | None, approve: str | None, max_steps: int | None,
                 namespace: Mapping[str, Any], shell: Any,
                 display: Callable[[dict[str, str]], None]) -> dict[str, Any]:
    """The ``ws.chat`` keyword arguments for the magic's tool options ({} without tools)."""
    if not tools:
        if approve or max_steps:
            raise ConfigValidationError("--approve and --max-steps need --tools f,g.",
                                        [{"field": "tools", "message": "is required"}])
        return {}
    lines = StepLines(display)
    return {"tools": resolve_tools(tools, namespace, shell),
            "approve": "all" if approve == "all" else magic_approver(),
            "max_steps": max_steps, "on_step": lines}
