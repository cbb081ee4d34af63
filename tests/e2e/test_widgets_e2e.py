"""The widgets in a real JupyterLab 4 (Chromium): cross-kernel sync, no key in a saved
notebook, a live stats bar after %%llm, and the sidebar.

Each test gives its kernels their own ``VIAGENT_HOME`` (set in the first cell), so tests do not
see each other's providers even though they share one server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _lab import ARTIFACTS, REPORT, FakeProvider, Lab

pytestmark = pytest.mark.e2e

KEY = "sk-PLANTED-e2e-0001-zyxwvutsrq"
SYNC_BUDGET_MS = 2000


@pytest.fixture
def home(lab: Lab, request: pytest.FixtureRequest) -> Path:
    path = lab.server.home / request.node.name
    path.mkdir(parents=True)
    return path


def setup_cell(home: Path, extra: str = "") -> str:
    return (f"import os\nos.environ['VIAGENT_HOME'] = {str(home)!r}\n"
            "import viagent_jupyter as vj\nws = vj.workspace()\n" + extra)


def expect(target: Any) -> Any:
    """Playwright's auto-retrying ``expect`` (imported late: without Playwright the browser
    fixture explains what is missing, instead of an import error at collection)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def row(panel: Any, pid: str) -> Any:
    return panel.locator(f'.vj-row[data-provider-id="{pid}"]')


_WAIT_FOR_TEXT_MS = """async ([button, target, expected]) => {
  const t0 = performance.now();
  const seen = () => target.textContent.includes(expected);
  const done = new Promise((resolve, reject) => {
    const mo = new MutationObserver(() => { if (seen()) { mo.disconnect(); resolve(); } });
    mo.observe(target, { subtree: true, childList: true, characterData: true });
    setTimeout(() => { mo.disconnect(); reject(new Error(`no "${expected}" after 10 s`)); }, 10000);
  });
  button.click();
  await done;
  return performance.now() - t0;
}"""


def click_and_time(lab: Lab, button: Any, target: Any, expected: str) -> float:
    """Click ``button``; milliseconds until ``target`` shows ``expected`` (in the page)."""
    return float(lab.page.evaluate(_WAIT_FOR_TEXT_MS,
                                   [button.element_handle(), target.element_handle(), expected]))


def test_an_edit_in_one_notebook_reaches_a_panel_on_another_kernel(
        lab: Lab, home: Path, fake_provider: FakeProvider) -> None:
    nb1 = lab.write_notebook("sync-1.ipynb", [setup_cell(home), "vj.panel()"])
    nb2 = lab.write_notebook("sync-2.ipynb", [setup_cell(home), "vj.panel()"])
    lab.start()
    lab.open(nb1)
    lab.run_cells(nb1)
    lab.open(nb2, split=True)
    lab.run_cells(nb2)
    p1 = lab.notebook(nb1).locator(".vj-panel")
    p2 = lab.notebook(nb2).locator(".vj-panel")
    expect(p1).to_contain_text("No providers yet")
    expect(p2).to_contain_text("No providers yet")
    pids = lab.kernel_exec(nb1, "import os; print(os.getpid())") + \
        lab.kernel_exec(nb2, "import os; print(os.getpid())")
    assert len(set(pids.split())) == 2, "the notebooks must run on two kernels"

    p1.get_by_role("button", name="Add provider").click()
    form = p1.locator("form.vj-form")
    form.get_by_label("Id", exact=True).fill("shared")
    form.get_by_label("Type", exact=True).select_option("openai_compatible")
    form.get_by_label("Name", exact=True).fill("First")
    form.get_by_label("Base URL", exact=True).fill(fake_provider.url_for("openai_compatible"))
    form.get_by_label("Default model", exact=True).fill("demo-small")
    add_ms = click_and_time(lab, form.locator('[data-action="save"]'), p2, "First")

    # the new provider's editor opened in notebook 1: rename it there
    edit = p1.locator('form.vj-form[aria-label="Edit provider"]')
    expect(edit).to_be_visible()
    edit.get_by_label("Name", exact=True).fill("Renamed in notebook 1")
    rename_ms = click_and_time(lab, edit.locator('[data-action="save"]'), p2,
                               "Renamed in notebook 1")
    expect(edit.locator(".vj-form-status")).to_have_text("Saved.")
    expect(edit.locator(".vj-notice")).to_be_hidden()  # our own save is not a conflict

    line = (f"cross-kernel sync (notebook 1 -> notebook 2): add {add_ms:.0f} ms, "
            f"rename {rename_ms:.0f} ms")
    REPORT.append(line)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "e2e-latency.txt").write_text(line + "\n")
    assert add_ms < SYNC_BUDGET_MS and rename_ms < SYNC_BUDGET_MS, line

    # and back: notebook 2's kernel changes it while notebook 1's form is open and dirty
    edit.get_by_label("Name", exact=True).fill("Unsaved in notebook 1")
    lab.kernel_exec(nb2, "ws.providers.update('shared', name='Changed by kernel 2')")
    notice = edit.locator(".vj-notice")
    expect(notice).to_contain_text("changed in another notebook or kernel")
    edit.locator('[data-action="save"]').click()
    expect(notice).to_contain_text("was changed elsewhere")  # PROVIDER_CONFLICT from the store
    expect(row(p1, "shared")).to_contain_text("Changed by kernel 2")
    lab.screenshot("e2e-two-notebooks")
    assert not lab.console_errors(), lab.console_errors()


