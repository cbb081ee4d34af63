// The model picker: the registry's list for one provider, a Refresh button with a spinner,
// the added/removed diff after a refresh, and a searchable list (a search box driving an ARIA
// listbox: type to filter, Up/Down to move, Enter or a click to pick).
import { h, icon, replaceChildren, spinner, uid } from "../lib/dom.js";
import { formatContext, formatPricePerMillion, relativeTime } from "../lib/format.js";
import { Messages, fingerprint } from "../lib/messages.js";

export const MAX_OPTIONS = 500;
const DIFF_NAMES = 5;
const NO_STATUS = Object.freeze({});

/** Models whose id or name contains every word of `query` (case-insensitive). */
export function filterModels(models, query) {
  const words = String(query || "").toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return models;
  return models.filter((m) => {
    const hay = `${m.id} ${m.name || ""}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

/** An option's second line: "Name · 128k ctx · $2.50/M in" (empty when there is nothing). */
export function modelDetail(m) {
  const parts = [];
  if (m.name && m.name !== m.id) parts.push(m.name);
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
    /** the list's error, kept while the provider is as it was (a stored key clears it) */
    this.notes = new Messages();
    this.providerState = "";
    const searchId = uid("vj-search");
    this.listId = uid("vj-models");
    this.refreshButton = h("button", {
      type: "button", class: "vj-btn vj-btn-small", dataset: { action: "refresh-models" },
      title: "Ask the provider for its current list", onclick: () => this.load(true),
    }, icon("refresh"), h("span", { text: "Refresh" }));
    this.busyEl = h("span", { class: "vj-picker-busy" });
    this.statusEl = h("span", { class: "vj-picker-status", role: "status", "aria-live": "polite" });
    this.search = h("input", {
      type: "search", id: searchId, class: "vj-input vj-search", placeholder: "Search models",
      autocomplete: "off", spellcheck: false, role: "combobox", "aria-expanded": "true",
      "aria-controls": this.listId, "aria-autocomplete": "list",
      oninput: () => { this.query = this.search.value; this.active = 0; this.renderOptions(); },
      onkeydown: (e) => this.onKey(e),
    });
    this.list = h("ul", {
      id: this.listId, class: "vj-model-list", role: "listbox", "aria-label": "Models",
      onclick: (e) => { const li = e.target.closest("[data-model]"); if (li) this.pick(li.dataset.model); },
    });
    this.countEl = h("span", { class: "vj-picker-count" });
    this.el = h("div", { class: "vj-picker", dataset: { providerId } },
      h("div", { class: "vj-picker-bar" },
        h("label", { class: "vj-label-text", htmlFor: searchId, text: "Models" }),
        this.countEl, this.refreshButton),
      h("div", { class: "vj-search-wrap" }, icon("search"), this.search),
      this.list,
      h("div", { class: "vj-picker-foot" }, this.busyEl, this.statusEl));
    this.shown = [];
    this.active = 0;
  }

  /** Ask the kernel for the list (cache first unless `refresh`). */
  async load(refresh = false) {
    this.notes.delete("error");
    this.refreshButton.disabled = true;
    const asked = this.providerState;
    const reply = await this.request("models", { provider: this.providerId, refresh },
      { timeoutMs: 120000 });
    this.refreshButton.disabled = false;
    if (!reply.ok) this.notes.set("error", reply.error?.message || "Could not list the models.", asked);
    this.renderStatus(this.lastState);
    return reply;
  }

  /** Apply the widget state: {models, models_provider, models_status, busy, last_error}. */
  update(state) {
    this.lastState = state;
    const p = (state.providers || []).find((x) => x.id === this.providerId) || {};
    const before = this.providerState;
    this.providerState = fingerprint(p.version, p.key_source, p.api_key_hint);
    const failed = this.notes.get("error", before);
    const mine = state.models_provider === this.providerId;
    const status = (mine && state.models_status) || NO_STATUS;
    if (status !== this.status) { // a new answer from the kernel
      this.status = status;
      if (status.error) this.notes.set("error", status.error, this.providerState);
      else if (status.fetched_at) this.notes.delete("error");
    } else if (failed && before !== this.providerState) {
      this.load(false); // the provider changed (a key was stored?): the error may be gone
    }
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
    const error = this.notes.get("error", this.providerState);
    let text = "";
    let kind = "info";
    if (busy) text = "";
    else if (error) {
      text = error;
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

  /** Keyboard on the search box: Up/Down move through the list, Enter picks. */
  onKey(e) {
    const n = this.shown.length;
    if (!n) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.renderActive()?.scrollIntoView?.({ block: "nearest" }); // only when the user moves
    } else if (e.key === "Enter") {
      e.preventDefault(); // not the form's submit
      this.pick(this.shown[this.active].id);
    }
  }

  pick(id) {
    this.highlight(id);
    this.onPick(id);
  }

  renderOptions() {
    const matches = filterModels(this.models, this.query);
    this.shown = matches.slice(0, MAX_OPTIONS);
    this.list.replaceChildren(...this.shown.map((m, i) => {
      const detail = modelDetail(m);
      return h("li", {
        id: `${this.listId}-${i}`, class: "vj-option", role: "option", dataset: { model: m.id },
        "aria-selected": m.id === this.current ? "true" : "false",
      }, h("span", { class: "vj-option-id", text: m.id }),
      detail ? h("span", { class: "vj-option-detail", text: detail }) : null);
    }));
    if (!this.shown.length) {
      this.list.append(h("li", { class: "vj-option-empty", role: "presentation",
        text: this.models.length ? "No model matches the search." : "No models listed yet." }));
    }
    let count = this.models.length ? `${matches.length} of ${this.models.length}` : "";
    if (matches.length > this.shown.length) count += ` (first ${this.shown.length} shown)`;
    this.countEl.textContent = count;
    this.renderActive();
  }

  renderActive() {
    const items = this.list.querySelectorAll("[role=option]");
    items.forEach((li, i) => li.classList.toggle("vj-active", i === this.active));
    const li = items[this.active];
    if (li) this.search.setAttribute("aria-activedescendant", li.id);
    else this.search.removeAttribute("aria-activedescendant");
    return li;
  }

  /** Mark `id` (the form's default model) as the chosen one, now and after each update. */
  highlight(id) {
    this.current = id || "";
    for (const li of this.list.querySelectorAll("[role=option]")) {
      li.setAttribute("aria-selected", li.dataset.model === this.current ? "true" : "false");
    }
  }
}
