/** Small pieces the views share: badges, error boxes, dialogs, the toast, scope pickers, the secret. */
import type { Portal } from "./context.js";
import { append, byId, type Children, h } from "./dom.js";
import { STATUS_LABEL } from "./format.js";
import type { KeyStatus } from "./types.js";

export function badge(status: KeyStatus): HTMLSpanElement {
  return h("span", { class: `badge ${status}`, text: STATUS_LABEL[status] || status });
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;

export function toast(message: string): void {
  const el = byId("toast");
  el.textContent = message;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 3500);
}

export function errorBox(id: string): HTMLDivElement {
  return h("div", { class: "error-box", role: "alert", id, hidden: true });
}

export function showError(box: HTMLElement, error: unknown): void {
  box.hidden = false;
  box.textContent =
    error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
      ? String((error as { message: unknown }).message)
      : String(error);
}

/** A table cell with one child, so the phone layout (a grid with a label) keeps it in one place. */
export function cell(label: string, content: Children): HTMLTableCellElement {
  const td = h("td", { "data-label": label });
  td.appendChild(h("div", null, content));
  return td;
}

export function modal(
  title: string,
  build: (body: HTMLDivElement, close: () => void) => void,
): HTMLDialogElement {
  const dialog = h("dialog", { "aria-labelledby": "dialog-title" });
  const body = h("div", { class: "dialog-body" }, [h("h2", { id: "dialog-title", text: title })]);
  dialog.appendChild(body);
  document.body.appendChild(dialog);
  const close = () => dialog.close();
  dialog.addEventListener("close", () => dialog.remove());
  build(body, close);
  dialog.showModal();
  return dialog;
}

export interface ScopeField {
  node: HTMLElement;
  value(): string[];
}

export function scopeField(portal: Portal, selected: readonly string[], idPrefix: string): ScopeField {
  const { me } = portal;
  if (me.freeScopes) {
    const input = h("input", {
      type: "text",
      id: `${idPrefix}-scopes`,
      name: "scopes",
      value: selected.join(" "),
      "aria-describedby": `${idPrefix}-scopes-hint`,
    });
    return {
      node: h("div", { class: "field" }, [
        h("label", { for: `${idPrefix}-scopes`, text: "Scopes" }),
        input,
        h("div", {
          class: "hint",
          id: `${idPrefix}-scopes-hint`,
          text: "Separated by spaces, e.g. read:events write:events.",
        }),
      ]),
      value: () => input.value.split(/\s+/).filter(Boolean),
    };
  }
  const boxes: HTMLInputElement[] = [];
  const fieldset = h("fieldset", null, [h("legend", { text: "Scopes" })]);
  if (me.scopes.length === 0)
    fieldset.appendChild(h("p", { class: "muted", text: "Your plan offers no scopes." }));
  me.scopes.forEach((entry, i) => {
    const id = `${idPrefix}-scope-${i}`;
    const box = h("input", {
      type: "checkbox",
      id,
      value: entry.scope,
      checked: selected.includes(entry.scope),
    });
    boxes.push(box);
    fieldset.appendChild(
      h("label", { class: "check", for: id }, [
        box,
        h("span", null, [
          h("code", { text: entry.scope }),
          entry.description ? h("span", { class: "muted", text: ` — ${entry.description}` }) : null,
        ]),
      ]),
    );
  });
  return { node: fieldset, value: () => boxes.filter((b) => b.checked).map((b) => b.value) };
}

/** Shows a new secret once; closing the dialog wipes it from the page. */
export function showSecret(secret: string, title: string, after: (() => void) | null): void {
  let shown = secret;
  modal(title, (body, close) => {
    const input = h("input", {
      type: "text",
      id: "secret-value",
      readonly: true,
      value: shown,
      "aria-label": "Secret key",
      spellcheck: "false",
      autocomplete: "off",
    });
    const status = h("span", { class: "small muted", role: "status", id: "copy-status" });
    const copied = () => {
      status.textContent = "Copied to the clipboard.";
    };
    append(body, [
      h("p", {
        class: "warning",
        text: "This is the only time the key is shown. Copy it now and store it somewhere safe: we keep only a fingerprint.",
      }),
      h("div", { class: "secret-box" }, [
        input,
        h("button", {
          type: "button",
          class: "primary",
          id: "copy-secret",
          text: "Copy",
          onclick: () => {
            input.select();
            if (navigator.clipboard?.writeText) {
              navigator.clipboard.writeText(shown).then(copied, () => {
                if (document.execCommand("copy")) copied();
                else status.textContent = "Select the key and copy it by hand.";
              });
            } else if (document.execCommand("copy")) copied();
          },
        }),
      ]),
      status,
      h("div", { class: "actions" }, [
        h("button", { type: "button", id: "secret-done", text: "I have saved it", onclick: close }),
      ]),
    ]);
    body.parentNode?.addEventListener("close", () => {
      input.value = "";
      shown = "";
      if (after) after();
    });
    setTimeout(() => input.select(), 0);
  });
}
