import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FluxError } from "../src/errors.js";
import { assertWithinPlan, hasScopes, normalizeScopes } from "../src/scopes.js";

describe("scopes", () => {
  it("matches exactly, by resource wildcard and by *", () => {
    expect(hasScopes(["read:events"], "read:events")).toBe(true);
    expect(hasScopes(["read:events"], "read:configs")).toBe(false);
    expect(hasScopes(["read:*"], "read:events")).toBe(true);
    expect(hasScopes(["read:*"], "write:events")).toBe(false);
    expect(hasScopes(["*"], ["read:events", "write:configs"])).toBe(true);
    expect(hasScopes({ scopes: ["read:events"] }, ["read:events", "write:events"])).toBe(false);
    expect(hasScopes(["a:b:*"], "a:b:c")).toBe(true);
    expect(hasScopes(["a:*"], "a:b:c")).toBe(true);
    // A wildcard is only a wildcard at a segment boundary.
    expect(hasScopes(["rea*"], "read:events")).toBe(false);
    expect(hasScopes(["read:ev*"], "read:events")).toBe(false);
  });

  it("normalises and validates scope lists", () => {
    expect(normalizeScopes(["write:x", "read:x", "read:x"])).toEqual(["read:x", "write:x"]);
    for (const bad of [["has space"], [""], ["a::b"], [42], "read:x", Array(101).fill("a")]) {
      expect(() => normalizeScopes(bad)).toThrow(FluxError);
    }
  });

  it("keeps requested scopes within the plan (wildcards do not widen)", () => {
    expect(() => assertWithinPlan(["read:events"], ["read:*"])).not.toThrow();
    expect(() => assertWithinPlan(["read:*"], ["read:events"])).toThrow(/read:\*/);
    expect(() => assertWithinPlan(["*"], ["read:*"])).toThrow(FluxError);
    expect(() => assertWithinPlan(["anything:goes"], [])).not.toThrow();
  });

  it("property: hasScopes never throws and * covers everything", () => {
    fc.assert(
      fc.property(fc.array(fc.string()), fc.array(fc.string()), (granted, required) => {
        expect(typeof hasScopes(granted, required)).toBe("boolean");
        expect(hasScopes(["*"], required)).toBe(true);
      }),
    );
  });
});
