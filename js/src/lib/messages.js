// Messages that belong to the state that produced them.
//
// A message is kept with a fingerprint of that state (a provider's version, key and selection;
// how often a field was edited) and shown only while the state still has it: the first look
// at a changed state drops the message, so none outlives its truth ("no API key" after a key
// was stored, "already exists" after the id was changed).

/** A fingerprint of some plain values (compare with ===). */
export function fingerprint(...parts) {
  return JSON.stringify(parts);
}

export class Messages {
  constructor() {
    /** @type {Map<string, {message: any, state: string}>} */
    this.items = new Map();
  }

  /** Keep `message` in `slot` for as long as the state is `state` (a falsy message clears). */
  set(slot, message, state) {
    if (message) this.items.set(slot, { message, state });
    else this.items.delete(slot);
  }

  /** The message in `slot` if the state is still `state`; otherwise it is dropped: null. */
  get(slot, state) {
    const item = this.items.get(slot);
    if (!item) return null;
    if (item.state === state) return item.message;
    this.items.delete(slot);
    return null;
  }

  delete(slot) {
    this.items.delete(slot);
  }

  /** Drop every slot `keep(slot)` rejects (e.g. rows of deleted providers). */
  prune(keep) {
    for (const slot of [...this.items.keys()]) if (!keep(slot)) this.items.delete(slot);
  }
}
