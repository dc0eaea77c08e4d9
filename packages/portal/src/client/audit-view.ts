/** The org's audit log, newest first, a page at a time. */
import type { Portal } from "./context.js";
import { append, clear, h } from "./dom.js";
import { ACTIONS, actorLabel, auditSummary, when } from "./format.js";
import type { AuditEntry, Page } from "./types.js";

export function auditView(portal: Portal): Promise<void> {
  const { config, me, main, api } = portal;
  document.title = `Audit log · ${config.title}`;
  const body = h("tbody");
  const more = h("div", { class: "actions" });
  append(main, [
    h("h1", { text: "Audit log" }),
    h("p", { class: "muted", text: `Every change to the keys of ${me.org.name}, newest first.` }),
    h("table", { class: "cards" }, [
      h("caption", { class: "visually-hidden", text: "Audit log" }),
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["When", "What", "Who", "Key", "Details"].map((t) => h("th", { scope: "col", text: t })),
        ),
      ),
      body,
    ]),
    more,
  ]);
  async function load(cursor: string | null): Promise<void> {
    const page = await api<Page<AuditEntry>>(
      "GET",
      `/api/audit${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`,
    );
    for (const event of page.items) {
      body.appendChild(
        h("tr", null, [
          h("td", { "data-label": "When", text: when(event.at) }),
          h("td", { "data-label": "What", text: ACTIONS[event.action] ?? event.action }),
          h("td", { "data-label": "Who" }, [
            actorLabel(event.actor),
            event.actor.ip ? h("div", { class: "small muted", text: event.actor.ip }) : null,
          ]),
          h(
            "td",
            { "data-label": "Key" },
            event.keyId
              ? h("a", {
                  href: `#/keys/${encodeURIComponent(event.keyId)}`,
                  class: "mono",
                  text: event.keyId,
                })
              : "—",
          ),
          h("td", { "data-label": "Details", class: "small", text: auditSummary(event) }),
        ]),
      );
    }
    if (!cursor && page.items.length === 0) {
      body.appendChild(h("tr", null, h("td", { colspan: 5, class: "empty", text: "Nothing yet." })));
    }
    clear(more);
    const next = page.nextCursor;
    if (next) more.appendChild(h("button", { type: "button", text: "Load more", onclick: () => load(next) }));
  }
  return load(null);
}
