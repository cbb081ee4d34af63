"""Read-only tools over a kernel's namespace (``%%llm --tools builtins``).

They never run user code beyond ``repr``/``len``/``shape`` of a value and never show a
variable that starts with ``_`` (IPython's own ``_i``, ``_oh`` ... stay hidden except
through :func:`cell`). Summaries are short: a model gets the gist, not the data.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from .tools import Tool, tool

__all__ = ["builtin_tools", "describe_value"]

_REPR = 300


def _shape(value: Any) -> str | None:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        return "x".join(map(str, shape))
    try:
        return f"len {len(value)}" if not isinstance(value, type) else None
    except Exception:
        return None


def _short(value: Any, limit: int = _REPR) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ is the user's, not ours
        text = f"<repr failed: {type(exc).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _visible(ns: Mapping[str, Any], hidden: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ns.items()
            if not k.startswith("_") and k not in hidden
            and not isinstance(v, (types.ModuleType, types.FunctionType, type))
            and k not in ("In", "Out", "exit", "quit", "get_ipython")}


def describe_value(name: str, value: Any) -> dict[str, Any]:
    """Type, shape/length and the summary ``--with`` gives (:func:`context.describe`: the
    one describer, capped the same way)."""
    from .context import describe

    out: dict[str, Any] = {"name": name, "type": type(value).__qualname__}
    shape = _shape(value)
    if shape:
        out["shape"] = shape
    item = describe(value, name)
    out.update(kind=item.kind, summary=item.text)
    if item.truncated:
        out["truncated"] = True
    return out


def builtin_tools(shell: Any) -> list[Tool]:
    """The four read-only tools bound to ``shell`` (an IPython ``InteractiveShell``)."""
    hidden = getattr(shell, "user_ns_hidden", {})

    @tool(safe=True)
    def list_variables() -> list[dict[str, Any]]:
        """List the variables of the user's Python session: name, type and shape/length."""
        ns = _visible(shell.user_ns, hidden)
        return [{"name": k, "type": type(v).__qualname__, **({"shape": s} if (s := _shape(v))
                                                              else {})}
                for k, v in ns.items()]

    @tool(safe=True)
    def describe_variable(
        name: Annotated[str, Field(description="The variable's name")],
    ) -> dict[str, Any]:
        """Describe one variable of the user's session: type, shape and a summary (columns,
        dtypes and head of a DataFrame, an array's shape and stats, a short repr)."""
        ns = _visible(shell.user_ns, hidden)
        if name not in ns:
            raise KeyError(f"no variable named {name!r}")
        return describe_value(name, ns[name])

    @tool(safe=True)
    def read_cell(
        n: Annotated[int, Field(description="Execution count of the cell (In[n]); "
                                            "0 or negative counts back from the last")] = 0,
    ) -> dict[str, Any]:
        """Read a cell of the session: its source (In[n]) and its output (Out[n]) if any."""
        inputs: list[str] = shell.user_ns.get("In", [])
        outputs: dict[int, Any] = shell.user_ns.get("Out", {})
        last = len(inputs) - 1
        index = n if n > 0 else last + n - 1  # the current cell is last: skip it
        if not 1 <= index <= last:
            raise IndexError(f"no cell In[{n}] (cells 1-{last})")
        out: dict[str, Any] = {"n": index, "input": inputs[index]}
        if index in outputs:
            out["output"] = _short(outputs[index], 2000)
        return out

    @tool(safe=True)
    def last_error() -> str:
        """The last error raised in the session (type, message, last frames), or 'none'."""
        import sys
        import traceback

        etype = getattr(sys, "last_type", None)
        value = getattr(sys, "last_value", None)
        if etype is None or value is None:
            return "none"
        tb = traceback.format_exception(etype, value, getattr(sys, "last_traceback", None))
        return "".join(tb[-6:])[-3000:]

    return [list_variables, describe_variable, read_cell, last_error]
