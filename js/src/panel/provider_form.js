// Add and edit forms. Validation is the store's: the form sends what the user typed and
// shows the {field, message} errors the kernel answers with; each error is kept only until
// its field is edited (see lib/messages.js). The API key field is write-only: the page never
// gets a stored key, and a typed key stays in the password box (never in widget state) until
// a save carrying it succeeds, so another field's error does not make the user type it again.
import { append, h, replaceChildren, spinner, uid } from "../lib/dom.js";
import { displayLabel, keyStatus } from "../lib/format.js";
import { Messages } from "../lib/messages.js";
import { ModelPicker } from "./model_picker.js";
import { SettingsEditor } from "./settings_editor.js";

/** The form's view of a provider snapshot: every value as the input shows it. */
export function providerValues(p) {
  return {
    name: p.name ?? "",
    provider_type: p.provider_type ?? "",
    base_url: p.base_url ?? "",
    default_model: p.default_model ?? "",
    timeout: p.timeout === undefined || p.timeout === null ? "" : String(p.timeout),
    max_retries: p.max_retries === undefined || p.max_retries === null ? "" : String(p.max_retries),
    allow_insecure_http: Boolean(p.allow_insecure_http),
    headers: Object.entries(p.headers || {}).map(([k, v]) => `${k}: ${v}`).join("\n"),
  };
}

/** The entries of `current` that differ from `initial`. */
export function changedFields(initial, current) {
  const out = {};
  for (const [k, v] of Object.entries(current)) if (initial[k] !== v) out[k] = v;
  return out;
}

/** "settings.temperature" -> "settings", "headers.X-Y" -> "headers". */
function topField(field) {
  return String(field || "").split(".")[0];
}

/** "must be 1-64 characters" -> "Must be 1-64 characters." (one sentence per message). */
export function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return "";
  return t[0].toUpperCase() + t.slice(1) + (/[.!?…]$/.test(t) ? "" : ".");
}

export class ProviderForm {
  /**
   * @param {object} args
   * @param {"add" | "edit"} args.mode
   * @param {any} [args.provider]  the snapshot to edit
   * @param {any} args.schema
   * @param {(op: string, payload: object, opts?: object) => Promise<any>} args.request
   * @param {() => any} args.getState  {providers, models, models_provider, models_status, busy}
   * @param {(id: string, label: string) => void} [args.onCreated]
   * @param {() => void} args.onClose
   */
  constructor({ mode, provider, schema, request, getState, onCreated, onClose }) {
    this.mode = mode;
    this.schema = schema;
    this.request = request;
    this.getState = getState;
    this.onCreated = onCreated;
    this.onClose = onClose;
    this.types = Object.fromEntries((schema.provider_types || []).map((t) => [t.value, t]));
    this.typeNames = Object.fromEntries(Object.entries(this.types).map(([k, t]) => [k, t.label]));
    this.fields = new Map();
    /** field errors (slot: field name, or "" for the form) kept until that field is edited */
    this.errors = new Messages();
    /** how often each field was edited: the state an error belongs to */
    this.edits = new Map();
    this.ownWrites = 0;
    this.provider = provider || null;
    this.id = provider ? provider.id : null;
    this.build();
    if (provider) this.load(provider);
    else {
      this.initial = this.readValues();
      this.onTypeChange();
    }
  }

  // -- building ------------------------------------------------------------------------------
  field(name, label, input, { help, wide } = {}) {
    const id = uid(`vj-${name}`);
    const errId = `${id}-err`;
    const helpEl = help ? h("div", { class: "vj-help", id: `${id}-help` }, help) : null;
    input.id = id;
    input.name = name;
    input.setAttribute("aria-describedby", helpEl ? `${id}-help ${errId}` : errId);
    const errorEl = h("div", { class: "vj-field-error", id: errId });
    const wrapper = h("div", { class: `vj-field${wide ? " vj-field-wide" : ""}`, dataset: { field: name } },
      h("label", { htmlFor: id, class: "vj-label-text", text: label }), input, helpEl, errorEl);
    this.fields.set(name, { input, errorEl, helpEl, wrapper, label });
    return wrapper;
  }

