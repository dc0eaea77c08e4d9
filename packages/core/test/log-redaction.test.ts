/** redactUrl and friends: what a request log may show of a URL or headers that carried a key. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { redactHeaders, redactQuery, redactUrl } from "../src/http/log-redaction.js";
import { generateKey } from "../src/keys/format.js";

const key = generateKey("flux", "live").secret;
const other = generateKey("acme", "test").secret;

describe("redactUrl", () => {
  it("replaces key-like values and keeps every other byte", () => {
    expect(redactUrl(`/v1/events?api_key=${key}&page=2`)).toBe("/v1/events?api_key=[REDACTED]&page=2");
    expect(redactUrl(`/v1/events?page=2&q=${key}#top`)).toBe("/v1/events?page=2&q=[REDACTED]#top");
    expect(redactUrl(`/x?TOKEN=abc&access_token=def`)).toBe("/x?TOKEN=[REDACTED]&access_token=[REDACTED]");
    expect(redactUrl(`/x?any=${other}`)).toBe("/x?any=[REDACTED]");
    expect(redactUrl(`/x?any=${encodeURIComponent(`Bearer ${key}`)}`)).toBe("/x?any=[REDACTED]");
    expect(redactUrl("/x?k=secret", { queryParameter: "k" })).toBe("/x?k=[REDACTED]");
    expect(redactUrl(`/x?${key}&page=2`)).toBe("/x?[REDACTED]&page=2");
    expect(redactUrl(`/x?${key}=1`)).toBe("/x?[REDACTED]");
    expect(redactUrl("/x?v=acme_1", { keyPrefix: "acme" })).toBe("/x?v=[REDACTED]");
    for (const url of ["/v1/events", "/v1/events?page=2&sort=desc", "/x?%zz=1&a", "/x?token="]) {
      expect(redactUrl(url)).toBe(url);
    }
  });

  it("never lets a key through, whatever surrounds it", () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.constantFrom("", "Bearer ", "x"),
        fc.boolean(),
        (path, name, before, encode) => {
          const value = encode ? encodeURIComponent(`${before}${key}`) : `${before}${key}`;
          for (const url of [
            `/${encodeURIComponent(path)}?${encodeURIComponent(name)}=${value}`,
            `/${encodeURIComponent(path)}?${value}&${encodeURIComponent(name)}`,
          ]) {
            const redacted = redactUrl(url);
            expect(redacted).not.toContain(key);
            expect(redacted).not.toContain(encodeURIComponent(key));
          }
        },
      ),
    );
  });
});

describe("redactQuery and redactHeaders", () => {
  it("redact parsed queries and the credential headers", () => {
    expect(redactQuery({ [key]: "" })).toEqual({ "[REDACTED]": "[REDACTED]" });
    expect(redactQuery({ api_key: key, page: "2", list: ["a", other] })).toEqual({
      api_key: "[REDACTED]",
      page: "2",
      list: "[REDACTED]",
    });
    expect(
      redactHeaders({ authorization: `Bearer ${key}`, "x-api-key": key, cookie: "s=1", accept: "*/*" }),
    ).toEqual({
      authorization: "[REDACTED]",
      "x-api-key": "[REDACTED]",
      cookie: "[REDACTED]",
      accept: "*/*",
    });
    expect(redactHeaders({ "x-custom-key": key }, ["X-Custom-Key"])).toEqual({
      "x-custom-key": "[REDACTED]",
    });
  });
});
