// Debouncing that never loses the last edit.

/**
 * Coalesce edits of several named values into one save, sent `ms` after the last edit.
 * Every edit lands: pending values are merged (latest wins per name), `flush()` sends at
 * once (use it on slider release, blur and view teardown), and values stay "pending" until
 * the save carrying them has been answered, so a view can avoid overwriting a control the
 * user is still moving with an older value from the kernel.
 *
 * @param {(values: Record<string, any>) => Promise<any>} save
 * @param {number} [ms]
 */
export function createCoalescer(save, ms = 300) {
  /** @type {Record<string, any>} */
  let queued = {};
  let timer = null;
  /** name -> number of unanswered saves carrying it */
  const inflight = new Map();
  const idleWaiters = [];

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(flush, ms);
  }

  /** Queue `name = value`; it is saved `ms` after the last call. */
  function set(name, value) {
    queued = { ...queued, [name]: value };
    schedule();
  }

  /** Send whatever is queued now. Resolves when the kernel has answered. */
  function flush() {
    clearTimeout(timer);
    timer = null;
    const values = queued;
    queued = {};
    const names = Object.keys(values);
    if (names.length === 0) return Promise.resolve(null);
    for (const n of names) inflight.set(n, (inflight.get(n) || 0) + 1);
    return Promise.resolve(save(values)).finally(() => {
      for (const n of names) {
        const left = inflight.get(n) - 1;
        if (left > 0) inflight.set(n, left);
        else inflight.delete(n);
      }
      if (!busy()) idleWaiters.splice(0).forEach((fn) => fn());
    });
  }

  /** Is `name` (or anything, without a name) queued or being saved? */
  function isPending(name) {
    if (name === undefined) return busy();
    return name in queued || inflight.has(name);
  }

  function busy() {
    return Object.keys(queued).length > 0 || inflight.size > 0;
  }

  /** Resolves once nothing is queued or in flight. */
  function idle() {
    return busy() ? new Promise((resolve) => idleWaiters.push(resolve)) : Promise.resolve();
  }

  return { set, flush, isPending, idle };
}