  build() {
    const text = (extra = {}) => h("input", { type: "text", class: "vj-input", autocomplete: "off", spellcheck: false, ...extra });
    const editing = this.mode === "edit";
    this.typeSelect = h("select", { class: "vj-input", onchange: () => this.onTypeChange() },
      (this.schema.provider_types || []).map((t) => h("option", { value: t.value, text: t.label })));
    this.keyInput = h("input", {
      type: "password", class: "vj-input", autocomplete: "new-password", spellcheck: false,
      placeholder: editing ? "type a new key to replace it" : "optional",
      "data-lpignore": "true", "data-1p-ignore": "true",
    });
    this.sessionOnly = h("input", { type: "checkbox", id: uid("vj-session") });
    this.keyStatusEl = h("div", { class: "vj-help vj-key-current" });
    this.removeKeyButton = h("button", {
      type: "button", class: "vj-btn vj-btn-small", dataset: { action: "remove-key" },
      onclick: () => this.removeKey(),
    }, "Remove key");
    this.insecure = h("input", { type: "checkbox" });
    this.noticeEl = h("div", { class: "vj-notice", role: "alert", hidden: true });
    this.formErrorEl = h("div", { class: "vj-form-error", role: "alert" });
    this.statusEl = h("div", { class: "vj-form-status", role: "status", "aria-live": "polite" });
    this.saveButton = h("button", { type: "submit", class: "vj-btn vj-btn-primary", dataset: { action: "save" } },
      editing ? "Save" : "Add provider");
    const closeButton = h("button", { type: "button", class: "vj-btn", dataset: { action: "close" }, onclick: () => this.close() },
      editing ? "Close" : "Cancel");
    this.titleEl = h("div", { class: "vj-form-title", role: "heading", "aria-level": "4" });

    const modelInput = text({ oninput: () => this.picker?.highlight(modelInput.value.trim()) });
    const grid = h("div", { class: "vj-grid" },
      editing ? null : this.field("id", "Id", text({ placeholder: "e.g. work-openai", required: true }),
        { help: "Used in %%llm -p ID and ws.chat(provider=ID); it cannot be changed later." }),
      this.field("provider_type", "Type", this.typeSelect),
      this.field("name", "Name", text({ placeholder: editing ? "" : "defaults to the id" })),
      this.field("base_url", "Base URL", text({ placeholder: "" })),
      this.field("default_model", "Default model", modelInput),
    );
    if (editing) {
      this.picker = new ModelPicker({
        providerId: this.id,
        request: this.request,
        onPick: (id) => { modelInput.value = id; this.onInput(); },
      });
      grid.append(h("div", { class: "vj-field vj-field-wide" }, this.picker.el));
    }
    const keyField = this.field("api_key", "API key", this.keyInput, { wide: true });
    append(keyField, [ // (append skips the null; Element.append would print "null")
      h("div", { class: "vj-inline" }, this.sessionOnly,
        h("label", { htmlFor: this.sessionOnly.id, text: "Keep for this session only (not saved to disk)" })),
      editing ? h("div", { class: "vj-inline" }, this.keyStatusEl, this.removeKeyButton) : null]);
    grid.append(keyField);

    const advanced = h("details", { class: "vj-advanced" }, h("summary", { text: "Advanced" }),
      h("div", { class: "vj-grid" },
        this.field("timeout", "Timeout (s)", h("input", { type: "number", class: "vj-input", step: "any", min: 0 })),
        this.field("max_retries", "Max retries", h("input", { type: "number", class: "vj-input", step: 1, min: 0 })),
        this.field("allow_insecure_http", "Allow plain http to a remote host", this.insecure,
          { help: "Only for trusted networks: the key would travel unencrypted." }),
        this.field("headers", "Extra headers", h("textarea", { class: "vj-input", rows: 3, spellcheck: false, placeholder: "Name: value (one per line)" }),
          { wide: true })));

    this.form = h("form", {
      class: "vj-form", novalidate: true, "aria-label": editing ? "Edit provider" : "Add a provider",
      onsubmit: (e) => { e.preventDefault(); this.save(); },
      oninput: (e) => this.onInput(e),
    }, this.titleEl, this.noticeEl, grid, advanced, this.formErrorEl,
    h("div", { class: "vj-form-actions" }, this.saveButton, closeButton), this.statusEl);

    this.el = h("section", { class: `vj-editor vj-editor-${this.mode}`, dataset: { mode: this.mode } }, this.form);
    if (editing) {
      this.settings = new SettingsEditor({
        specs: this.schema.settings || [],
        values: this.provider.settings || {},
        save: (values) => this.ownWrite(this.request("settings", { provider: this.id, settings: values })),
      });
      this.el.append(this.settings.el);
    }
    this.renderTitle();
  }

