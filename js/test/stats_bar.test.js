import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import widget, { TRAITS, summary, todayText } from "../src/stats_bar.js";
import { FakeModel } from "./fake_model.js";

let el;
let cleanup;

function mount(state) {
  const model = new FakeModel({ records: [], totals: {}, active: {}, ...state }, { traits: TRAITS });
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  return model;
}

const text = (name) => el.querySelector(`.vj-stats-${name}`).textContent;

beforeEach(() => {
  document.body.replaceChildren();
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-01-01T12:00:00Z"));
});
afterEach(() => {
  cleanup?.();
  cleanup = null;
  vi.useRealTimers();
});

const record = {
  provider: "oa", model: "gpt-4o-mini", requests: 3, prompt_tokens: 1200, completion_tokens: 345,
  cost: 0.00123, last_used: "2026-01-01T11:59:48.000001Z", errors: 1,
};

const texts = (parts) => Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, v.text]));

describe("summary", () => {
  it("reads well with nothing yet", () => {
    expect(texts(summary({ active: {}, totals: {} }, Date.now()))).toEqual({
      provider: "No provider selected", model: "", requests: "0 requests",
      tokens: "0 in / 0 out tokens", cost: "", last: "not used yet", all: "",
    });
  });

  it("shows the shown model's figures, and the workspace's count labelled as such", () => {
    const other = { ...record, model: "gpt-4o", requests: 9, prompt_tokens: 1, completion_tokens: 1, cost: 1 };
    const s = summary({
      active: { id: "oa", label: "Work (OpenAI)", model: "gpt-4o-mini" },
      totals: { requests: 12, prompt_tokens: 1201, completion_tokens: 346, cost: 1.00123 },
      records: [record, other, { ...record, provider: "elsewhere", requests: 100 }],
    }, Date.now());
    expect(texts(s)).toMatchObject({
      requests: "3 requests", tokens: "1,200 in / 345 out tokens", cost: "$0.0012",
      last: "used 12 s ago", all: "12 in workspace",
    });
    expect(s.requests.title).toBe("Requests to gpt-4o-mini on Work (OpenAI)");
    expect(s.tokens.title).toContain("prompt (in) / completion (out)");
    expect(s.all.title).toContain("every provider and model");
    // no default model: the provider's figures over its models
    const all = summary({ active: { id: "oa", label: "W", model: null }, totals: { requests: 112 }, records: [record, other] });
    expect(all.requests.text).toBe("12 requests");
    expect(all.model.text).toBe("no default model");
  });
});

describe("unreported usage", () => {
  it("shows unknown tokens as — (never 0) when no request reported usage", () => {
    const s = summary({ active: {}, totals: { requests: 2, unreported: 2, prompt_tokens: 0, completion_tokens: 0 } });
    expect(s.tokens.text).toBe("— tokens");
    const mixed = summary({ active: {}, totals: { requests: 3, unreported: 1, prompt_tokens: 10, completion_tokens: 5 } });
    expect(mixed.tokens.text).toBe("10 in / 5 out tokens");
  });

  it("shows — in the table for a model whose requests reported nothing", () => {
    mount({ records: [{ ...record, prompt_tokens: 0, completion_tokens: 0, unreported: 3 }],
      totals: { requests: 3, unreported: 3 } });
    el.querySelector(".vj-stats-line").click();
    const cells = [...el.querySelectorAll("tbody td")].map((td) => td.textContent);
    expect(cells.slice(3, 5)).toEqual(["—", "—"]);
  });
});

describe("todayText", () => {
  it("says nothing without cost data, then today's spend and the tightest budget", () => {
    expect(todayText({})).toBe("");
    expect(todayText({ today_cost: 0.5 })).toBe("today $0.50");
    expect(todayText({ today_cost: 0.5, budget: { usd: 5, spent: 0.5, period: "day" } }))
      .toBe("today $0.50 of $5.00 day budget");
    expect(todayText({ budget: { usd: 20, spent: 3, period: "month" } }))
      .toBe("this month $3.00 of $20.00 month budget");
  });
});

describe("stats bar", () => {
  it("shows provider · model and that model's requests · tokens · cost · last use, with tooltips", () => {
    mount({
      active: { id: "oa", label: "Work (OpenAI)", model: "gpt-4o-mini" },
      records: [record],
      totals: { requests: 3, prompt_tokens: 1200, completion_tokens: 345, cost: 0.00123, last_used: record.last_used },
    });
    expect(text("provider")).toBe("Work (OpenAI)");
    expect(text("model")).toBe("gpt-4o-mini");
    expect(text("requests")).toBe("3 requests");
    expect(text("tokens")).toBe("1,200 in / 345 out tokens");
    expect(text("cost")).toBe("$0.0012");
    expect(text("last")).toBe("used 12 s ago");
    expect(el.querySelector(".vj-stats-all").hidden).toBe(true); // the same as the model's
    expect(el.querySelector(".vj-stats-tokens").title).toContain("gpt-4o-mini");
    el.querySelector(".vj-stats-line").click();
    expect(el.querySelector("tbody tr").classList.contains("vj-current")).toBe(true); // the line's row
  });

  it("updates live when the kernel's stats change, and the relative time keeps moving", () => {
    const model = mount({});
    expect(text("last")).toBe("not used yet");
    model.update({ totals: { requests: 2, prompt_tokens: 10, completion_tokens: 5, cost: null, last_used: "2026-01-01T12:00:00Z" } });
    expect(text("requests")).toBe("2 requests");
    expect(el.querySelector(".vj-stats").dataset.requests).toBe("2");
    expect(text("last")).toBe("used just now");
    vi.advanceTimersByTime(20000);
    expect(text("last")).toBe("used 20 s ago");
  });

  it("expands into a per provider:model table on click; it is a real button", () => {
    const model = mount({ records: [record], totals: { requests: 3 } });
    const button = el.querySelector(".vj-stats-line");
    expect(button.tagName).toBe("BUTTON"); // Enter and Space work natively
    const table = el.querySelector(".vj-stats-table");
    expect(button.getAttribute("aria-controls")).toBe(table.id);
    expect(table.hidden).toBe(true);
    button.click();
    expect(button.getAttribute("aria-expanded")).toBe("true");
    expect(table.hidden).toBe(false);
    const cells = [...table.querySelectorAll("tbody td")].map((td) => td.textContent);
    expect(cells).toEqual(["oa", "gpt-4o-mini", "3", "1,200", "345", "$0.0012", "1", "12 s ago"]);
    expect(table.querySelector("tbody tr").classList.contains("vj-current")).toBe(false); // none selected
    model.update({ records: [{ ...record, provider: "<b>x</b>", requests: 4 }] });
    expect(table.querySelector("b")).toBeNull();
    expect(table.querySelector("tbody td").textContent).toBe("<b>x</b>");
    button.click();
    expect(table.hidden).toBe(true);
  });

  it("cleanup stops the timer and removes listeners", () => {
    const model = mount({});
    expect(vi.getTimerCount()).toBe(1);
    cleanup();
    cleanup = null;
    expect(vi.getTimerCount()).toBe(0);
    expect(model.listenerCount()).toBe(0);
  });
});
