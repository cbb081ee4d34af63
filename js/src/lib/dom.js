// Tiny DOM helpers. Text always goes in through textContent / text nodes: provider names,
// model ids and error messages are data, never markup. There is deliberately no way to set
// innerHTML through h().

const PROPS = new Set([
  "value", "checked", "disabled", "selected", "hidden", "type", "min", "max", "step",
  "placeholder", "id", "htmlFor", "readOnly", "required", "title", "autocomplete",
  "spellcheck", "name", "tabIndex", "size", "open", "rows",
]);
const FORBIDDEN = new Set(["innerHTML", "outerHTML", "insertAdjacentHTML", "srcdoc"]);
// Controls keep their own keys: without this, JupyterLab's command-mode shortcuts take the
// arrow keys of a slider, Enter/Space on a button, "d d" ... (Lumino skips a key binding when
// the focused element carries data-lm-suppress-shortcuts).
const CONTROLS = new Set(["button", "input", "select", "textarea", "summary"]);

/**
 * Create an element. `props`: `class`, `text` (textContent), `dataset`, `on<event>`
 * listeners, DOM properties (value, checked, ...), anything else as an attribute.
 * Children: strings/numbers (text nodes), nodes, arrays, null/false (skipped).
 * @param {string} tag
 * @param {Record<string, any>} [props]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  if (CONTROLS.has(tag)) el.setAttribute("data-lm-suppress-shortcuts", "true");
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (FORBIDDEN.has(key)) throw new Error(`h(): ${key} is not allowed`);
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children (see h) to `el`. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Remove every child of `el`, then append `children`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let counter = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix = "vj") {
  counter += 1;
  return `${prefix}-${Math.random().toString(36).slice(2, 7)}-${counter}`;
}

/** Show or hide an element (keeps it in the DOM). */
export function show(el, visible) {
  el.hidden = !visible;
  return el;
}

/**
 * A small busy indicator: a spinning ring plus a text that screen readers announce.
 * @param {string} text
 */
export function spinner(text) {
  return h("span", { class: "vj-spinner", role: "status" },
    h("span", { class: "vj-spinner-ring", "aria-hidden": "true" }),
    h("span", { class: "vj-spinner-text", text }));
}
