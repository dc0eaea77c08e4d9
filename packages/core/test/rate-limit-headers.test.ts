/**
 * The RateLimit / RateLimit-Policy fields are serialised by hand on the hot path (see
 * bench/RESULTS.md, "Why the hot path is written as it is"); a kept Structured Fields parser
 * (structured-headers, RFC 9651) checks here that what we write is what the draft specifies.
 */
import fc from "fast-check";
import { parseList, Token } from "structured-headers";
import { describe, expect, it } from "vitest";
import { FluxError } from "../src/errors.js";
import { rateLimitHeaders } from "../src/limits/headers.js";
import type { RateLimitState } from "../src/types.js";

const windowArb = fc.record({
  name: fc.string({ maxLength: 20 }),
  limit: fc.integer({ min: 1, max: 1_000_000 }),
  remaining: fc.integer({ min: 0, max: 1_000_000 }),
  window: fc.integer({ min: 1, max: 86_400 }),
  resetIn: fc.integer({ min: 0, max: 86_400 }),
  per: fc.constantFrom("key" as const, "org" as const),
});

/** What a Structured Fields string can carry: printable ASCII (the rest is dropped). */
function printable(value: string): string {
  return [...value].filter((char) => char.charCodeAt(0) >= 0x20 && char.charCodeAt(0) <= 0x7e).join("");
}

function members(field: string): Array<{ name: unknown; params: Record<string, unknown> }> {
  return parseList(field).map(([value, params]) => ({ name: value, params: Object.fromEntries(params) }));
}

describe("RateLimit headers as Structured Fields", () => {
  it("parse back to one string member per window, with its parameters", () => {
    fc.assert(
      fc.property(fc.array(windowArb, { minLength: 1, maxLength: 4 }), (windows) => {
        const state: RateLimitState = { windows, quota: null };
        const headers = rateLimitHeaders(state);
        expect(members(headers["RateLimit-Policy"] as string)).toEqual(
          windows.map((w) => ({ name: printable(w.name), params: { q: w.limit, w: w.window } })),
        );
        expect(members(headers.RateLimit as string)).toEqual(
          windows.map((w) => ({ name: printable(w.name), params: { r: w.remaining, t: w.resetIn } })),
        );
      }),
    );
  });

  it("add the quota as a member of its own (no reset for a total quota)", () => {
    const monthly = rateLimitHeaders({
      windows: [{ name: "burst", limit: 10, remaining: 9, window: 1, resetIn: 1, per: "key" }],
      quota: { limit: 1000, remaining: 10, period: "month", resetIn: 3600 },
    });
    expect(members(monthly["RateLimit-Policy"] as string)).toEqual([
      { name: "burst", params: { q: 10, w: 1 } },
      { name: "quota", params: { q: 1000, w: 2592000 } },
    ]);
    const total = rateLimitHeaders({
      windows: [],
      quota: { limit: 5, remaining: 0, period: "total", resetIn: null },
    });
    expect(members(total.RateLimit as string)).toEqual([{ name: "quota", params: { r: 0 } }]);
    // Strings, never tokens: a window name is not required to be a valid token.
    expect(parseList(total.RateLimit as string)[0]?.[0]).not.toBeInstanceOf(Token);
  });

  it("carry the refusing window's state and a Retry-After on a 429", () => {
    const state: RateLimitState = {
      windows: [{ name: 'we"ird\\name', limit: 2, remaining: 0, window: 60, resetIn: 42, per: "key" }],
      quota: null,
    };
    const headers = rateLimitHeaders(
      new FluxError("rate_limited", {
        extensions: { window: 'we"ird\\name', retryAfter: 40, rateLimit: state },
      }),
    );
    expect(members(headers.RateLimit as string)).toEqual([{ name: 'we"ird\\name', params: { r: 0, t: 42 } }]);
    expect(headers["Retry-After"]).toBe("42");
  });
});
