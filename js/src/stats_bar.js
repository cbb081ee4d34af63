// StatsBar front end (vj.stats_bar()): one compact line, expandable into a table.
import { h, replaceChildren, uid } from "./lib/dom.js";
import { formatCompact, formatCost, formatInt, relativeTime } from "./lib/format.js";

export const TICK_MS = 5000;
/** The synced traits this view reads: the same names as StatsBar's in Python. */
export const TRAITS = ["records", "totals", "active"];

/** The line's parts, as text, from the synced traits (pure: unit-tested). */
export function summary({ active, totals }, now = Date.now()) {
  const t = totals || {};
  const requests = t.requests || 0;
  return {
    provider: active && active.label ? active.label : "No provider selected",
    model: active && active.model ? active.model : "no model",
    requests: `${formatInt(requests)} ${requests === 1 ? "request" : "requests"}`,
    tokens: `${formatCompact(t.prompt_tokens || 0)} / ${formatCompact(t.completion_tokens || 0)} tokens`,
    cost: t.cost === null || t.cost === undefined ? "cost —" : formatCost(t.cost),
    last: `last used ${relativeTime(t.last_used, now)}`,
  };
}

export class StatsView {
  constructor(model, el, { tickMs = TICK_MS } = {}) {
    this.model = model;
    this.expanded = false;
    const tableId = uid("vj-stats-table");
    this.parts = {};
    const part = (name, title) => (this.parts[name] = h("span", { class: `vj-stats-${name}`, title }));
    this.chevron = h("span", { class: "vj-stats-chevron", "aria-hidden": "true", text: "▸" });
    const sep = () => h("span", { class: "vj-sep", "aria-hidden": "true", text: "·" });
    this.button = h("button", {
      type: "button", class: "vj-stats-line", "aria-expanded": "false", "aria-controls": tableId,
      title: "Usage in this workspace (all providers). Click for the per-model table.",
      onclick: () => this.toggle(),
    }, this.chevron, part("provider"), sep(), part("model"), sep(),
    part("requests"), sep(), part("tokens", "prompt / completion tokens"), sep(),
    part("cost", "cost in USD (— when the provider reports none)"), sep(), part("last"));
    this.tableWrap = h("div", { class: "vj-stats-table", id: tableId, hidden: true });
    this.root = h("div", { class: "vj-widget vj-stats", dataset: { vj: "stats-bar" } },
      this.button, this.tableWrap);
    el.append(this.root);
    this.onChange = () => this.render();
    for (const name of TRAITS) model.on(`change:${name}`, this.onChange);
    this.timer = setInterval(() => this.render(), tickMs); // "12 s ago" keeps moving
    this.render();
  }

  toggle() {
    this.expanded = !this.expanded;
    this.button.setAttribute("aria-expanded", String(this.expanded));
    this.chevron.textContent = this.expanded ? "▾" : "▸";
    this.tableWrap.hidden = !this.expanded;
    this.render();
  }

  render(now = Date.now()) {
    const totals = this.model.get("totals") || {};
    const s = summary({ active: this.model.get("active"), totals }, now);
    for (const [name, text] of Object.entries(s)) this.parts[name].textContent = text;
    this.root.dataset.requests = String(totals.requests || 0);
    if (this.expanded) this.renderTable(now);
  }

  renderTable(now) {
    const records = this.model.get("records") || [];
    if (!records.length) {
      replaceChildren(this.tableWrap, h("p", { class: "vj-empty", text: "No requests yet." }));
      return;
    }
    const cols = ["Provider", "Model", "Requests", "Prompt", "Completion", "Cost", "Errors", "Last used"];
    const num = { class: "vj-num" };
    replaceChildren(this.tableWrap, h("table", { class: "vj-table" },
      h("thead", {}, h("tr", {}, cols.map((c, i) => h("th", {
        scope: "col", text: c, class: i >= 2 && i <= 6 ? "vj-num" : null,
      })))),
      h("tbody", {}, records.map((r) => h("tr", { dataset: { provider: r.provider, model: r.model } },
        h("td", { text: r.provider }),
        h("td", { text: r.model }),
        h("td", { ...num, text: formatInt(r.requests) }),
        h("td", { ...num, text: formatInt(r.prompt_tokens) }),
        h("td", { ...num, text: formatInt(r.completion_tokens) }),
        h("td", { ...num, text: formatCost(r.cost) }),
        h("td", { ...num, text: formatInt(r.errors) }),
        h("td", { text: relativeTime(r.last_used, now) }))))));
  }

  destroy() {
    clearInterval(this.timer);
    for (const name of TRAITS) this.model.off(`change:${name}`, this.onChange);
    this.root.remove();
  }
}

function render({ model, el }) {
  const view = new StatsView(model, el);
  return () => view.destroy();
}

export default { render };
