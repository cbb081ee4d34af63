// The panel says only what is still true (issue 13, items 5-9 and 13 of the panel).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import widget, { TRAITS } from "../src/config_panel.js";
import { Messages, fingerprint } from "../src/lib/messages.js";
import { displayLabel } from "../src/lib/format.js";
import { sentence } from "../src/panel/provider_form.js";
import { FakeModel, SCHEMA, panelState, provider, settle } from "./fake_model.js";

const KEY = "sk-PLANTED-js-0002-abcdefghijkl";
let el;
let cleanup;

function mount(state) {
  const model = new FakeModel(panelState(state), { traits: TRAITS });
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  return model;
}
const $ = (sel) => el.querySelector(sel);
const row = (id) => [...el.querySelectorAll("[data-provider-id]")].find((r) => r.dataset.providerId === id);
const action = (root, name) => root.querySelector(`[data-action="${name}"]`);
const field = (name) => $(`[data-field="${name}"]`);
const input = (name) => field(name).querySelector("input, select, textarea");
const fieldError = (name) => field(name).querySelector(".vj-field-error").textContent;
function type(inp, value) {
  inp.value = value;
  inp.dispatchEvent(new Event("input", { bubbles: true }));
}
const submit = () => $("form").dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));

beforeEach(() => { document.body.replaceChildren(); });
afterEach(() => { cleanup?.(); cleanup = null; vi.useRealTimers(); });

describe("Messages", () => {
  it("keeps a message only while its state is unchanged", () => {
    const m = new Messages();
    m.set("a", "hello", fingerprint(1, "stored"));
    expect(m.get("a", fingerprint(1, "stored"))).toBe("hello");
    expect(m.get("a", fingerprint(2, "stored"))).toBeNull();
    expect(m.get("a", fingerprint(1, "stored"))).toBeNull(); // dropped for good
    m.set("b", "x", "s");
    m.prune((slot) => slot !== "b");
    expect(m.get("b", "s")).toBeNull();
  });
});

describe("item 5: model settings", () => {
  it("says Saved once the save is answered (it stayed at Saving…)", async () => {
    vi.useFakeTimers();
    const model = mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    let asked;
    model.handler = (msg) => { if (msg.op === "settings") asked = msg; return null; };
    const slider = $('input[data-setting="temperature"]');
    slider.value = "1.1";
    slider.dispatchEvent(new Event("input", { bubbles: true }));
    slider.dispatchEvent(new Event("change", { bubbles: true }));
    expect($(".vj-settings-status").textContent).toBe("Saving…");
    model.reply(asked.id, { ok: true, result: { version: 2 } });
    await vi.runAllTimersAsync();
    expect($(".vj-settings-status").textContent).toBe("Saved.");
  });
});

describe("item 6: the add form", () => {
  it("prints no literal null", () => {
    mount({});
    action(el, "add").click();
    expect($("form").textContent).not.toContain("null");
    expect(field("api_key").textContent).toContain("Keep for this session only");
  });
});

