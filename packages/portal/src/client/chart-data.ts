/**
 * The usage chart's geometry, apart from drawing it: bars for requests, errors and refused calls
 * per point, three grid lines, three time labels. Pure, so it is unit-tested without a browser.
 */
import { num, when } from "./format.js";
import type { Granularity, UsagePoint } from "./types.js";

export type BarKind = "chart-bar" | "chart-err" | "chart-refused";

export interface ChartLayout {
  width: number;
  height: number;
  gridLines: Array<{ x1: number; x2: number; y: number; label: string }>;
  bars: Array<{ kind: BarKind; x: number; y: number; width: number; height: number; label: string }>;
  timeLabels: Array<{ x: number; y: number; anchor: "start" | "middle" | "end"; text: string }>;
}

const LEFT = 44;
const BOTTOM = 24;
const TOP = 8;
const RIGHT = 8;

/** The axis top: 2, 4, 6 or 10 times a power of ten, so the middle line is a whole number. */
export function niceCeil(n: number): number {
  if (n <= 2) return 2;
  const p = 10 ** Math.floor(Math.log10(n));
  const m = n / p;
  return (m <= 2 ? 2 : m <= 4 ? 4 : m <= 6 ? 6 : 10) * p;
}

export function timeFormat(granularity: Granularity): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat(
    undefined,
    granularity === "minute"
      ? { hour: "2-digit", minute: "2-digit" }
      : granularity === "hour"
        ? { month: "short", day: "numeric", hour: "2-digit" }
        : { month: "short", day: "numeric" },
  );
}

/** The tooltip of one point. */
export function pointLabel(point: UsagePoint): string {
  return `${when(point.at)}: ${num(point.calls)} requests, ${num(point.errors)} errors, ${num(point.refused || 0)} refused`;
}

export function chartLayout(
  data: { points: readonly UsagePoint[]; granularity: Granularity },
  availableWidth?: number,
): ChartLayout {
  const width = Math.max(300, Math.min(1100, Math.round(availableWidth || 720)));
  const height = width < 500 ? 180 : 220;
  const { points } = data;
  const top = niceCeil(points.reduce((max, p) => Math.max(max, p.calls), 0));
  const plotW = width - LEFT - RIGHT;
  const plotH = height - TOP - BOTTOM;
  const step = plotW / Math.max(points.length, 1);
  const barWidth = Math.max(1, step * 0.8);
  const gridLines = [0, 0.5, 1].map((f) => ({
    x1: LEFT,
    x2: width - RIGHT,
    y: TOP + plotH - f * plotH,
    label: num(top * f),
  }));
  const bars: ChartLayout["bars"] = [];
  points.forEach((p, i) => {
    const x = LEFT + i * step + (step - barWidth) / 2;
    const label = pointLabel(p);
    // Refused by Flux Keys (throttled, out of scope, revoked…): the customer sees them too.
    const values: Array<[BarKind, number]> = [
      ["chart-bar", p.calls],
      ["chart-err", p.errors],
      ["chart-refused", p.refused],
    ];
    for (const [kind, value] of values) {
      if (!(value > 0)) continue;
      const h = (value / top) * plotH;
      bars.push({ kind, x, y: TOP + plotH - h, width: barWidth, height: h, label });
    }
  });
  const timeLabels: ChartLayout["timeLabels"] = [];
  if (points.length) {
    const fmt = timeFormat(data.granularity);
    const anchors = ["start", "middle", "end"] as const;
    [0, Math.floor(points.length / 2), points.length - 1].forEach((i, n) => {
      const point = points[i] as UsagePoint;
      timeLabels.push({
        x: LEFT + i * step + step / 2,
        y: height - 6,
        anchor: anchors[n] as ChartLayout["timeLabels"][number]["anchor"],
        text: fmt.format(new Date(point.at)),
      });
    });
  }
  return { width, height, gridLines, bars, timeLabels };
}
