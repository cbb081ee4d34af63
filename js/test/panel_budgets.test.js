import { afterEach, beforeEach, describe, expect, it } from "vitest";
import widget, { TRAITS } from "../src/config_panel.js";
import { FakeModel, panelState, provider, settle } from "./fake_model.js";

let el;
let cleanup;

function mount(state) {
  const model = new FakeModel(panelState({ budgets: [], ...state }), { traits: TRAITS });
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  return model;
}

const $ = (sel) => el.querySelector(sel);
const $$ = (sel) => [...el.querySelectorAll(sel)];
const section = () => $('[data-section="budgets"]');
const rows = () => $$(".vj-budget-row");
const budget = (patch = {}) => ({
  period: "day", provider: null, usd: "5.00", spent: "0.42", soft: 0.8, strict: false,
  source: "user", since: "2026-12-05", fraction: 0.084, ...patch,
});
function type(inp, value) {
  inp.value = value;
  inp.dispatchEvent(new Event("input", { bubbles: true }));
}
const submit = () => $(".vj-budget-form").dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));

beforeEach(() => { document.body.replaceChildren(); });
afterEach(() => { cleanup?.(); cleanup = null; });

describe("budgets section", () => {
  it("is a collapsed details listing period, scope, spend of limit and the soft threshold", () => {
    mount({
      providers: [provider(), provider({ id: "cl", name: "Claude" })],
      budgets: [budget(), budget({ period: "month", provider: "cl", usd: "20.00", spent: "17.50", fraction: 0.875, soft: 0.5 })],
    });
    expect(section().tagName).toBe("DETAILS");
    expect(section().open).toBe(false);
    expect(section().querySelector("summary").textContent).toBe("Budgets");
    expect(rows()).toHaveLength(2);
    const [all, cl] = rows();
    expect(all.querySelector(".vj-budget-spend").textContent).toBe("$0.42 of $5.00 per day");
    expect(all.querySelector(".vj-budget-scope").textContent).toBe("all providers");
    expect(all.querySelector(".vj-budget-soft").textContent).toBe("warns at 80%");
    expect(cl.querySelector(".vj-budget-spend").textContent).toBe("$17.50 of $20.00 per month");
    expect(cl.querySelector(".vj-budget-scope").textContent).toBe("Claude");
    expect(cl.classList.contains("vj-budget-level-soft")).toBe(true); // past its soft threshold
    expect(all.classList.contains("vj-budget-level-ok")).toBe(true);
    // the provider select: all providers, then each provider
    const options = [...$('select[data-field="provider"]').options].map((o) => [o.value, o.textContent]);
    expect(options).toEqual([["", "all providers"], ["oa", "Work"], ["cl", "Claude"]]);
    expect([...$('select[data-field="period"]').options].map((o) => o.value)).toEqual(["day", "month", "total"]);
  });

  it("says when there is none and shows an administrator's limit read-only", () => {
    const model = mount({ providers: [provider()] });
    expect($(".vj-budget-empty").textContent).toBe("No budget: calls are not limited.");
    model.update({ budgets: [budget({ source: "admin", usd: "10.00" })] });
    expect($(".vj-budget-empty")).toBeNull();
    expect(rows()[0].querySelector(".vj-budget-readonly").textContent).toBe("set by your administrator");
    expect(rows()[0].querySelector("button")).toBeNull();
  });

  it("updates the spend live when the kernel's trait changes, keeping what was typed", () => {
    const model = mount({ providers: [provider()], budgets: [budget()] });
    section().open = true;
    type($('input[data-field="usd"]'), "7");
    $('select[data-field="provider"]').value = "oa";
    model.update({ budgets: [budget({ spent: "4.90", fraction: 0.98 })] }); // after a chat
    expect(rows()[0].querySelector(".vj-budget-spend").textContent).toBe("$4.90 of $5.00 per day");
    expect(rows()[0].classList.contains("vj-budget-level-soft")).toBe(true);
    model.update({ budgets: [budget({ spent: "5.01", fraction: 1.002 })] });
    expect(rows()[0].classList.contains("vj-budget-level-over")).toBe(true);
    expect(section().open).toBe(true);
    expect($('input[data-field="usd"]').value).toBe("7");
    expect($('select[data-field="provider"]').value).toBe("oa");
  });

  it("sets a budget with one request of the right shape and clears the amount", async () => {
    const model = mount({ providers: [provider()] });
    model.handler = () => ({ ok: true, result: { period: "month", provider: "oa", usd: "12.50" } });
    type($('input[data-field="usd"]'), "12.5");
    $('select[data-field="period"]').value = "month";
    $('select[data-field="provider"]').value = "oa";
    submit();
    await settle();
    const sent = model.sentOps("budget_set");
    expect(sent).toHaveLength(1);
    const { id, ...payload } = sent[0];
    expect(id).toBeTruthy();
    expect(payload).toEqual({ op: "budget_set", usd: "12.5", period: "month", provider: "oa" });
    expect($('input[data-field="usd"]').value).toBe("");
    expect($(".vj-budgets .vj-form-error").textContent).toBe("");
  });

  it("all providers is sent as null; the kernel's error shows as one line and marks the field", async () => {
    const model = mount({ providers: [provider()] });
    const message = "Invalid budget: usd must be a number of USD >= 0.";
    model.handler = () => ({ ok: false, error: { code: "CONFIG_INVALID", message }, errors: [{ field: "usd", message: "must be a number of USD >= 0" }] });
    type($('input[data-field="usd"]'), "-1");
    submit();
    await settle();
    expect(model.sentOps("budget_set")[0]).toMatchObject({ usd: "-1", period: "day", provider: null });
    expect($(".vj-budgets .vj-form-error").textContent).toBe(message);
    expect($('input[data-field="usd"]').getAttribute("aria-invalid")).toBe("true");
    type($('input[data-field="usd"]'), "1"); // editing clears it
    expect($(".vj-budgets .vj-form-error").textContent).toBe("");
    expect($('input[data-field="usd"]').hasAttribute("aria-invalid")).toBe(false);
  });

  it("Remove sends period and provider of its row", async () => {
    const model = mount({ providers: [provider()], budgets: [budget(), budget({ period: "total", provider: "oa" })] });
    model.handler = () => ({ ok: true, result: { removed: true } });
    rows()[1].querySelector('[data-action="budget-remove"]').click();
    await settle();
    expect(model.sentOps("budget_remove")).toEqual([expect.objectContaining({ op: "budget_remove", period: "total", provider: "oa" })]);
    rows()[0].querySelector('[data-action="budget-remove"]').click();
    expect(model.sentOps("budget_remove")[1]).toMatchObject({ period: "day", provider: null });
  });

  it("keeps provider names and messages inert", async () => {
    const evil = '<img src=x onerror="window.pwnedB=1">';
    const model = mount({ providers: [provider({ id: "ev", name: evil })], budgets: [budget({ provider: "ev" })] });
    model.handler = () => ({ ok: false, error: { code: "X", message: evil } });
    submit();
    await settle();
    expect($("img")).toBeNull();
    expect(rows()[0].querySelector(".vj-budget-scope").textContent).toBe(evil);
    expect(window.pwnedB).toBeUndefined();
  });
});
