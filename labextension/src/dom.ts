/** Tiny DOM helpers: every text is set as text (`textContent`), never parsed as HTML. */

type Attrs = Record<string, string | boolean | number | undefined | null>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name === 'class') {
      el.className = String(value);
    } else if (name === 'text') {
      el.textContent = String(value);
    } else if (name in el && typeof value !== 'string') {
      (el as any)[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return el;
}

export function button(
  label: string,
  onClick: () => void,
  attrs: Attrs = {}
): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'jp-viagent-button', ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}
