/** One key: its facts, its rotation grace, narrower scopes, its usage, and what the customer may change. */
import type { ApiError } from "./api.js";
import type { Portal } from "./context.js";
import { append, h } from "./dom.js";
import { keyText, num, relative, when, who } from "./format.js";
import type { GraceInfo, KeyDetail, KeyView } from "./types.js";
import { usagePanel } from "./usage-view.js";
import { badge, errorBox, modal, scopeField, showError, showSecret, toast } from "./widgets.js";

const keyHref = (id: string) => `#/keys/${encodeURIComponent(id)}`;
const scopeChips = (scopes: readonly string[]) => scopes.map((sc) => h("span", { class: "scope", text: sc }));

export function keyView(portal: Portal, id: string): Promise<void> {
  const { config, main, api } = portal;
  document.title = `Key · ${config.title}`;
  return api<KeyDetail>("GET", `/api/keys/${encodeURIComponent(id)}`).then(
    (result) => {
      const key = result.key;
      document.title = `${key.name} · ${config.title}`;
      append(main, [
        h("p", null, h("a", { href: "#/keys", text: "← All keys" })),
        h("div", { class: "bar" }, [
          h("div", null, [
            h("h1", null, [`${key.name} `, badge(key.status)]),
            h("code", { text: keyText(key) }),
          ]),
        ]),
      ]);
      if (result.grace) main.appendChild(gracePanel(result.grace));
      main.appendChild(
        h("section", { class: "panel", "aria-labelledby": "facts-title" }, [
          h("h2", { id: "facts-title", class: "visually-hidden", text: "Details" }),
          h("dl", { class: "facts" }, [
            h("dt", { text: "Scopes" }),
            h("dd", null, key.scopes.length ? scopeChips(key.scopes) : "none"),
            h("dt", { text: "Created" }),
            h("dd", { text: `${when(key.createdAt)} by ${who(key.createdBy, key.createdByYou)}` }),
            h("dt", { text: "Last used" }),
            h("dd", {
              text: key.lastUsedAt ? `${when(key.lastUsedAt)} (${relative(key.lastUsedAt)})` : "never",
            }),
            h("dt", { text: "Expires" }),
            h("dd", { text: key.expiresAt ? when(key.expiresAt) : "never" }),
            key.revokedAt ? h("dt", { text: "Revoked" }) : null,
            key.revokedAt ? h("dd", { text: when(key.revokedAt) }) : null,
            key.replacedById ? h("dt", { text: "Replaced by" }) : null,
            key.replacedById
              ? h("dd", null, h("a", { href: keyHref(key.replacedById), text: "the new key" }))
              : null,
          ]),
        ]),
      );
      if (result.scopeAdvice) {
        const advice = result.scopeAdvice;
        main.appendChild(
          h("section", { class: "panel", id: "scope-advice", "aria-labelledby": "advice-title" }, [
            h("h2", { id: "advice-title", text: "Narrower scopes" }),
            h("p", null, [
              "This key only used ",
              h("span", null, scopeChips(advice.suggested)),
              advice.unused.length ? `. Never used: ${advice.unused.join(", ")}.` : ".",
            ]),
            h("p", {
              class: "small muted",
              text: "Fewer scopes mean a smaller blast radius if the key leaks. Edit the scopes below to apply the suggestion.",
            }),
          ]),
        );
      }
      const usage = h("section", { "aria-labelledby": "usage-title" });
      main.appendChild(usage);
      void usagePanel(portal, usage, "usage-title", "Usage of this key", key.id);
      if (key.canManage) main.appendChild(managePanel(portal, key));
    },
    (error: ApiError) => {
      append(main, [
        h("p", null, h("a", { href: "#/keys", text: "← All keys" })),
        h("h1", { text: error.status === 404 ? "No such key" : "Could not load the key" }),
        h("p", { text: error.message }),
      ]);
    },
  );
}

