// A provider the administrator manages (admin.py): a lock, no Edit/Delete, the key's source.
import { afterEach, expect, it } from "vitest";
import widget, { TRAITS } from "../src/config_panel.js";
import { FakeModel, panelState, provider } from "./fake_model.js";

let cleanup;
afterEach(() => { cleanup?.(); cleanup = null; document.body.replaceChildren(); });

it("shows a managed provider read-only, with who manages it", () => {
  const model = new FakeModel(panelState({
    providers: [
      provider({ id: "campus", name: "Campus", key_source: "managed", api_key_hint: "sk-…5926",
                 managed: true, managed_by: "/etc/jupyter/viagent.toml" }),
      provider({ id: "gone", name: "Gone", key_source: "managed", has_api_key: false,
                 api_key_hint: null, managed: true, managed_by: "/etc/jupyter/viagent.toml" }),
      provider(),
    ],
    selected: "oa",
  }), { traits: TRAITS });
  const el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  const row = (id) => el.querySelector(`[data-provider-id="${id}"]`);
  const lock = row("campus").querySelector(".vj-managed");
  expect(lock.textContent).toBe("managed (read-only)");
  expect(lock.title).toBe("Managed by your administrator (/etc/jupyter/viagent.toml): read-only");
  expect(row("campus").querySelector('[data-action="edit"]')).toBeNull();
  expect(row("campus").querySelector('[data-action="delete"]')).toBeNull();
  expect(row("campus").querySelector('[data-action="use"]')).not.toBeNull();
  expect(row("campus").querySelector(".vj-key").textContent)
    .toBe("Key managed by your administrator (sk-…5926)");
  expect(row("gone").querySelector(".vj-key").textContent)
    .toBe("Key missing (managed: ask your administrator)");
  expect(row("oa").querySelector(".vj-managed")).toBeNull();
  expect(row("oa").querySelector('[data-action="edit"]')).not.toBeNull();
});
