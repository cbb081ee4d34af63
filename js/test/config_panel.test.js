import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import widget, { TRAITS, PanelView } from "../src/config_panel.js";
import { filterModels, diffText } from "../src/panel/model_picker.js";
import { sentence } from "../src/panel/provider_form.js";
import { FakeModel, panelState, provider, settle } from "./fake_model.js";

const KEY = "sk-PLANTED-js-0001-abcdefghijkl";
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
const $$ = (sel) => [...el.querySelectorAll(sel)];
const row = (id) => $$("[data-provider-id]").find((r) => r.dataset.providerId === id);
const action = (root, name) => root.querySelector(`[data-action="${name}"]`);
const field = (name) => $(`[data-field="${name}"]`);
const input = (name) => field(name).querySelector("input, select, textarea");
function type(inp, value) {
  inp.value = value;
  inp.dispatchEvent(new Event("input", { bubbles: true }));
}
const submit = () => $("form").dispatchEvent(new Event("submit", { bubbles: true, cancelable: true }));

beforeEach(() => { document.body.replaceChildren(); });
afterEach(() => {
  cleanup?.();
  cleanup = null;
  vi.useRealTimers();
});

describe("provider list", () => {
  it("shows labels, the selected marker and key status without the key", () => {
    mount({
      providers: [
        provider(),
        provider({ id: "env", name: "Env", key_source: "environment", api_key_hint: "sk-…wxyz" }),
        provider({ id: "none", name: "None", key_source: "none", has_api_key: false, api_key_hint: null }),
        provider({ id: "local", provider_type: "ollama", name: "Local", key_source: "none", api_key_hint: null }),
      ],
      selected: "oa",
    });
    expect($$(".vj-row")).toHaveLength(4);
    expect(row("oa").getAttribute("aria-current")).toBe("true");
    expect(row("oa").querySelector(".vj-badge").textContent).toBe("in use");
    expect(action(row("oa"), "use")).toBeNull(); // already in use
    expect(action(row("env"), "use")).not.toBeNull();
    expect(row("oa").querySelector(".vj-label").textContent).toBe("Work"); // the name first
    expect(row("oa").querySelector(".vj-type").textContent).toBe("OpenAI"); // a readable type
    expect(action(row("oa"), "edit").getAttribute("aria-label")).toBe("Edit Work (OpenAI)");
    expect(row("oa").querySelector(".vj-key").textContent).toBe("Key stored (sk-…abcd)");
    expect(row("env").querySelector(".vj-key").textContent).toBe("Key from environment (sk-…wxyz)");
    expect(row("none").querySelector(".vj-key").textContent).toBe("Key missing");
    expect(row("local").querySelector(".vj-key").textContent).toBe("No key (not required)");
  });

  it("shows why a stored key was cleared until a key is stored again (issue 11)", () => {
    const notice = "The key was cleared because its origin changed (https://api.openai.com → https://other.example); enter it again for the new server (a key is only sent where it was entered).";
    const model = mount({ providers: [provider()] });
    expect(row("oa").querySelector(".vj-key-notice")).toBeNull();
    model.update({ providers: [provider({ version: 2, key_source: "none", has_api_key: false, api_key_hint: null, key_notice: notice })] });
    const shown = row("oa").querySelector(".vj-key-notice");
    expect(shown.textContent).toBe(notice);
    expect(shown.getAttribute("role")).toBe("note");
    expect(row("oa").querySelector(".vj-key").textContent).toBe("Key missing");
    model.update({ providers: [provider({ version: 3, key_notice: "<b>x</b>" })] });
    expect(row("oa").querySelector(".vj-key-notice b")).toBeNull(); // text, never markup
    model.update({ providers: [provider({ version: 4 })] }); // a key stored: the store drops it
    expect(row("oa").querySelector(".vj-key-notice")).toBeNull();
  });

  it("keeps HTML in provider names and models inert", () => {
    const evil = '<img src=x onerror="window.pwned=1">';
    mount({ providers: [provider({ name: evil, default_model: `<b>${evil}</b>` })] });
    expect($("img, b")).toBeNull();
    expect(row("oa").querySelector(".vj-label").textContent).toBe(evil);
    expect(window.pwned).toBeUndefined();
  });

  it("re-renders when the kernel's traits change, keeping focus on the same button", () => {
    const model = mount({ providers: [provider()] });
    action(row("oa"), "edit").focus();
    model.update({ providers: [provider({ name: "Renamed", version: 2 })] });
    expect(row("oa").querySelector(".vj-label").textContent).toBe("Renamed");
    expect(document.activeElement.dataset.action).toBe("edit");
    model.update({ selected: "oa" });
    expect(row("oa").classList.contains("vj-selected")).toBe(true);
  });

  it("Use selects through a request", async () => {
    const model = mount({ providers: [provider()] });
    model.handler = () => ({ ok: true, result: { selected: "oa" } });
    action(row("oa"), "use").click();
    expect(model.sentOps("select")).toEqual([expect.objectContaining({ provider: "oa" })]);
  });

  it("delete asks first and shows the in-use error clearly", async () => {
    const model = mount({ providers: [provider()], selected: null });
    model.handler = (msg) => (msg.op === "delete" // selected meanwhile by another kernel
      ? { ok: false, error: { code: "PROVIDER_IN_USE", message: "Provider 'oa' is selected; select another one first." } }
      : null);
    action(row("oa"), "delete").click();
    expect(model.sentOps("delete")).toHaveLength(0);
    expect(row("oa").querySelector(".vj-confirm").textContent).toContain("Delete “Work (OpenAI)”?");
    expect(document.activeElement.dataset.action).toBe("confirm-delete");
    action(row("oa"), "confirm-delete").click();
    await settle();
    expect(model.sentOps("delete")).toHaveLength(1);
    const msg = row("oa").querySelector(".vj-msg-error").textContent;
    expect(msg).toContain("in use");
    expect(msg).toContain("select another one first");
  });

  it("cancel leaves the provider alone", () => {
    const model = mount({ providers: [provider()] });
    action(row("oa"), "delete").click();
    action(row("oa"), "cancel-delete").click();
    expect(row("oa").querySelector(".vj-confirm")).toBeNull();
    expect(model.sent).toHaveLength(0);
  });

  it("Test shows progress, then the latency or the error", async () => {
    const model = mount({ providers: [provider()] });
    let answer;
    model.handler = (msg) => { answer = msg; return null; };
    action(row("oa"), "test").click();
    expect(row("oa").querySelector(".vj-spinner").textContent).toContain("Testing");
    expect(action(row("oa"), "test").disabled).toBe(true);
    model.reply(answer.id, { ok: true, result: { latency_ms: 42, text: "OK" } });
    await settle();
    expect(row("oa").querySelector(".vj-msg-ok").textContent).toBe("OK · 42 ms · “OK”");
    action(row("oa"), "test").click();
    model.reply(model.sent.at(-1).id, { ok: false, error: { code: "PROVIDER_UNREACHABLE", message: "Could not reach provider 'oa'." } });
    await settle();
    expect(row("oa").querySelector(".vj-msg-error").textContent).toBe("Could not reach provider 'oa'.");
  });
});

