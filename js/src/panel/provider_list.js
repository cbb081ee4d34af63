// The provider list: label, selected marker, key status, and the row actions.
import { h, spinner } from "../lib/dom.js";
import { keyStatus } from "../lib/format.js";

/**
 * @typedef {{kind: "ok" | "error" | "info", text: string}} RowMessage
 * @typedef {{message?: RowMessage, confirming?: boolean, testing?: boolean, deleting?: boolean}} RowState
 */

/**
 * Build the list element (a fresh <ul>; the caller swaps it in and restores focus).
 * @param {object} args
 * @param {any[]} args.providers
 * @param {string | null} args.selected
 * @param {Record<string, {needs_key: boolean}>} args.types
 * @param {Map<string, RowState>} args.rows
 * @param {string[]} args.busy
 * @param {(action: string, id: string) => void} args.onAction
 */
export function renderProviderList({ providers, selected, types, rows, busy, onAction }) {
  if (!providers.length) {
    return h("p", { class: "vj-empty", text: "No providers yet. Add one to get started." });
  }
  const list = h("ul", { class: "vj-list", "aria-label": "Providers" });
  for (const p of providers) {
    list.append(renderRow(p, { selected, types, rows, busy, onAction }));
  }
  return list;
}

function renderRow(p, { selected, types, rows, busy, onAction }) {
  const state = rows.get(p.id) || {};
  const isSelected = p.id === selected;
  const needsKey = Boolean(types[p.provider_type]?.needs_key);
  const key = keyStatus(p, needsKey);
  const testing = state.testing || busy.includes(`test:${p.id}`);
  const button = (action, text, extra = {}) => h("button", {
    type: "button", class: `vj-btn vj-btn-${action}`, dataset: { action },
    "aria-label": `${text} ${p.label}`, onclick: () => onAction(action, p.id), ...extra,
  }, text);

  // a provider the administrator manages is read-only: no Edit, no Delete (admin.py)
  const actions = h("div", { class: "vj-actions" },
    isSelected ? null : button("use", "Use"),
    p.managed ? null : button("edit", "Edit"),
    button("test", testing ? "Testing…" : "Test", { disabled: testing }),
    p.managed ? null : button("delete", "Delete", { disabled: state.deleting }),
  );

  let confirm = null;
  if (state.confirming) {
    confirm = h("div", { class: "vj-confirm", role: "group", "aria-label": "Confirm delete" },
      h("span", { text: `Delete “${p.label}”? Its stored key and cached model list go too.` }),
      h("button", {
        type: "button", class: "vj-btn vj-btn-danger", dataset: { action: "confirm-delete" },
        onclick: () => onAction("confirm-delete", p.id),
      }, "Delete"),
      h("button", {
        type: "button", class: "vj-btn", dataset: { action: "cancel-delete" },
        onclick: () => onAction("cancel-delete", p.id),
      }, "Cancel"));
  }

  let message = null;
  if (testing) message = spinner("Testing…");
  else if (state.message) {
    message = h("span", { class: `vj-msg vj-msg-${state.message.kind}`, text: state.message.text });
  }

  return h("li", {
    class: `vj-row${isSelected ? " vj-selected" : ""}`,
    dataset: { providerId: p.id, version: String(p.version) },
    "aria-current": isSelected ? "true" : null,
  },
    h("div", { class: "vj-row-head" },
      h("span", { class: "vj-marker", "aria-hidden": "true", text: isSelected ? "●" : "○" }),
      h("span", { class: "vj-label", text: p.label }),
      isSelected ? h("span", { class: "vj-badge", text: "in use" }) : null,
      p.managed ? h("span", {
        class: "vj-managed", text: "🔒 managed",
        title: `Managed by your administrator (${p.managed_by}): read-only`,
      }) : null,
      actions),
    h("div", { class: "vj-row-meta" },
      h("span", { class: "vj-model", text: p.default_model || "no default model" }),
      h("span", { class: "vj-sep", "aria-hidden": "true", text: "·" }),
      h("span", { class: "vj-endpoint", text: p.endpoint || "" }),
      h("span", { class: "vj-sep", "aria-hidden": "true", text: "·" }),
      h("span", { class: `vj-key vj-key-${key.kind}`, dataset: { keySource: p.key_source }, text: key.text })),
    confirm,
    h("div", { class: "vj-row-msg", role: "status", "aria-live": "polite" }, message));
}
