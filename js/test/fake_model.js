// A stand-in for the anywidget model: get/on/off/send like the real one, plus helpers to
// play the kernel (push trait changes, answer requests).

export class FakeModel {
  /** `traits`: the names the view may read; reading any other name is a test failure. */
  constructor(state = {}, { traits = null } = {}) {
    this.state = { ...state };
    this.traits = traits;
    this.listeners = new Map();
    this.sent = [];
    this.setCalls = [];
    this.handler = null;
  }

  get(name) {
    if (this.traits && !this.traits.includes(name)) throw new Error(`read of undeclared trait ${name}`);
    return this.state[name];
  }
  set(name, value) { this.setCalls.push([name, value]); this.state[name] = value; }
  save_changes() {}

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
  }

  off(event, fn) { this.listeners.get(event)?.delete(fn); }

  emit(event, ...args) { for (const fn of [...(this.listeners.get(event) || [])]) fn(...args); }

  listenerCount() {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /** Like the kernel changing synced traits. */
  update(patch) {
    if (this.traits) for (const k of Object.keys(patch)) if (!this.traits.includes(k)) throw new Error(`unknown trait ${k}`);
    Object.assign(this.state, patch);
    for (const name of Object.keys(patch)) this.emit(`change:${name}`);
  }

  send(msg, _callbacks, buffers) {
    this.sent.push(structuredClone(msg));
    (this.sentBuffers ||= []).push(buffers ? buffers.map((b) => new TextDecoder().decode(b)) : []);
    if (this.handler) {
      const answer = this.handler(msg, this);
      if (answer) Promise.resolve().then(() => this.reply(msg.id, answer));
    }
  }

  /** Answer request `id` with {ok, result} / {ok: false, error, errors}. */
  reply(id, answer) { this.emit("msg:custom", { type: "reply", id, ...answer }); }

  sentOps(op) { return this.sent.filter((m) => m.op === op); }

  /** The key a sent request carried in its binary buffer (decoded), or undefined. */
  keyOf(msg) { return (this.sentBuffers || [])[this.sent.findIndex((m) => m.id === msg.id)]?.[0]; }
}

export const SCHEMA = {
  provider_types: [
    { value: "openai", label: "OpenAI", default_base_url: "https://api.openai.com/v1", needs_key: true, env: ["OPENAI_API_KEY"], model_example: "gpt-4o-mini" },
    { value: "ollama", label: "Ollama", default_base_url: "http://localhost:11434", needs_key: false, env: [], model_example: "llama3.2" },
    { value: "openai_compatible", label: "OpenAI-compatible", default_base_url: null, needs_key: false, env: [], model_example: "the server's model id" },
  ],
  settings: [
    { name: "temperature", default: null, integer: false, minimum: 0, maximum: 2, label: "Temperature", step: 0.05 },
    { name: "max_tokens", default: null, integer: true, exclusive_minimum: 0, maximum: 10000000, label: "Max tokens", step: 1 },
    { name: "top_p", default: null, integer: false, minimum: 0, maximum: 1, label: "Top p", step: 0.01 },
    { name: "frequency_penalty", default: null, integer: false, minimum: -2, maximum: 2, label: "Frequency penalty", step: 0.05 },
    { name: "presence_penalty", default: null, integer: false, minimum: -2, maximum: 2, label: "Presence penalty", step: 0.05 },
    { name: "reasoning", default: null, integer: false, choices: ["none", "minimal", "low", "medium", "high"], label: "Reasoning", step: 1 },
    { name: "reasoning_budget", default: null, integer: true, exclusive_minimum: 0, maximum: 10000000, label: "Reasoning budget (tokens)", step: 1 },
  ],
};

export function provider(overrides = {}) {
  const p = {
    id: "oa", provider_type: "openai", name: "Work", base_url: null, default_model: "gpt-4o-mini",
    settings: { temperature: null, max_tokens: null, top_p: null, frequency_penalty: null, presence_penalty: null, reasoning: null, reasoning_budget: null },
    headers: {}, timeout: 60, max_retries: 2, allow_insecure_http: false, version: 1,
    has_api_key: true, api_key_hint: "sk-…abcd", key_source: "stored", endpoint: "https://api.openai.com/v1",
    ...overrides,
  };
  p.label = overrides.label ?? `${p.provider_type.toUpperCase()} - ${p.name}`;
  return p;
}

export function panelState(patch = {}) {
  return {
    providers: [], selected: null, schema: SCHEMA, models: [], models_provider: null,
    models_status: {}, busy: [], last_error: "", ...patch,
  };
}

/** Let pending promise callbacks run. */
export async function settle(times = 5) {
  for (let i = 0; i < times; i += 1) await Promise.resolve();
}