def test_a_typed_key_is_not_in_the_saved_notebook(lab: Lab, home: Path,
                                                  lab_server: Any) -> None:
    nb = lab.write_notebook("key.ipynb", [
        setup_cell(home, "ws.providers.create(id='keyed', provider_type='openai', "
                         "name='Keyed')"),
        "vj.panel()"])
    lab.start()
    lab.open(nb)
    lab.run_cells(nb)
    panel = lab.notebook(nb).locator(".vj-panel")
    expect(row(panel, "keyed").locator(".vj-key")).to_have_text("Key missing")
    row(panel, "keyed").get_by_role("button", name="Edit Keyed (OpenAI)").click()
    form = panel.locator('form.vj-form[aria-label="Edit provider"]')
    key_input = form.get_by_label("API key", exact=True)
    assert key_input.get_attribute("type") == "password"
    key_input.fill(KEY)
    form.locator('[data-action="save"]').click()
    expect(row(panel, "keyed").locator(".vj-key")).to_have_text("Key stored (sk-…tsrq)")
    assert key_input.input_value() == ""
    assert KEY not in panel.inner_html()
    assert lab.kernel_exec(nb, "print(ws.providers.resolve_key('keyed')[1])").strip() == "stored"

    lab.save(nb)
    saved = (lab_server.root / nb).read_text()
    meta = json.loads(saved)["metadata"]
    state = meta["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(m["state"].get("providers") for m in state.values()), "widget state was not saved"
    assert "Keyed" in saved
    assert KEY not in saved
    for path in lab_server.root.rglob("*"):  # checkpoints too
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert not lab.console_errors(), lab.console_errors()


def test_a_displayed_stats_bar_updates_after_a_llm_cell(lab: Lab, home: Path,
                                                        fake_provider: FakeProvider) -> None:
    url = fake_provider.url_for("openai_compatible")
    nb = lab.write_notebook("stats.ipynb", [
        setup_cell(home, f"ws.providers.create(id='fake', provider_type='openai_compatible', "
                         f"name='Fake', base_url={url!r}, default_model='demo-small')\n"
                         "ws.providers.select('fake')\n"
                         "ws.pricing.set('fake', 'demo-small', input_per_mtok=1000, "
                         "output_per_mtok=1000)\nws.budgets.set(5)"),
        "vj.stats_bar()",
        "%load_ext viagent_jupyter",
        "%%llm\nSay hello to the stats bar",
    ])
    lab.start()
    lab.open(nb)
    lab.run_cells(nb, [0, 1, 2])
    bar = lab.notebook(nb).locator(".vj-stats")
    expect(bar).to_have_attribute("data-requests", "0")
    expect(bar.locator(".vj-stats-provider")).to_have_text("Fake (OpenAI-compatible)")
    expect(bar.locator(".vj-stats-last")).to_have_text("not used yet")
    expect(bar.locator(".vj-stats-today")).to_have_text("today $0.00 of $5.00 day budget")

    lab.run_cells(nb, [3])  # only the %%llm cell: the bar's cell is not run again
    cell = lab.notebook(nb).locator(".jp-Cell").nth(3)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("Say hello to the stats bar")
    expect(bar).to_have_attribute("data-requests", "1")
    expect(bar.locator(".vj-stats-requests")).to_have_text("1 request")
    expect(bar.locator(".vj-stats-last")).to_have_text("used just now")
    expect(bar.locator(".vj-stats-tokens")).to_contain_text(" in / ")
    assert "prompt (in) / completion (out)" in \
        (bar.locator(".vj-stats-tokens").get_attribute("title") or "")
    expect(bar.locator(".vj-stats-today")).to_have_text(
        re.compile(r"^today \$0\.0\d+ of \$5\.00 day budget$"))  # spent: a few tokens × $0.001

    bar.locator(".vj-stats-line").focus()
    lab.page.keyboard.press("Enter")  # keyboard: the line is a button
    table = bar.locator(".vj-stats-table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody td").nth(1)).to_have_text("demo-small")
    lab.screenshot("e2e-stats-bar", bar)
    assert not lab.console_errors(), lab.console_errors()


