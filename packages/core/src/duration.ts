/**
 * The one duration grammar of Flux Keys, for every option, `keys.rotate`'s grace, the portal's
 * links and the CLI's flags: a number of milliseconds, or a decimal number and one unit (`ms`,
 * `s`, `m`, `h`, `d`, `w`) with nothing between or around them. `ms` does the arithmetic; the
 * pattern keeps out the rest of what `ms` would take (`'1 day'`, `'2y'`, `'-5s'`, a bare `'100'`),
 * so a typo is an error rather than a surprise.
 */
import parseMs from "ms";
import { FluxError } from "./errors.js";

/** A duration as milliseconds, or a string such as `'500ms'`, `'30s'`, `'15m'`, `'24h'`, `'7d'`, `'2w'`. */
export type Duration = number | `${number}${"ms" | "s" | "m" | "h" | "d" | "w"}`;

const PATTERN = /^\d+(?:\.\d+)?(?:ms|s|m|h|d|w)$/;

/** Milliseconds of a Duration, or null when it is not one. */
export function durationMs(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : null;
  if (typeof value !== "string" || !PATTERN.test(value)) return null;
  const ms = parseMs(value as Parameters<typeof parseMs>[0]);
  return Number.isFinite(ms) ? ms : null;
}

/** True for a Duration (a string in the grammar, or a finite number >= 0). */
export function isDuration(value: unknown): value is Duration {
  return durationMs(value) !== null;
}

/** Milliseconds of a Duration; throws `invalid_request` for anything else. */
export function toMs(value: Duration, what = "duration"): number {
  const ms = durationMs(value);
  if (ms === null)
    throw new FluxError("invalid_request", { detail: `${what} must be a duration such as '24h'.` });
  return ms;
}
