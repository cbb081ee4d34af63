"""The notebook as context: compact, size-capped descriptions of objects for a prompt.

``describe(obj)`` turns a notebook object into a :class:`ContextItem` (a short text block):

- pandas / polars DataFrames: shape, dtypes, ``head``, null counts and a numeric summary.
  Nothing is materialised: above :data:`SAMPLE_ROWS` rows the counts and the summary come
  from an evenly spaced sample of that many rows (and say so);
- NumPy arrays: shape, dtype, a few values (and min/max/mean of a bounded sample);
- dicts / lists / tuples: JSON of a bounded preview (first items, shallow depth);
- anything with ``_repr_llm_()`` or ``_repr_markdown_()``; else ``repr``.

Each item is capped at ``cap`` characters (default :data:`DEFAULT_CAP`) and marked
``[truncated]`` when cut. A description that contains a known provider key is refused
(:class:`~viagent_jupyter.errors.ConfigValidationError`, naming the item, never the value).

pandas, polars, numpy, matplotlib and PIL are detected by ``type(obj).__module__`` and never
imported here at load time. Images live in :mod:`viagent_jupyter._images`.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigValidationError

__all__ = [
    "DEFAULT_CAP",
    "SAMPLE_ROWS",
    "ContextItem",
    "cap_text",
    "check_secrets",
    "describe",
    "describe_error",
    "render_context",
    "resolve",
]

DEFAULT_CAP = 4000  # characters per item
SAMPLE_ROWS = 100_000  # rows a null count / summary reads at most
HEAD_ROWS = 5
MAX_COLUMNS = 40  # columns listed in dtypes / nulls / summary
TRUNCATED = "… [truncated]"


@dataclass(frozen=True)
class ContextItem:
    """One described object: ``name`` (how the user named it), ``kind``, the ``text``."""

    name: str
    kind: str
    text: str
    truncated: bool = False

    def render(self) -> str:
        return f"### {self.name} ({self.kind})\n{self.text}"


def cap_text(text: str, cap: int = DEFAULT_CAP, *, keep_tail: bool = False) -> tuple[str, bool]:
    """``text`` cut to ``cap`` characters with a ``[truncated]`` mark; (text, was_cut)."""
    if len(text) <= cap:
        return text, False
    room = max(cap - len(TRUNCATED), 0)
    if keep_tail:  # a traceback's end says the most
        return TRUNCATED + text[len(text) - room:], True
    return text[:room] + TRUNCATED, True


def _module(obj: Any) -> str:
    return type(obj).__module__ or ""


def _kind(obj: Any) -> str:
    mod = _module(obj).split(".")[0]
    name = type(obj).__name__
    if mod == "pandas" and name == "DataFrame":
        return "pandas"
    if mod == "pandas" and name == "Series":
        return "pandas-series"
    if mod == "polars" and name in ("DataFrame", "LazyFrame"):
        return "polars"
    if mod == "numpy" and name in ("ndarray", "matrix"):
        return "numpy"
    return ""


# ---------------------------------------------------------------------------- DataFrames
def _pandas_sample(df: Any) -> tuple[Any, str]:
    n = len(df)
    if n <= SAMPLE_ROWS:
        return df, ""
    step = -(-n // SAMPLE_ROWS)
    sample = df.iloc[::step]  # a bounded copy: ~SAMPLE_ROWS rows
    return sample, f" (from an evenly spaced sample of {len(sample):,} of {n:,} rows)"


def _describe_pandas(df: Any) -> str:
    import pandas as pd

    cols = df.columns[:MAX_COLUMNS]
    more = len(df.columns) - len(cols)
    view = df[cols]
    lines = [f"pandas DataFrame, shape {df.shape[0]:,} rows × {df.shape[1]:,} columns"
             + (f" (first {len(cols)} columns shown)" if more else "")]
    lines.append("dtypes: " + ", ".join(f"{c}: {t}" for c, t in view.dtypes.items()))
    with pd.option_context("display.max_columns", MAX_COLUMNS, "display.width", 160,
                           "display.max_colwidth", 40):
        lines.append("head:\n" + view.head(HEAD_ROWS).to_string())
        sample, note = _pandas_sample(view)
        nulls = sample.isna().sum()
        lines.append(f"null counts{note}: "
                     + ", ".join(f"{c}: {int(v)}" for c, v in nulls.items()))
        numeric = sample.select_dtypes("number")
        if numeric.shape[1]:
            lines.append(f"numeric summary{note}:\n"
                         + numeric.describe().round(4).to_string())
    return "\n".join(lines)


def _describe_pandas_series(s: Any) -> str:
    text = _describe_pandas(s.to_frame(name=s.name if s.name is not None else "value"))
    return "pandas Series" + text.removeprefix("pandas DataFrame").replace(" × 1 columns", "", 1)


def _describe_polars(df: Any) -> str:
    lazy = type(df).__name__ == "LazyFrame"
    schema = df.collect_schema() if lazy else df.schema
    names = list(schema.names())[:MAX_COLUMNS]
    if lazy:  # never collect the whole frame: the schema and the first rows only
        head = df.head(HEAD_ROWS).collect()
        return "\n".join([
            f"polars LazyFrame, {len(schema):,} columns (rows not counted: lazy)",
            "dtypes: " + ", ".join(f"{c}: {schema[c]}" for c in names),
            "head:\n" + str(head.select(names)),
        ])
    view = df.select(names)
    n = view.height
    lines = [f"polars DataFrame, shape {n:,} rows × {df.width:,} columns",
             "dtypes: " + ", ".join(f"{c}: {schema[c]}" for c in names),
             "head:\n" + str(view.head(HEAD_ROWS))]
    nulls = view.null_count()  # kept as metadata by Arrow: no scan
    lines.append("null counts: " + ", ".join(f"{c}: {nulls[c][0]}" for c in names))
    sample, note = view, ""
    if n > SAMPLE_ROWS:
        sample = view.gather_every(-(-n // SAMPLE_ROWS))
        note = f" (from an evenly spaced sample of {sample.height:,} of {n:,} rows)"
    numeric = [c for c in names if schema[c].is_numeric()]
    if numeric:
        lines.append(f"numeric summary{note}:\n" + str(sample.select(numeric).describe()))
    return "\n".join(lines)


def _describe_numpy(a: Any) -> str:
    import numpy as np

    lines = [f"numpy array, shape {a.shape}, dtype {a.dtype}",
             "values: " + np.array2string(a, threshold=20, edgeitems=3, max_line_width=120)]
    if a.size and a.dtype.kind in "biuf":
        flat = None
        if a.size <= SAMPLE_ROWS:
            flat = a.ravel()
        elif a.flags.c_contiguous:  # a view: no copy of the data
            flat = a.reshape(-1)
        if flat is not None:
            step = max(flat.size // SAMPLE_ROWS, 1)
            s = flat[::step]
            note = "" if step == 1 else f" (of an evenly spaced sample of {s.size:,})"
            lines.append(f"min {s.min().item()!r}, max {s.max().item()!r}, "
                         f"mean {float(s.mean()):.6g}{note}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- JSON preview
def _preview(obj: Any, depth: int, budget: list[int]) -> Any:
    """A bounded copy of a JSON-like structure: first items only, shallow, short strings."""
    budget[0] -= 1
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, str):
        if len(obj) <= 200:
            return obj
        budget[1] = 1
        return obj[:200] + "…"
    if depth <= 0 or budget[0] <= 0:
        budget[1] = 1
        return "…"
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(obj.items()):
            if i >= 30 or budget[0] <= 0:
                budget[1] = 1
                out["…"] = f"{len(obj) - i} more keys"
                break
            out[str(k)] = _preview(v, depth - 1, budget)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        items: list[Any] = []
        for i, v in enumerate(obj):
            if i >= 30 or budget[0] <= 0:
                budget[1] = 1
                items.append(f"… {len(obj) - i} more items")
                break
            items.append(_preview(v, depth - 1, budget))
        return items
    text = _safe_repr(obj)
    return text if len(text) <= 200 else text[:200] + "…"


def _describe_json(obj: Any) -> str:
    size = f"{type(obj).__name__} of {len(obj):,} items"
    budget = [2000, 0]
    body = json.dumps(_preview(obj, 6, budget), ensure_ascii=False, default=str)
    return f"{size}\n{body}" + (f"\n{TRUNCATED}" if budget[1] else "")


# ---------------------------------------------------------------------------- public
def describe(obj: Any, name: str | None = None, *, cap: int = DEFAULT_CAP) -> ContextItem:
    """Describe ``obj`` for a prompt, at most ``cap`` characters."""
    name = name or type(obj).__name__
    kind = _kind(obj)
    if kind == "pandas":
        text, label = _describe_pandas(obj), "DataFrame"
    elif kind == "pandas-series":
        text, label = _describe_pandas_series(obj), "Series"
    elif kind == "polars":
        text, label = _describe_polars(obj), "DataFrame"
    elif kind == "numpy":
        text, label = _describe_numpy(obj), "array"
    elif callable(getattr(obj, "_repr_llm_", None)) and not isinstance(obj, type):
        text, label = str(obj._repr_llm_()), "repr_llm"
    elif isinstance(obj, (dict, list, tuple)):
        text, label = _describe_json(obj), "JSON"
    elif callable(getattr(obj, "_repr_markdown_", None)) and not isinstance(obj, type):
        text, label = str(obj._repr_markdown_()), "markdown"
    elif isinstance(obj, str):
        text, label = obj, "text"
    else:
        text, label = _safe_repr(obj), "repr"
    text, cut = cap_text(text, cap)
    return ContextItem(name, label, text, cut or text.endswith(TRUNCATED))


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception as exc:  # a broken __repr__ is the user's; say so
        return f"<{type(obj).__name__}: repr failed: {type(exc).__name__}>"


def describe_error(exc: BaseException | None = None, *, cap: int = DEFAULT_CAP) -> ContextItem:
    """The last exception (``sys.last_value`` as IPython leaves it) with its traceback."""
    exc = exc if exc is not None else getattr(sys, "last_exc", None) or getattr(
        sys, "last_value", None)
    if exc is None:
        raise ConfigValidationError(
            "No error to attach: no cell has raised an exception yet in this kernel.",
            [{"field": "error", "message": "no last exception"}])
    tb = exc.__traceback__
    while tb is not None and _is_ipython(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next  # IPython's own run_code frame: not the user's code
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    text = _strip_ansi(text)
    text, cut = cap_text(text, cap, keep_tail=True)
    return ContextItem("error", "last exception", text, cut)


def _is_ipython(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return "IPython" in parts and "core" in parts


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


_CELL = re.compile(r"^(In|Out)\[\s*(-?\d+)\s*\]$")


def resolve(expr: str, ns: Mapping[str, Any], *, cap: int = DEFAULT_CAP) -> ContextItem:
    """A ``--with`` name: ``error``, ``In[3]``, ``Out[3]``, or a name/expression in ``ns``."""
    expr = expr.strip()
    if expr == "error":
        return describe_error(cap=cap)
    m = _CELL.match(expr)
    if m:
        which, n = m.group(1), int(m.group(2))
        table = ns.get(which)
        try:
            value = table[n] if table is not None else None
        except (IndexError, KeyError):
            value = None
        if value is None:
            raise ConfigValidationError(
                f"Cannot attach {expr}: there is no such cell "
                f"{'input' if which == 'In' else 'output'} in this kernel.",
                [{"field": "with", "message": f"{expr} not found"}])
        if which == "In":
            text, cut = cap_text(str(value), cap)
            return ContextItem(expr, "cell source", text, cut)
        return describe(value, expr, cap=cap)
    try:
        value = eval(expr, {}, dict(ns))  # the user's own kernel namespace
    except Exception as exc:
        raise ConfigValidationError(
            f"Cannot attach '{expr}': {type(exc).__name__}: {exc}. Give a variable name, "
            "In[n], Out[n] or error.",
            [{"field": "with", "message": f"{expr} not found"}]) from None
    return describe(value, expr, cap=cap)


def check_secrets(items: Iterable[ContextItem], keys: Iterable[str]) -> None:
    """Refuse an item whose text holds a known provider key (named, never shown)."""
    known = [k for k in keys if k and len(k) >= 8]
    for item in items:
        if any(k in item.text for k in known):
            raise ConfigValidationError(
                f"Refused to attach '{item.name}': it contains a stored provider API key. "
                "Remove the key from it before sending it to a model.",
                [{"field": "with", "message": f"{item.name} holds a provider key"}])


def render_context(items: Iterable[ContextItem]) -> str:
    """The items as one block to put before the prompt."""
    blocks = [it.render() for it in items]
    if not blocks:
        return ""
    return "Context from the notebook:\n\n" + "\n\n".join(blocks)


def resolve_many(specs: Iterable[str], ns: Mapping[str, Any], *,
                 cap: int = DEFAULT_CAP) -> list[ContextItem]:
    """``--with a,b --with In[3]`` → one item per name (commas split, outside brackets)."""
    items: list[ContextItem] = []
    for spec in specs:
        for name in _split_names(spec):
            items.append(resolve(name, ns, cap=cap))
    return items


def _split_names(spec: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in spec:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]
