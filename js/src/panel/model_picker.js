// The model picker: the registry's list for one provider, a Refresh button with a spinner,
// the added/removed diff after a refresh, and search for long lists.
import { h, replaceChildren, spinner, uid } from "../lib/dom.js";
import { formatContext, formatPricePerMillion, relativeTime } from "../lib/format.js";

export const MAX_OPTIONS = 500;
const DIFF_NAMES = 5;

/** Models whose id or name contains every word of `query` (case-insensitive). */
export function filterModels(models, query) {
  const words = String(query || "").toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return models;
  return models.filter((m) => {
    const hay = `${m.id} ${m.name || ""}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

/** One option's text: "id — Name · 128k ctx · $2.50/M in". */
export function modelLabel(m) {
  const parts = [m.name && m.name !== m.id ? `${m.id} — ${m.name}` : m.id];
  const ctx = formatContext(m.context_length);
  if (ctx) parts.push(ctx);
  const price = m.pricing ? formatPricePerMillion(m.pricing.prompt) : "";
  if (price) parts.push(`${price} in`);
  return parts.join(" · ");
}

function names(list) {
  const shown = list.slice(0, DIFF_NAMES).join(", ");
  return list.length > DIFF_NAMES ? `${shown}, … (+${list.length - DIFF_NAMES})` : shown;
}

/** "2 new: a, b · 1 removed: c" or "no changes". */
export function diffText(added = [], removed = []) {
  const parts = [];
  if (added.length) parts.push(`${added.length} new: ${names(added)}`);
  if (removed.length) parts.push(`${removed.length} removed: ${names(removed)}`);
  return parts.length ? parts.join(" · ") : "no changes";
}

export class ModelPicker {
  /**
   * @param {object} args
   * @param {string} args.providerId
   * @param {(op: string, payload: object, opts?: object) => Promise<any>} args.request
   * @param {(id: string) => void} args.onPick
   */
  constructor({ providerId, request, onPick }) {
    this.providerId = providerId;
    this.request = request;
    this.onPick = onPick;
    this.query = "";
    this.models = [];
    this.ownError = null;
    const searchId = uid("vj-search");
    const listId = uid("vj-models");
    this.refreshButton = h("button", {
      type: "button", class: "vj-btn", dataset: { action: "refresh-models" },
      onclick: () => this.load(true),
    }, "Refresh models");
    this.busyEl = h("span", { class: "vj-picker-busy" });
    this.statusEl = h("span", { class: "vj-picker-status", role: "status", "aria-live": "polite" });
    this.search = h("input", {
      type: "search", id: searchId, class: "vj-input vj-search", placeholder: "Search models",
      autocomplete: "off", spellcheck: false,
      oninput: () => { this.query = this.search.value; this.renderOptions(); },
    });
    this.select = h("select", {
      id: listId, class: "vj-model-list", size: 8, "aria-label": "Models",
      onchange: () => { if (this.select.value) this.onPick(this.select.value); },
    });
    this.countEl = h("span", { class: "vj-picker-count" });
    this.el = h("div", { class: "vj-picker", dataset: { providerId } },
      h("div", { class: "vj-picker-bar" }, this.refreshButton, this.busyEl, this.statusEl),
      h("label", { class: "vj-label-text", htmlFor: searchId, text: "Search models" }),
      this.search, this.select, this.countEl);
  }

  /** Ask the kernel for the list (cache first unless `refresh`). */
  async load(refresh = false) {
    this.ownError = null;
    this.refreshButton.disabled = true;
    const reply = await this.request("models", { provider: this.providerId, refresh },
      { timeoutMs: 120000 });
    this.refreshButton.disabled = false;
    if (!reply.ok) this.ownError = reply.error?.message || "Could not list the models.";
    this.renderStatus(this.lastState);
    return reply;
  }

  /** Apply the widget state: {models, models_provider, models_status, busy, last_error}. */
  update(state) {
    this.lastState = state;
    const mine = state.models_provider === this.providerId;
    const models = mine ? state.models || [] : [];
    if (models !== this.models) {
      this.models = models;
      this.renderOptions();
    }
    const busy = (state.busy || []).includes(`models:${this.providerId}`);
    this.el.setAttribute("aria-busy", busy ? "true" : "false");
    replaceChildren(this.busyEl, busy ? spinner("Fetching models…") : null);
    this.refreshButton.disabled = busy;
    this.renderStatus(state);
  }

  renderStatus(state) {
    if (!state) return;
    const status = state.models_provider === this.providerId ? state.models_status || {} : {};
    const busy = (state.busy || []).includes(`models:${this.providerId}`);
    let text = "";
    let kind = "info";
    if (busy) text = "";
    else if (this.ownError || status.error) {
      text = this.ownError || status.error;
      kind = "error";
    } else if (status.refreshed) {
      text = `Refreshed: ${status.count} models, ${diffText(status.added, status.removed)}`;
      kind = "ok";
    } else if (status.fetched_at) {
      text = `${status.count} models (fetched ${relativeTime(status.fetched_at)})`;
    }
    this.statusEl.className = `vj-picker-status vj-msg vj-msg-${kind}`;
    this.statusEl.textContent = text;
  }

  renderOptions() {
    const matches = filterModels(this.models, this.query);
    const shown = matches.slice(0, MAX_OPTIONS);
    const current = this.select.value || this.current;
    this.select.replaceChildren(...shown.map((m) => h("option", {
      value: m.id, text: modelLabel(m), selected: m.id === current,
    })));
    this.select.size = Math.min(8, Math.max(4, shown.length));
    let count = `${matches.length} of ${this.models.length} models`;
    if (matches.length > shown.length) count += ` (first ${shown.length} shown; refine the search)`;
    this.countEl.textContent = this.models.length ? count : "";
  }

  /** Highlight `id` (the form's default model) in the list, now and after each update. */
  highlight(id) {
    this.current = id || "";
    this.select.value = [...this.select.options].some((o) => o.value === id) ? id : "";
  }
}
