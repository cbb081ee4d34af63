// The provider list: name, type, selected marker, key status, and the row actions.
import { h, icon, spinner } from "../lib/dom.js";
import { displayLabel, keyStatus } from "../lib/format.js";

/**
 * @typedef {{kind: "ok" | "error" | "info", text: string}} RowMessage
 * @typedef {{confirming?: boolean, testing?: boolean, deleting?: boolean}} RowState
 */

/**
 * Build the list element (a fresh <ul>; the caller swaps it in and restores focus).
 * @param {object} args
 * @param {any[]} args.providers
 * @param {string | null} args.selected
 * @param {Record<string, {needs_key: boolean, label: string}>} args.types
 * @param {Map<string, RowState>} args.rows
 * @param {(p: any) => RowMessage | null} args.messageOf  the row's message, if still true
 * @param {string[]} args.busy
 * @param {(action: string, id: string) => void} args.onAction
 */
export function renderProviderList({ providers, selected, types, rows, messageOf, busy, onAction }) {
  if (!providers.length) {
    return h("p", { class: "vj-empty", text: "No providers yet. Add one to get started." });
  }
  const typeNames = Object.fromEntries(Object.entries(types).map(([k, t]) => [k, t.label]));
  const list = h("ul", { class: "vj-list", "aria-label": "Providers" });
  for (const p of providers) {
    list.append(renderRow(p, { selected, types, typeNames, rows, messageOf, busy, onAction }));
  }
  return list;
}

function renderRow(p, { selected, types, typeNames, rows, messageOf, busy, onAction }) {
  const state = rows.get(p.id) || {};
  const isSelected = p.id === selected;
  const label = displayLabel(p, typeNames);
  const key = keyStatus(p, Boolean(types[p.provider_type]?.needs_key));
  const testing = state.testing || busy.includes(`test:${p.id}`);
  const button = (action, text, glyph, extra = {}) => h("button", {
    type: "button", class: `vj-btn vj-btn-icon vj-btn-${action}`, dataset: { action },
    "aria-label": `${text} ${label}`, title: text, onclick: () => onAction(action, p.id), ...extra,
  }, icon(glyph));

  // a provider the administrator manages is read-only: no Edit, no Delete (admin.py)
  const actions = h("div", { class: "vj-actions" },
    isSelected ? null : h("button", {
      type: "button", class: "vj-btn vj-btn-small vj-btn-use", dataset: { action: "use" },
      "aria-label": `Use ${label}`, title: "Use this provider for %%llm and ws.chat()",
      onclick: () => onAction("use", p.id),
    }, "Use"),
    p.managed ? null : button("edit", "Edit", "edit"),
    button("test", testing ? "Testing…" : "Test", "run", { disabled: testing }),
    // the selected provider cannot be deleted: say why up front, not after a confirmation
    p.managed ? null : isSelected
      ? button("delete", "Delete", "delete", {
        "aria-disabled": "true", title: "In use: select another provider first, then delete this one",
      })
      : button("delete", "Delete", "delete", { disabled: state.deleting }),
  );

  let confirm = null;
  if (state.confirming && !isSelected) {
    confirm = h("div", { class: "vj-confirm", role: "group", "aria-label": "Confirm delete" },
      h("span", { text: `Delete “${label}”? Its stored key and cached model list go too.` }),
      h("span", { class: "vj-confirm-buttons" },
        h("button", {
          type: "button", class: "vj-btn vj-btn-danger", dataset: { action: "confirm-delete" },
          onclick: () => onAction("confirm-delete", p.id),
        }, "Delete"),
        h("button", {
          type: "button", class: "vj-btn", dataset: { action: "cancel-delete" },
          onclick: () => onAction("cancel-delete", p.id),
        }, "Cancel")));
  }

  let message = null;
  const msg = messageOf(p);
  if (testing) message = spinner("Testing…");
  else if (msg) message = h("span", { class: `vj-msg vj-msg-${msg.kind}`, text: msg.text });

  const typeName = typeNames[p.provider_type] || p.provider_type;
  return h("li", {
    class: `vj-row${isSelected ? " vj-selected" : ""}`,
    dataset: { providerId: p.id, version: String(p.version) },
    "aria-current": isSelected ? "true" : null,
  },
    h("div", { class: "vj-row-head" },
      h("span", { class: "vj-marker", "aria-hidden": "true" }),
      h("span", { class: "vj-label", title: label, text: p.name || p.id }),
      actions),
    h("div", { class: "vj-row-meta" },
      isSelected ? h("span", { class: "vj-badge", text: "in use" }) : null,
      p.managed ? h("span", {
        class: "vj-badge vj-managed", text: "managed (read-only)",
        title: `Managed by your administrator (${p.managed_by}): read-only`,
      }) : null,
      h("span", { class: "vj-type", text: typeName }),
      h("span", { class: "vj-model", text: p.default_model || "no default model" }),
      h("span", { class: `vj-key vj-key-${key.kind}`, dataset: { keySource: p.key_source }, text: key.text }),
      h("span", { class: "vj-endpoint", title: p.endpoint || "", text: p.endpoint || "" })),
    // why a stored key was cleared (origin/type changed); gone once a key is stored again
    p.key_notice ? h("div", { class: "vj-key-notice", role: "note", text: p.key_notice }) : null,
    confirm,
    h("div", { class: "vj-row-msg", role: "status", "aria-live": "polite" }, message));
}