def test_the_sidebar_opens_and_stays_in_sync_with_an_inline_panel(lab: Lab, home: Path) -> None:
    pytest.importorskip("sidecar")
    nb = lab.write_notebook("sidebar.ipynb", [
        setup_cell(home, "for pid in ('one', 'two'):\n"
                         "    ws.providers.create(id=pid, provider_type='ollama',\n"
                         "                        name=pid.title())\n"
                         "ws.providers.select('one')"),
        "vj.sidebar(mode='sidecar')",  # the sidecar fallback (the lab extension has its own)
        "vj.panel()",
    ])
    lab.start()
    lab.open(nb)
    lab.run_cells(nb)
    side = lab.page.locator("#jp-right-stack .vj-panel")
    side_bar = lab.page.locator("#jp-right-stack .vj-stats")
    inline = lab.notebook(nb).locator(".jp-OutputArea .vj-panel")
    expect(side).to_be_visible()
    expect(side_bar).to_be_visible()
    expect(inline).to_be_visible()
    expect(row(side, "one")).to_have_attribute("aria-current", "true")

    # sidebar -> inline
    row(side, "two").get_by_role("button", name="Use Two (Ollama)").click()
    expect(row(inline, "two")).to_have_attribute("aria-current", "true")
    expect(side_bar.locator(".vj-stats-provider")).to_have_text("Two (Ollama)")
    # inline -> sidebar
    row(inline, "one").get_by_role("button", name="Edit One (Ollama)").click()
    form = inline.locator('form.vj-form[aria-label="Edit provider"]')
    form.get_by_label("Name", exact=True).fill("One, renamed inline")
    form.locator('[data-action="save"]').click()
    expect(row(side, "one").locator(".vj-label")).to_have_text("One, renamed inline")
    # a setting dragged inline shows in the sidebar (saved as you go); unset, the slider
    # rests at 1 ("provider default")
    slider = inline.locator('.vj-editor input[data-setting="temperature"]')
    slider.focus()
    for _ in range(4):
        lab.page.keyboard.press("ArrowRight")
    row(side, "one").get_by_role("button", name="Edit One, renamed inline (Ollama)").click()
    side_slider = side.locator('input[data-setting="temperature"]')
    expect(side_slider).to_have_attribute("data-value", "1.2")
    assert lab.kernel_exec(nb, "print(ws.providers.get('one').settings.temperature)").strip() \
        == "1.2"
    lab.screenshot("e2e-sidebar")
    assert not lab.console_errors(), lab.console_errors()


# -- the look: 250 px sidebar and full-width cell, light and dark ----------------------------
_SET_SIDEBAR_WIDTH = """(px) => {
  // LabShell's left | main | right split (private, but the only handle on the sizes)
  const hs = window.jupyterapp.shell._hsplitPanel;
  const w = hs.node.clientWidth;
  const left = hs.relativeSizes()[0] * w;
  hs.setRelativeSizes([left / w, (w - left - px) / w, px / w]);
}"""

