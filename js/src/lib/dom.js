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

// Material icons, as JupyterLab draws them (24 px grid, coloured by the theme: see .vj-icon).
const ICONS = {
  add: "M19 13h-6v6h-2v-6H5v-2h6V5h2v6h6v2z",
  edit: "M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zM20.71 7.04a1 1 0 000-1.41l-2.34-2.34a1 1 0 00-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z",
  run: "M8 5v14l11-7z",
  delete: "M6 19c0 1.1.9 2 2 2h8c1.1 0 2-.9 2-2V7H6v12zM19 4h-3.5l-1-1h-5l-1 1H5v2h14V4z",
  refresh: "M17.65 6.35A7.96 7.96 0 0012 4a8 8 0 108 8h-2a6 6 0 11-1.78-4.22L13 11h7V4l-2.35 2.35z",
  search: "M15.5 14h-.79l-.28-.27A6.47 6.47 0 0016 9.5 6.5 6.5 0 109.5 16c1.61 0 3.09-.59 4.23-1.57l.27.28v.79l5 4.99L20.49 19l-4.99-5zm-6 0C7.01 14 5 11.99 5 9.5S7.01 5 9.5 5 14 7.01 14 9.5 11.99 14 9.5 14z",
  check: "M9 16.17L4.83 12l-1.42 1.41L9 19 21 7l-1.41-1.41z",
};
const SVG = "http://www.w3.org/2000/svg";

/** An inline SVG icon (decorative: the control around it carries the label). */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `vj-icon vj-icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}
