"""``%llm log``: the recorded history from a notebook cell (see :mod:`history`).

::

    %llm log [QUERY] [-n N] [--provider P] [--model M] [--since DATE]   compact table
    %llm log show ID                                                    one whole exchange
    %llm log export FILE.jsonl|FILE.md [same filters]                   write a file
    %llm log clear                                                      forget everything
    %llm log keep DAYS|all                                              retention

A query that starts with one of the words show/export/clear/keep needs ``--``:
``%llm log -- show me``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError

from ._display import Table, _money
from ._magic_args import _positive_int

if TYPE_CHECKING:
    from ._workspace import Workspace
    from .history import Record

__all__ = ["LOG_USAGE", "log_command"]

LOG_USAGE = """\
%llm log [QUERY] [-n N] [--provider P] [--model M] [--since DATE]
%llm log show ID | log export FILE.jsonl|FILE.md [filters] | log clear | log keep DAYS|all"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{LOG_USAGE}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(f"{message or 'invalid arguments'}\n{LOG_USAGE}")


def _filters(prog: str) -> _Parser:
    p = _Parser(prog=prog, add_help=False, allow_abbrev=False, usage=LOG_USAGE)
    p.add_argument("query", nargs="*")
    p.add_argument("-n", type=_positive_int, default=None)
    p.add_argument("-p", "--provider")
    p.add_argument("-m", "--model")
    p.add_argument("--since")
    return p


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def _row(r: Record) -> list[str]:
    status = r.error_code or ("" if r.finish_reason in (None, "stop") else r.finish_reason)
    return [str(r.id), r.time.astimezone().strftime("%Y-%m-%d %H:%M"), r.provider, r.model,
            _one_line(r.prompt, 40), _one_line(r.answer, 40), r.tokens,
            "-" if r.cost is None else _money(r.cost),
            "-" if r.total_time is None else f"{r.total_time:.1f} s", status or ""]


def _search(ws: Workspace, ns: argparse.Namespace, n: int | None) -> list[Record]:
    return ws.history.search(" ".join(ns.query) or None, n=n, provider=ns.provider,
                             model=ns.model, since=ns.since)


def _keep(ws: Workspace, argv: list[str]) -> None:
    if not argv:
        days = ws.history.retention_days
        print("The history keeps every record." if days is None else
              f"The history keeps records for {days:g} days.")
        return
    if len(argv) != 1:
        raise UsageError(f"%llm log keep takes DAYS or all\n{LOG_USAGE}")
    if argv[0] == "all":
        ws.history.retention_days = None
        print("The history keeps every record.")
        return
    try:
        days = float(argv[0])
    except ValueError:
        raise UsageError(f"%llm log keep takes a number of days or all\n{LOG_USAGE}") from None
    before = len(ws.history)
    ws.history.retention_days = days
    dropped = before - len(ws.history)
    print(f"The history keeps records for {days:g} days ({dropped} older dropped).")


class _Markdown:
    """Plain Markdown text shown as text (never rendered as HTML: it holds model output)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": self.text}


def log_command(ws: Workspace, argv: list[str], show: Callable[[Any], None]) -> None:
    """Run ``%llm log ARGV``; ``show`` displays a bundle-producing object."""
    head = argv[0] if argv else ""
    if head == "show":
        if len(argv) != 2 or not argv[1].lstrip("#").isdigit():
            raise UsageError(f"%llm log show takes one record id\n{LOG_USAGE}")
        show(_Markdown(ws.history.get(int(argv[1].lstrip("#"))).markdown()))
        return
    if head == "clear":
        if len(argv) != 1:
            raise UsageError(f"%llm log clear takes nothing else\n{LOG_USAGE}")
        count = ws.history.clear()
        print(f"History cleared ({count} record{'' if count == 1 else 's'} and the stored "
              "--chat threads).")
        return
    if head == "keep":
        _keep(ws, argv[1:])
        return
    if head == "export":
        ns = _filters("%llm log export").parse_args(argv[1:])
        if not ns.query:
            raise UsageError(f"%llm log export needs a file name\n{LOG_USAGE}")
        path, *words = ns.query
        ns.query = words
        records = list(reversed(_search(ws, ns, ns.n)))
        count = ws.history.export(path, records)
        print(f"Exported {count} record{'' if count == 1 else 's'} to {path}.")
        return
    if head == "--":
        argv = ["--", *argv[1:]]
    ns = _filters("%llm log").parse_args(argv)
    n = ns.n or 20
    records = _search(ws, ns, n)
    total = len(ws.history)
    note = (f"{len(records)} of {total} shown, newest first; %llm log show ID for one"
            if records else None)
    show(Table(["id", "time", "provider", "model", "prompt", "answer", "tokens", "cost",
                "time taken", ""], [_row(r) for r in records], note=note,
               empty="No recorded calls match." if total else "The history is empty."))