_LAYOUT_FACTS = """(root) => {
  const box = (el) => el.getBoundingClientRect();
  const all = (sel) => [...root.querySelectorAll(sel)];
  const panel = root.querySelector('.vj-panel');
  const stats = root.querySelector('.vj-stats');
  const lineHeight = (el) => parseFloat(getComputedStyle(el).lineHeight) || 18;
  const title = root.querySelector('.vj-title');
  const fields = all('.vj-advanced .vj-field').map(box);
  const gaps = fields.slice(1).map((r, i) => r.top - fields[i].bottom).filter((g) => g >= 0);
  const textarea = root.querySelector('.vj-advanced textarea');
  return {
    width: box(panel).width,
    overflow: [panel, stats,
      ...all('.vj-editor, .vj-row, .vj-stats-table, .vj-budgets, .vj-budget-row')]
      .filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => el.className),
    sticksOut: [...panel.querySelectorAll('*')]  // what makes it overflow, if anything does
      .filter((el) => el.getClientRects().length && box(el).right > box(panel).right + 1)
      .slice(0, 5).map((el) => `${el.tagName}.${el.getAttribute('class')}`),
    titleLines: Math.round(box(title).height / lineHeight(title)),
    buttonsBeside: all('.vj-row-head').every((head) => {
      const [label, actions] = [head.querySelector('.vj-label'), head.querySelector('.vj-actions')];
      return box(actions).top - box(head).top <= 2 && box(actions).left >= box(label).right;
    }),
    statsLine: Math.round(box(stats.querySelector('.vj-stats-line')).height),
    statsSeps: stats.querySelectorAll('.vj-sep').length,
    advancedGaps: gaps,
    textareaInside: box(textarea).right <= box(panel).right - 4,
  };
}"""


def _layout(lab: Lab, root: Any) -> dict[str, Any]:
    return dict(lab.page.evaluate(_LAYOUT_FACTS, root.element_handle()))


