// Request/response over the widget's custom messages.
//
// The front end sends {id, op, ...} with model.send(); the kernel answers every request
// with {type: "reply", id, ok, result | error, errors?}. Several views of one model all
// hear every reply; ids carry a per-view prefix so only the asking view resolves.

export const NO_REPLY = "NO_REPLY";
export const CLOSED = "CLOSED";

/**
 * @param {{send: Function, on: Function, off: Function}} model
 * @param {{timeoutMs?: number}} [options]
 */
export function createRpc(model, { timeoutMs = 30000 } = {}) {
  const prefix = Math.random().toString(36).slice(2, 10);
  let counter = 0;
  /** @type {Map<string, {resolve: Function, timer: any}>} */
  const pending = new Map();

  const onMessage = (msg) => {
    if (!msg || typeof msg !== "object" || msg.type !== "reply") return;
    const entry = pending.get(msg.id);
    if (!entry) return;
    pending.delete(msg.id);
    clearTimeout(entry.timer);
    entry.resolve(msg);
  };
  model.on("msg:custom", onMessage);

  /**
   * Send a request; resolves with the reply (never rejects: failures are replies with
   * ok=false, including "no answer" after the timeout).
   * @param {string} op
   * @param {Record<string, any>} [payload]
   * @param {{timeoutMs?: number, buffers?: ArrayBufferView[]}} [opts] buffers: binary
   *   parts of the message (a key travels there: the kernel never logs them)
   * @returns {Promise<{ok: boolean, result?: any, error?: {code: string, message: string},
   *   errors?: {field: string, message: string}[]}>}
   */
  function request(op, payload = {}, opts = {}) {
    counter += 1;
    const id = `${prefix}-${counter}`;
    const ms = opts.timeoutMs ?? timeoutMs;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve({
          id, ok: false,
          error: {
            code: NO_REPLY,
            message: `No answer from the kernel after ${Math.round(ms / 1000)} s ` +
              "(is it busy running a cell, or stopped?).",
          },
        });
      }, ms);
      pending.set(id, { resolve, timer });
      model.send({ ...payload, id, op }, undefined, opts.buffers);
    });
  }

  function dispose() {
    model.off("msg:custom", onMessage);
    for (const [id, entry] of pending) {
      clearTimeout(entry.timer);
      entry.resolve({ id, ok: false, error: { code: CLOSED, message: "The view was closed." } });
    }
    pending.clear();
  }

  return { request, dispose, get pending() { return pending.size; } };
}
