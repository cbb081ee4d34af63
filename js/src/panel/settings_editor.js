// Model settings that save as you go: sliders and a number box with the schema's ranges
// (sent by the kernel from the pydantic model), debounced ~300 ms, the last value always
// landing (see createCoalescer).
import { createCoalescer } from "../lib/debounce.js";
import { h, uid } from "../lib/dom.js";

export const SAVE_DELAY_MS = 300;

/** Where an unset slider rests: the schema default, else 0 for a range around zero (the
 * penalties), else 1 or the top if lower (temperature and top_p: 1 is what providers assume). */
function restingValue(spec) {
  if (spec.default !== null && spec.default !== undefined) return spec.default;
  return (spec.minimum ?? 0) < 0 ? 0 : Math.min(1, spec.maximum);
}

function shortNumber(x) {
  return Number.isInteger(x) ? String(x) : String(Number(x.toFixed(3)));
}

export class SettingsEditor {
  /**
   * @param {object} args
   * @param {any[]} args.specs  schema.settings from the kernel
   * @param {Record<string, any>} args.values  the provider's current settings
   * @param {(values: Record<string, any>) => Promise<any>} args.save  resolves with the reply
   * @param {number} [args.delayMs]
   */
  constructor({ specs, values, save, delayMs = SAVE_DELAY_MS }) {
    this.specs = specs;
    this.errors = new Map();
    this.statusEl = h("span", { class: "vj-settings-status vj-msg", role: "status", "aria-live": "polite" });
    this.saver = createCoalescer(async (batch) => {
      this.setStatus("Saving…", "info");
      const reply = await save(batch);
      if (reply.ok) {
        for (const name of Object.keys(batch)) this.errors.delete(name);
      } else {
        const fieldErrors = (reply.errors || []).filter((e) => e.field.startsWith("settings."));
        for (const e of fieldErrors) this.errors.set(e.field.slice("settings.".length), e.message);
        if (!fieldErrors.length) {
          for (const name of Object.keys(batch)) this.errors.set(name, reply.error?.message || "not saved");
        }
      }
      this.renderErrors();
      // This batch counts as pending until this function has returned: settle the status
      // once nothing is queued or in flight any more (it used to stay at "Saving…").
      this.saver.idle().then(() => this.settled());
      return reply;
    }, delayMs);
    this.controls = new Map();
    const rows = specs.map((spec) => this.renderControl(spec));
    this.el = h("fieldset", { class: "vj-settings" },
      h("legend", { text: "Model settings" }),
      h("p", { class: "vj-help", text: "Saved as you change them." }),
      ...rows, this.statusEl);
    this.update(values);
  }

  renderControl(spec) {
    const id = uid(`vj-set-${spec.name}`);
    const errId = `${id}-err`;
    const errorEl = h("div", { class: "vj-field-error", id: errId });
    const valueEl = h("output", { class: "vj-setting-value", htmlFor: id });
    let input;
    if (spec.choices) { // reasoning: "" is the provider's default
      input = h("select", {
        id, class: "vj-input", dataset: { setting: spec.name }, "aria-describedby": errId,
        onchange: () => { this.saver.set(spec.name, input.value || null); this.saver.flush(); },
      }, h("option", { value: "", text: "provider default" }),
      ...spec.choices.map((c) => h("option", { value: c, text: c })));
    } else if (spec.integer) {
      const min = spec.minimum ?? (spec.exclusive_minimum !== undefined ? spec.exclusive_minimum + 1 : undefined);
      input = h("input", {
        type: "number", id, class: "vj-input vj-number", step: 1, min, max: spec.maximum,
        placeholder: "provider default", dataset: { setting: spec.name }, "aria-describedby": errId,
        oninput: () => {
          const raw = input.value.trim();
          if (raw === "") this.saver.set(spec.name, null);
          else if (Number.isFinite(input.valueAsNumber)) this.saver.set(spec.name, input.valueAsNumber);
        },
        onchange: () => this.saver.flush(),
        onblur: () => this.saver.flush(),
      });
    } else {
      input = h("input", {
        type: "range", id, class: "vj-range", min: spec.minimum, max: spec.maximum, step: spec.step,
        dataset: { setting: spec.name }, "aria-describedby": errId,
        oninput: () => {
          valueEl.textContent = shortNumber(input.valueAsNumber);
          this.saver.set(spec.name, input.valueAsNumber);
        },
        onchange: () => this.saver.flush(), // released: save now
      });
    }
    const reset = h("button", {
      type: "button", class: "vj-btn vj-btn-small", dataset: { action: `reset-${spec.name}` },
      "aria-label": `Reset ${spec.label} to the default`,
      onclick: () => { this.saver.set(spec.name, null); this.saver.flush(); },
    }, "Reset");
    this.controls.set(spec.name, { spec, input, valueEl, errorEl });
    return h("div", { class: "vj-setting" },
      h("label", { htmlFor: id, class: "vj-label-text", text: spec.label }),
      input, valueEl, reset, errorEl);
  }

  /** Show the kernel's values, except where the user's edit is still on its way. */
  update(values) {
    this.latest = values || {};
    for (const [name, c] of this.controls) {
      if (this.saver.isPending(name) || this.errors.has(name)) continue;
      const v = this.latest[name];
      const unset = v === null || v === undefined;
      if (c.spec.choices) {
        c.input.value = unset ? "" : String(v);
        c.valueEl.textContent = "";
      } else if (c.spec.integer) {
        if (document.activeElement !== c.input) c.input.value = unset ? "" : String(v);
        c.valueEl.textContent = "";
      } else {
        c.input.value = String(unset ? restingValue(c.spec) : v);
        c.valueEl.textContent = unset ? "provider default" : shortNumber(Number(v));
      }
      c.input.dataset.value = unset ? "" : String(v);
    }
  }

  /** Every edit answered: say how it went, show the kernel's values. */
  settled() {
    if (this.errors.size) this.setStatus("Some settings were not saved.", "error");
    else this.setStatus("Saved.", "ok");
    if (this.latest) this.update(this.latest);
  }

  renderErrors() {
    for (const [name, c] of this.controls) {
      const msg = this.errors.get(name);
      c.errorEl.textContent = msg ? `${c.spec.label}: ${msg}` : "";
      if (msg) c.input.setAttribute("aria-invalid", "true");
      else c.input.removeAttribute("aria-invalid");
    }
  }

  setStatus(text, kind) {
    this.statusEl.className = `vj-settings-status vj-msg vj-msg-${kind}`;
    this.statusEl.textContent = text;
  }

  /** Send any queued edit now (the view is going away). */
  flush() {
    return this.saver.flush();
  }
}