  renderTitle() {
    this.titleEl.textContent = this.mode === "edit"
      ? `Edit “${displayLabel(this.provider, this.typeNames)}”` : "Add a provider";
  }

  // -- values --------------------------------------------------------------------------------
  readValues() {
    const get = (name) => this.fields.get(name)?.input.value ?? "";
    const values = {
      provider_type: get("provider_type"),
      name: get("name"),
      base_url: get("base_url").trim(),
      default_model: get("default_model").trim(),
      timeout: get("timeout").trim(),
      max_retries: get("max_retries").trim(),
      allow_insecure_http: this.insecure.checked,
      headers: get("headers"),
    };
    if (this.mode === "add") values.id = get("id").trim();
    return values;
  }

  /** Put a snapshot into the inputs (never the key: the page never gets it). */
  load(p) {
    this.provider = p;
    const v = providerValues(p);
    for (const [name, value] of Object.entries(v)) {
      const f = this.fields.get(name);
      if (!f) continue;
      if (name === "allow_insecure_http") f.input.checked = value;
      else f.input.value = value;
    }
    this.initial = this.readValues();
    this.loadedVersion = p.version;
    if (this.knownVersion === undefined || p.version > this.knownVersion) this.knownVersion = p.version;
    this.hideNotice();
    this.renderTitle();
    this.renderKey();
    this.onTypeChange();
    this.picker?.highlight(p.default_model);
  }

  isDirty() {
    return Object.keys(changedFields(this.initial, this.readValues())).length > 0 ||
      this.keyInput.value !== "";
  }

  /** An edit: the status line and the edited field's error no longer hold. */
  onInput(event) {
    this.statusEl.textContent = "";
    const name = event?.target?.closest?.("[data-field]")?.dataset.field;
    if (name) this.edits.set(name, (this.edits.get(name) || 0) + 1);
    this.renderErrors();
  }

  /** The state a field's error belongs to: its edit count (never its value: think API key). */
  fieldState(name) {
    return String(this.edits.get(name) || 0);
  }

  onTypeChange() {
    const t = this.types[this.typeSelect.value] || {};
    const base = this.fields.get("base_url");
    base.input.placeholder = t.default_base_url ? `default: ${t.default_base_url}` : "required, e.g. http://localhost:8000/v1";
    this.fields.get("default_model").input.placeholder = t.model_example ? `e.g. ${t.model_example}` : "";
    const env = (t.env || []).map((e) => `$${e}`).join(" or ");
    const keyHelp = t.needs_key
      ? `Stored encrypted; never shown again.${env ? ` Without one, ${env} is used.` : ""}`
      : "Usually not needed for this type.";
    const f = this.fields.get("api_key");
    if (!f.helpEl) {
      f.helpEl = h("div", { class: "vj-help", id: `${f.input.id}-help` });
      f.input.after(f.helpEl);
      f.input.setAttribute("aria-describedby", `${f.input.id}-help ${f.errorEl.id}`);
    }
    f.helpEl.textContent = keyHelp;
  }

