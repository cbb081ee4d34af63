import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import widget, { TRAITS, summary } from "../src/stats_bar.js";
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

describe("summary", () => {
  it("reads well with nothing yet", () => {
    expect(summary({ active: {}, totals: {} }, Date.now())).toEqual({
      provider: "No provider selected", model: "no model", requests: "0 requests",
      tokens: "0 / 0 tokens", cost: "cost —", last: "last used Never",
    });
  });
});

describe("unreported usage", () => {
  it("shows unknown tokens as — (never 0) when no request reported usage", () => {
    const s = summary({ active: {}, totals: { requests: 2, unreported: 2, prompt_tokens: 0, completion_tokens: 0 } });
    expect(s.tokens).toBe("— tokens");
    const mixed = summary({ active: {}, totals: { requests: 3, unreported: 1, prompt_tokens: 10, completion_tokens: 5 } });
    expect(mixed.tokens).toBe("10 / 5 tokens");
  });

  it("shows — in the table for a model whose requests reported nothing", () => {
    mount({ records: [{ ...record, prompt_tokens: 0, completion_tokens: 0, unreported: 3 }],
      totals: { requests: 3, unreported: 3 } });
    el.querySelector(".vj-stats-line").click();
    const cells = [...el.querySelectorAll("tbody td")].map((td) => td.textContent);
    expect(cells.slice(3, 5)).toEqual(["—", "—"]);
  });
});

describe("stats bar", () => {
  it("shows provider · model · requests · tokens · cost · last used", () => {
    mount({
      active: { id: "oa", label: "OPENAI - Work", model: "gpt-4o-mini" },
      totals: { requests: 1, prompt_tokens: 12345, completion_tokens: 67, cost: 0.00123, last_used: "2026-01-01T11:59:48+00:00" },
    });
    expect(text("provider")).toBe("OPENAI - Work");
    expect(text("model")).toBe("gpt-4o-mini");
    expect(text("requests")).toBe("1 request");
    expect(text("tokens")).toBe("12.3k / 67 tokens");
    expect(text("cost")).toBe("$0.0012");
    expect(text("last")).toBe("last used 12 s ago");
  });

  it("updates live when the kernel's stats change, and the relative time keeps moving", () => {
    const model = mount({});
    expect(text("last")).toBe("last used Never");
    model.update({ totals: { requests: 2, prompt_tokens: 10, completion_tokens: 5, cost: null, last_used: "2026-01-01T12:00:00Z" } });
    expect(text("requests")).toBe("2 requests");
    expect(el.querySelector(".vj-stats").dataset.requests).toBe("2");
    expect(text("last")).toBe("last used just now");
    vi.advanceTimersByTime(20000);
    expect(text("last")).toBe("last used 20 s ago");
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
