/**
 * The portal's browser script, served from the package as /assets/portal.js (the CSP allows no
 * inline script). Plain ES2017, no dependencies: it renders the pages from the JSON API and draws
 * the usage charts as inline SVG. Kept free of backticks and dollar-brace so it can live in this
 * raw string.
 */
export const PORTAL_SCRIPT = String.raw`(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("flux-portal-config").textContent);
  var base = config.basePath;
  var main = document.getElementById("main");
  var me = null;
  var navigated = false;

  // ---- small helpers --------------------------------------------------------------------------

  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "text") el.textContent = value;
        else if (name === "class") el.className = value;
        else if (name.slice(0, 2) === "on") el.addEventListener(name.slice(2), value);
        else if (value === true) el.setAttribute(name, "");
        else el.setAttribute(name, String(value));
      });
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    if (children === undefined || children === null) return el;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      el.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    });
    return el;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, children) {
    var el = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (name) {
      el.setAttribute(name, String(attrs[name]));
    });
    (children || []).forEach(function (child) {
      el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  var dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var numberFormat = new Intl.NumberFormat();
  function when(iso) {
    return iso ? dateFormat.format(new Date(iso)) : "—";
  }
  function relative(iso) {
    if (!iso) return "never";
    var diff = new Date(iso).getTime() - Date.now();
    var abs = Math.abs(diff);
    var units = [["day", 86400000], ["hour", 3600000], ["minute", 60000]];
    for (var i = 0; i < units.length; i++) {
      if (abs >= units[i][1]) {
        var n = Math.round(abs / units[i][1]);
        var label = n + " " + units[i][0] + (n === 1 ? "" : "s");
        return diff < 0 ? label + " ago" : "in " + label;
      }
    }
    return diff < 0 ? "just now" : "in under a minute";
  }
  function num(n) {
    return numberFormat.format(n);
  }
  /** Ends a sentence after a name that may already end with a period ("Acme Inc."). */
  function sentence(text) {
    return /[.!?]$/.test(text) ? text : text + ".";
  }
  var dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  function day(iso) {
    return iso ? dayFormat.format(new Date(iso)) : "—";
  }

  var STATUS_LABEL = {
    active: "Active",
    expiring: "Expiring soon",
    grace: "In grace period",
    revoked: "Revoked",
    expired: "Expired",
  };
  function badge(status) {
    return h("span", { class: "badge " + status, text: STATUS_LABEL[status] || status });
  }
  function keyText(key) {
    return key.start + "…" + key.last4;
  }
  function who(createdBy, mine) {
    if (mine) return "you";
    if (createdBy.type === "user") return createdBy.id || "a user";
    if (createdBy.type === "admin") return "support" + (createdBy.id ? " (" + createdBy.id + ")" : "");
    return "system";
  }

  var toastTimer = null;
  function toast(message) {
    var el = document.getElementById("toast");
    el.textContent = message;
    el.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () {
      el.classList.remove("show");
    }, 3500);
  }

  function ApiError(status, body) {
    this.status = status;
    this.body = body || {};
    this.message = (body && (body.detail || body.title)) || "Request failed (" + status + ")";
  }

  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = config.csrfToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(base + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return null;
        })
        .then(function (data) {
          if (response.status === 401) signedOut();
          if (!response.ok) throw new ApiError(response.status, data);
          return data;
        });
    });
  }

  function signedOut() {
    clear(main);
    append(main, [
      h("h1", { text: "Please sign in" }),
      h("p", { text: "Your portal session has ended. Go back to the app and open the portal again." }),
    ]);
  }

  function errorBox(id) {
    return h("div", { class: "error-box", role: "alert", id: id, hidden: true });
  }
  function showError(box, error) {
    box.hidden = false;
    box.textContent = error && error.message ? error.message : String(error);
  }

  // ---- layout ---------------------------------------------------------------------------------

  function renderAccount() {
    var account = clear(document.getElementById("account"));
    append(account, [
      h("span", null, [h("strong", { text: me.org.name }), me.plan ? " · " + me.plan.name + " plan" : ""]),
      h("span", { text: me.user.id + " (" + me.user.role + ")" }),
    ]);
    if (me.org.suspendedAt) {
      append(account, h("strong", { id: "org-suspended", role: "status", text: "Suspended since " + when(me.org.suspendedAt) + ": every API key is refused until the account is resumed" }));
    }
    if (config.returnUrl) append(account, h("a", { href: config.returnUrl, text: "Back to app" }));
    if (config.canSignOut) {
      append(
        account,
        h("button", {
          type: "button",
          class: "link",
          text: "Sign out",
          onclick: function () {
            api("POST", "/logout").then(function (result) {
              window.location.href = (result && result.returnUrl) || base + "/";
            });
          },
        }),
      );
    }
  }

  function route() {
    var hash = window.location.hash || "#/keys";
    var parts = hash.replace(/^#\/?/, "").split("/");
    var tab = parts[0] || "keys";
    document.querySelectorAll(".tabs a").forEach(function (a) {
      if (a.getAttribute("data-tab") === tab) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    clear(main);
    var view;
    if (tab === "keys" && parts[1]) view = keyView(decodeURIComponent(parts[1]));
    else if (tab === "usage") view = usageView();
    else if (tab === "audit") view = auditView();
    else view = keysView();
    Promise.resolve(view).then(function () {
      if (navigated) main.focus();
      navigated = true;
    });
  }

  // ---- keys -----------------------------------------------------------------------------------

  function keysView() {
    document.title = "Keys · " + config.title;
    var table = h("table", { class: "cards", id: "keys-table" });
    var more = h("div", { class: "actions" });
    append(main, [
      h("div", { class: "bar" }, [
        h("div", null, [
          h("h1", { text: "API keys" }),
          h("p", { class: "muted", text: sentence("Keys let your code call the API on behalf of " + me.org.name) }),
        ]),
        me.can.create ? h("button", { type: "button", class: "primary", id: "create-key", text: "Create key", onclick: openCreate }) : null,
      ]),
      table,
      more,
    ]);
    append(table, [
      h("caption", { class: "visually-hidden", text: "API keys of " + me.org.name }),
      h("thead", null, h("tr", null, ["Name", "Key", "Scopes", "Created", "Last used", "Expires", "Status"].map(function (t) {
        return h("th", { scope: "col", text: t });
      }))),
    ]);
    var body = h("tbody");
    table.appendChild(body);
    function load(cursor) {
      return api("GET", "/api/keys" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : "")).then(function (page) {
        if (!cursor && page.items.length === 0) {
          body.appendChild(h("tr", null, h("td", { colspan: 7, class: "empty", text: "No keys yet." })));
        }
        page.items.forEach(function (key) {
          body.appendChild(keyRow(key));
        });
        clear(more);
        if (page.nextCursor) {
          more.appendChild(h("button", { type: "button", text: "Load more", onclick: function () { load(page.nextCursor); } }));
        }
      });
    }
    return load(null);
  }

  /** A table cell with one child, so the phone layout (a grid with a label) keeps it in one place. */
  function cell(label, content, attrs) {
    var td = h("td", Object.assign({ "data-label": label }, attrs || {}));
    td.appendChild(h("div", null, content));
    return td;
  }

  function keyRow(key) {
    var expires = key.status === "grace" ? relative(key.sunsetAt) : key.expiresAt ? day(key.expiresAt) : "never";
    return h("tr", { "data-key-id": key.id }, [
      cell("Name", h("a", { href: "#/keys/" + encodeURIComponent(key.id), text: key.name })),
      cell("Key", h("code", { class: "nowrap", text: keyText(key) })),
      cell("Scopes", key.scopes.length
        ? key.scopes.map(function (scope) { return h("span", { class: "scope", text: scope }); })
        : h("span", { class: "muted", text: "none" })),
      cell("Created", [h("span", { title: when(key.createdAt), text: day(key.createdAt) }), h("span", { class: "small muted block", text: "by " + who(key.createdBy, key.createdByYou) })]),
      cell("Last used", h("span", { title: key.lastUsedAt ? when(key.lastUsedAt) : null, text: key.lastUsedAt ? relative(key.lastUsedAt) : "never" })),
      cell("Expires", h("span", { title: key.expiresAt ? when(key.expiresAt) : null, text: expires })),
      cell("Status", badge(key.status)),
    ]);
  }

  function scopeField(selected, idPrefix) {
    if (me.freeScopes) {
      var input = h("input", { type: "text", id: idPrefix + "-scopes", name: "scopes", value: selected.join(" "), "aria-describedby": idPrefix + "-scopes-hint" });
      return {
        node: h("div", { class: "field" }, [
          h("label", { for: idPrefix + "-scopes", text: "Scopes" }),
          input,
          h("div", { class: "hint", id: idPrefix + "-scopes-hint", text: "Separated by spaces, e.g. read:events write:events." }),
        ]),
        value: function () {
          return input.value.split(/\s+/).filter(Boolean);
        },
      };
    }
    var boxes = [];
    var fieldset = h("fieldset", null, [h("legend", { text: "Scopes" })]);
    if (me.scopes.length === 0) fieldset.appendChild(h("p", { class: "muted", text: "Your plan offers no scopes." }));
    me.scopes.forEach(function (entry, i) {
      var id = idPrefix + "-scope-" + i;
      var box = h("input", { type: "checkbox", id: id, value: entry.scope, checked: selected.indexOf(entry.scope) >= 0 });
      boxes.push(box);
      fieldset.appendChild(h("label", { class: "check", for: id }, [
        box,
        h("span", null, [h("code", { text: entry.scope }), entry.description ? h("span", { class: "muted", text: " — " + entry.description }) : null]),
      ]));
    });
    return {
      node: fieldset,
      value: function () {
        return boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      },
    };
  }

  function modal(title, build) {
    var dialog = h("dialog", { "aria-labelledby": "dialog-title" });
    var body = h("div", { class: "dialog-body" }, [h("h2", { id: "dialog-title", text: title })]);
    dialog.appendChild(body);
    document.body.appendChild(dialog);
    function close() {
      dialog.close();
    }
    dialog.addEventListener("close", function () {
      dialog.remove();
    });
    build(body, close);
    dialog.showModal();
    return dialog;
  }

  function openCreate() {
    modal("Create an API key", function (body, close) {
      var err = errorBox("create-error");
      var name = h("input", { type: "text", id: "create-name", name: "name", required: true, maxlength: 200, autocomplete: "off" });
      var scopes = scopeField([], "create");
      var expiry = h("select", { id: "create-expiry", name: "expiry" }, [
        ["", "Never"], ["7", "In 7 days"], ["30", "In 30 days"], ["90", "In 90 days"], ["365", "In 1 year"], ["custom", "On a date…"],
      ].map(function (o) { return h("option", { value: o[0], text: o[1] }); }));
      var date = h("input", { type: "date", id: "create-date", name: "date", "aria-label": "Expiry date" });
      var dateField = h("div", { class: "field", hidden: true }, [h("label", { for: "create-date", text: "Expiry date" }), date]);
      expiry.addEventListener("change", function () {
        dateField.hidden = expiry.value !== "custom";
      });
      var form = h("form", {
        novalidate: true,
        onsubmit: function (event) {
          event.preventDefault();
          if (!name.value.trim()) {
            showError(err, { message: "Give the key a name." });
            name.focus();
            return;
          }
          var payload = { name: name.value.trim(), scopes: scopes.value() };
          if (expiry.value === "custom") {
            if (!date.value) {
              showError(err, { message: "Pick an expiry date." });
              return;
            }
            payload.expiresAt = new Date(date.value + "T23:59:59").toISOString();
          } else if (expiry.value) payload.expiresInDays = Number(expiry.value);
          api("POST", "/api/keys", payload).then(function (result) {
            close();
            showSecret(result.secret, "Your new key “" + result.key.name + "”", function () {
              window.location.hash = "#/keys/" + encodeURIComponent(result.key.id);
            });
            route();
          }, function (error) {
            showError(err, error);
          });
        },
      }, [
        err,
        h("div", { class: "field" }, [h("label", { for: "create-name", text: "Name" }), name, h("div", { class: "hint", text: "Something that tells you where it is used, e.g. “Production server”." })]),
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

  function showSecret(secret, title, after) {
    modal(title, function (body, close) {
      var input = h("input", { type: "text", id: "secret-value", readonly: true, value: secret, "aria-label": "Secret key", spellcheck: "false", autocomplete: "off" });
      var status = h("span", { class: "small muted", role: "status", id: "copy-status" });
      function copied() {
        status.textContent = "Copied to the clipboard.";
      }
      append(body, [
        h("p", { class: "warning", text: "This is the only time the key is shown. Copy it now and store it somewhere safe: we keep only a fingerprint." }),
        h("div", { class: "secret-box" }, [
          input,
          h("button", {
            type: "button",
            class: "primary",
            id: "copy-secret",
            text: "Copy",
            onclick: function () {
              input.select();
              if (navigator.clipboard && navigator.clipboard.writeText) {
                navigator.clipboard.writeText(secret).then(copied, function () {
                  if (document.execCommand("copy")) copied();
                  else status.textContent = "Select the key and copy it by hand.";
                });
              } else if (document.execCommand("copy")) copied();
            },
          }),
        ]),
        status,
        h("div", { class: "actions", style: null }, [
          h("button", { type: "button", id: "secret-done", text: "I have saved it", onclick: close }),
        ]),
      ]);
      body.parentNode.addEventListener("close", function () {
        input.value = "";
        secret = "";
        if (after) after();
      });
      setTimeout(function () {
        input.select();
      }, 0);
    });
  }

  function keyView(id) {
    document.title = "Key · " + config.title;
    return api("GET", "/api/keys/" + encodeURIComponent(id)).then(function (result) {
      var key = result.key;
      document.title = key.name + " · " + config.title;
      append(main, [
        h("p", null, h("a", { href: "#/keys", text: "← All keys" })),
        h("div", { class: "bar" }, [
          h("div", null, [h("h1", null, [key.name + " ", badge(key.status)]), h("code", { text: keyText(key) })]),
        ]),
      ]);
      if (result.grace) main.appendChild(gracePanel(result.grace));
      main.appendChild(h("section", { class: "panel", "aria-labelledby": "facts-title" }, [
        h("h2", { id: "facts-title", class: "visually-hidden", text: "Details" }),
        h("dl", { class: "facts" }, [
          h("dt", { text: "Scopes" }), h("dd", null, key.scopes.length ? key.scopes.map(function (sc) { return h("span", { class: "scope", text: sc }); }) : "none"),
          h("dt", { text: "Created" }), h("dd", { text: when(key.createdAt) + " by " + who(key.createdBy, key.createdByYou) }),
          h("dt", { text: "Last used" }), h("dd", { text: key.lastUsedAt ? when(key.lastUsedAt) + " (" + relative(key.lastUsedAt) + ")" : "never" }),
          h("dt", { text: "Expires" }), h("dd", { text: key.expiresAt ? when(key.expiresAt) : "never" }),
          key.revokedAt ? h("dt", { text: "Revoked" }) : null, key.revokedAt ? h("dd", { text: when(key.revokedAt) }) : null,
          key.replacedById ? h("dt", { text: "Replaced by" }) : null,
          key.replacedById ? h("dd", null, h("a", { href: "#/keys/" + encodeURIComponent(key.replacedById), text: "the new key" })) : null,
        ]),
      ]));
      if (result.scopeAdvice) {
        main.appendChild(h("section", { class: "panel", id: "scope-advice", "aria-labelledby": "advice-title" }, [
          h("h2", { id: "advice-title", text: "Narrower scopes" }),
          h("p", null, [
            "This key only used ",
            h("span", null, result.scopeAdvice.suggested.map(function (sc) { return h("span", { class: "scope", text: sc }); })),
            result.scopeAdvice.unused.length ? ". Never used: " + result.scopeAdvice.unused.join(", ") + "." : ".",
          ]),
          h("p", { class: "small muted", text: "Fewer scopes mean a smaller blast radius if the key leaks. Edit the scopes below to apply the suggestion." }),
        ]));
      }
      var usage = h("section", { "aria-labelledby": "usage-title" });
      main.appendChild(usage);
      usagePanel(usage, "usage-title", "Usage of this key", key.id);
      if (key.canManage) main.appendChild(managePanel(key));
    }, function (error) {
      append(main, [h("p", null, h("a", { href: "#/keys", text: "← All keys" })), h("h1", { text: error.status === 404 ? "No such key" : "Could not load the key" }), h("p", { text: error.message })]);
    });
  }

  function gracePanel(grace) {
    var panel = h("section", { class: "panel notice", id: "grace-panel", "aria-labelledby": "grace-title" }, [
      h("h2", { id: "grace-title", text: "Replaced — still working until " + when(grace.sunsetAt) }),
      h("p", null, [
        "This key was rotated " + relative(grace.rotatedAt) + " and stops working " + relative(grace.sunsetAt) + ". ",
        grace.callsSinceRotation > 0
          ? h("strong", { id: "grace-calls", text: "It is still in use: " + num(grace.callsSinceRotation) + " call" + (grace.callsSinceRotation === 1 ? "" : "s") + " since the rotation" + (grace.errorsSinceRotation ? " (" + num(grace.errorsSinceRotation) + " failed)" : "") + "." })
          : h("strong", { id: "grace-calls", text: "No calls since the rotation." }),
        " Last used: " + (grace.lastUsedAt ? when(grace.lastUsedAt) : "never") + ".",
      ]),
    ]);
    if (grace.endpoints.length) {
      panel.appendChild(h("table", null, [
        h("caption", { class: "visually-hidden", text: "Endpoints still called with the old key" }),
        h("thead", null, h("tr", null, [h("th", { scope: "col", text: "Still calling" }), h("th", { scope: "col", class: "num", text: "Calls" }), h("th", { scope: "col", text: "Last call" })])),
        h("tbody", null, grace.endpoints.map(function (e) {
          return h("tr", null, [h("td", null, h("code", { text: e.method + " " + e.endpoint })), h("td", { class: "num", text: num(e.calls) }), h("td", { text: e.lastCallAt ? relative(e.lastCallAt) : "—" })]);
        })),
      ]));
    }
    if (grace.clients && grace.clients.length) {
      panel.appendChild(h("table", null, [
        h("caption", { class: "visually-hidden", text: "Clients still using the old key" }),
        h("thead", null, h("tr", null, [h("th", { scope: "col", text: "From" }), h("th", { scope: "col", text: "Client" }), h("th", { scope: "col", class: "num", text: "Calls" }), h("th", { scope: "col", text: "Last seen" })])),
        h("tbody", null, grace.clients.map(function (c) {
          return h("tr", null, [h("td", null, h("code", { text: c.address })), h("td", { text: c.userAgent || "—" }), h("td", { class: "num", text: num(c.calls) }), h("td", { text: relative(c.lastSeenAt) })]);
        })),
      ]));
    }
    panel.appendChild(h("p", { class: "small muted", text: "Most recent clients first. Calls per endpoint are counted per minute, from the minute of the rotation." }));
    return panel;
  }

  function managePanel(key) {
    var section = h("section", { "aria-labelledby": "manage-title" }, [h("h2", { id: "manage-title", text: "Manage" })]);
    var grid = h("div", { class: "grid2" });
    section.appendChild(grid);

    var editErr = errorBox("edit-error");
    var name = h("input", { type: "text", id: "edit-name", value: key.name, required: true, maxlength: 200 });
    var scopes = scopeField(key.scopes, "edit");
    grid.appendChild(h("form", {
      class: "panel",
      "aria-labelledby": "edit-title",
      onsubmit: function (event) {
        event.preventDefault();
        api("PATCH", "/api/keys/" + encodeURIComponent(key.id), { name: name.value.trim(), scopes: scopes.value() }).then(function () {
          toast("Saved.");
          route();
        }, function (error) {
          showError(editErr, error);
        });
      },
    }, [
      h("h3", { id: "edit-title", text: "Name and scopes" }),
      editErr,
      h("div", { class: "field" }, [h("label", { for: "edit-name", text: "Name" }), name]),
      scopes.node,
      h("button", { type: "submit", text: "Save changes" }),
    ]));

    var side = h("div");
    grid.appendChild(side);
    if (key.status === "active" || key.status === "expiring") {
      var rotErr = errorBox("rotate-error");
      var grace = h("select", { id: "rotate-grace" }, [["none", "None: the old key stops at once"], ["1h", "1 hour"], ["24h", "24 hours"], ["7d", "7 days"]].map(function (o) {
        return h("option", { value: o[0], text: o[1], selected: o[0] === "24h" });
      }));
      side.appendChild(h("form", {
        class: "panel",
        "aria-labelledby": "rotate-title",
        onsubmit: function (event) {
          event.preventDefault();
          api("POST", "/api/keys/" + encodeURIComponent(key.id) + "/rotate", { gracePeriod: grace.value }).then(function (result) {
            showSecret(result.secret, "Your rotated key “" + result.key.name + "”", null);
            route();
          }, function (error) {
            showError(rotErr, error);
          });
        },
      }, [
        h("h3", { id: "rotate-title", text: "Rotate" }),
        h("p", { class: "small muted", text: "Issues a new secret with the same scopes. The old one keeps working during the grace period so you can switch over." }),
        rotErr,
        h("div", { class: "field" }, [h("label", { for: "rotate-grace", text: "Grace period" }), grace]),
        h("button", { type: "submit", id: "rotate-key", text: "Rotate key" }),
      ]));
    }
    side.appendChild(h("div", { class: "panel", "aria-labelledby": "revoke-title" }, [
      h("h3", { id: "revoke-title", text: "Revoke" }),
      h("p", { class: "small muted", text: "Stops the key at once. This cannot be undone." }),
      h("button", { type: "button", class: "danger", id: "revoke-key", text: "Revoke key…", onclick: function () { confirmRevoke(key); } }),
    ]));
    return section;
  }

  function confirmRevoke(key) {
    modal("Revoke “" + key.name + "”?", function (body, close) {
      var err = errorBox("revoke-error");
      var reason = h("input", { type: "text", id: "revoke-reason", maxlength: 500 });
      append(body, h("form", {
        onsubmit: function (event) {
          event.preventDefault();
          var payload = reason.value.trim() ? { reason: reason.value.trim() } : {};
          api("POST", "/api/keys/" + encodeURIComponent(key.id) + "/revoke", payload).then(function (result) {
            close();
            var ended = (result && result.revokedWith) || [];
            toast(ended.length === 0 ? "Key revoked." : "Key revoked, with " + ended.length + " older " + (ended.length === 1 ? "key" : "keys") + " it replaced that were still in grace.");
            route();
          }, function (error) {
            showError(err, error);
          });
        },
      }, [
        h("p", null, ["Anything using ", h("code", { text: keyText(key) }), " will be refused immediately, and so will any older key it replaced that is still in its rotation grace. This cannot be undone."]),
        err,
        h("div", { class: "field" }, [h("label", { for: "revoke-reason", text: "Reason (optional)" }), reason]),
        h("div", { class: "actions" }, [
          h("button", { type: "submit", class: "danger solid", id: "confirm-revoke", text: "Revoke key" }),
          h("button", { type: "button", text: "Cancel", onclick: close, autofocus: true }),
        ]),
      ]));
    });
  }

  // ---- usage ----------------------------------------------------------------------------------

  function chart(data, captionId, width) {
    var W = Math.max(300, Math.min(1100, Math.round(width || 720))), H = W < 500 ? 180 : 220, L = 44, B = 24, T = 8, R = 8;
    var points = data.points;
    var max = 0;
    points.forEach(function (p) { if (p.calls > max) max = p.calls; });
    var top = niceCeil(max);
    var plotW = W - L - R, plotH = H - T - B;
    var step = plotW / Math.max(points.length, 1);
    var bar = Math.max(1, step * 0.8);
    var svg = s("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": captionId, focusable: "false" });
    [0, 0.5, 1].forEach(function (f) {
      var y = T + plotH - f * plotH;
      svg.appendChild(s("line", { x1: L, x2: W - R, y1: y, y2: y, class: "chart-axis" }));
      svg.appendChild(s("text", { x: L - 6, y: y + 4, "text-anchor": "end", class: "chart-label" }, [num(top * f)]));
    });
    points.forEach(function (p, i) {
      var x = L + i * step + (step - bar) / 2;
      var label = when(p.at) + ": " + num(p.calls) + " requests, " + num(p.errors) + " errors, " + num(p.refused || 0) + " refused";
      if (p.calls > 0) {
        var hgt = (p.calls / top) * plotH;
        svg.appendChild(s("rect", { x: x, y: T + plotH - hgt, width: bar, height: hgt, class: "chart-bar" }, [s("title", {}, [label])]));
      }
      if (p.errors > 0) {
        var eh = (p.errors / top) * plotH;
        svg.appendChild(s("rect", { x: x, y: T + plotH - eh, width: bar, height: eh, class: "chart-err" }, [s("title", {}, [label])]));
      }
      // Refused by Flux Keys (throttled, out of scope, revoked…): the customer sees them too.
      if (p.refused > 0) {
        var rh = (p.refused / top) * plotH;
        svg.appendChild(s("rect", { x: x, y: T + plotH - rh, width: bar, height: rh, class: "chart-refused" }, [s("title", {}, [label])]));
      }
    });
    var fmt = new Intl.DateTimeFormat(undefined, data.granularity === "minute" ? { hour: "2-digit", minute: "2-digit" } : data.granularity === "hour" ? { month: "short", day: "numeric", hour: "2-digit" } : { month: "short", day: "numeric" });
    if (points.length) {
      [0, Math.floor(points.length / 2), points.length - 1].forEach(function (i, n) {
        var x = L + i * step + step / 2;
        svg.appendChild(s("text", { x: x, y: H - 6, "text-anchor": n === 0 ? "start" : n === 2 ? "end" : "middle", class: "chart-label" }, [fmt.format(new Date(points[i].at))]));
      });
    }
    return svg;
  }

  /** The axis top: 2, 4, 6 or 10 times a power of ten, so the middle line is a whole number. */
  function niceCeil(n) {
    if (n <= 2) return 2;
    var p = Math.pow(10, Math.floor(Math.log10(n)));
    var m = n / p;
    return (m <= 2 ? 2 : m <= 4 ? 4 : m <= 6 ? 6 : 10) * p;
  }

  var OUTCOME_LABEL = {
    rate_limited: "rate limited",
    quota_exceeded: "over quota",
    scope_denied: "missing scope",
    entitlement_denied: "feature not in plan",
    ip_not_allowed: "network not allowed",
    revoked: "revoked key",
    expired: "expired key",
    store_unavailable: "service unavailable",
  };

  /** " (rate limited 3, revoked key 1)" for the refused outcomes that occurred, or "". */
  function outcomeSummary(outcomes) {
    var parts = Object.keys(outcomes || {}).filter(function (o) { return o !== "allowed" && outcomes[o] > 0; }).map(function (o) {
      return (OUTCOME_LABEL[o] || o) + " " + num(outcomes[o]);
    });
    return parts.length ? " (" + parts.join(", ") + ")" : "";
  }

  var RANGE_LABEL = { "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days" };

  function usagePanel(container, titleId, title, keyId) {
    var select = h("select", { id: titleId + "-range", "aria-label": "Time range" }, Object.keys(RANGE_LABEL).map(function (r) {
      return h("option", { value: r, text: RANGE_LABEL[r], selected: r === "24h" });
    }));
    var body = h("div", { class: "usage-body" });
    append(container, [
      h("div", { class: "bar" }, [h("h2", { id: titleId, text: title }), select]),
      body,
    ]);
    function load() {
      var q = "/api/usage?range=" + select.value + (keyId ? "&keyId=" + encodeURIComponent(keyId) : "");
      return api("GET", q).then(function (data) {
        clear(body);
        var captionId = titleId + "-caption";
        append(body, h("figure", { class: "panel" }, [
          h("div", { class: "legend", "aria-hidden": "true" }, [
            h("span", null, [h("span", { class: "swatch calls" }), "Requests"]),
            h("span", null, [h("span", { class: "swatch errors" }), "Errors"]),
            h("span", null, [h("span", { class: "swatch refused" }), "Refused (throttled or denied)"]),
          ]),
          chart(data, captionId, body.clientWidth - 34),
          h("figcaption", { id: captionId, class: "usage-summary", text: RANGE_LABEL[data.range] + ": " + num(data.totals.calls) + " requests, " + num(data.totals.errors) + " errors, " + num(data.refused || 0) + " refused" + outcomeSummary(data.outcomes) + "." }),
        ]));
        var tables = h("div", { class: "grid2" });
        body.appendChild(tables);
        tables.appendChild(h("div", null, [
          h("h3", { text: "Top endpoints" }),
          data.endpoints.length ? h("table", null, [
            h("thead", null, h("tr", null, [h("th", { scope: "col", text: "Endpoint" }), h("th", { scope: "col", class: "num", text: "Requests" }), h("th", { scope: "col", class: "num", text: "Errors" })])),
            h("tbody", null, data.endpoints.map(function (e) {
              return h("tr", null, [h("td", null, h("code", { text: e.method + " " + e.endpoint })), h("td", { class: "num", text: num(e.calls) }), h("td", { class: "num", text: num(e.errors) })]);
            })),
          ]) : h("p", { class: "muted", text: "No requests in this range." }),
        ]));
        if (!keyId) {
          tables.appendChild(h("div", null, [
            h("h3", { text: "By key" }),
            data.keys.length ? h("table", null, [
              h("thead", null, h("tr", null, [h("th", { scope: "col", text: "Key" }), h("th", { scope: "col", class: "num", text: "Requests" }), h("th", { scope: "col", class: "num", text: "Errors" })])),
              h("tbody", null, data.keys.map(function (k) {
                return h("tr", null, [h("td", null, [h("a", { href: "#/keys/" + encodeURIComponent(k.keyId), text: k.name || k.keyId }), k.start ? h("span", { class: "small muted block mono", text: k.start + "…" + k.last4 }) : null]), h("td", { class: "num", text: num(k.calls) }), h("td", { class: "num", text: num(k.errors) })]);
              })),
            ]) : h("p", { class: "muted", text: "No requests in this range." }),
          ]));
        }
      }, function (error) {
        clear(body);
        showError(append(body, errorBox(titleId + "-error")).lastChild, error);
      });
    }
    select.addEventListener("change", load);
    return load();
  }

  function usageView() {
    document.title = "Usage · " + config.title;
    var section = h("section");
    append(main, [h("h1", { text: "Usage" }), h("p", { class: "muted", text: sentence("Requests and errors of all keys of " + me.org.name) }), section]);
    return usagePanel(section, "org-usage-title", "All keys", null);
  }

  // ---- audit ----------------------------------------------------------------------------------

  var ACTIONS = {
    "key.created": "Key created",
    "key.updated": "Key renamed or changed",
    "key.scopes_changed": "Scopes changed",
    "key.rotated": "Key rotated",
    "key.revoked": "Key revoked",
    "portal.session_started": "Signed in to the portal",
    "portal.session_ended": "Signed out of the portal",
    "org.created": "Organization created",
    "org.updated": "Organization updated",
    "org.plan_changed": "Plan changed",
    "org.entitlement_set": "Feature access changed",
  };

  function summary(event) {
    var d = event.details || {};
    if (event.action === "key.scopes_changed") return (d.from || []).join(" ") + " → " + (d.to || []).join(" ");
    if (event.action === "key.rotated" && d.sunsetAt) return "old key works until " + when(d.sunsetAt);
    if (event.action === "key.revoked" && d.reason) return "reason: " + d.reason;
    if (event.action === "key.created" && d.scopes) return (d.name ? d.name + " · " : "") + (d.scopes.join(" ") || "no scopes");
    if (d.changed) return "changed: " + d.changed.join(", ");
    return "";
  }

  function auditView() {
    document.title = "Audit log · " + config.title;
    var body = h("tbody");
    var more = h("div", { class: "actions" });
    append(main, [
      h("h1", { text: "Audit log" }),
      h("p", { class: "muted", text: "Every change to the keys of " + me.org.name + ", newest first." }),
      h("table", { class: "cards" }, [
        h("caption", { class: "visually-hidden", text: "Audit log" }),
        h("thead", null, h("tr", null, ["When", "What", "Who", "Key", "Details"].map(function (t) { return h("th", { scope: "col", text: t }); }))),
        body,
      ]),
      more,
    ]);
    function load(cursor) {
      return api("GET", "/api/audit" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : "")).then(function (page) {
        page.items.forEach(function (event) {
          // Members and viewers get no ids or addresses: "you", or just the kind of actor.
          var actor = event.actor.you ? "you" : event.actor.type === "user" ? event.actor.id || "a user" : event.actor.type === "admin" ? "support" : "system";
          body.appendChild(h("tr", null, [
            h("td", { "data-label": "When", text: when(event.at) }),
            h("td", { "data-label": "What", text: ACTIONS[event.action] || event.action }),
            h("td", { "data-label": "Who" }, [actor, event.actor.ip ? h("div", { class: "small muted", text: event.actor.ip }) : null]),
            h("td", { "data-label": "Key" }, event.keyId ? h("a", { href: "#/keys/" + encodeURIComponent(event.keyId), class: "mono", text: event.keyId }) : "—"),
            h("td", { "data-label": "Details", class: "small", text: summary(event) }),
          ]));
        });
        if (!cursor && page.items.length === 0) body.appendChild(h("tr", null, h("td", { colspan: 5, class: "empty", text: "Nothing yet." })));
        clear(more);
        if (page.nextCursor) more.appendChild(h("button", { type: "button", text: "Load more", onclick: function () { load(page.nextCursor); } }));
      });
    }
    return load(null);
  }

  // ---- start ----------------------------------------------------------------------------------

  api("GET", "/api/me").then(function (result) {
    me = result;
    renderAccount();
    window.addEventListener("hashchange", route);
    route();
  }, function (error) {
    if (error.status !== 401) {
      clear(main);
      append(main, [h("h1", { text: "The portal could not load" }), h("p", { text: error.message })]);
    }
  });
})();
`;
