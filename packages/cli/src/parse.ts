/** Parsers for option values. Each throws commander's InvalidArgumentError, so a bad value exits 1. */
import { durationMs as coreDurationMs, type Quota, type RateLimitWindow } from "@flux-keys/core";
import { InvalidArgumentError } from "commander";

/** `'90d'`, `'24h'`, `'30m'`, `'1.5h'` → milliseconds, in core's one duration grammar. */
export function durationMs(value: string): number {
  const ms = coreDurationMs(value.trim());
  if (ms === null) throw new InvalidArgumentError("Expected a duration such as 30m, 24h, 90d.");
  return ms;
}

/** A duration as text (a string always carries its unit; a bare number is not one). */
function isDurationText(value: string): boolean {
  return coreDurationMs(value.trim()) !== null;
}

/**
 * A point in time: an ISO date or date-time (`2026-05-01`, `2026-05-01T12:00Z`), `now`, or a
 * duration meaning that long ago (`7d`).
 */
export function timeArg(now: () => number) {
  return (value: string): Date => {
    const text = value.trim();
    if (text === "now") return new Date(now());
    if (isDurationText(text)) return new Date(now() - durationMs(text));
    if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
      const date = new Date(text);
      if (!Number.isNaN(date.getTime())) return date;
    }
    throw new InvalidArgumentError(
      "Expected an ISO date (2026-05-01, 2026-05-01T12:00Z), 'now', or an age such as 7d.",
    );
  };
}

/** A point in the future: an ISO date or a duration from now (`90d`). */
export function futureArg(now: () => number) {
  return (value: string): Date => {
    const text = value.trim();
    const date = isDurationText(text) ? new Date(now() + durationMs(text)) : timeArg(now)(text);
    if (date.getTime() <= now()) throw new InvalidArgumentError("Must be in the future.");
    return date;
  };
}

export function positiveInt(max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
      throw new InvalidArgumentError(`Expected a whole number from 1 to ${max}.`);
    }
    return Number(value);
  };
}

export function port(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65_535)
    throw new InvalidArgumentError("Expected a port from 0 to 65535.");
  return Number(value);
}

/** `--scope a --scope b,c` → `['a', 'b', 'c']`. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(/[\s,]+/)
      .map((part) => part.trim())
      .filter(Boolean),
  ];
}

const WINDOW_SHORTHAND = new Set(["1s", "1m", "1h", "1d"]);

/** `burst=10/1s`, `sustained=1000/1h`, `team=5000/1d/org` → a rate limit window. */
export function rateLimit(value: string, previous: RateLimitWindow[] = []): RateLimitWindow[] {
  const match = /^([A-Za-z0-9_-]{1,64})=(\d+)\/([0-9.]+(?:ms|s|m|h|d|w)?)(?:\/(key|org))?$/.exec(
    value.trim(),
  );
  if (!match)
    throw new InvalidArgumentError("Expected NAME=LIMIT/WINDOW[/org], e.g. burst=10/1s or team=5000/1h/org.");
  const [, name, limit, windowText, per] = match as unknown as [string, string, string, string, string?];
  let window: RateLimitWindow["window"];
  if (WINDOW_SHORTHAND.has(windowText)) window = windowText as RateLimitWindow["window"];
  else {
    const seconds = /^\d+$/.test(windowText) ? Number(windowText) : durationMs(windowText) / 1000;
    if (!Number.isInteger(seconds) || seconds < 1)
      throw new InvalidArgumentError("A window is whole seconds: 10s, 5m, 1h.");
    window = seconds;
  }
  return [...previous, { name, limit: Number(limit), window, ...(per ? { per: per as "key" | "org" } : {}) }];
}

/** `5000/month`, `100000/day`, `1000000/total` → a quota. */
export function quota(value: string): Quota {
  const match = /^(\d+)\/(day|month|total)$/.exec(value.trim());
  if (!match)
    throw new InvalidArgumentError("Expected LIMIT/PERIOD with PERIOD day, month or total, e.g. 5000/month.");
  return { limit: Number(match[1]), period: match[2] as Quota["period"] };
}

/** A JSON object, e.g. `'{"team":"billing"}'`. */
export function jsonObject(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('Expected a JSON object, e.g. \'{"team":"billing"}\'.');
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('Expected a JSON object, e.g. \'{"team":"billing"}\'.');
  }
  return parsed as Record<string, unknown>;
}