  renderKey() {
    if (this.mode !== "edit") return;
    const p = this.provider;
    const status = keyStatus(p, Boolean(this.types[p.provider_type]?.needs_key));
    this.keyStatusEl.textContent = `Current: ${status.text}`;
    this.keyStatusEl.dataset.keySource = p.key_source;
    this.removeKeyButton.hidden = !(p.key_source === "stored" || p.key_source === "session");
  }

  // -- the kernel's state --------------------------------------------------------------------
  /** The providers trait changed. Notice another kernel's edit of the provider being edited. */
  sync(providers) {
    if (this.mode !== "edit") return;
    const p = (providers || []).find((x) => x.id === this.id);
    if (!p) {
      this.showNotice(`“${displayLabel(this.provider, this.typeNames)}” was deleted in another notebook or kernel. ` +
        "Close this form; saving is not possible.", null);
      this.saveButton.disabled = true;
      return;
    }
    this.saveButton.disabled = false;
    if (this.ownWrites > 0) return; // our own write is on its way: judged once answered
    this.provider = p;
    this.renderKey();
    this.settings?.update(p.settings || {});
    if (p.version === this.loadedVersion) return;
    if (p.version <= this.knownVersion) { // a version we wrote ourselves
      if (!this.isDirty()) this.load(p);
      return;
    }
    if (!this.isDirty()) { // someone else changed it; nothing here to lose
      this.load(p);
      this.setStatus(`Updated from another notebook or kernel (version ${p.version}).`, "info");
      return;
    }
    this.showNotice(`“${displayLabel(p, this.typeNames)}” was changed in another notebook or kernel (now version ` +
      `${p.version}) while you were editing. Saving would overwrite that change, so it will be ` +
      "refused; load the latest values and apply your edit again.", p);
  }

  /** Models trait etc. changed. */
  syncModels(state) {
    this.picker?.update(state);
  }

  showNotice(text, latest) {
    const load = latest ? h("button", {
      type: "button", class: "vj-btn", dataset: { action: "load-latest" },
      onclick: () => { this.load(latest); this.knownVersion = latest.version; this.setStatus("Loaded the latest values.", "info"); },
    }, "Load latest values") : null;
    replaceChildren(this.noticeEl, h("span", { text }), load);
    this.noticeEl.hidden = false;
  }

  hideNotice() {
    this.noticeEl.hidden = true;
    this.noticeEl.replaceChildren();
  }

  // -- writing -------------------------------------------------------------------------------
  async ownWrite(promise) {
    this.ownWrites += 1;
    try {
      const reply = await promise;
      const v = reply.ok && reply.result ? reply.result.version : undefined;
      if (v !== undefined && this.knownVersion !== undefined && v === this.knownVersion + 1) this.knownVersion = v;
      return reply;
    } finally {
      this.ownWrites -= 1;
      if (this.ownWrites === 0) this.sync(this.getState().providers);
    }
  }

  clearErrors() {
    this.errors = new Messages();
    this.renderErrors();
  }

  /** Keep the kernel's {field, message} errors, each until its field is edited. */
  showErrors(reply) {
    const general = [];
    const byField = new Map();
    for (const e of reply.errors?.length ? reply.errors : []) {
      const name = topField(e.field);
      if (!this.fields.has(name)) general.push(`${e.field}: ${e.message}`);
      else byField.set(name, [...(byField.get(name) || []), sentence(e.message)]);
    }
    if (!reply.errors?.length) general.push(reply.error?.message || "Not saved.");
    for (const [name, lines] of byField) this.errors.set(name, lines, this.fieldState(name));
    const labels = [...byField.keys()].map((n) => this.fields.get(n).label);
    const summary = labels.length
      ? [`Not saved: check ${labels.join(", ")} (marked below).`] : [];
    this.errors.set("", [...summary, ...general.map(sentence)], this.formState());
    this.renderErrors();
    const firstInvalid = this.form.querySelector('[aria-invalid="true"]');
    if (firstInvalid) firstInvalid.focus();
  }

