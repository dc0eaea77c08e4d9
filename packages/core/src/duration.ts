import { FluxError } from "./errors.js";

/** A duration as milliseconds, or a string such as `'500ms'`, `'30s'`, `'15m'`, `'24h'`, `'7d'`. */
export type Duration = number | `${number}${"ms" | "s" | "m" | "h" | "d"}`;

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Milliseconds of a Duration; throws `invalid_request` for anything else. */
export function toMs(value: Duration, what = "duration"): number {
  if (typeof value === "number") {
    if (Number.isFinite(value) && value >= 0) return value;
  } else if (typeof value === "string") {
    const match = PATTERN.exec(value);
    if (match) return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  }
  throw new FluxError("invalid_request", { detail: `${what} must be a duration such as '24h'.` });
}
