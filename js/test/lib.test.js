import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoalescer } from "../src/lib/debounce.js";
import { h } from "../src/lib/dom.js";
import {
  formatCompact, formatContext, formatCost, formatPricePerMillion, keyStatus, parseIso, relativeTime,
} from "../src/lib/format.js";
import { createRpc } from "../src/lib/rpc.js";
import { FakeModel, settle } from "./fake_model.js";

afterEach(() => vi.useRealTimers());

describe("h()", () => {
  it("keeps markup in data inert", () => {
    const evil = '<img src=x onerror="window.pwned=1"><b>bold</b>';
    const el = h("div", { text: evil, title: evil }, evil, h("span", {}, evil));
    expect(el.querySelector("img, b")).toBeNull();
    expect(el.childNodes[0].nodeType).toBe(Node.TEXT_NODE);
    expect(el.textContent).toBe(evil + evil + evil);
    expect(el.getAttribute("title")).toBe(evil);
  });

  it("lets controls keep their keys inside JupyterLab", () => {
    for (const tag of ["button", "input", "select", "textarea", "summary"]) {
      expect(h(tag).hasAttribute("data-lm-suppress-shortcuts")).toBe(true);
    }
    expect(h("div").hasAttribute("data-lm-suppress-shortcuts")).toBe(false);
  });

  it("refuses innerHTML", () => {
    expect(() => h("div", { innerHTML: "<b>x</b>" })).toThrow(/not allowed/);
  });

  it("wires properties, attributes, data and listeners", () => {
    const onclick = vi.fn();
    const el = h("button", { type: "button", disabled: true, "aria-label": "Go", dataset: { action: "go" }, onclick });
    expect(el.disabled).toBe(true);
    expect(el.getAttribute("aria-label")).toBe("Go");
    expect(el.dataset.action).toBe("go");
    el.disabled = false;
    el.click();
    expect(onclick).toHaveBeenCalledOnce();
  });
});

describe("format", () => {
  const now = Date.parse("2026-01-01T12:00:00Z");

  it("says how long ago", () => {
    expect(relativeTime(null, now)).toBe("never");
    expect(relativeTime("", now)).toBe("never");
    expect(relativeTime("2026-01-01T11:59:58Z", now)).toBe("just now");
    expect(relativeTime("2026-01-01T11:59:48.123456Z", now)).toBe("11 s ago");
    expect(relativeTime("2026-01-01T11:59:48+00:00", now)).toBe("12 s ago");
    expect(relativeTime("2026-01-01T11:55:00Z", now)).toBe("5 min ago");
    expect(relativeTime("2026-01-01T09:00:00Z", now)).toBe("3 h ago");
    expect(relativeTime("2025-12-28T12:00:00Z", now)).toBe("4 d ago");
    expect(relativeTime("2026-01-01T12:00:30Z", now)).toBe("just now"); // a clock ahead of ours
    expect(relativeTime("not a date", now)).toBe("never");
  });

  it("parses Python's microsecond timestamps", () => {
    expect(parseIso("2026-11-24T10:02:00.142019Z")).toBe(Date.parse("2026-11-24T10:02:00.142Z"));
  });

  it("formats numbers, cost, context and prices", () => {
    expect(formatCompact(999)).toBe("999");
    expect(formatCompact(12345)).toBe("12.3k");
    expect(formatCompact(1234567)).toBe("1.2M");
    expect(formatCost(null)).toBe("—");
    expect(formatCost(0)).toBe("$0.00");
    expect(formatCost(0.001234)).toBe("$0.0012");
    expect(formatCost(1.5)).toBe("$1.50");
    expect(formatContext(128000)).toBe("128k ctx");
    expect(formatContext(null)).toBe("");
    expect(formatPricePerMillion(0.0000025)).toBe("$2.5/M");
    expect(formatPricePerMillion(0.00003)).toBe("$30/M");
  });

  it("describes the key by its source and masked hint only", () => {
    expect(keyStatus({ key_source: "stored", api_key_hint: "sk-…abcd" }, true)).toEqual({ kind: "stored", text: "Key stored (sk-…abcd)" });
    expect(keyStatus({ key_source: "session", api_key_hint: "sk-…abcd" }, true).text).toBe("Key for this session (sk-…abcd)");
    expect(keyStatus({ key_source: "environment", api_key_hint: "sk-…wxyz" }, true).text).toBe("Key from environment (sk-…wxyz)");
    expect(keyStatus({ key_source: "none" }, true)).toEqual({ kind: "missing", text: "Key missing" });
    expect(keyStatus({ key_source: "none" }, false).kind).toBe("none");
  });
});

describe("createCoalescer", () => {
  it("sends one save with the last value after the quiet period", async () => {
    vi.useFakeTimers();
    const saves = [];
    const c = createCoalescer((v) => { saves.push(v); return Promise.resolve({ ok: true }); }, 300);
    for (let i = 1; i <= 20; i += 1) {
      c.set("temperature", i / 10);
      vi.advanceTimersByTime(50); // a drag: never 300 ms of quiet
    }
    expect(saves).toEqual([]);
    expect(c.isPending("temperature")).toBe(true);
    vi.advanceTimersByTime(300);
    expect(saves).toEqual([{ temperature: 2 }]);
  });

  it("merges edits of several settings and keeps them pending until answered", async () => {
    vi.useFakeTimers();
    let answer;
    const saves = [];
    const c = createCoalescer((v) => { saves.push(v); return new Promise((r) => { answer = r; }); }, 300);
    c.set("temperature", 0.3);
    c.set("top_p", 0.9);
    c.set("temperature", 0.4);
    const sent = c.flush(); // slider released: now
    expect(saves).toEqual([{ temperature: 0.4, top_p: 0.9 }]);
    expect(c.isPending("temperature")).toBe(true);
    answer({ ok: true });
    await sent;
    expect(c.isPending("temperature")).toBe(false);
    expect(c.isPending()).toBe(false);
    await c.idle();
  });

  it("flush with nothing queued sends nothing", async () => {
    const save = vi.fn();
    const c = createCoalescer(save, 300);
    await c.flush();
    expect(save).not.toHaveBeenCalled();
  });
});

describe("createRpc", () => {
  it("matches replies to requests and ignores other views' replies", async () => {
    const model = new FakeModel();
    const rpc = createRpc(model);
    const p = rpc.request("select", { provider: "oa" });
    const sent = model.sent[0];
    expect(sent).toMatchObject({ op: "select", provider: "oa" });
    model.reply("someone-else-1", { ok: false, error: { code: "X", message: "not mine" } });
    model.emit("msg:custom", "garbage");
    expect(rpc.pending).toBe(1);
    model.reply(sent.id, { ok: true, result: { selected: "oa" } });
    await expect(p).resolves.toMatchObject({ ok: true, result: { selected: "oa" } });
    expect(rpc.pending).toBe(0);
  });

  it("answers NO_REPLY after the timeout and CLOSED on dispose", async () => {
    vi.useFakeTimers();
    const model = new FakeModel();
    const rpc = createRpc(model, { timeoutMs: 1000 });
    const slow = rpc.request("test", {});
    vi.advanceTimersByTime(1001);
    await expect(slow).resolves.toMatchObject({ ok: false, error: { code: "NO_REPLY" } });
    const pending = rpc.request("test", {});
    rpc.dispose();
    await expect(pending).resolves.toMatchObject({ ok: false, error: { code: "CLOSED" } });
    expect(model.listenerCount()).toBe(0);
    await settle();
  });
});