function gracePanel(grace: GraceInfo): HTMLElement {
  const calls = grace.callsSinceRotation;
  const failed = grace.errorsSinceRotation ? ` (${num(grace.errorsSinceRotation)} failed)` : "";
  const panel = h("section", { class: "panel notice", id: "grace-panel", "aria-labelledby": "grace-title" }, [
    h("h2", { id: "grace-title", text: `Replaced — still working until ${when(grace.sunsetAt)}` }),
    h("p", null, [
      `This key was rotated ${relative(grace.rotatedAt)} and stops working ${relative(grace.sunsetAt)}. `,
      calls > 0
        ? h("strong", {
            id: "grace-calls",
            text: `It is still in use: ${num(calls)} call${calls === 1 ? "" : "s"} since the rotation${failed}.`,
          })
        : h("strong", { id: "grace-calls", text: "No calls since the rotation." }),
      ` Last used: ${grace.lastUsedAt ? when(grace.lastUsedAt) : "never"}.`,
    ]),
  ]);
  if (grace.endpoints.length) {
    panel.appendChild(
      h("table", null, [
        h("caption", { class: "visually-hidden", text: "Endpoints still called with the old key" }),
        h(
          "thead",
          null,
          h("tr", null, [
            h("th", { scope: "col", text: "Still calling" }),
            h("th", { scope: "col", class: "num", text: "Calls" }),
            h("th", { scope: "col", text: "Last call" }),
          ]),
        ),
        h(
          "tbody",
          null,
          grace.endpoints.map((e) =>
            h("tr", null, [
              h("td", null, h("code", { text: `${e.method} ${e.endpoint}` })),
              h("td", { class: "num", text: num(e.calls) }),
              h("td", { text: e.lastCallAt ? relative(e.lastCallAt) : "—" }),
            ]),
          ),
        ),
      ]),
    );
  }
  if (grace.clients?.length) {
    panel.appendChild(
      h("table", null, [
        h("caption", { class: "visually-hidden", text: "Clients still using the old key" }),
        h(
          "thead",
          null,
          h("tr", null, [
            h("th", { scope: "col", text: "From" }),
            h("th", { scope: "col", text: "Client" }),
            h("th", { scope: "col", class: "num", text: "Calls" }),
            h("th", { scope: "col", text: "Last seen" }),
          ]),
        ),
        h(
          "tbody",
          null,
          grace.clients.map((c) =>
            h("tr", null, [
              h("td", null, h("code", { text: c.address })),
              h("td", { text: c.userAgent || "—" }),
              h("td", { class: "num", text: num(c.calls) }),
              h("td", { text: relative(c.lastSeenAt) }),
            ]),
          ),
        ),
      ]),
    );
  }
  panel.appendChild(
    h("p", {
      class: "small muted",
      text: "Most recent clients first. Calls per endpoint are counted per minute, from the minute of the rotation.",
    }),
  );
  return panel;
}

const GRACE_CHOICES: ReadonlyArray<readonly [string, string]> = [
  ["none", "None: the old key stops at once"],
  ["1h", "1 hour"],
  ["24h", "24 hours"],
  ["7d", "7 days"],
];