describe("add form", () => {
  it("sends the fields and the key in one request, clears the key, shows field errors", async () => {
    const model = mount({});
    action(el, "add").click();
    expect($("form").getAttribute("aria-label")).toBe("Add a provider");
    type(input("id"), "Bad Id");
    type(input("name"), "Mine");
    input("provider_type").value = "openai";
    const key = input("api_key");
    expect(key.type).toBe("password");
    type(key, KEY);
    model.handler = () => ({
      ok: false,
      error: { code: "VALIDATION_ERROR", message: "Invalid provider config: id: must be ..." },
      errors: [{ field: "id", message: "must be 1-64 characters" }, { field: "(config)", message: "odd" }],
    });
    submit();
    const sent = model.sentOps("create");
    expect(sent).toHaveLength(1);
    expect(sent[0].api_key).toBeUndefined(); // never in the JSON the kernel may log
    expect(model.keyOf(sent[0])).toBe(KEY); // only in the binary buffer
    expect(sent[0].fields).toMatchObject({ id: "Bad Id", name: "Mine", provider_type: "openai" });
    expect(JSON.stringify(sent[0].fields)).not.toContain(KEY);
    await settle();
    expect(field("id").querySelector(".vj-field-error").textContent).toBe("Must be 1-64 characters.");
    expect(input("id").getAttribute("aria-invalid")).toBe("true");
    expect($(".vj-form-error").textContent).toContain("(config): odd");
    // the valid key is kept for the next try (in the password box only), not cleared
    expect(key.value).toBe(KEY);
    expect(field("api_key").querySelector(".vj-field-error").textContent).toBe("");
    // the key went out in that one message only, and never into model state
    expect(model.sent.filter((m) => JSON.stringify(m).includes(KEY))).toHaveLength(0);
    expect(model.sentBuffers.filter((b) => b.includes(KEY))).toHaveLength(1);
    expect(model.setCalls).toEqual([]);
    expect(el.innerHTML).not.toContain(KEY);
    // fixed, saved: the key leaves once more and the box is emptied
    model.handler = () => ({ ok: true, result: { provider: "good", version: 1 } });
    type(input("id"), "good");
    submit();
    await settle();
    expect(model.sentOps("create")[1].api_key).toBeUndefined();
    expect(model.keyOf(model.sentOps("create")[1])).toBe(KEY);
    expect(key.value).toBe("");
  });

  it("opens the editor of the new provider once it appears", async () => {
    const model = mount({});
    action(el, "add").click();
    type(input("id"), "new");
    model.handler = (msg) => (msg.op === "create" ? { ok: true, result: { provider: "new", version: 1 } } : null);
    submit();
    await settle();
    expect($("form").getAttribute("aria-label")).toBe("Add a provider"); // reply overtook the trait
    model.update({ providers: [provider({ id: "new", name: "new" })] });
    expect($("form").getAttribute("aria-label")).toBe("Edit provider");
    expect(model.sentOps("models")).toEqual([expect.objectContaining({ provider: "new", refresh: false })]);
  });

  it("labels every control", () => {
    mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    for (const c of $$("input, select, textarea")) {
      const labelled = c.getAttribute("aria-label") || (c.id && $(`label[for="${c.id}"]`));
      expect(labelled, `${c.outerHTML} has no label`).toBeTruthy();
    }
    for (const b of $$("button")) expect(["button", "submit"]).toContain(b.getAttribute("type"));
  });
});

