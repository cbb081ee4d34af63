"""The ConfigPanel's key notice (issue 11 item 1) and Budgets section (issue 14), without a
browser: the recording comm of test_widgets stands in for the front end, the workspace and the
loopback provider are real."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import test_budgets
import test_widgets
from test_budgets import PROMPT, add
from test_widgets import KEY, ask

import viagent_jupyter as vj
from viagent_jupyter import Workspace
from viagent_jupyter.widgets import ConfigPanel

# the fixtures: a recording comm per widget (checked for planted keys), a loopback provider
comms, widgets, server = test_widgets.comms, test_widgets.widgets, test_budgets.server


# -- issue 11 item 1: the panel says why a stored key was cleared --------------------------------
def test_a_cleared_key_shows_its_notice_until_a_key_is_stored_again(widgets: list[Any],
                                                                    ws: Workspace) -> None:
    panel = ConfigPanel(ws)
    widgets.append(panel)
    assert ask(panel, "create", fields={"id": "oa", "provider_type": "openai", "name": "Work",
                                        "base_url": "https://a.example/v1"}, api_key=KEY)["ok"]
    assert not panel.providers[0].get("key_notice")

    reply = ask(panel, "update", provider="oa", fields={"base_url": "https://b.example/v1"})
    assert reply["ok"], reply
    row = panel.providers[0]
    assert row["key_source"] == "none" and not row["has_api_key"]  # the key did not follow
    assert "origin changed (https://a.example:443 → https://b.example:443)" in row["key_notice"]
    # the browser was told (the row renders it: js/test/config_panel.test.js)
    assert panel.comm.updates()[-1]["providers"][0]["key_notice"] == row["key_notice"]

    assert ask(panel, "set_key", provider="oa", api_key=KEY)["ok"]
    assert panel.providers[0]["key_source"] == "stored"
    assert not panel.providers[0].get("key_notice")  # a key stored again answers it
    assert not panel.comm.updates()[-1]["providers"][0].get("key_notice")


# -- issue 14: budgets in the panel ----------------------------------------------------------------
def test_the_panel_sets_and_removes_budgets_and_shows_the_spend_live(
        widgets: list[Any], ws: Workspace, server: Any) -> None:
    pid = add(ws, server)
    panel = ConfigPanel(ws)
    widgets.append(panel)
    assert panel.budgets == []

    reply = ask(panel, "budget_set", usd="5", period="day", provider=None)
    assert reply["ok"] and reply["result"] == {"period": "day", "provider": None, "usd": "5.00"}
    reply = ask(panel, "budget_set", usd="2.5", period="month", provider=pid)
    assert reply["ok"], reply
    assert {(b.period, b.provider, b.usd, b.source) for b in ws.budgets.list()} == {
        ("day", None, Decimal(5), "user"), ("month", pid, Decimal("2.5"), "user")}
    rows = {(r["period"], r["provider"]): r for r in panel.budgets}
    assert rows[("day", None)]["usd"] == "5.00" and rows[("day", None)]["spent"] == "0.00"
    assert rows[("month", pid)]["usd"] == "2.50" and rows[("month", pid)]["soft"] == 0.8
    assert rows[("month", pid)]["source"] == "user"
    assert panel.comm.updates()[-1]["budgets"] == panel.budgets  # the browser was told

    s = ws.chat(PROMPT, provider=pid)  # a chat: the stats change, the spend follows
    s.wait()
    assert s.cost_exact is not None and s.cost_exact > 0
    spent = {(r["period"], r["provider"]): r["spent"] for r in panel.budgets}
    want = f"{s.cost_exact:.4f}" if s.cost_exact < Decimal("0.01") else f"{s.cost_exact:.2f}"
    assert spent == {("day", None): want, ("month", pid): want}

    assert ask(panel, "budget_remove", period="month", provider=pid)["ok"]
    assert [(b.period, b.provider) for b in ws.budgets.list()] == [("day", None)]
    assert [(r["period"], r["provider"]) for r in panel.budgets] == [("day", None)]


def test_budget_errors_are_typed_one_line_replies(widgets: list[Any], ws: Workspace,
                                                  server: Any) -> None:
    pid = add(ws, server)
    panel = ConfigPanel(ws)
    widgets.append(panel)
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"usd": "-1", "period": "day"}, "VALIDATION_ERROR", "usd"),
        ({"usd": "", "period": "day"}, "VALIDATION_ERROR", "usd"),
        ({"usd": "abc", "period": "day"}, "VALIDATION_ERROR", "usd"),
        ({"usd": "3", "period": "week"}, "VALIDATION_ERROR", "period"),
        ({"usd": "3", "period": "day", "provider": 7}, "VALIDATION_ERROR", "provider"),
        ({"usd": "3", "period": "day", "provider": "nope"}, "PROVIDER_NOT_FOUND", None),
    ]
    for payload, code, field in cases:
        reply = ask(panel, "budget_set", **payload)
        assert reply["ok"] is False, payload
        assert reply["error"]["code"] == code, reply
        assert "\n" not in reply["error"]["message"] and reply["error"]["message"]
        if field:
            assert [e["field"] for e in reply["errors"]] == [field], reply
    reply = ask(panel, "budget_remove", period="day", provider=pid)  # none was set
    assert reply["error"]["code"] == "VALIDATION_ERROR"
    assert reply["error"]["message"] == (
        f"Invalid budget: there is no day budget for provider '{pid}' that you set (one from "
        "your config or your administrator is removed there).")
    assert ws.budgets.list() == [] and panel.budgets == []


def test_an_administrators_budget_is_shown_and_cannot_be_raised(
        widgets: list[Any], tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc-jupyter"
    etc.mkdir()
    (etc / "viagent.toml").write_text("[budgets]\nday = 2.0\n")
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(etc))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "user-jupyter"))
    with vj.Workspace(home=home) as admin_ws:
        panel = ConfigPanel(admin_ws)
        widgets.append(panel)
        assert [(r["period"], r["usd"], r["source"]) for r in panel.budgets] == [
            ("day", "2.00", "admin")]
        reply = ask(panel, "budget_set", usd="5", period="day")
        assert reply["error"]["code"] == "POLICY_REFUSED"
        assert "lower limit" in reply["error"]["message"]
        assert "\n" not in reply["error"]["message"]
        assert ask(panel, "budget_remove", period="day")["ok"] is False  # not the user's
        assert [r["source"] for r in panel.budgets] == ["admin"]
        panel.close()


def test_budgets_set_elsewhere_reach_the_panel(widgets: list[Any], ws: Workspace,
                                              home: Path) -> None:
    """A cell's ``ws.budgets.set`` shows at once; another kernel's on the next poll."""
    panel = ConfigPanel(ws)
    widgets.append(panel)
    ws.budgets.set(3, period="total")
    assert [(r["period"], r["usd"]) for r in panel.budgets] == [("total", "3.00")]
    with Workspace(home=home) as other:  # its own connection, as another kernel would have
        other.budgets.set(7, period="month")
    ws.poll()  # what the kernel's auto-refresh does every 0.25 s
    assert [(r["period"], r["usd"]) for r in panel.budgets] == [("month", "7.00"),
                                                                ("total", "3.00")]
    ws.budgets.remove("total")
    assert [r["period"] for r in panel.budgets] == ["month"]
