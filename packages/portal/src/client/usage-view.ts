/** Usage over a chosen range: the chart, top endpoints and (org-wide) the busiest keys. */
import { chart } from "./chart.js";
import type { Portal } from "./context.js";
import { append, clear, h } from "./dom.js";
import { num, outcomeSummary, RANGE_LABEL, sentence } from "./format.js";
import type { RangeName, Usage } from "./types.js";
import { errorBox, showError } from "./widgets.js";

const countHeadings = (first: string) =>
  h(
    "thead",
    null,
    h("tr", null, [
      h("th", { scope: "col", text: first }),
      h("th", { scope: "col", class: "num", text: "Requests" }),
      h("th", { scope: "col", class: "num", text: "Errors" }),
    ]),
  );

export function usagePanel(
  portal: Portal,
  container: HTMLElement,
  titleId: string,
  title: string,
  keyId: string | null,
): Promise<void> {
  const ranges = Object.keys(RANGE_LABEL) as RangeName[];
  const select = h(
    "select",
    { id: `${titleId}-range`, "aria-label": "Time range" },
    ranges.map((r) => h("option", { value: r, text: RANGE_LABEL[r], selected: r === "24h" })),
  );
  const body = h("div", { class: "usage-body" });
  append(container, [h("div", { class: "bar" }, [h("h2", { id: titleId, text: title }), select]), body]);
  function load(): Promise<void> {
    const q = `/api/usage?range=${select.value}${keyId ? `&keyId=${encodeURIComponent(keyId)}` : ""}`;
    return portal.api<Usage>("GET", q).then(
      (data) => {
        clear(body);
        const captionId = `${titleId}-caption`;
        const summary = `${RANGE_LABEL[data.range]}: ${num(data.totals.calls)} requests, ${num(data.totals.errors)} errors, ${num(data.refused || 0)} refused${outcomeSummary(data.outcomes)}.`;
        append(
          body,
          h("figure", { class: "panel" }, [
            h("div", { class: "legend", "aria-hidden": "true" }, [
              h("span", null, [h("span", { class: "swatch calls" }), "Requests"]),
              h("span", null, [h("span", { class: "swatch errors" }), "Errors"]),
              h("span", null, [h("span", { class: "swatch refused" }), "Refused (throttled or denied)"]),
            ]),
            chart(data, captionId, body.clientWidth - 34),
            h("figcaption", { id: captionId, class: "usage-summary", text: summary }),
          ]),
        );
        const tables = h("div", { class: "grid2" });
        body.appendChild(tables);
        tables.appendChild(
          h("div", null, [
            h("h3", { text: "Top endpoints" }),
            data.endpoints.length
              ? h("table", null, [
                  countHeadings("Endpoint"),
                  h(
                    "tbody",
                    null,
                    data.endpoints.map((e) =>
                      h("tr", null, [
                        h("td", null, h("code", { text: `${e.method} ${e.endpoint}` })),
                        h("td", { class: "num", text: num(e.calls) }),
                        h("td", { class: "num", text: num(e.errors) }),
                      ]),
                    ),
                  ),
                ])
              : h("p", { class: "muted", text: "No requests in this range." }),
          ]),
        );
        if (!keyId) {
          tables.appendChild(
            h("div", null, [
              h("h3", { text: "By key" }),
              data.keys.length
                ? h("table", null, [
                    countHeadings("Key"),
                    h(
                      "tbody",
                      null,
                      data.keys.map((k) =>
                        h("tr", null, [
                          h("td", null, [
                            h("a", {
                              href: `#/keys/${encodeURIComponent(k.keyId)}`,
                              text: k.name || k.keyId,
                            }),
                            k.start
                              ? h("span", { class: "small muted block mono", text: `${k.start}…${k.last4}` })
                              : null,
                          ]),
                          h("td", { class: "num", text: num(k.calls) }),
                          h("td", { class: "num", text: num(k.errors) }),
                        ]),
                      ),
                    ),
                  ])
                : h("p", { class: "muted", text: "No requests in this range." }),
            ]),
          );
        }
      },
      (error: unknown) => {
        clear(body);
        const box = errorBox(`${titleId}-error`);
        body.appendChild(box);
        showError(box, error);
      },
    );
  }
  select.addEventListener("change", () => void load());
  return load();
}

export function usageView(portal: Portal): Promise<void> {
  const { config, me, main } = portal;
  document.title = `Usage · ${config.title}`;
  const section = h("section");
  append(main, [
    h("h1", { text: "Usage" }),
    h("p", { class: "muted", text: sentence(`Requests and errors of all keys of ${me.org.name}`) }),
    section,
  ]);
  return usagePanel(portal, section, "org-usage-title", "All keys", null);
}