describe("edit form", () => {
  function openEditor(state = {}) {
    const model = mount({ providers: [provider()], ...state });
    action(row("oa"), "edit").click();
    return model;
  }

  it("sends only the changed fields with the version it was opened at", async () => {
    const model = openEditor();
    model.handler = (msg) => (msg.op === "update" ? { ok: true, result: { provider: "oa", version: 2 } } : null);
    type(input("name"), "Renamed");
    submit();
    const [sent] = model.sentOps("update");
    expect(sent).toMatchObject({ provider: "oa", fields: { name: "Renamed" }, expected_version: 1 });
    expect(sent.api_key).toBeUndefined();
    await settle();
    model.update({ providers: [provider({ name: "Renamed", version: 2 })] });
    expect($(".vj-notice").hidden).toBe(true); // our own write is no conflict
    expect($(".vj-form-status").textContent).toBe("Saved.");
  });

  it("treats its own write as its own even when the reply overtakes the trait", async () => {
    const model = openEditor();
    model.handler = (msg) => (msg.op === "update" ? { ok: true, result: { provider: "oa", version: 2 } } : null);
    type(input("name"), "Renamed");
    submit();
    await settle();
    model.update({ providers: [provider({ name: "Renamed ", version: 2 })] }); // normalised by the store
    expect($(".vj-notice").hidden).toBe(true);
    expect(input("name").value).toBe("Renamed ");
  });

  it("notices another kernel's change while the user is editing", async () => {
    const model = openEditor();
    type(input("name"), "Mine");
    model.update({ providers: [provider({ name: "Theirs", version: 2 })] });
    const notice = $(".vj-notice");
    expect(notice.hidden).toBe(false);
    expect(notice.textContent).toContain("changed in another notebook or kernel");
    expect(input("name").value).toBe("Mine"); // the user's edit is not thrown away
    // saving anyway goes with the old version: the store refuses it
    model.handler = () => ({ ok: false, error: { code: "PROVIDER_CONFLICT", message: "Provider 'oa' was changed elsewhere (now version 2, you had 1); reload it." } });
    submit();
    expect(model.sentOps("update")[0].expected_version).toBe(1);
    await settle();
    expect(notice.textContent).toContain("was changed elsewhere");
    action(notice, "load-latest").click();
    expect(input("name").value).toBe("Theirs");
    expect(notice.hidden).toBe(true);
    model.handler = () => null;
    type(input("name"), "Again");
    submit();
    expect(model.sentOps("update")[1].expected_version).toBe(2);
  });

  it("reloads silently when nothing was typed", () => {
    const model = openEditor();
    model.update({ providers: [provider({ name: "Theirs", version: 2 })] });
    expect(input("name").value).toBe("Theirs");
    expect($(".vj-notice").hidden).toBe(true);
    expect($(".vj-form-status").textContent).toContain("Updated from another notebook or kernel");
  });

  it("says so when the provider is deleted elsewhere", () => {
    const model = openEditor();
    model.update({ providers: [] });
    expect($(".vj-notice").textContent).toContain("was deleted");
    expect(action(el, "save").disabled).toBe(true);
  });

  it("a typed key goes in the update and is cleared; Remove key sends remove_key", async () => {
    const model = openEditor();
    type(input("api_key"), KEY);
    $(".vj-inline input[type=checkbox]").checked = true; // session only
    model.handler = (msg) => (msg.op === "update" ? { ok: true, result: { provider: "oa", version: 2 } } : null);
    submit();
    const [sent] = model.sentOps("update");
    expect(sent).toMatchObject({ persist_key: false, fields: {} });
    expect(sent.api_key).toBeUndefined();
    expect(model.keyOf(sent)).toBe(KEY);
    await settle();
    expect(input("api_key").value).toBe(""); // saved: gone from the page
    expect($(".vj-form-status").textContent).toBe("Saved (key kept for this session).");
    action(el, "remove-key").click();
    expect(model.sentOps("update")[1]).toMatchObject({ remove_key: true });
    expect(JSON.stringify(model.sentOps("update")[1])).not.toContain(KEY);
  });

  it("shows the current key status, never a value", () => {
    openEditor();
    expect($(".vj-key-current").textContent).toBe("Current: Key stored (sk-…abcd)");
    expect(input("api_key").value).toBe("");
  });
});

