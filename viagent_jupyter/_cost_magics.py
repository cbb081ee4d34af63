"""``%llm prices``, ``%llm budget`` and ``%llm stats --today/--month`` (kept apart from
magics.py; the magic delegates here). Loaded on first use of one of these commands."""

from __future__ import annotations

import argparse
import warnings
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from ._display import Table

if TYPE_CHECKING:
    from ._workspace import Workspace


class LLMMagics(Protocol):
    """What these commands use of the magic (``magics.LLMMagics`` fits)."""

    @property
    def ws(self) -> Workspace: ...

    default_provider: str | None

    def _show(self, obj: Any) -> None: ...

__all__ = ["cmd_budget", "cmd_prices", "period_total"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        from IPython.core.error import UsageError

        raise UsageError(f"{self.prog}: {message}")


def _mtok(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:f}"


def _usd(value: Any) -> str:
    if value is None:
        return "—"
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return f"${d:.4f}" if d >= Decimal("0.01") or d == 0 else f"${d:.6f}"


def cmd_prices(magics: LLMMagics, argv: list[str]) -> None:
    """``%llm prices [MODEL] [-p PROVIDER] [--refresh]``."""
    from .pricing import StalePricesWarning

    p = _Parser(prog="%llm prices", add_help=False)
    p.add_argument("model", nargs="?")
    p.add_argument("-p", "--provider")
    p.add_argument("--refresh", action="store_true")
    args = p.parse_args(argv)
    ws = magics.ws
    warning = None
    if args.refresh:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StalePricesWarning)
            result = ws.pricing.refresh()
        if not result.ok:
            warning = f"Could not refresh prices ({result.error}); showing the cached ones."
    if args.model:
        pid = args.provider or magics.default_provider or ws.require_selected()
        pairs = [(pid, args.model)]
    else:
        ws.providers.refresh()
        pairs = [(c.id, c.default_model) for c in ws.providers.list() if c.default_model]
    rows = []
    for pid, model in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StalePricesWarning)
            price = ws.pricing.get(pid, model)
        if price is None:
            rows.append([pid, model, "unknown", "", "", "", "", ""])
            continue
        m = price.per_mtok()
        rows.append([pid, model, _mtok(m["input"]), _mtok(m["output"]),
                     _mtok(m["cached_input"]), _mtok(m["cache_write"]), price.source,
                     price.as_of.isoformat() if price.as_of else "-"])
    info = ws.pricing.info()
    bundled = info["bundled"]
    note = (f"USD per 1M tokens. Bundled: {bundled.get('source')}, as of "
            f"{bundled.get('as_of')}; live list: {info['catalogue_url'] or 'off'}"
            + (", cached " + datetime.fromtimestamp(info["catalogue_fetched_at"], timezone.utc)
               .strftime("%Y-%m-%d %H:%M UTC") if info["catalogue_fetched_at"] else
               ", not fetched yet") + ". Set your own: ws.pricing.set(...).")
    magics._show(Table(["provider", "model", "input", "output", "cached input", "cache write",
                        "source", "as of"], rows, note=note, warning=warning,
                       empty="No provider with a default model: %llm prices MODEL -p ID."))


def cmd_budget(magics: LLMMagics, argv: list[str]) -> None:
    """``%llm budget`` | ``set USD [--period P] [--provider ID] [--soft F] [--strict]`` |
    ``remove PERIOD [--provider ID]``."""
    ws = magics.ws
    if argv and argv[0] in ("set", "remove"):
        p = _Parser(prog=f"%llm budget {argv[0]}", add_help=False)
        if argv[0] == "set":
            p.add_argument("usd")
            p.add_argument("--period", default="day", choices=["day", "month", "total"])
            p.add_argument("--soft", type=float, default=0.8)
            p.add_argument("--strict", action="store_true")
        else:
            p.add_argument("period", choices=["day", "month", "total"])
        p.add_argument("-p", "--provider")
        args = p.parse_args(argv[1:])
        if argv[0] == "set":
            b = ws.budgets.set(args.usd, period=args.period, provider=args.provider,
                               soft=args.soft, strict=args.strict)
            print(f"Budget set: {b.label} (warns at {b.soft:.0%}"
                  f"{', strict' if b.strict else ''}).")
        else:
            done = ws.budgets.remove(args.period, provider=args.provider)
            print("Budget removed." if done else "No such budget (configured ones stay: "
                                                 "see c.Budgets.limits).")
        return
    if argv:
        raise _Parser(prog="%llm budget").error(
            "use: %llm budget | set USD [--period day|month|total] [-p ID] [--soft F] "
            "[--strict] | remove PERIOD [-p ID]")
    rows = [[s["period"], s["provider"] or "(all)", _usd(s["usd"]), _usd(s["spent"]),
             _usd(s["remaining"]), f"{s['soft']:.0%}", "yes" if s["strict"] else "",
             s["since"] or "ever", s["source"]] for s in ws.budgets.status()]
    magics._show(Table(["period", "provider", "limit", "spent", "left", "warn at", "strict",
                        "since (UTC)", "from"], rows,
                       empty="No budgets: %llm budget set 5 --period day"))


def period_total(magics: LLMMagics, period: str) -> None:
    """``%llm stats --today`` / ``--month``: the sums of the current UTC day / month."""
    ws = magics.ws
    today = datetime.now(timezone.utc).date()
    since = today if period == "today" else today.replace(day=1)
    rows = []
    for rec in ws.stats.all():
        t = ws.stats.total(since=since, provider=rec.provider, model=rec.model)
        if t.requests:
            rows.append([rec.provider, rec.model, str(t.requests), str(t.prompt_tokens),
                         str(t.completion_tokens), _usd(t.cost), str(t.errors)])
    total = ws.stats.total(since=since)
    label = "today" if period == "today" else f"since {since.isoformat()}"
    note = (f"{label} (UTC): {total.requests} requests, {total.prompt_tokens} prompt + "
            f"{total.completion_tokens} completion tokens, {_usd(total.cost)}")
    magics._show(Table(["provider", "model", "requests", "prompt", "completion", "cost",
                        "errors"], rows, note=note, empty=f"No usage {label} (UTC)."))