function managePanel(portal: Portal, key: KeyView): HTMLElement {
  const { api } = portal;
  const section = h("section", { "aria-labelledby": "manage-title" }, [
    h("h2", { id: "manage-title", text: "Manage" }),
  ]);
  const grid = h("div", { class: "grid2" });
  section.appendChild(grid);

  const editErr = errorBox("edit-error");
  const name = h("input", { type: "text", id: "edit-name", value: key.name, required: true, maxlength: 200 });
  const scopes = scopeField(portal, key.scopes, "edit");
  const saveEdit = (event: Event) => {
    event.preventDefault();
    api("PATCH", `/api/keys/${encodeURIComponent(key.id)}`, {
      name: name.value.trim(),
      scopes: scopes.value(),
    }).then(
      () => {
        toast("Saved.");
        portal.route();
      },
      (error: unknown) => showError(editErr, error),
    );
  };
  grid.appendChild(
    h("form", { class: "panel", "aria-labelledby": "edit-title", onsubmit: saveEdit }, [
      h("h3", { id: "edit-title", text: "Name and scopes" }),
      editErr,
      h("div", { class: "field" }, [h("label", { for: "edit-name", text: "Name" }), name]),
      scopes.node,
      h("button", { type: "submit", text: "Save changes" }),
    ]),
  );

  const side = h("div");
  grid.appendChild(side);
  if (key.status === "active" || key.status === "expiring") {
    const rotErr = errorBox("rotate-error");
    const grace = h(
      "select",
      { id: "rotate-grace" },
      GRACE_CHOICES.map(([value, text]) => h("option", { value, text, selected: value === "24h" })),
    );
    const rotate = (event: Event) => {
      event.preventDefault();
      api<{ key: KeyView; secret: string }>("POST", `/api/keys/${encodeURIComponent(key.id)}/rotate`, {
        gracePeriod: grace.value,
      }).then(
        (result) => {
          showSecret(result.secret, `Your rotated key “${result.key.name}”`, null);
          portal.route();
        },
        (error: unknown) => showError(rotErr, error),
      );
    };
    side.appendChild(
      h("form", { class: "panel", "aria-labelledby": "rotate-title", onsubmit: rotate }, [
        h("h3", { id: "rotate-title", text: "Rotate" }),
        h("p", {
          class: "small muted",
          text: "Issues a new secret with the same scopes. The old one keeps working during the grace period so you can switch over.",
        }),
        rotErr,
        h("div", { class: "field" }, [h("label", { for: "rotate-grace", text: "Grace period" }), grace]),
        h("button", { type: "submit", id: "rotate-key", text: "Rotate key" }),
      ]),
    );
  }
  side.appendChild(
    h("div", { class: "panel", "aria-labelledby": "revoke-title" }, [
      h("h3", { id: "revoke-title", text: "Revoke" }),
      h("p", { class: "small muted", text: "Stops the key at once. This cannot be undone." }),
      h("button", {
        type: "button",
        class: "danger",
        id: "revoke-key",
        text: "Revoke key…",
        onclick: () => confirmRevoke(portal, key),
      }),
    ]),
  );
  return section;
}

function confirmRevoke(portal: Portal, key: KeyView): void {
  modal(`Revoke “${key.name}”?`, (body, close) => {
    const err = errorBox("revoke-error");
    const reason = h("input", { type: "text", id: "revoke-reason", maxlength: 500 });
    const revoke = (event: Event) => {
      event.preventDefault();
      const payload = reason.value.trim() ? { reason: reason.value.trim() } : {};
      portal
        .api<{ revokedWith?: string[] }>("POST", `/api/keys/${encodeURIComponent(key.id)}/revoke`, payload)
        .then(
          (result) => {
            close();
            const ended = result?.revokedWith ?? [];
            toast(
              ended.length === 0
                ? "Key revoked."
                : `Key revoked, with ${ended.length} older ${ended.length === 1 ? "key" : "keys"} it replaced that were still in grace.`,
            );
            portal.route();
          },
          (error: unknown) => showError(err, error),
        );
    };
    append(
      body,
      h("form", { onsubmit: revoke }, [
        h("p", null, [
          "Anything using ",
          h("code", { text: keyText(key) }),
          " will be refused immediately, and so will any older key it replaced that is still in its rotation grace. This cannot be undone.",
        ]),
        err,
        h("div", { class: "field" }, [
          h("label", { for: "revoke-reason", text: "Reason (optional)" }),
          reason,
        ]),
        h("div", { class: "actions" }, [
          h("button", { type: "submit", class: "danger solid", id: "confirm-revoke", text: "Revoke key" }),
          h("button", { type: "button", text: "Cancel", onclick: close, autofocus: true }),
        ]),
      ]),
    );
  });
}
