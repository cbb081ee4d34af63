// StatsBar front end (vj.stats_bar()): one compact line, expandable into a table.
//
// The line speaks of what it names: the selected provider · model and that model's figures
// (requests, prompt "in" / completion "out" tokens, cost, last use); the whole workspace's
// request count follows, labelled as such, when it differs.
import { h, replaceChildren, uid } from "./lib/dom.js";
import { formatCompact, formatCost, formatInt, relativeTime } from "./lib/format.js";

export const TICK_MS = 5000;
/** The synced traits this view reads: the same names as StatsBar's in Python. */
export const TRAITS = ["records", "totals", "active"];

const plural = (n, word) => `${formatInt(n)} ${word}${n === 1 ? "" : "s"}`;

/** False when no request of a record (or sum) reported usage: its tokens are unknown. */
export function tokensKnown(r) {
  return !(r.requests > 0 && (r.unreported || 0) >= r.requests);
}

/** Sum the usage records that `keep` accepts. */
function sum(records, keep) {
  const out = { requests: 0, prompt_tokens: 0, completion_tokens: 0, cost: null, last_used: null, unreported: 0 };
  for (const r of records) {
    if (!keep(r)) continue;
    out.requests += r.requests || 0;
    out.prompt_tokens += r.prompt_tokens || 0;
    out.completion_tokens += r.completion_tokens || 0;
    out.unreported += r.unreported || 0;
    if (r.cost !== null && r.cost !== undefined) out.cost = (out.cost || 0) + r.cost;
    if (r.last_used && (!out.last_used || r.last_used > out.last_used)) out.last_used = r.last_used;
  }
  return out;
}

/**
 * The line's parts, as {text, title}, from the synced traits (pure: unit-tested).
 * The figures are the shown model's (or the provider's, without a default model; or the
 * workspace's, with no provider selected).
 */
export function summary({ active, totals, records = [] }, now = Date.now()) {
  const t = totals || {};
  const a = active && active.id ? active : null;
  let scope = "this workspace (all providers)";
  let figures = t;
  if (a && a.model) {
    scope = `${a.model} on ${a.label}`;
    figures = sum(records, (r) => r.provider === a.id && r.model === a.model);
  } else if (a) {
    scope = `${a.label} (all models)`;
    figures = sum(records, (r) => r.provider === a.id);
  }
  const requests = figures.requests || 0;
  const all = t.requests || 0;
  // no price known: say nothing rather than spend the line on "cost —" (the table shows it)
  const cost = figures.cost === null || figures.cost === undefined ? "" : formatCost(figures.cost);
  return {
    provider: { text: a ? a.label : "No provider selected", title: "The provider in use (%%llm, ws.chat)" },
    model: { text: a ? a.model || "no default model" : "", title: "Its default model" },
    requests: { text: plural(requests, "request"), title: `Requests to ${scope}` },
    tokens: {
      // every request without reported usage: the tokens are unknown ("—"), never 0
      text: !tokensKnown(figures) ? "— tokens"
        : `${formatCompact(figures.prompt_tokens || 0)} in / ${formatCompact(figures.completion_tokens || 0)} out tokens`,
      title: `Tokens of ${scope}: prompt (in) / completion (out)`,
    },
    cost: { text: cost, title: `Cost in USD of ${scope}` },
    last: {
      text: figures.last_used ? `used ${relativeTime(figures.last_used, now)}` : "not used yet",
      title: `Last answer from ${scope}`,
    },
    all: {
      text: a && all !== requests ? `${formatInt(all)} in workspace` : "",
      title: "Requests to every provider and model of this workspace",
    },
  };
}

/** "today $0.12 of $5.00 day budget" from the synced totals ("" when nothing to say). */
export function todayText(t = {}) {
  const b = t.budget;
  if ((t.today_cost === null || t.today_cost === undefined) && !b) return "";
  const spent = b && b.period !== "day" ? `${b.period === "month" ? "this month" : "in total"} ${formatCost(b.spent)}`
    : `today ${formatCost(t.today_cost || 0)}`;
  return b ? `${spent} of ${formatCost(b.usd)} ${b.period === "total" ? "" : `${b.period} `}budget` : spent;
}

export class StatsView {
  constructor(model, el, { tickMs = TICK_MS } = {}) {
    this.model = model;
    this.expanded = false;
    const tableId = uid("vj-stats-table");
    this.parts = {};
    const part = (name) => (this.parts[name] = h("span", { class: `vj-stats-part vj-stats-${name}` }));
    this.chevron = h("span", { class: "vj-stats-chevron", "aria-hidden": "true" });
    this.button = h("button", {
      type: "button", class: "vj-stats-line", "aria-expanded": "false", "aria-controls": tableId,
      title: "Usage of the model in use. Click for every provider and model.",
      onclick: () => this.toggle(),
    }, this.chevron,
    h("span", { class: "vj-stats-who" }, part("provider"), part("model")),
    h("span", { class: "vj-stats-figures" }, part("requests"), part("tokens"), part("cost"), part("last"), part("all"),
      part("today")));
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
    this.tableWrap.hidden = !this.expanded;
    this.render();
  }

  render(now = Date.now()) {
    const totals = this.model.get("totals") || {};
    const s = summary({ active: this.model.get("active"), totals, records: this.model.get("records") || [] }, now);
    for (const [name, { text, title }] of Object.entries(s)) {
      this.parts[name].textContent = text;
      this.parts[name].title = title;
      this.parts[name].hidden = !text;
    }
    this.parts.today.textContent = todayText(totals);
    this.parts.today.title = "spent today (UTC) and the tightest budget";
    this.parts.today.hidden = !this.parts.today.textContent;
    this.root.dataset.requests = String(totals.requests || 0);
    if (this.expanded) this.renderTable(now);
  }

  renderTable(now) {
    const records = this.model.get("records") || [];
    const active = this.model.get("active") || {};
    if (!records.length) {
      replaceChildren(this.tableWrap, h("p", { class: "vj-empty", text: "No requests yet." }));
      return;
    }
    const cols = ["Provider", "Model", "Requests", "Prompt tokens", "Completion tokens", "Cost", "Errors", "Last used"];
    const cell = (i, text) => h("td", { class: i >= 2 && i <= 6 ? "vj-num" : null, dataset: { label: cols[i] }, text });
    replaceChildren(this.tableWrap, h("table", { class: "vj-table" },
      h("thead", {}, h("tr", {}, cols.map((c, i) => h("th", {
        scope: "col", text: c, class: i >= 2 && i <= 6 ? "vj-num" : null,
      })))),
      h("tbody", {}, records.map((r) => h("tr", {
        dataset: { provider: r.provider, model: r.model },
        class: r.provider === active.id && r.model === active.model ? "vj-current" : null, // the line's
      },
        cell(0, r.provider), cell(1, r.model), cell(2, formatInt(r.requests)),
        cell(3, tokensKnown(r) ? formatInt(r.prompt_tokens) : "—"),
        cell(4, tokensKnown(r) ? formatInt(r.completion_tokens) : "—"),
        cell(5, formatCost(r.cost)), cell(6, formatInt(r.errors)),
        cell(7, relativeTime(r.last_used, now)))))));
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