describe("item 7: messages outlive their truth no more", () => {
  it("a Test error goes once the provider changes (a key was stored)", async () => {
    const model = mount({ providers: [provider({ key_source: "none", has_api_key: false, api_key_hint: null })] });
    model.handler = (msg) => (msg.op === "test"
      ? { ok: false, error: { code: "CREDENTIAL_ERROR", message: "Provider 'oa' has no API key." } } : null);
    action(row("oa"), "test").click();
    await settle();
    expect(row("oa").querySelector(".vj-msg-error").textContent).toContain("no API key");
    model.update({ providers: [provider({ version: 2 })] }); // Key stored (sk-…abcd)
    expect(row("oa").querySelector(".vj-key").textContent).toBe("Key stored (sk-…abcd)");
    expect(row("oa").querySelector(".vj-msg")).toBeNull();
  });

  it("Use leaves no 'Now in use.' behind: the badge says it, and moves", async () => {
    const model = mount({ providers: [provider(), provider({ id: "b", name: "B" })], selected: "oa" });
    model.handler = (msg) => (msg.op === "select" ? { ok: true, result: { selected: "b" } } : null);
    action(row("b"), "use").click();
    model.update({ selected: "b" });
    await settle();
    expect(row("b").querySelector(".vj-badge").textContent).toBe("in use");
    model.update({ selected: "oa" });
    expect(row("b").querySelector(".vj-badge")).toBeNull();
    expect(el.textContent).not.toContain("Now in use");
  });

  it("'already exists' is the id's error and goes when the id is changed", async () => {
    const model = mount({ providers: [provider({ id: "demo", name: "Demo" })] });
    action(el, "add").click();
    type(input("id"), "demo");
    model.handler = () => ({ ok: false, error: { code: "PROVIDER_CONFLICT", message: "A provider 'demo' already exists; choose another id." } });
    submit();
    await settle();
    expect(fieldError("id")).toContain("already exists");
    expect($(".vj-notice").hidden).toBe(true);
    type(input("id"), "demo2");
    expect(fieldError("id")).toBe("");
    expect(input("id").hasAttribute("aria-invalid")).toBe(false);
    expect($(".vj-form-error").textContent).toBe("");
  });

  it("the model list's 'no API key' goes (and the list reloads) once a key is stored", async () => {
    const model = mount({ providers: [provider({ key_source: "none", has_api_key: false, api_key_hint: null })] });
    model.handler = (msg) => (msg.op === "models"
      ? { ok: false, error: { code: "CREDENTIAL_ERROR", message: "Provider 'oa' has no API key." } } : null);
    action(row("oa"), "edit").click();
    await settle();
    expect($(".vj-picker-status").textContent).toContain("no API key");
    model.handler = (msg) => (msg.op === "models" ? { ok: true, result: { count: 0 } } : null);
    model.update({ providers: [provider({ version: 2 })] });
    expect($(".vj-key-current").textContent).toBe("Current: Key stored (sk-…abcd)");
    expect($(".vj-picker-status").textContent).toBe("");
    expect(model.sentOps("models")).toHaveLength(2);
  });
});

describe("item 8: key and field errors", () => {
  it("lists every failed field with its reason, one sentence each, and keeps the key", async () => {
    const model = mount({});
    action(el, "add").click();
    type(input("id"), "Bad Id");
    input("provider_type").value = "openai_compatible";
    type(input("base_url"), "ftp://x");
    type(input("api_key"), KEY);
    model.handler = () => ({
      ok: false, error: { code: "VALIDATION_ERROR", message: "Invalid provider config: ..." },
      errors: [{ field: "id", message: "must be 1-64 characters" },
        { field: "base_url", message: "must start with http:// or https://" },
        { field: "base_url", message: "has an invalid port" }],
    });
    submit();
    await settle();
    expect($(".vj-form-error").textContent).toBe("Not saved: check Id, Base URL (marked below).");
    expect([...field("base_url").querySelectorAll(".vj-field-error > div")].map((d) => d.textContent))
      .toEqual(["Must start with http:// or https://.", "Has an invalid port."]);
    expect(input("api_key").value).toBe(KEY);
    expect(model.setCalls).toEqual([]);
    expect(sentence("a. ")).toBe("A.");
  });
});

describe("item 11: display labels", () => {
  it("put the name first and a readable type from the kernel's table", () => {
    const names = Object.fromEntries(SCHEMA.provider_types.map((t) => [t.value, t.label]));
    expect(displayLabel({ name: "Local demo (offline)", provider_type: "openai_compatible" }, names))
      .toBe("Local demo (offline) (OpenAI-compatible)");
    expect(displayLabel({ name: "My Ollama", provider_type: "ollama" }, names)).toBe("My Ollama");
    mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    expect($(".vj-form-title").textContent).toBe("Edit “Work (OpenAI)”");
    expect(el.textContent).not.toContain("OPENAI -");
  });
});

describe("item 13: delete, placeholders", () => {
  it("Delete on the selected provider is disabled and says why, without a confirmation", () => {
    const model = mount({ providers: [provider()], selected: "oa" });
    const del = action(row("oa"), "delete");
    expect(del.getAttribute("aria-disabled")).toBe("true");
    expect(del.title).toContain("select another provider first");
    del.click();
    expect(row("oa").querySelector(".vj-confirm")).toBeNull();
    expect(row("oa").querySelector(".vj-msg-info").textContent).toContain("select another provider first");
    expect(model.sentOps("delete")).toHaveLength(0);
  });

  it("the default-model example follows the type", () => {
    mount({});
    action(el, "add").click();
    const select = input("provider_type");
    select.value = "ollama";
    select.dispatchEvent(new Event("change", { bubbles: true }));
    expect(input("default_model").placeholder).toBe("e.g. llama3.2");
    select.value = "openai";
    select.dispatchEvent(new Event("change", { bubbles: true }));
    expect(input("default_model").placeholder).toBe("e.g. gpt-4o-mini");
  });
});
