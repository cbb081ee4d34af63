// ConfigPanel front end (vj.panel(), %llm panel).
//
// A view of the kernel's provider store: it renders the synced, secret-free traits and sends
// every edit as a request that the kernel validates with the store's own rules.
import { h, icon, replaceChildren } from "./lib/dom.js";
import { displayLabel } from "./lib/format.js";
import { Messages, fingerprint } from "./lib/messages.js";
import { createRpc } from "./lib/rpc.js";
import { ProviderForm } from "./panel/provider_form.js";
import { renderProviderList } from "./panel/provider_list.js";
import { BudgetSection } from "./panel/budgets.js";

const TEST_TIMEOUT_MS = 120000;
/** The synced traits this view reads: the same names as ConfigPanel's in Python. */
export const TRAITS = ["providers", "selected", "schema", "models", "models_provider", "models_status", "busy", "last_error", "vault_location", "budgets"];
const MODEL_TRAITS = ["models", "models_provider", "models_status", "last_error"];

export class PanelView {
  constructor(model, el) {
    this.model = model;
    this.rpc = createRpc(model);
    /** @type {Map<string, any>} per-provider row state (confirmations, progress) */
    this.rows = new Map();
    /** per-provider messages, each kept only while the row is as it was (see rowState) */
    this.messages = new Messages();
    this.form = null;
    this.addButton = h("button", {
      type: "button", class: "vj-btn vj-btn-primary", dataset: { action: "add" },
      "aria-label": "Add provider", title: "Add a provider",
      onclick: () => this.openForm("add"),
    }, icon("add"), h("span", { text: "Add" }));
    this.listEl = h("div", { class: "vj-list-wrap" });
    this.editorEl = h("div", { class: "vj-editor-wrap" });
    this.budgetSection = new BudgetSection({
      request: (op, payload) => this.rpc.request(op, payload),
      providerLabel: (id) => {
        const p = this.state().providers.find((x) => x.id === id);
        return p ? p.name || p.id : id;
      },
    });
    this.root = h("div", { class: "vj-widget vj-panel", dataset: { vj: "config-panel" } },
      h("div", { class: "vj-header" },
        h("span", { class: "vj-title", role: "heading", "aria-level": "3", text: "LLM providers" }),
        this.addButton),
      this.listEl, this.editorEl, this.budgetSection.el,
      this.vaultEl = h("div", { class: "vj-vault-location", text: model.get("vault_location") || "" }));
    el.append(this.root);
    this.onVault = () => { this.vaultEl.textContent = model.get("vault_location") || ""; };
    model.on("change:vault_location", this.onVault);

    this.onBudgets = () => this.budgetSection.render(this.state().budgets, this.state().providers);
    model.on("change:budgets", this.onBudgets);
    this.onProviders = () => {
      this.renderList();
      this.onBudgets();
      this.form?.sync(this.state().providers);
      this.form?.syncModels(this.state()); // the picker's error may be about the old provider
      const waiting = this.pendingEdit;
      if (waiting && this.state().providers.some((p) => p.id === waiting)) {
        this.pendingEdit = null;
        this.openForm("edit", waiting);
      }
    };
    this.onSelected = () => this.renderList();
    this.onBusy = () => { this.renderList(); this.form?.syncModels(this.state()); };
    this.onModels = () => this.form?.syncModels(this.state());
    model.on("change:providers", this.onProviders);
    model.on("change:selected", this.onSelected);
    model.on("change:busy", this.onBusy);
    for (const name of MODEL_TRAITS) model.on(`change:${name}`, this.onModels);
    this.renderList();
    this.onBudgets();
  }

  state() {
    const m = this.model;
    return {
      providers: m.get("providers") || [],
      selected: m.get("selected"),
      schema: m.get("schema") || {},
      models: m.get("models") || [],
      models_provider: m.get("models_provider"),
      models_status: m.get("models_status") || {},
      busy: m.get("busy") || [],
      last_error: m.get("last_error"),
      budgets: m.get("budgets") || [],
    };
  }

  types() {
    return Object.fromEntries((this.state().schema.provider_types || []).map((t) => [t.value, t]));
  }

  /** What a row message is about: a message is dropped once any of these changes. */
  rowState(id) {
    const s = this.state();
    const p = s.providers.find((x) => x.id === id) || {};
    return fingerprint(p.version, p.key_source, p.api_key_hint, id === s.selected);
  }

  /** Show `message` on row `id` while the row stays in `state` (default: as it is now). */
  say(id, message, state = this.rowState(id)) {
    this.messages.set(id, message, state);
    this.renderList();
  }