describe("settings", () => {
  it("saves as you drag: one debounced request with the last value, no snap-back", async () => {
    vi.useFakeTimers();
    const model = mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    model.handler = (msg) => (msg.op === "settings" ? { ok: true, result: { version: 2 } } : null);
    const slider = $('input[data-setting="temperature"]');
    expect(slider.min).toBe("0");
    expect(slider.max).toBe("2");
    for (const v of ["0.8", "0.9", "1", "1.1", "1.25"]) {
      slider.value = v;
      slider.dispatchEvent(new Event("input", { bubbles: true }));
      vi.advanceTimersByTime(100);
      // an older value from the kernel must not move the slider under the user's finger
      model.update({ providers: [provider({ settings: { ...provider().settings, temperature: 0.7 } })] });
    }
    expect(model.sentOps("settings")).toHaveLength(0);
    expect(slider.value).toBe("1.25");
    vi.advanceTimersByTime(300);
    expect(model.sentOps("settings")).toEqual([expect.objectContaining({ provider: "oa", settings: { temperature: 1.25 } })]);
  });

  it("sends at once on release and flushes a pending edit when the view closes", () => {
    vi.useFakeTimers();
    const model = mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    const topP = $('input[data-setting="top_p"]');
    topP.value = "0.5";
    topP.dispatchEvent(new Event("input", { bubbles: true }));
    topP.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sentOps("settings").at(-1).settings).toEqual({ top_p: 0.5 });
    const maxTokens = $('input[data-setting="max_tokens"]');
    type(maxTokens, "512");
    cleanup(); // view removed before the debounce fired: the last value still lands
    cleanup = null;
    expect(model.sentOps("settings").at(-1).settings).toEqual({ max_tokens: 512 });
  });

  it("shows unset settings as the provider's default and picks a reasoning level", () => {
    vi.useFakeTimers();
    const model = mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    const temperature = $('input[data-setting="temperature"]');
    expect(temperature.parentElement.querySelector("output").textContent).toBe("provider default");
    const reasoning = $('select[data-setting="reasoning"]');
    expect(reasoning.value).toBe("");
    expect(reasoning.selectedOptions[0].textContent).toBe("provider default");
    model.handler = (msg) => (msg.op === "settings" ? { ok: true, result: { version: 2 } } : null);
    reasoning.value = "high";
    reasoning.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sentOps("settings").at(-1).settings).toEqual({ reasoning: "high" });
    reasoning.value = "";
    reasoning.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sentOps("settings").at(-1).settings).toEqual({ reasoning: null });
  });

  it("shows the store's error for a rejected value", async () => {
    const model = mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    model.handler = () => ({ ok: false, error: { code: "VALIDATION_ERROR", message: "bad" }, errors: [{ field: "settings.max_tokens", message: "Input should be greater than 0" }] });
    const maxTokens = $('input[data-setting="max_tokens"]');
    type(maxTokens, "0");
    maxTokens.dispatchEvent(new Event("change", { bubbles: true }));
    await settle(10);
    expect($(".vj-settings").textContent).toContain("Max tokens: Input should be greater than 0");
    expect(maxTokens.getAttribute("aria-invalid")).toBe("true");
  });
});