  /** The form-level errors hold until any field is edited. */
  formState() {
    return [...this.edits.values()].reduce((a, b) => a + b, 0);
  }

  renderErrors() {
    for (const [name, f] of this.fields) {
      const lines = this.errors.get(name, this.fieldState(name)) || [];
      f.errorEl.replaceChildren(...lines.map((t) => h("div", { text: t })));
      if (lines.length) f.input.setAttribute("aria-invalid", "true");
      else f.input.removeAttribute("aria-invalid");
    }
    const general = this.errors.get("", this.formState()) || [];
    this.formErrorEl.replaceChildren(...general.map((t) => h("div", { text: t })));
  }

  setStatus(text, kind = "info") {
    replaceChildren(this.statusEl, text ? h("span", { class: `vj-msg vj-msg-${kind}`, text }) : null);
  }

  async save() {
    if (this.saving) return;
    this.clearErrors();
    const values = this.readValues();
    const key = this.keyInput.value;
    const payload = { persist_key: !this.sessionOnly.checked };
    let op = "create";
    if (this.mode === "add") payload.fields = values;
    else {
      op = "update";
      payload.provider = this.id;
      payload.fields = changedFields(this.initial, values);
      payload.expected_version = this.knownVersion;
      if (!Object.keys(payload.fields).length && !key) {
        this.setStatus("Nothing to save.");
        return;
      }
    }
    // the key leaves in this one message, nowhere else: in its binary buffer, never its JSON
    // (which the kernel may log at DEBUG)
    const buffers = key ? [new TextEncoder().encode(key)] : undefined;
    this.saving = true;
    this.saveButton.disabled = true;
    replaceChildren(this.statusEl, spinner("Saving…"));
    const sent = this.request(op, payload, { buffers });
    const reply = this.mode === "edit" ? await this.ownWrite(sent) : await sent;
    this.saving = false;
    this.saveButton.disabled = false;
    if (reply.ok) {
      if (key && this.keyInput.value === key) this.keyInput.value = ""; // saved: never shown again
      if (this.mode === "add") {
        this.setStatus("Added.", "ok");
        this.onCreated?.(reply.result.provider);
        return;
      }
      this.initial = values;
      const keyNote = payload.persist_key ? " (key stored)" : " (key kept for this session)";
      this.setStatus(`Saved${key ? keyNote : ""}.`, "ok");
      this.sync(this.getState().providers);
      return;
    }
    this.setStatus("");
    if (reply.error?.code === "PROVIDER_CONFLICT" && this.mode === "add") {
      // "already exists": an error of the id, gone once the id is changed
      this.showErrors({ errors: [{ field: "id", message: reply.error.message }] });
    } else if (reply.error?.code === "PROVIDER_CONFLICT") {
      const latest = (this.getState().providers || []).find((x) => x.id === this.id);
      this.showNotice(reply.error.message, latest || null);
    } else this.showErrors(reply);
  }

  async removeKey() {
    this.removeKeyButton.disabled = true;
    const reply = await this.ownWrite(this.request("update", {
      provider: this.id, fields: {}, remove_key: true, expected_version: this.knownVersion,
    }));
    this.removeKeyButton.disabled = false;
    if (reply.ok) this.setStatus("Key removed.", "ok");
    else this.showErrors(reply);
  }

  close() {
    this.destroy();
    this.onClose();
  }

  destroy() {
    this.settings?.flush(); // the last edit always lands
  }
}
