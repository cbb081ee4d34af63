// The Budgets section: the limits in force with their spend, a form to set one, Remove per row.
//
// Rows come from the kernel's `budgets` trait (ws.budgets.status(), amounts as USD strings);
// set and remove are requests the kernel validates with ws.budgets' own rules. A limit set
// by the administrator (or in the config file) is shown read-only.
import { h, replaceChildren, uid } from "../lib/dom.js";

const PERIODS = [["day", "per day"], ["month", "per month"], ["total", "in total"]];
const PERIOD_WORDS = Object.fromEntries(PERIODS);
const READ_ONLY = {
  admin: "set by your administrator",
  config: "set in your config (ipython_config.py)",
};

/** "$0.42 of $5.00 per day" */
export function spendText(b) {
  return `$${b.spent} of $${b.usd} ${PERIOD_WORDS[b.period] || b.period}`;
}

export class BudgetSection {
  /**
   * @param {{request: Function, providerLabel: (id: string) => string}} args
   */
  constructor({ request, providerLabel }) {
    this.request = request;
    this.providerLabel = providerLabel;
    this.listEl = h("div", { class: "vj-budget-list" });
    const id = (name) => uid(`vj-budget-${name}`);
    const ids = { usd: id("usd"), period: id("period"), provider: id("provider") };
    this.usdInput = h("input", {
      type: "number", class: "vj-input", id: ids.usd, min: 0, step: "any",
      placeholder: "USD", "aria-label": "Limit in USD", dataset: { field: "usd" },
    });
    this.periodSelect = h("select", { class: "vj-input", id: ids.period, "aria-label": "Period", dataset: { field: "period" } },
      PERIODS.map(([value, text]) => h("option", { value, text })));
    this.providerSelect = h("select", { class: "vj-input", id: ids.provider, "aria-label": "Provider", dataset: { field: "provider" } });
    this.errorEl = h("div", { class: "vj-form-error", role: "alert" });
    this.setButton = h("button", { type: "submit", class: "vj-btn vj-btn-small vj-btn-primary", dataset: { action: "budget-set" } }, "Set");
    this.form = h("form", {
      class: "vj-budget-form", novalidate: true, "aria-label": "Set a budget",
      onsubmit: (e) => { e.preventDefault(); this.set(); },
      oninput: () => this.clearError(),
    },
    h("span", { class: "vj-budget-dollar", "aria-hidden": "true", text: "$" }), this.usdInput,
    this.periodSelect, this.providerSelect, this.setButton);
    this.el = h("details", { class: "vj-budgets", dataset: { section: "budgets" } },
      h("summary", { text: "Budgets" }), this.listEl, this.form, this.errorEl);
  }

  /** Re-render from the traits (keeps the form's typed values and the open state). */
  render(budgets, providers) {
    const chosen = this.providerSelect.value;
    replaceChildren(this.providerSelect,
      h("option", { value: "", text: "all providers" }),
      providers.map((p) => h("option", { value: p.id, text: this.providerLabel(p.id) })));
    if (providers.some((p) => p.id === chosen)) this.providerSelect.value = chosen;
    if (!budgets.length) {
      replaceChildren(this.listEl, h("p", { class: "vj-help vj-budget-empty", text: "No budget: calls are not limited." }));
      return;
    }
    replaceChildren(this.listEl, h("ul", { class: "vj-budget-rows", "aria-label": "Budgets" },
      budgets.map((b) => this.row(b))));
  }

  row(b) {
    const scope = b.provider ? this.providerLabel(b.provider) : "all providers";
    const level = b.fraction >= 1 ? "over" : b.fraction >= b.soft ? "soft" : "ok";
    const readOnly = READ_ONLY[b.source];
    return h("li", {
      class: `vj-budget-row vj-budget-level-${level}`,
      dataset: { period: b.period, provider: b.provider || "", source: b.source },
    },
    h("span", { class: "vj-budget-spend", text: spendText(b) }),
    h("span", { class: "vj-budget-scope", title: scope, text: scope }),
    h("span", { class: "vj-budget-soft", text: `warns at ${Math.round(b.soft * 100)}%` }),
    readOnly
      ? h("span", { class: "vj-budget-readonly", text: readOnly })
      : h("button", {
        type: "button", class: "vj-btn vj-btn-small", dataset: { action: "budget-remove" },
        "aria-label": `Remove the budget of ${spendText(b)} for ${scope}`,
        onclick: () => this.remove(b),
      }, "Remove"));
  }

  clearError() {
    this.errorEl.textContent = "";
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  /** The kernel's error as one line; the fields it names are marked invalid. */
  showError(reply) {
    this.errorEl.textContent = reply.error?.message || "Not saved.";
    for (const e of reply.errors || []) {
      this.form.querySelector(`[data-field="${e.field}"]`)?.setAttribute("aria-invalid", "true");
    }
  }

  async set() {
    this.clearError();
    this.setButton.disabled = true;
    const reply = await this.request("budget_set", {
      usd: this.usdInput.value.trim(), period: this.periodSelect.value,
      provider: this.providerSelect.value || null,
    });
    this.setButton.disabled = false;
    if (reply.ok) this.usdInput.value = "";
    else this.showError(reply);
  }

  async remove(b) {
    this.clearError();
    const reply = await this.request("budget_remove", { period: b.period, provider: b.provider || null });
    if (!reply.ok) this.showError(reply);
  }
}
