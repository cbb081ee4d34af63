"""The benchmark runner: ``python -m bench [--quick] [--only NAME ...] [--json]``.

Runs every benchmark module (``bench.stream``, ``bench.load``, ``bench.registry``,
``bench.pricing``, ``bench.propagation``, ``bench.store``, ``bench.history`` and, when
present, ``bench.display``), prints one table (benchmark, row, value, target, ratio/verdict)
and writes every row, with the machine and timing metadata, to ``bench/results/latest.json``.

A benchmark that is missing or fails becomes an ``error``/``skipped`` row: the runner never
stops half-way. Benchmarks are run by hand, never as timed tests: the numbers are medians of
interleaved runs and ratios to a baseline measured in the same pass, because absolute times
on a shared 2-core machine move by tens of percent from one minute to the next.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BENCHMARKS", "Row", "format_table", "main", "median", "verdict"]

RESULTS = Path(__file__).resolve().parent / "results"

#: name -> module, in the order they run (cheap in-process ones first).
BENCHMARKS: dict[str, str] = {
    "store": "bench.store",
    "registry": "bench.registry",
    "pricing": "bench.pricing",
    "propagation": "bench.propagation",
    "stream": "bench.stream",
    "load": "bench.load",
    "display": "bench.display",
    "history": "bench.history",
    "features": "bench.features",
}

OK, MISS, INFO, SKIPPED, ERROR = "ok", "MISS", "info", "skipped", "error"


@dataclass
class Row:
    """One line of the table.

    ``value`` is the measured number in ``unit`` (``None`` when there is none: a skipped
    peer); ``ratio`` compares it with the row's baseline (ours / raw httpx, ours / peer...);
    ``verdict`` is ``ok``/``MISS`` against ``target``, or ``info`` (a reference row),
    ``skipped`` or ``error``; ``note`` says what the row is when the name is not enough."""

    benchmark: str
    row: str
    value: float | None
    unit: str = "ms"
    target: str = ""
    ratio: float | None = None
    verdict: str = INFO
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def verdict(value: float | None, limit: float) -> str:
    """``ok`` when ``value <= limit``, else ``MISS``."""
    if value is None:
        return ERROR
    return OK if value <= limit else MISS


def skipped(benchmark: str, row: str, why: str) -> Row:
    return Row(benchmark, row, None, "", verdict=SKIPPED, note=why)


# --------------------------------------------------------------------------- table


def _value(row: Row) -> str:
    if row.value is None:
        return row.note or "—"
    v = row.value
    if row.unit == "ms":
        text = f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"
    elif row.unit in ("s", "MiB"):
        text = f"{v:.3f}" if v < 10 else f"{v:.1f}"
    elif isinstance(v, float) and not v.is_integer():
        text = f"{v:.2f}"
    else:
        text = f"{v:,.0f}"
    return f"{text} {row.unit}".rstrip()


def _judgement(row: Row) -> str:
    parts = []
    if row.ratio is not None:
        parts.append(f"{row.ratio:.2f}×")
    if row.verdict not in (INFO,) or not parts:
        parts.append(row.verdict)
    return " ".join(parts)


def format_table(rows: Sequence[Row], notes: bool = True) -> str:
    """The rows as a plain-text table (a ``note`` column last unless ``notes=False``)."""
    header = ["benchmark", "row", "value", "target", "ratio / verdict"]
    cells = [[r.benchmark, r.row, _value(r), r.target, _judgement(r)] for r in rows]
    if notes:
        header.append("note")
        for r, c in zip(rows, cells, strict=True):
            c.append(r.note if r.value is not None else "")
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    last = None
    for c in cells:
        shown = list(c)
        if c[0] == last:
            shown[0] = ""
        last = c[0]
        out.append(line(shown))
    return "\n".join(out)


# --------------------------------------------------------------------------- adapters

#: bench.store has no targets of its own in code; these come from its docstring.
_STORE_TARGETS = {"create": 2.0, "get": 2.0, "update": 2.0, "list": 10.0}


def _store_rows(result: dict[str, Any]) -> list[Row]:
    rows = []
    for name, stats in result.items():
        value = stats.get("p50_ms") if isinstance(stats, dict) else None
        limit = _STORE_TARGETS.get(name)
        p95 = stats.get("p95_ms") if isinstance(stats, dict) else None
        rows.append(Row("store", f"{name} p50 (1,000 providers)", value, "ms",
                        target=f"≤ {limit:g} ms" if limit is not None else "",
                        verdict=verdict(value, limit) if limit is not None else INFO,
                        note=f"p95 {p95} ms", extra={"p95_ms": p95}))
    return rows


def _display_rows(result: dict[str, Any]) -> list[Row]:
    """bench.display: ``{"tokens", "rate", "ours": Run, "naive": Run}`` (see its docstring:
    ≤ 25 display updates/s, ≤ 1.5 MB of IOPub traffic, < 1,000 messages in any second)."""
    ours, naive = result.get("ours"), result.get("naive")
    if not isinstance(ours, dict):
        return _generic_rows("display", result)
    rows: list[Row] = []
    checks: list[tuple[str, str, str, float, float]] = [
        ("updates_per_s", "%%llm display updates per second", "/s", 25, 1),
        ("iopub_bytes", "%%llm IOPub traffic", "MB", 1.5, 1e6),
        ("max_msgs_per_s", "%%llm IOPub messages in the busiest second", "msgs", 999, 1),
    ]
    for key, label, unit, limit, scale in checks:
        if key not in ours:
            continue
        value = float(ours[key]) / scale
        ratio = None
        if isinstance(naive, dict) and naive.get(key):
            ratio = float(ours[key]) / float(naive[key])
        rows.append(Row("display", label, value, unit, target=f"≤ {limit:g} {unit}",
                        ratio=ratio, verdict=verdict(value, limit),
                        note="ratio: vs the naive redraw-per-token loop"))
    if isinstance(naive, dict):
        for key in ("updates_per_s", "iopub_bytes", "kernel_cpu_s"):
            if key in naive:
                rows.append(Row("display", f"naive loop: {key}", float(naive[key]), "",
                                verdict=INFO))
    if "kernel_cpu_s" in ours:
        rows.append(Row("display", "%%llm kernel CPU for the stream",
                        float(ours["kernel_cpu_s"]), "s",
                        ratio=(ours["kernel_cpu_s"] / naive["kernel_cpu_s"]
                               if isinstance(naive, dict) and naive.get("kernel_cpu_s")
                               else None)))
    return rows


def _generic_rows(name: str, result: Any) -> list[Row]:
    """Any other shape: one info row per entry, its first number as the value."""
    if isinstance(result, list) and all(isinstance(r, Row) for r in result):
        return list(result)
    if not isinstance(result, dict):
        return [Row(name, "result", None, "", note=str(result)[:80])]
    rows = []
    for key, val in result.items():
        if isinstance(val, dict):
            num = next((v for k, v in val.items() if isinstance(v, (int, float))
                        and k in ("p50_ms", "median_ms", "value")), None)
            if num is None:
                num = next((v for v in val.values() if isinstance(v, (int, float))), None)
            rows.append(Row(name, str(key), None if num is None else float(num), "",
                            note=json.dumps(val, default=str)[:80]))
        elif isinstance(val, (int, float)):
            rows.append(Row(name, str(key), float(val), ""))
    return rows


def _call(fn: Callable[..., Any], quick: bool) -> Any:
    params = inspect.signature(fn).parameters
    if "quick" in params:
        return fn(quick=quick)
    if quick and "n_tokens" in params:  # bench.display: a shorter stream
        return fn(n_tokens=2000)
    return fn()


def run_one(name: str, module: str, quick: bool) -> list[Row]:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name in (module, module.rpartition(".")[0]):
            return [skipped(name, "(whole benchmark)", f"{module} not present — skipped")]
        return [Row(name, "(whole benchmark)", None, "", verdict=ERROR,
                    note=f"import failed: {exc}")]
    except Exception as exc:
        return [Row(name, "(whole benchmark)", None, "", verdict=ERROR,
                    note=f"import failed: {type(exc).__name__}: {exc}")]
    try:
        if hasattr(mod, "rows"):
            return list(_call(mod.rows, quick))
        result = _call(mod.run, quick)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return [Row(name, "(whole benchmark)", None, "", verdict=ERROR,
                    note=f"{type(exc).__name__}: {exc}"[:200])]
    if name == "store":
        return _store_rows(result)
    if name == "display":
        return _display_rows(result)
    return _generic_rows(name, result)


def _meta(quick: bool, only: Sequence[str], durations: dict[str, float]) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as v

        try:
            return v(dist)
        except PackageNotFoundError:
            return None

    peers = ("httpx", "openai", "anthropic", "google-genai", "ollama", "jupyter-ai-magics",
             "litellm", "ipython", "anywidget", "pydantic")
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "only": list(only),
        "seconds": {k: round(v, 1) for k, v in durations.items()},
        "versions": {p: version(p) for p in peers},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and smaller streams (a smoke pass)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        choices=sorted(BENCHMARKS), help="run only this benchmark (repeatable)")
    parser.add_argument("--json", action="store_true", help="also print the JSON")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json",
                        help="where to write the JSON (default: bench/results/latest.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("VIAGENT_KEYRING", "0")  # no OS keyring prompt in any benchmark

    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    rows: list[Row] = []
    durations: dict[str, float] = {}
    start = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        print(f"[bench] {name}…", file=sys.stderr, flush=True)
        rows += run_one(name, BENCHMARKS[name], args.quick)
        durations[name] = time.monotonic() - t0
    durations["total"] = time.monotonic() - start

    table = format_table(rows)
    print(table)
    misses = [r for r in rows if r.verdict in (MISS, ERROR)]
    print(f"\n{len(rows)} rows, {sum(r.verdict == OK for r in rows)} ok, "
          f"{sum(r.verdict == MISS for r in rows)} missed, "
          f"{sum(r.verdict == ERROR for r in rows)} errors, "
          f"{sum(r.verdict == SKIPPED for r in rows)} skipped; "
          f"{durations['total']:.0f} s")
    payload = {"meta": _meta(args.quick, args.only, durations),
               "rows": [asdict(r) for r in rows], "table": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"written: {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    return 2 if any(r.verdict == ERROR for r in misses) else 0


def print_rows(rows: Sequence[Row]) -> None:
    """For ``python -m bench.<name>``: the module's rows as the runner would show them."""
    print(format_table(rows))
