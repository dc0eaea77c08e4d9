/**
 * The pure parts of limits that adapters call: RateLimit headers (draft-ietf-httpapi-ratelimit-headers-11)
 * and the client address of a request (forwarded-for trust, IPv4 / IPv6 / IPv4-mapped buckets).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addressBucket,
  clientAddress,
  FluxError,
  type RateLimitState,
  rateLimitHeaders,
} from "../src/index.js";

const state: RateLimitState = {
  windows: [
    { name: "burst", limit: 10, remaining: 3, window: 1, resetIn: 1, per: "key" },
    { name: "sustained", limit: 1000, remaining: 990, window: 3600, resetIn: 3521, per: "key" },
  ],
  quota: { limit: 5000, remaining: 4000, period: "day", resetIn: 7200 },
};

describe("rateLimitHeaders", () => {
  it("lists one member per window in RateLimit-Policy and RateLimit", () => {
    expect(rateLimitHeaders(state)).toEqual({
      "RateLimit-Policy": '"burst";q=10;w=1, "sustained";q=1000;w=3600, "quota";q=5000;w=86400',
      RateLimit: '"burst";r=3;t=1, "sustained";r=990;t=3521, "quota";r=4000;t=7200',
    });
    expect(rateLimitHeaders({ rateLimit: state })).toEqual(rateLimitHeaders(state));
    expect(rateLimitHeaders({ rateLimit: null })).toEqual({});
    expect(rateLimitHeaders(null)).toEqual({});
  });

  it("follows a window whose limit or length changed under the same name", () => {
    const burst = (limit: number, window: number) =>
      rateLimitHeaders({
        windows: [{ name: "burst", limit, remaining: 1, window, resetIn: 1, per: "key" }],
        quota: null,
      })["RateLimit-Policy"];
    expect(burst(10, 1)).toBe('"burst";q=10;w=1');
    expect(burst(20, 1)).toBe('"burst";q=20;w=1');
    expect(burst(20, 60)).toBe('"burst";q=20;w=60');
    expect(burst(10, 1)).toBe('"burst";q=10;w=1');
  });

  it("omits the window and reset of a total quota", () => {
    const headers = rateLimitHeaders({
      windows: [],
      quota: { limit: 1000, remaining: 7, period: "total", resetIn: null },
    });
    expect(headers).toEqual({ "RateLimit-Policy": '"quota";q=1000', RateLimit: '"quota";r=7' });
  });

  it("adds Retry-After to denials, never earlier than the window's reset", () => {
    const error = new FluxError("rate_limited", {
      extensions: { window: "sustained", retryAfter: 10, rateLimit: state },
    });
    const headers = rateLimitHeaders(error);
    expect(headers["Retry-After"]).toBe("3521");
    expect(headers.RateLimit).toContain('"sustained";r=990;t=3521');
    expect(rateLimitHeaders({ valid: false, error })).toEqual(headers);
    const unavailable = new FluxError("store_unavailable", { extensions: { retryAfter: 1 } });
    expect(rateLimitHeaders(unavailable)).toEqual({ "Retry-After": "1" });
    expect(rateLimitHeaders(new FluxError("key_invalid"))).toEqual({});
  });

  it("escapes names as Structured Field strings", () => {
    const odd: RateLimitState = {
      windows: [{ name: 'a"b\\c', limit: 1, remaining: 0, window: 60, resetIn: 5, per: "key" }],
      quota: null,
    };
    expect(rateLimitHeaders(odd)["RateLimit-Policy"]).toBe('"a\\"b\\\\c";q=1;w=60');
  });
});

describe("clientAddress", () => {
  const headers = { "x-forwarded-for": "203.0.113.7, 10.0.0.2, 10.0.0.1" };

  it("ignores X-Forwarded-For unless proxies are trusted", () => {
    expect(clientAddress({ remoteAddress: "10.0.0.1", headers })).toBe("10.0.0.1");
    expect(clientAddress({ remoteAddress: "10.0.0.1", headers }, { trustProxy: false })).toBe("10.0.0.1");
  });

  it("trusts all hops, a hop count, or listed proxies", () => {
    expect(clientAddress({ remoteAddress: "10.0.0.9", headers }, { trustProxy: true })).toBe("203.0.113.7");
    expect(clientAddress({ remoteAddress: "10.0.0.9", headers }, { trustProxy: 1 })).toBe("10.0.0.1");
    expect(clientAddress({ remoteAddress: "10.0.0.9", headers }, { trustProxy: 3 })).toBe("203.0.113.7");
    expect(clientAddress({ remoteAddress: "10.0.0.9", headers }, { trustProxy: ["10.0.0.0/8"] })).toBe(
      "203.0.113.7",
    );
    expect(clientAddress({ remoteAddress: "10.0.0.9", headers }, { trustProxy: "uniquelocal" })).toBe(
      "203.0.113.7",
    );
    // A socket address outside the trusted list makes the header worthless: it could be forged.
    expect(clientAddress({ remoteAddress: "198.51.100.1", headers }, { trustProxy: ["10.0.0.0/8"] })).toBe(
      "198.51.100.1",
    );
    // A forged hop left of an untrusted one is never reached.
    expect(
      clientAddress(
        { remoteAddress: "10.0.0.9", headers: { "x-forwarded-for": "1.1.1.1, 198.51.100.5" } },
        { trustProxy: "10.0.0.0/8" },
      ),
    ).toBe("198.51.100.5");
  });

  it("reads Web Headers and canonicalises IPv4-mapped and bracketed addresses", () => {
    const web = new Headers({ "x-forwarded-for": "[2001:DB8::1]:443" });
    expect(
      clientAddress({ remoteAddress: "::ffff:127.0.0.1", headers: web }, { trustProxy: "loopback" }),
    ).toBe("2001:db8:0:0:0:0:0:1");
    expect(clientAddress({ remoteAddress: "::ffff:192.0.2.1" })).toBe("192.0.2.1");
    expect(clientAddress({ remoteAddress: null })).toBeNull();
  });

  it("never throws, whatever the headers say", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.oneof(fc.boolean(), fc.nat(5)), (remote, forwarded, trust) => {
        const result = clientAddress(
          { remoteAddress: remote, headers: { "x-forwarded-for": forwarded } },
          { trustProxy: trust },
        );
        expect(result === null || typeof result === "string").toBe(true);
        if (result !== null) expect(typeof addressBucket(result)).toBe("string");
      }),
    );
  });
});

describe("addressBucket", () => {
  it("counts IPv6 by /64 and IPv4-mapped IPv6 as IPv4", () => {
    expect(addressBucket("2001:db8:1:2:aaaa::1")).toBe(addressBucket("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    expect(addressBucket("2001:db8:1:2::1")).not.toBe(addressBucket("2001:db8:1:3::1"));
    expect(addressBucket("2001:0DB8:0001:0002::")).toBe("2001:db8:1:2::/64");
    expect(addressBucket("::ffff:10.1.2.3")).toBe("10.1.2.3");
    expect(addressBucket("::ffff:a01:203")).toBe("10.1.2.3");
    expect(addressBucket("10.1.2.3")).toBe("10.1.2.3");
    expect(addressBucket("10.1.2.4")).not.toBe("10.1.2.3");
    expect(addressBucket("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressBucket("garbage")).toBe("raw:garbage");
  });
});