def test_the_look_at_250_px_and_full_width_in_light_and_dark(
        lab: Lab, home: Path, fake_provider: FakeProvider) -> None:
    """Screenshots for a human look (saved under test-artifacts/e2e-look-*.png) and the layout
    facts behind them: nothing overflows (the Budgets section open too), the title stays on one
    line, each row's buttons sit beside its name, the stats line is at most two lines with no
    stray separator, the Advanced inputs are spaced and the headers box stays inside the panel.
    Look at them."""
    pytest.importorskip("sidecar")
    url = fake_provider.url_for("openai_compatible")
    nb = lab.write_notebook("look.ipynb", [
        setup_cell(home, f"ws.providers.create(id='fake', provider_type='openai_compatible', "
                         f"name='Local demo (offline)', base_url={url!r}, "
                         f"default_model='demo-small', api_key='sk-demo-not-a-real-key-1234')\n"
                         "ws.providers.create(id='oa', provider_type='openai', "
                         "name='<b>Work</b> OpenAI account', default_model='gpt-4o-mini')\n"
                         "ws.providers.select('fake')\n"
                         "ws.budgets.set(250, period='month', provider='fake', soft=0.5)\n"
                         "ws.budgets.set(5, provider='oa')\n"  # (an all-provider one would
                         # lengthen the stats line measured below)
                         "for q in ('hello', 'and again'):\n"
                         "    ws.chat(q, provider='fake').wait().text\n"
                         "ws.chat('big', provider='fake', model='demo-large').wait().text\n"),
        "vj.stats_bar()",
        "vj.panel()",
        "vj.sidebar(mode='sidecar')",  # the sidecar fallback (the lab extension has its own)
    ])
    lab.page.set_viewport_size({"width": 1500, "height": 2200})
    lab.start()
    lab.open(nb)
    lab.run_cells(nb)
    cells = lab.notebook(nb).locator(".jp-Cell")
    inline = cells.nth(2).locator(".vj-panel")
    side = lab.page.locator("#jp-right-stack .vj-sidebar")
    expect(side.locator(".vj-panel")).to_be_visible()
    lab.page.evaluate(_SET_SIDEBAR_WIDTH, 250)
    lab.page.wait_for_timeout(300)  # let Lumino lay the panels out

    for root in (inline, side.locator(".vj-panel")):  # the editor open, Advanced unfolded
        row(root, "fake").get_by_role("button", name="Edit Local demo (offline) "
                                      "(OpenAI-compatible)").click()
        expect(root.locator(".vj-option")).to_have_count(2)
        root.locator(".vj-advanced > summary").click()
    expect(row(inline, "oa").locator(".vj-label")).to_have_text("<b>Work</b> OpenAI account")
    for stats in (cells.nth(1).locator(".vj-stats"), side.locator(".vj-stats")):
        stats.locator(".vj-stats-line").click()
        expect(stats.locator(".vj-stats-table tbody tr")).to_have_count(2)
        expect(stats.locator(".vj-stats-requests")).to_have_text("2 requests")  # demo-small's
        expect(stats.locator(".vj-stats-all")).to_have_text("3 in workspace")
    for root in (inline, side.locator(".vj-panel")):  # Budgets (issue 14), unfolded
        root.locator(".vj-budgets > summary").click()
        budgets = root.locator(".vj-budget-row")
        expect(budgets).to_have_count(2)
        # (no price set: a known cost makes the stats line at 250 px a line longer than the
        # bound below; the live spend is tests/test_widgets_panel_budgets.py's)
        expect(budgets.nth(0).locator(".vj-budget-spend")).to_have_text(
            "$0.00 of $250.00 per month")
        expect(budgets.nth(0).locator(".vj-budget-scope")).to_have_text("Local demo (offline)")
        expect(budgets.nth(0).locator(".vj-budget-soft")).to_have_text("warns at 50%")
        expect(budgets.nth(1).locator(".vj-budget-spend")).to_have_text("$0.00 of $5.00 per day")
        expect(budgets.nth(1).locator(".vj-budget-scope")).to_have_text(
            "<b>Work</b> OpenAI account")
        expect(root.get_by_label("Period", exact=True)).to_be_visible()
    lab.page.evaluate("() => document.activeElement && document.activeElement.blur()")

    narrow = _layout(lab, side)
    wide = _layout(lab, lab.notebook(nb).locator(".jp-Notebook").first)  # the cells' widgets
    REPORT.append(f"layout: sidebar panel {narrow['width']:.0f} px, cell panel "
                  f"{wide['width']:.0f} px")
    assert 230 <= narrow["width"] <= 250, narrow
    for facts in (narrow, wide):
        assert facts["overflow"] == [], facts
        assert facts["titleLines"] == 1, facts
        assert facts["buttonsBeside"], facts  # on the name's first line, not a row below
        assert facts["statsSeps"] == 0, facts
        assert facts["advancedGaps"] and min(facts["advancedGaps"]) >= 6, facts
        assert facts["textareaInside"], facts
    # who, then the figures: two lines in a cell, three at most at 250 px (it was four)
    assert wide["statsLine"] <= 50 and narrow["statsLine"] <= 64, (wide, narrow)

    for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        lab.page.evaluate("(theme) => window.jupyterapp.commands.execute("
                          "'apputils:change-theme', {theme})", theme)
        expect(lab.page.locator("body")).to_have_attribute("data-jp-theme-name", theme)
        lab.page.wait_for_timeout(400)  # let the theme's stylesheet apply
        lab.screenshot(f"e2e-look-{name}-250px-sidebar", lab.page.locator("#jp-right-stack"))
        for part, sel in (("stats", ".vj-stats"), ("list", ".vj-list-wrap"),
                          ("form", "form.vj-form"), ("settings", ".vj-settings"),
                          ("budgets", ".vj-budgets")):
            lab.screenshot(f"e2e-look-{name}-250px-{part}", side.locator(sel))
        lab.screenshot(f"e2e-look-{name}-full-stats", cells.nth(1))
        lab.screenshot(f"e2e-look-{name}-full-panel", cells.nth(2))
        lab.screenshot(f"e2e-look-{name}-lab")
    # the Add form of the sidebar: no stray "null", a model example per type
    side.locator('[data-action="add"]').click()
    add = side.locator('form.vj-form[aria-label="Add a provider"]')
    expect(add).to_contain_text("Keep for this session only")
    assert "null" not in add.inner_text()
    add.get_by_label("Type", exact=True).select_option("anthropic")
    expect(add.get_by_label("Default model", exact=True)).to_have_attribute(
        "placeholder", "e.g. claude-3-5-haiku-latest")
    add.get_by_label("Type", exact=True).select_option("openai_compatible")
    lab.screenshot("e2e-look-dark-250px-add", add)  # (the dark theme is still on)
    add.locator('[data-action="close"]').click()
    assert not lab.console_errors(), lab.console_errors()
