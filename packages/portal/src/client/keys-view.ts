/** The list of the org's keys, and the dialog that creates one. */
import type { Portal } from "./context.js";
import { append, clear, h } from "./dom.js";
import { day, keyText, relative, sentence, when, who } from "./format.js";
import type { KeyView, Page } from "./types.js";
import { badge, cell, errorBox, modal, scopeField, showError, showSecret } from "./widgets.js";

export function keysView(portal: Portal): Promise<void> {
  const { config, me, main, api } = portal;
  document.title = `Keys · ${config.title}`;
  const table = h("table", { class: "cards", id: "keys-table" });
  const more = h("div", { class: "actions" });
  append(main, [
    h("div", { class: "bar" }, [
      h("div", null, [
        h("h1", { text: "API keys" }),
        h("p", {
          class: "muted",
          text: sentence(`Keys let your code call the API on behalf of ${me.org.name}`),
        }),
      ]),
      me.can.create
        ? h("button", {
            type: "button",
            class: "primary",
            id: "create-key",
            text: "Create key",
            onclick: () => openCreate(portal),
          })
        : null,
    ]),
    table,
    more,
  ]);
  const headings = ["Name", "Key", "Scopes", "Created", "Last used", "Expires", "Status"];
  append(table, [
    h("caption", { class: "visually-hidden", text: `API keys of ${me.org.name}` }),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        headings.map((t) => h("th", { scope: "col", text: t })),
      ),
    ),
  ]);
  const body = h("tbody");
  table.appendChild(body);
  async function load(cursor: string | null): Promise<void> {
    const page = await api<Page<KeyView>>(
      "GET",
      `/api/keys${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`,
    );
    if (!cursor && page.items.length === 0) {
      body.appendChild(h("tr", null, h("td", { colspan: 7, class: "empty", text: "No keys yet." })));
    }
    for (const key of page.items) body.appendChild(keyRow(key));
    clear(more);
    const next = page.nextCursor;
    if (next) more.appendChild(h("button", { type: "button", text: "Load more", onclick: () => load(next) }));
  }
  return load(null);
}

function keyRow(key: KeyView): HTMLTableRowElement {
  const expires =
    key.status === "grace" ? relative(key.sunsetAt) : key.expiresAt ? day(key.expiresAt) : "never";
  return h("tr", { "data-key-id": key.id }, [
    cell("Name", h("a", { href: `#/keys/${encodeURIComponent(key.id)}`, text: key.name })),
    cell("Key", h("code", { class: "nowrap", text: keyText(key) })),
    cell(
      "Scopes",
      key.scopes.length
        ? key.scopes.map((scope) => h("span", { class: "scope", text: scope }))
        : h("span", { class: "muted", text: "none" }),
    ),
    cell("Created", [
      h("span", { title: when(key.createdAt), text: day(key.createdAt) }),
      h("span", { class: "small muted block", text: `by ${who(key.createdBy, key.createdByYou)}` }),
    ]),
    cell(
      "Last used",
      h("span", {
        title: key.lastUsedAt ? when(key.lastUsedAt) : null,
        text: key.lastUsedAt ? relative(key.lastUsedAt) : "never",
      }),
    ),
    cell("Expires", h("span", { title: key.expiresAt ? when(key.expiresAt) : null, text: expires })),
    cell("Status", badge(key.status)),
  ]);
}

const EXPIRY_CHOICES: ReadonlyArray<readonly [string, string]> = [
  ["", "Never"],
  ["7", "In 7 days"],
  ["30", "In 30 days"],
  ["90", "In 90 days"],
  ["365", "In 1 year"],
  ["custom", "On a date…"],
];

function openCreate(portal: Portal): void {
  modal("Create an API key", (body, close) => {
    const err = errorBox("create-error");
    const name = h("input", {
      type: "text",
      id: "create-name",
      name: "name",
      required: true,
      maxlength: 200,
      autocomplete: "off",
    });
    const scopes = scopeField(portal, [], "create");
    const expiry = h(
      "select",
      { id: "create-expiry", name: "expiry" },
      EXPIRY_CHOICES.map(([value, text]) => h("option", { value, text })),
    );
    const date = h("input", { type: "date", id: "create-date", name: "date", "aria-label": "Expiry date" });
    const dateField = h("div", { class: "field", hidden: true }, [
      h("label", { for: "create-date", text: "Expiry date" }),
      date,
    ]);
    expiry.addEventListener("change", () => {
      dateField.hidden = expiry.value !== "custom";
    });
    const submit = (event: Event) => {
      event.preventDefault();
      if (!name.value.trim()) {
        showError(err, { message: "Give the key a name." });
        name.focus();
        return;
      }
      const payload: { name: string; scopes: string[]; expiresAt?: string; expiresInDays?: number } = {
        name: name.value.trim(),
        scopes: scopes.value(),
      };
      if (expiry.value === "custom") {
        if (!date.value) {
          showError(err, { message: "Pick an expiry date." });
          return;
        }
        payload.expiresAt = new Date(`${date.value}T23:59:59`).toISOString();
      } else if (expiry.value) payload.expiresInDays = Number(expiry.value);
      portal.api<{ key: KeyView; secret: string }>("POST", "/api/keys", payload).then(
        (result) => {
          close();
          showSecret(result.secret, `Your new key “${result.key.name}”`, () => {
            window.location.hash = `#/keys/${encodeURIComponent(result.key.id)}`;
          });
          portal.route();
        },
        (error: unknown) => showError(err, error),
      );
    };
    const form = h("form", { novalidate: true, onsubmit: submit }, [
      err,
      h("div", { class: "field" }, [
        h("label", { for: "create-name", text: "Name" }),
        name,
        h("div", {
          class: "hint",
          text: "Something that tells you where it is used, e.g. “Production server”.",
        }),
      ]),
      scopes.node,
      h("div", { class: "field" }, [h("label", { for: "create-expiry", text: "Expires" }), expiry]),
      dateField,
      h("div", { class: "actions" }, [
        h("button", { type: "submit", class: "primary", text: "Create key" }),
        h("button", { type: "button", text: "Cancel", onclick: close }),
      ]),
    ]);
    body.appendChild(form);
  });
}
