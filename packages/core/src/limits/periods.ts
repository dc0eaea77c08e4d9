/** Quota periods are UTC calendar periods: a day, a month, or `total` (never refills). */
import type { Quota } from "../types.js";

export interface PeriodInstant {
  /** Part of the counter key: a new period is a new counter. */
  id: string;
  /** End of the period (ms since epoch), or null for `total`. */
  endsAt: number | null;
  /** Length of the period in seconds (the `w` of the policy), or null for `total`. */
  seconds: number | null;
}

const DAY_MS = 86_400_000;
const TOTAL: PeriodInstant = Object.freeze({ id: "t", endsAt: null, seconds: null });

export function periodAt(period: Quota["period"], now: number): PeriodInstant {
  if (period === "total") return TOTAL;
  const date = new Date(now);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  if (period === "day") {
    const start = Date.UTC(year, month, date.getUTCDate());
    return { id: `d${new Date(start).toISOString().slice(0, 10)}`, endsAt: start + DAY_MS, seconds: 86_400 };
  }
  const start = Date.UTC(year, month, 1);
  const end = Date.UTC(year, month + 1, 1);
  return { id: `m${new Date(start).toISOString().slice(0, 7)}`, endsAt: end, seconds: (end - start) / 1000 };
}
