/**
 * The Authorization parser reads `Bearer <token>` exactly as the grammar below says (the regex it
 * replaced on the hot path), for any input: fast-check compares the two on random header values.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { extractCredential } from "../src/http/credentials.js";

/** The specification: a token after `Bearer` and spaces; `Bearer` followed by anything else is malformed. */
function specified(value: string): string | undefined | null {
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(value);
  if (match?.[1] !== undefined) return match[1];
  return /^Bearer\b/i.test(value) ? null : undefined;
}

const OPTIONS = {
  authorizationHeader: "authorization",
  apiKeyHeader: false as const,
  queryParameter: false as const,
  keyPrefix: "flux",
};

function parsed(value: string): string | undefined | null {
  const fromHeaders = extractCredential({ authorization: value }, "/", OPTIONS);
  const fromRaw = extractCredential({}, "/", OPTIONS, ["AUTHORIZATION", value]);
  expect(fromRaw).toEqual(fromHeaders);
  if (!fromHeaders.ok) {
    expect(fromHeaders.error.code).toBe("invalid_request");
    return null;
  }
  return fromHeaders.key;
}

const PIECES = fc.constantFrom(
  "Bearer",
  "bearer",
  "BeArEr",
  "Bearerx",
  "Bearer-",
  "Basic",
  " ",
  "  ",
  "\t",
  "\u00a0",
  "\u2028",
  "\n",
  "\x01",
  "é",
  "_",
  "flux_live_abc",
);

describe("Bearer credential parsing", () => {
  it("matches the grammar on random header values", () => {
    fc.assert(
      fc.property(
        fc.array(PIECES, { maxLength: 6 }).map((parts) => parts.join("")),
        fc.string(),
        (built, any) => {
          for (const value of [built, any, `Bearer ${any}`, `bearer${any}`]) {
            expect(parsed(value)).toBe(specified(value));
          }
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it("reads the usual forms", () => {
    expect(parsed("Bearer flux_live_abc")).toBe("flux_live_abc");
    expect(parsed("bearer   flux_live_abc  ")).toBe("flux_live_abc");
    expect(parsed("Basic dXNlcjpwYXNz")).toBeUndefined();
    expect(parsed("Bearer")).toBeNull();
    expect(parsed("Bearer a b")).toBeNull();
  });

  it("finds a header sent twice in any case in the raw headers", () => {
    const twice = extractCredential({}, "/", OPTIONS, [
      "authorization",
      "Bearer a",
      "Authorization",
      "Bearer a",
    ]);
    expect(twice.ok).toBe(false);
  });
});
