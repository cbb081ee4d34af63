"""Cost of ``%load_ext viagent_jupyter`` and of the first ``%%llm`` cell of a fresh kernel.

Run: ``python -m bench.load [--quick] [--runs N]``.

Every measurement is a fresh ``python -c`` process, so nothing is imported already; runs of
the different variants are interleaved and the median of each is reported.

* ``%load_ext``: an IPython ``InteractiveShell`` is made first (a kernel has one), then only
  the ``load_ext`` call is timed, with the RSS delta around it read from
  ``/proc/self/statm``. Compared with a trivial extension (an empty
  ``load_ipython_extension``, written to a temp dir) and with ``jupyter_ai_magics`` when
  installed. Targets: ≤ 60 ms and ≤ +10 MiB.
* First cell: after the shell is made (again: a kernel has one), the time to import +
  ``%load_ext viagent_jupyter`` + one streamed chat with the local fake provider through
  ``%%llm`` (``run_cell_magic``, Markdown rendering included); the same through ``ws.chat``
  (no magic, no rendering); and ``import openai`` + one streamed completion with the openai
  SDK against the same server, for reference. Target: ``%%llm`` first cell ≤ 0.4 s median.
  The note gives the whole process's wall time (interpreter start to exit) too.

Bytecode is cached as for an installed package (``PYTHONPYCACHEPREFIX`` in a temp dir, one
discarded warm-up run per variant), even when ``PYTHONDONTWRITEBYTECODE`` is set here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import ERROR, INFO, Row, median, print_rows, skipped, verdict

__all__ = ["rows"]

REPO = Path(__file__).resolve().parent.parent
LOAD_MS_TARGET = 60.0
LOAD_MIB_TARGET = 10.0
FIRST_CELL_TARGET_S = 0.4
KEY = "sk-bench-0123456789abcdef"

_PRELUDE = r"""
import json, os, sys, time
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
"""

LOAD_SCRIPT = _PRELUDE + r"""
name = sys.argv[1]
import gc; gc.collect()
r0 = rss(); t0 = time.perf_counter()
shell.run_line_magic("load_ext", name)
t1 = time.perf_counter(); r1 = rss()
ok = name in shell.extension_manager.loaded
print(json.dumps({"ms": (t1 - t0) * 1000, "mib": (r1 - r0) / 2**20, "ok": ok}))
"""

FIRST_CELL_SCRIPTS = {
    "magic": _PRELUDE + r"""
import io, contextlib
t0 = time.perf_counter()
shell.run_line_magic("load_ext", "viagent_jupyter")
with contextlib.redirect_stdout(io.StringIO()) as shown:
    shell.run_cell_magic("llm", "-p oa", "Hello from the benchmark")
t1 = time.perf_counter()
ok = "You said: Hello from the benchmark" in shown.getvalue()
print(json.dumps({"s": t1 - t0, "ok": ok}))
""",
    "chat": _PRELUDE + r"""
t0 = time.perf_counter()
import viagent_jupyter as vj
s = vj.workspace().chat("Hello from the benchmark", provider="oa")
text = "".join(s)
t1 = time.perf_counter()
print(json.dumps({"s": t1 - t0, "ok": "You said: Hello from the benchmark" in text}))
""",
    "openai": _PRELUDE + r"""
t0 = time.perf_counter()
import openai
client = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
text = ""
for chunk in client.chat.completions.create(
        model="demo-small", stream=True,
        messages=[{"role": "user", "content": "Hello from the benchmark"}]):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
t1 = time.perf_counter()
print(json.dumps({"s": t1 - t0, "ok": "You said: Hello from the benchmark" in text}))
""",
}

FIRST_CELL_LABEL = {
    "magic": "first %%llm cell (load_ext + run_cell_magic, streamed)",
    "chat": "first ws.chat in a fresh process (import + stream)",
    "openai": "first openai SDK call (import openai + stream)",
}


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _run(script: str, args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run ``script`` in a fresh interpreter; its last stdout line (JSON) and the wall
    time of the whole process in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    wall = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {proc.returncode}: {tail}"[:160])
    return json.loads(lines[-1]), wall


def _env(pycache: str, extra_path: str | None = None, home: str | None = None
         ) -> dict[str, str]:
    """The child's environment. Bytecode is cached (in ``pycache``, not next to the
    sources), as it is for any installed package: without it every import compiles its
    module from source, which is what ``PYTHONDONTWRITEBYTECODE=1`` (set on some dev
    machines and CI) would otherwise make us measure."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = pycache
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), extra_path, env.get("PYTHONPATH")]))
    env.setdefault("VIAGENT_KEYRING", "0")
    env["PYTHONWARNINGS"] = "ignore"
    if home is not None:
        env["VIAGENT_HOME"] = home
    return env


