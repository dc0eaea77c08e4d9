/**
 * The portal's browser entry, bundled by esbuild (scripts/bundle-client.mjs) into the
 * /assets/portal.js the handler serves: the CSP allows no inline script, so the page's settings
 * come from a JSON data block. It renders the views from the JSON API, by the location's hash.
 */
import { type ApiError, createApi } from "./api.js";
import { auditView } from "./audit-view.js";
import type { Portal } from "./context.js";
import { append, byId, clear, h } from "./dom.js";
import { when } from "./format.js";
import { keyView } from "./key-view.js";
import { keysView } from "./keys-view.js";
import type { Me, PortalConfig } from "./types.js";
import { usageView } from "./usage-view.js";

const config = JSON.parse(byId("flux-portal-config").textContent ?? "{}") as PortalConfig;
const main = byId("main");
let navigated = false;

function signedOut(): void {
  clear(main);
  append(main, [
    h("h1", { text: "Please sign in" }),
    h("p", { text: "Your portal session has ended. Go back to the app and open the portal again." }),
  ]);
}

const api = createApi(config, signedOut);

function renderAccount(me: Me): void {
  const account = clear(byId("account"));
  append(account, [
    h("span", null, [h("strong", { text: me.org.name }), me.plan ? ` · ${me.plan.name} plan` : ""]),
    h("span", { text: `${me.user.id} (${me.user.role})` }),
  ]);
  if (me.org.suspendedAt) {
    append(
      account,
      h("strong", {
        id: "org-suspended",
        role: "status",
        text: `Suspended since ${when(me.org.suspendedAt)}: every API key is refused until the account is resumed`,
      }),
    );
  }
  if (config.returnUrl) append(account, h("a", { href: config.returnUrl, text: "Back to app" }));
  if (config.canSignOut) {
    const signOut = () => {
      void api<{ returnUrl: string | null }>("POST", "/logout").then((result) => {
        window.location.href = result?.returnUrl || `${config.basePath}/`;
      });
    };
    append(account, h("button", { type: "button", class: "link", text: "Sign out", onclick: signOut }));
  }
}

function start(me: Me): void {
  const portal: Portal = { config, api, main, me, route };
  function route(): void {
    const hash = window.location.hash || "#/keys";
    const parts = hash.replace(/^#\/?/, "").split("/");
    const tab = parts[0] || "keys";
    for (const a of document.querySelectorAll(".tabs a")) {
      if (a.getAttribute("data-tab") === tab) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    clear(main);
    let view: Promise<void>;
    if (tab === "keys" && parts[1]) view = keyView(portal, decodeURIComponent(parts[1]));
    else if (tab === "usage") view = usageView(portal);
    else if (tab === "audit") view = auditView(portal);
    else view = keysView(portal);
    void view.then(() => {
      if (navigated) main.focus();
      navigated = true;
    });
  }
  renderAccount(me);
  window.addEventListener("hashchange", route);
  route();
}

api<Me>("GET", "/api/me").then(start, (error: ApiError) => {
  if (error.status !== 401) {
    clear(main);
    append(main, [h("h1", { text: "The portal could not load" }), h("p", { text: error.message })]);
  }
});