describe("model picker", () => {
  const many = Array.from({ length: 300 }, (_, i) => ({ id: `vendor/model-${i}`, name: `Model ${i}`, context_length: 8000, pricing: null }));

  it("lists, searches and picks a model into the form (mouse and keyboard)", () => {
    const model = mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    model.update({ models: many, models_provider: "oa", models_status: { count: 300, fetched_at: new Date().toISOString() } });
    const list = $(".vj-model-list");
    const options = () => [...list.querySelectorAll("[role=option]")];
    const chosen = () => options().filter((o) => o.getAttribute("aria-selected") === "true").map((o) => o.dataset.model);
    expect(list.getAttribute("role")).toBe("listbox");
    expect(options()).toHaveLength(300);
    expect(chosen()).toEqual([]); // gpt-4o-mini is not in this list
    expect(options()[7].querySelector(".vj-option-detail").textContent).toBe("Model 7 · 8k ctx");
    type(input("default_model"), "vendor/model-7");
    expect(chosen()).toEqual(["vendor/model-7"]);
    const search = $(".vj-search");
    type(search, "model-29");
    expect(options().map((o) => o.dataset.model)).toEqual(
      ["vendor/model-29", ...Array.from({ length: 10 }, (_, i) => `vendor/model-29${i}`)]);
    expect($(".vj-picker-count").textContent).toBe("11 of 300");
    options()[2].click();
    expect(input("default_model").value).toBe("vendor/model-291");
    expect(chosen()).toEqual(["vendor/model-291"]);
    // keyboard: Down twice, Enter picks (and does not submit the form)
    search.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    search.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    expect(search.getAttribute("aria-activedescendant")).toBe(options()[2].id);
    search.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true }));
    expect(input("default_model").value).toBe("vendor/model-291");
    expect(model.sentOps("update")).toHaveLength(0);
    type(search, "zzz");
    expect(list.textContent).toBe("No model matches the search.");
  });

  it("shows a spinner while fetching and the diff after a refresh", async () => {
    const model = mount({ providers: [provider()] });
    model.handler = (msg) => (msg.op === "models" ? { ok: true, result: { count: 0 } } : null);
    action(row("oa"), "edit").click();
    expect(model.sentOps("models").at(-1)).toMatchObject({ provider: "oa", refresh: false });
    await settle();
    model.handler = null;
    action(el, "refresh-models").click();
    expect(model.sentOps("models").at(-1)).toMatchObject({ provider: "oa", refresh: true });
    model.update({ busy: ["models:oa"] });
    expect($(".vj-picker .vj-spinner").textContent).toContain("Fetching models");
    expect($(".vj-picker").getAttribute("aria-busy")).toBe("true");
    model.update({
      busy: [], models: many.slice(0, 3), models_provider: "oa",
      models_status: { refreshed: true, count: 3, added: ["vendor/model-2"], removed: ["old"] },
    });
    expect($(".vj-picker .vj-spinner")).toBeNull();
    expect($(".vj-picker-status").textContent).toBe("Refreshed: 3 models, 1 new: vendor/model-2 · 1 removed: old");
  });

  it("filters on every word and summarises long diffs", () => {
    expect(filterModels([{ id: "a/gpt-4o", name: "GPT 4o" }, { id: "b/claude" }], "GPT 4O")).toHaveLength(1);
    expect(diffText([], [])).toBe("no changes");
    expect(diffText(["a", "b", "c", "d", "e", "f", "g"], [])).toBe("7 new: a, b, c, d, e, … (+2)");
  });
});

describe("lifecycle", () => {
  it("cleanup removes every listener and the DOM", () => {
    const model = mount({ providers: [provider()] });
    action(row("oa"), "edit").click();
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    cleanup = null;
    expect(model.listenerCount()).toBe(0);
    expect(el.children).toHaveLength(0);
  });

  it("two views of one model answer only their own requests", async () => {
    const model = mount({ providers: [provider()] });
    const other = document.createElement("div");
    const view2 = new PanelView(model, other);
    model.handler = (msg) => ({ ok: false, error: { code: "X", message: `reply to ${msg.id}` } });
    action(row("oa"), "use").click();
    await settle();
    expect(other.querySelector(".vj-msg-error")).toBeNull();
    expect(row("oa").querySelector(".vj-msg-error")).not.toBeNull();
    view2.destroy();
  });
});