def load_ext_rows(runs: int, pycache: str) -> list[Row]:
    exts = ["viagent_jupyter", "bench_trivial_ext"]
    missing = []
    if _installed("jupyter_ai_magics"):
        exts.append("jupyter_ai_magics")
    else:
        missing.append("jupyter_ai_magics")
    results: dict[str, list[dict[str, Any]]] = {e: [] for e in exts}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench_trivial_ext.py").write_text(
            "def load_ipython_extension(ipython):\n    pass\n", encoding="utf-8")
        env = _env(pycache, tmp)
        for i in range(-1, runs):  # run -1: the warm-up (fills the bytecode cache)
            live = [e for e in exts if e not in errors]
            k = max(i, 0) % len(live)
            for ext in live[k:] + live[:k]:
                try:
                    res, _wall = _run(LOAD_SCRIPT, [ext], env)
                    if not res.get("ok"):
                        raise RuntimeError("the extension did not register as loaded")
                    if i >= 0:
                        results[ext].append(res)
                except Exception as exc:
                    errors[ext] = str(exc)
    label = {"viagent_jupyter": "%load_ext viagent_jupyter",
             "bench_trivial_ext": "%load_ext of a trivial extension",
             "jupyter_ai_magics": "%load_ext jupyter_ai_magics"}
    out: list[Row] = []
    for unit, key, limit in (("ms", "ms", LOAD_MS_TARGET), ("MiB", "mib", LOAD_MIB_TARGET)):
        what = "time" if unit == "ms" else "RSS"
        ours_values = [r[key] for r in results.get("viagent_jupyter", [])]
        for ext in exts:
            name = f"{label[ext]}: {what}"
            if ext in errors:
                out.append(Row("load", name, None, "", verdict=ERROR, note=errors[ext]))
                continue
            values = [r[key] for r in results[ext]]
            value = median(values)
            ours = ext == "viagent_jupyter"
            ratio = None
            if not ours and ours_values and value > 0 and ext == "jupyter_ai_magics":
                ratio = value / median(ours_values)
            out.append(Row("load", name, value, unit,
                           target=f"≤ {'+' if unit == 'MiB' else ''}{limit:g} {unit}"
                           if ours else "",
                           ratio=ratio, verdict=verdict(value, limit) if ours else INFO,
                           note=f"{len(values)} fresh processes"
                           + ("; ratio: it / ours" if ratio is not None else ""),
                           extra={"values": values}))
        for ext in missing:
            out.append(skipped("load", f"{label[ext]}: {what}", "not installed — skipped"))
    return out


def first_cell_rows(runs: int, pycache: str) -> list[Row]:
    from bench.stream import ServerProcess

    variants = ["magic", "chat"]
    openai_missing = not _installed("openai")
    if not openai_missing:
        variants.append("openai")
    if not (REPO / "viagent_jupyter" / "magics.py").exists():
        variants.remove("magic")
    times: dict[str, list[float]] = {v: [] for v in variants}
    walls: dict[str, list[float]] = {v: [] for v in variants}
    errors: dict[str, str] = {}
    with ServerProcess(n_events=10) as srv, tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("VIAGENT_KEYRING", "0")
        import viagent_jupyter as vj

        base = srv.url("openai", big=False) + "/v1"
        with vj.Workspace(home=home) as ws:
            ws.providers.create(id="oa", provider_type="openai", name="Bench", base_url=base,
                                default_model="demo-small", api_key=KEY, max_retries=0)
            ws.providers.select("oa")
        env = _env(pycache, home=home)
        for i in range(-1, runs):  # run -1: the warm-up (fills the bytecode cache)
            live = [v for v in variants if v not in errors]
            k = max(i, 0) % len(live)
            for v in live[k:] + live[:k]:
                try:
                    res, wall = _run(FIRST_CELL_SCRIPTS[v], [base, KEY], env)
                    if not res.get("ok"):
                        raise RuntimeError("the answer did not arrive")
                    if i >= 0:
                        times[v].append(res["s"])
                        walls[v].append(wall)
                except Exception as exc:
                    errors[v] = str(exc)
    rows: list[Row] = []
    ours = times.get("magic") or times.get("chat") or []
    for v in ("magic", "chat", "openai"):
        name = FIRST_CELL_LABEL[v]
        if v == "openai" and openai_missing:
            rows.append(skipped("load", name, "not installed — skipped"))
            continue
        if v not in times:
            rows.append(skipped("load", name, "viagent_jupyter.magics not present — skipped"))
            continue
        if v in errors or not times[v]:
            rows.append(Row("load", name, None, "", verdict=ERROR,
                            note=errors.get(v, "no runs")))
            continue
        value = median(times[v])
        target = v == "magic" or (v == "chat" and "magic" not in times)
        ratio = value / median(ours) if v == "openai" and ours else None
        rows.append(Row("load", name, value, "s",
                        target=f"≤ {FIRST_CELL_TARGET_S:g} s" if target else "",
                        ratio=ratio,
                        verdict=verdict(value, FIRST_CELL_TARGET_S) if target else INFO,
                        note=f"whole process {median(walls[v]):.2f} s; {len(times[v])} runs"
                        + ("; ratio: it / ours" if ratio is not None else ""),
                        extra={"values_s": times[v], "process_wall_s": walls[v]}))
    return rows


def rows(quick: bool = False, runs: int | None = None) -> list[Row]:
    runs = runs or (3 if quick else 7)
    with tempfile.TemporaryDirectory() as pycache:
        return load_ext_rows(runs, pycache) + first_cell_rows(runs, pycache)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    print_rows(rows(args.quick, args.runs))


if __name__ == "__main__":
    main()