  // -- list ----------------------------------------------------------------------------------
  renderList() {
    const s = this.state();
    const ids = new Set(s.providers.map((p) => p.id));
    for (const id of [...this.rows.keys()]) if (!ids.has(id)) this.rows.delete(id);
    this.messages.prune((id) => ids.has(id));
    // keep keyboard focus on the same button across re-renders
    const active = document.activeElement;
    let focus = null;
    if (active && this.listEl.contains(active)) {
      const row = active.closest("[data-provider-id]");
      focus = row && { id: row.dataset.providerId, action: active.dataset.action };
    }
    replaceChildren(this.listEl, renderProviderList({
      providers: s.providers, selected: s.selected, types: this.types(), rows: this.rows,
      messageOf: (p) => this.messages.get(p.id, this.rowState(p.id)),
      busy: s.busy, onAction: (action, id) => this.onAction(action, id),
    }));
    if (focus) this.focusRow(focus.id, focus.action);
  }

  focusRow(id, action) {
    const row = [...this.listEl.querySelectorAll("[data-provider-id]")].find((r) => r.dataset.providerId === id);
    const target = row && (row.querySelector(`[data-action="${action}"]`) || row.querySelector("button"));
    target?.focus();
  }

  setRow(id, patch) {
    this.rows.set(id, { ...(this.rows.get(id) || {}), ...patch });
    this.renderList();
  }

  async onAction(action, id) {
    const p = this.state().providers.find((x) => x.id === id);
    const typeNames = Object.fromEntries(Object.entries(this.types()).map(([k, t]) => [k, t.label]));
    const label = p ? displayLabel(p, typeNames) : id;
    const before = this.rowState(id); // what a reply to this action is about
    switch (action) {
      case "use": { // success shows as the row's "in use" badge; only a failure needs words
        const reply = await this.rpc.request("select", { provider: id });
        if (!reply.ok) this.say(id, { kind: "error", text: reply.error.message }, before);
        break;
      }
      case "edit":
        this.openForm("edit", id);
        break;
      case "test": {
        this.messages.delete(id);
        this.setRow(id, { testing: true });
        const reply = await this.rpc.request("test", { provider: id }, { timeoutMs: TEST_TIMEOUT_MS });
        const message = reply.ok
          ? { kind: "ok", text: `OK · ${reply.result.latency_ms} ms · “${reply.result.text}”` }
          : { kind: "error", text: reply.error.message };
        this.messages.set(id, message, before); // true of the provider as it was tested
        this.setRow(id, { testing: false });
        break;
      }
      case "delete":
        if (id === this.state().selected) {
          this.say(id, { kind: "info", text: `“${label}” is in use: select another provider first, then delete it.` });
          break;
        }
        this.messages.delete(id);
        this.setRow(id, { confirming: true });
        this.focusRow(id, "confirm-delete");
        break;
      case "cancel-delete":
        this.setRow(id, { confirming: false });
        this.focusRow(id, "delete");
        break;
      case "confirm-delete": {
        this.setRow(id, { confirming: false, deleting: true });
        const reply = await this.rpc.request("delete", { provider: id });
        if (reply.ok) {
          this.rows.delete(id);
          if (this.form && this.form.id === id) this.closeForm();
          this.renderList();
        } else {
          const text = reply.error.code === "PROVIDER_IN_USE"
            ? `Cannot delete “${label}”: it is in use. ${reply.error.message}`
            : reply.error.message;
          this.messages.set(id, { kind: "error", text }, before);
          this.setRow(id, { deleting: false });
          this.focusRow(id, "delete");
        }
        break;
      }
      default:
        break;
    }
  }

  // -- editor --------------------------------------------------------------------------------
  openForm(mode, id = null) {
    this.closeForm();
    const s = this.state();
    const provider = id ? s.providers.find((p) => p.id === id) : null;
    if (mode === "edit" && !provider) return;
    this.form = new ProviderForm({
      mode, provider, schema: s.schema,
      request: (op, payload, opts) => this.rpc.request(op, payload, opts),
      getState: () => this.state(),
      // the reply can overtake the providers update: open the editor once the row is there
      onCreated: (newId) => {
        if (this.state().providers.some((p) => p.id === newId)) this.openForm("edit", newId);
        else this.pendingEdit = newId;
      },
      onClose: () => { this.form = null; this.editorEl.replaceChildren(); this.addButton.focus(); },
    });
    replaceChildren(this.editorEl, this.form.el);
    if (mode === "edit") {
      this.form.syncModels(s);
      this.form.picker.load(false);
    }
    const first = this.form.el.querySelector("input:not([type=hidden]), select");
    first?.focus();
  }

  closeForm() {
    if (!this.form) return;
    this.form.destroy();
    this.form = null;
    this.editorEl.replaceChildren();
  }

  destroy() {
    this.closeForm(); // flushes a pending settings save: the last edit lands
    this.model.off("change:providers", this.onProviders);
    this.model.off("change:selected", this.onSelected);
    this.model.off("change:busy", this.onBusy);
    this.model.off("change:vault_location", this.onVault);
    this.model.off("change:budgets", this.onBudgets);
    for (const name of MODEL_TRAITS) this.model.off(`change:${name}`, this.onModels);
    this.rpc.dispose();
    this.root.remove();
  }
}

function render({ model, el }) {
  const view = new PanelView(model, el);
  return () => view.destroy();
}

export default { render };
