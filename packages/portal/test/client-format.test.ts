/** The front end's pure parts: words, numbers and the usage chart's geometry (no browser). */
import { describe, expect, it } from "vitest";
import { chartLayout, niceCeil, pointLabel } from "../src/client/chart-data.js";
import {
  actorLabel,
  auditSummary,
  keyText,
  outcomeSummary,
  relative,
  sentence,
  who,
} from "../src/client/format.js";

const NOW = Date.parse("2026-06-01T12:00:00Z");

describe("format", () => {
  it("says how long ago or from now, in the largest whole unit", () => {
    expect(relative(null, NOW)).toBe("never");
    expect(relative(new Date(NOW - 30_000).toISOString(), NOW)).toBe("just now");
    expect(relative(new Date(NOW + 30_000).toISOString(), NOW)).toBe("in under a minute");
    expect(relative(new Date(NOW - 60_000).toISOString(), NOW)).toBe("1 minute ago");
    expect(relative(new Date(NOW - 3 * 3_600_000).toISOString(), NOW)).toBe("3 hours ago");
    expect(relative(new Date(NOW + 2 * 86_400_000).toISOString(), NOW)).toBe("in 2 days");
  });

  it("ends sentences once, shows keys by their ends, names creators and actors", () => {
    expect(sentence("Acme Inc.")).toBe("Acme Inc.");
    expect(sentence("Acme")).toBe("Acme.");
    expect(keyText({ start: "flux_live_ab", last4: "wxyz" })).toBe("flux_live_ab…wxyz");
    expect(who({ type: "user", id: "u-1" }, true)).toBe("you");
    expect(who({ type: "user", id: "u-1" }, false)).toBe("u-1");
    expect(who({ type: "admin", id: "ops" }, false)).toBe("support (ops)");
    expect(who({ type: "system" }, false)).toBe("system");
    expect(actorLabel({ type: "user", you: false })).toBe("a user");
    expect(actorLabel({ type: "admin", id: "ops", you: false })).toBe("support");
  });

  it("summarises refused outcomes and audit details", () => {
    expect(outcomeSummary({ allowed: 10 })).toBe("");
    expect(outcomeSummary({ allowed: 10, rate_limited: 3, revoked: 1, novel: 2 })).toBe(
      " (rate limited 3, revoked key 1, novel 2)",
    );
    expect(auditSummary({ action: "key.scopes_changed", details: { from: ["a"], to: ["a", "b"] } })).toBe(
      "a → a b",
    );
    expect(auditSummary({ action: "key.created", details: { name: "CI", scopes: [] } })).toBe(
      "CI · no scopes",
    );
    expect(auditSummary({ action: "key.updated", details: { changed: ["name"] } })).toBe("changed: name");
    expect(auditSummary({ action: "key.updated", details: null })).toBe("");
  });
});

describe("chart data", () => {
  it("rounds the axis top up to 2, 4, 6 or 10 times a power of ten", () => {
    expect([0, 1, 2, 3, 5, 7, 15, 35, 55, 99, 101].map(niceCeil)).toEqual([
      2, 2, 2, 4, 6, 10, 20, 40, 60, 100, 200,
    ]);
  });

  it("draws a bar per non-zero series, scaled to the axis, with a tooltip per point", () => {
    const points = [
      { at: "2026-06-01T10:00:00Z", calls: 10, errors: 2, refused: 0 },
      { at: "2026-06-01T11:00:00Z", calls: 0, errors: 0, refused: 0 },
      { at: "2026-06-01T12:00:00Z", calls: 20, errors: 0, refused: 5 },
    ];
    const layout = chartLayout({ points, granularity: "hour" }, 720);
    expect(layout).toMatchObject({ width: 720, height: 220 });
    expect(layout.bars.map((bar) => bar.kind)).toEqual([
      "chart-bar",
      "chart-err",
      "chart-bar",
      "chart-refused",
    ]);
    const plotBottom = 220 - 24;
    for (const bar of layout.bars) expect(bar.y + bar.height).toBeCloseTo(plotBottom);
    // 20 calls under an axis of 20: the full plot height (220 - 8 - 24).
    expect(layout.bars[2]?.height).toBeCloseTo(188);
    expect(layout.bars[0]?.label).toBe(pointLabel(points[0] as (typeof points)[number]));
    expect(layout.bars[0]?.label).toMatch(/: 10 requests, 2 errors, 0 refused$/);
    expect(layout.gridLines.map((line) => line.label)).toEqual(["0", "10", "20"]);
    expect(layout.timeLabels.map((label) => label.anchor)).toEqual(["start", "middle", "end"]);
  });

  it("keeps a readable size and draws nothing for an empty range", () => {
    const empty = chartLayout({ points: [], granularity: "day" }, 100);
    expect(empty).toMatchObject({ width: 300, height: 180, bars: [], timeLabels: [] });
    expect(chartLayout({ points: [], granularity: "minute" }, 5000).width).toBe(1100);
  });
});
