"""Budgets: refused before any request, shared by processes, soft warning once."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _util import PLANTED_KEY
from traitlets.config import Config

import viagent_jupyter as vj
from viagent_jupyter.budgets import Budgets, BudgetWarning
from viagent_jupyter.testing import FakeProviderServer

PROMPT = "spend a little"


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(delay=0) as srv:
        yield srv


def add(ws: Any, srv: FakeProviderServer, pid: str = "oa", api_key: str | None = None,
        **settings: Any) -> str:
    ws.providers.create(id=pid, provider_type="openai", name=pid,
                        api_key=api_key or f"sk-test-{pid}-0001",
                        base_url=srv.url_for("openai"), default_model="demo-small",
                        settings=settings or {"max_tokens": 20})
    ws.pricing.set(pid, "demo-small", input_per_mtok=1000, output_per_mtok=1000)
    return pid


def chats(srv: FakeProviderServer) -> int:
    return sum(1 for r in srv.requests if r.method == "POST")


def one_call_cost(ws: Any, pid: str) -> Decimal:
    """What one PROMPT costs (then forgotten, so that the budget starts from zero)."""
    s = ws.chat(PROMPT, provider=pid)
    s.wait()
    assert s.cost_exact is not None and s.cost_exact > 0
    ws.stats.reset()
    return s.cost_exact


def test_refused_before_any_request_with_a_clear_error(ws: Any, server: FakeProviderServer,
                                                       caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    caplog.set_level(logging.DEBUG)
    pid = add(ws, server, api_key=PLANTED_KEY)
    c = one_call_cost(ws, pid)
    ws.budgets.set(c * 2, period="day")
    ws.chat(PROMPT, provider=pid).wait()
    ws.chat(PROMPT, provider=pid).wait()  # spent == the limit now
    sent = chats(server)
    s = ws.chat(PROMPT, provider=pid)
    with pytest.raises(vj.BudgetExceededError) as info:
        s.wait()
    err = info.value
    assert chats(server) == sent  # the server saw nothing
    assert isinstance(err, vj.ViagentError) and err.code == "BUDGET_EXCEEDED"
    msg = str(err)
    assert "\n" not in msg and "daily limit" in msg and "ws.budgets.set(" in msg
    assert "%llm budget set" in msg and err.spent == c * 2
    assert s.finish_reason == "error" and s.error is err
    assert PLANTED_KEY not in msg + repr(err) + caplog.text + repr(s)
    assert ws.stats.get(pid, "demo-small").requests == 2  # the refused call is not counted
    # raising the limit lets the next call through; a zero budget refuses the very first one
    ws.budgets.set(c * 10)
    ws.chat(PROMPT, provider=pid).wait()
    assert chats(server) == sent + 1
    ws.budgets.set(0, period="total")
    with pytest.raises(vj.BudgetExceededError, match=r"total limit of \$0\.00"):
        ws.chat(PROMPT, provider=pid).wait()
    assert chats(server) == sent + 1
    assert ws.budgets.remove("total") and not ws.budgets.remove("total")


def test_async_chat_is_refused_too(ws: Any, server: FakeProviderServer) -> None:
    import asyncio

    pid = add(ws, server)
    ws.budgets.set(0)

    async def main() -> None:
        try:
            with pytest.raises(vj.BudgetExceededError):
                await ws.achat(PROMPT, provider=pid).wait()
        finally:
            await ws.aclose()

    asyncio.run(main())
    assert chats(server) == 0


def test_soft_threshold_warns_once(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server)
    c = one_call_cost(ws, pid)
    ws.budgets.set(c * Decimal("3.5"), soft=0.5)
    seen = []
    for _ in range(4):  # spent before each call: 0, c, 2c (>= 50 %: warn), 3c (no 2nd warning)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ws.chat(PROMPT, provider=pid).wait()
        seen.append([str(w.message) for w in caught if w.category is BudgetWarning])
    assert [len(s) for s in seen] == [0, 0, 1, 0]
    assert "57% of the daily limit" in seen[2][0] and "ws.budgets.set(" in seen[2][0]
    with pytest.raises(vj.BudgetExceededError):
        ws.chat(PROMPT, provider=pid).wait()


def test_strict_budget_refuses_a_call_whose_worst_case_does_not_fit(
        ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server)
    ws.budgets.set(1, strict=True)  # $1; a token costs $0.001
    with pytest.raises(vj.BudgetExceededError, match=r"worst case \$5\.0"):
        ws.chat(PROMPT, provider=pid, max_tokens=5000).wait()
    ws.providers.update(pid, settings={"max_tokens": None})
    with pytest.raises(vj.BudgetExceededError, match="no max_tokens"):
        ws.chat(PROMPT, provider=pid).wait()
    assert chats(server) == 0
    ws.chat(PROMPT, provider=pid, max_tokens=50).wait()
    assert chats(server) == 1


def test_provider_budget_leaves_other_providers_alone(ws: Any, server: FakeProviderServer
                                                      ) -> None:
    a, b = add(ws, server, "a"), add(ws, server, "b")
    ws.budgets.set(0, period="month", provider="a")
    with pytest.raises(vj.BudgetExceededError, match=r"monthly limit .* for provider 'a'"):
        ws.chat(PROMPT, provider=a).wait()
    ws.chat(PROMPT, provider=b).wait()
    assert chats(server) == 1
    (budget,) = ws.budgets.list()
    assert (budget.period, budget.provider, budget.usd) == ("month", "a", 0)


def test_configured_budgets_and_validation(ws: Any) -> None:
    cfg = Config({"Budgets": {"limits": [{"usd": 2, "period": "month"},
                                         {"usd": "x", "period": "day"}]}})
    configured = Budgets(ws, config=cfg)
    (b,) = configured.list()  # the bad entry is skipped (logged)
    assert (b.usd, b.period, b.source) == (2, "month", "config")
    for bad in [dict(usd=-1), dict(usd=1, period="week"), dict(usd=1, soft=0)]:
        with pytest.raises(vj.ConfigValidationError):
            ws.budgets.set(**bad)


def test_a_dead_kernels_hold_expires(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server)
    ws.budgets.set(1)
    s = ws.chat(PROMPT, provider=pid)
    hold = ws.budgets.admit(s._plan.request, ws.pricing.for_provider(pid, "demo-small"))
    assert hold is not None  # never settled: as if the kernel died mid-call
    (status,) = ws.budgets.status()
    assert status["spent"] > 0
    ws.budgets.hold_ttl = 0.01
    time.sleep(0.05)
    (status,) = ws.budgets.status()
    assert status["spent"] == 0


def test_stats_total_per_day_month_provider(ws: Any, server: FakeProviderServer) -> None:
    pid = add(ws, server)
    ws.chat(PROMPT, provider=pid).wait()
    ws.chat(PROMPT, provider=pid).wait()
    today = datetime.now(timezone.utc).date()
    t = ws.stats.total(since=today)
    assert t.requests == 2 and t.cost == ws.stats.get(pid, "demo-small").cost
    assert ws.stats.total(since=today.replace(day=1), provider=pid, model="demo-small") \
        .requests == 2
    assert ws.stats.total(since=date(2999, 1, 1)).requests == 0
    assert ws.stats.total(provider="nobody").cost is None
    assert ws.stats.totals["today_cost"] == t.cost


# -- four processes share one budget -------------------------------------------------------------

def _spender(home: str, start: Any, out: Any) -> None:
    ws = vj.Workspace(home=home)
    calls = refusals = 0
    start.wait(30)
    while True:
        try:
            ws.chat(PROMPT, provider="oa").wait()
            calls += 1
        except vj.BudgetExceededError:
            refusals += 1
            today = ws.stats.total(since=datetime.now(timezone.utc).date()).cost or 0
            if today >= float(ws.budgets.list()[0].usd):
                break
            time.sleep(0.01)  # refused while others' calls were in flight: try again
    out.put((calls, refusals))
    ws.close()


@pytest.mark.slow
def test_four_processes_share_the_budget_and_overshoot_by_less_than_one_call(
        ws: Any, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: the spend passes a limit by at most the cost of the one call admitted last
    (every call here holds more than it spends: max_tokens=20)."""
    with FakeProviderServer(delay=0.01) as server:
        add(ws, server)
        c = one_call_cost(ws, "oa")
        limit = c * 12 + c / 3
        ws.budgets.set(limit)
        sent = chats(server)
        ctx = mp.get_context("spawn")
        start, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_spender, args=(str(home), start, out)) for _ in range(4)]
        for p in procs:
            p.start()
        start.set()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        calls = sum(r[0] for r in results)
        spent = Decimal(repr(ws.stats.total(since=datetime.now(timezone.utc).date()).cost))
        assert chats(server) - sent == calls  # no refused call reached the server
        assert ws.stats.get("oa", "demo-small").requests == calls
        assert limit <= spent < limit + c
        assert calls == 13
        assert sum(r[1] for r in results) >= 4  # every process was refused at the end


