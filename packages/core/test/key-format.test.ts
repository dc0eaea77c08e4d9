import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BASE62,
  base62Symbol,
  createKeyParser,
  displayParts,
  generateKey,
  MAX_KEY_LENGTH,
  randomId,
} from "../src/keys/format.js";

const parse = createKeyParser("flux");

describe("key format", () => {
  it("generates keys that parse, with the environment in the prefix", () => {
    for (const env of ["live", "test"] as const) {
      const { secret } = generateKey("flux", env);
      expect(secret).toMatch(new RegExp(`^flux_${env}_[0-9A-Za-z]{49}$`));
      expect(parse(secret)).toEqual({ ok: true, environment: env });
    }
  });

  it("gives two keys nothing in common but the prefix", () => {
    const a = generateKey("flux", "live").secret;
    const b = generateKey("flux", "live").secret;
    expect(a).not.toBe(b);
  });

  it("keeps only a short start and the last four for display", () => {
    const { secret } = generateKey("flux", "live");
    const { start, last4 } = displayParts(secret, "flux");
    expect(start).toBe(secret.slice(0, 14));
    expect(last4).toBe(secret.slice(-4));
    expect(start.length + last4.length).toBeLessThan(secret.length / 2);
  });

  it("classifies missing and malformed input", () => {
    const { secret } = generateKey("flux", "live");
    expect(parse(undefined)).toEqual({ ok: false, code: "key_missing" });
    expect(parse("")).toEqual({ ok: false, code: "key_missing" });
    expect(parse(42)).toEqual({ ok: false, code: "key_missing" });
    expect(parse(secret.replace("flux_", "flax_"))).toEqual({ ok: false, code: "key_malformed" });
    expect(parse(secret.replace("_live_", "_prod_"))).toEqual({ ok: false, code: "key_malformed" });
    expect(parse(secret.slice(0, -1))).toEqual({ ok: false, code: "key_malformed" });
    expect(parse(`${secret}x`)).toEqual({ ok: false, code: "key_malformed" });
    expect(parse("x".repeat(MAX_KEY_LENGTH * 100))).toEqual({ ok: false, code: "key_malformed" });
    expect(createKeyParser("acme")(secret)).toEqual({ ok: false, code: "key_malformed" });
  });

  it("property: any string gets a typed answer, never an exception", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.anything()), (input) => {
        const result = parse(input);
        expect(result.ok === true || result.code === "key_missing" || result.code === "key_malformed").toBe(
          true,
        );
      }),
      { numRuns: 2_000 },
    );
  });

  it("property: random strings in the key's shape fail the checksum", () => {
    const body = fc.string({ unit: fc.constantFrom(...BASE62), minLength: 49, maxLength: 49 });
    fc.assert(
      fc.property(body, (chars) => {
        // 6 checksum characters carry 32 bits: a random candidate passes 1 time in 4 billion.
        expect(parse(`flux_live_${chars}`).ok).toBe(false);
      }),
      { numRuns: 5_000 },
    );
  });

  it("property: changing any one character of a real key is detected", () => {
    const { secret } = generateKey("flux", "live");
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: secret.length - 1 }),
        fc.constantFrom(...BASE62, "_", "-", " "),
        (index, replacement) => {
          fc.pre(secret[index] !== replacement);
          const typo = secret.slice(0, index) + replacement + secret.slice(index + 1);
          expect(parse(typo)).toEqual({ ok: false, code: "key_malformed" });
        },
      ),
      { numRuns: 3_000 },
    );
  });
});

describe("random ids", () => {
  it("map the byte range onto base62 with every symbol equally likely (byte % 62 would not)", () => {
    const counts = new Map<string, number>();
    let rejected = 0;
    for (let byte = 0; byte < 256; byte++) {
      const symbol = base62Symbol(byte);
      if (symbol === null) rejected++;
      else counts.set(symbol, (counts.get(symbol) ?? 0) + 1);
    }
    expect(counts.size).toBe(62);
    expect(new Set(counts.values())).toEqual(new Set([4]));
    expect(rejected).toBe(256 - 62 * 4);
  });

  it("are the kind, then 20 base62 characters, and differ", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1_000; i++) {
      const id = randomId("key");
      expect(id).toMatch(/^key_[0-9A-Za-z]{20}$/);
      ids.add(id);
    }
    expect(ids.size).toBe(1_000);
  });
});