# -- the magic: %llm prices / budget / stats --today ------------------------------------------

@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=cfg)
    try:
        yield sh
    finally:
        sh.history_manager.end_session()
        InteractiveShell.clear_instance()


def test_magic_prices_budget_and_stats_today(ws: Any, server: FakeProviderServer, shell: Any,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from viagent_jupyter.magics import load, unload

    monkeypatch.setenv("VIAGENT_PRICES_URL", "off")
    pid = add(ws, server)
    ws.providers.select(pid)
    magics = load(shell, workspace=ws)
    shown: list[str] = []
    monkeypatch.setattr(magics, "_show", lambda obj: shown.append(obj.plain()))
    try:
        shell.run_line_magic("llm", "prices")
        assert "oa" in shown[-1] and "$1000" in shown[-1] and "user" in shown[-1]
        shell.run_line_magic("llm", "prices gpt-4o-mini -p oa")
        assert "$0.15" in shown[-1] and "bundled" in shown[-1] and "as of 2026" in shown[-1]
        shell.run_line_magic("llm", "prices gpt-4o-nonesuch")
        assert "unknown" in shown[-1]
        shell.run_line_magic("llm", "budget set 0.5 --period month --soft 0.9")
        assert "monthly limit of $0.50" in capsys.readouterr().out
        shell.run_line_magic("llm", "budget")
        assert "month" in shown[-1] and "$0.5000" in shown[-1] and "90%" in shown[-1]
        shell.run_line_magic("llm", "-- spend a little")
        shell.run_line_magic("llm", "stats --today")
        assert "today (UTC): 1 requests" in shown[-1] and "demo-small" in shown[-1]
        shell.run_line_magic("llm", "budget remove month")
        assert "Budget removed." in capsys.readouterr().out
        shell.run_line_magic("llm", "budget set 0")
        shell.run_line_magic("llm", "-- spend a little")  # refused: shown as one line
        out = capsys.readouterr()
        assert "Budget exceeded: the daily limit of $0.00" in out.out + out.err
        assert isinstance(magics.last_error, vj.BudgetExceededError)
    finally:
        unload(shell)


def test_stats_bar_shows_today_and_the_tightest_budget(ws: Any, server: FakeProviderServer
                                                       ) -> None:
    from viagent_jupyter.widgets.stats_bar import StatsBar

    pid = add(ws, server)
    ws.budgets.set(5)
    ws.budgets.set(100, period="month")
    ws.budgets.set(1, provider=pid)  # a provider's own budget is not the bar's
    bar = StatsBar(ws)
    assert bar.totals["budget"] == {"usd": 5.0, "spent": 0.0, "period": "day"}
    assert bar.totals["today_cost"] is None
    s = ws.chat(PROMPT, provider=pid)
    s.wait()
    assert bar.totals["today_cost"] == s.cost  # live: the chat's stats change resyncs it
    assert bar.totals["budget"] == {"usd": 5.0, "spent": s.cost, "period": "day"}
    bar.close()


def test_the_administrators_limits_apply_and_cannot_be_raised(
        tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch,
        server: FakeProviderServer) -> None:
    """admin.py's seam: ``[budgets]`` in viagent.toml binds every user's calls."""
    etc = tmp_path / "etc-jupyter"
    etc.mkdir()
    (etc / "viagent.toml").write_text("[budgets]\nday = 2.0\n[budgets.oa]\nmonth = 0\n")
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(etc))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "user-jupyter"))
    with vj.Workspace(home=home) as ws:
        pid = add(ws, server)
        got = {(b.period, b.provider, b.source): b.usd for b in ws.budgets.list()}
        assert got == {("day", None, "admin"): 2, ("month", "oa", "admin"): 0}
        with pytest.raises(vj.PolicyError, match="lower limit"):
            ws.budgets.set(5, period="day")
        ws.budgets.set(1, period="day")  # lowering is fine, and then it is the one in force
        assert {(b.period, b.source) for b in ws.budgets.list()} == {("day", "user"),
                                                                    ("month", "admin")}
        with pytest.raises(vj.BudgetExceededError,
                           match=r"monthly limit of \$0\.00 .*your administrator's"):
            ws.chat(PROMPT, provider=pid).wait()
        assert chats(server) == 0
