/**
 * The portal's view of its own URL behind a proxy: forwarded scheme and host are believed only
 * from a trusted peer, only when well-formed, and never change the path.
 */
import { describe, expect, it } from "vitest";
import { compileTrust } from "../src/http/client-address.js";
import { clientFacingUrl } from "../src/portal/http.js";

const internal = new URL("http://10.0.0.5:3000/portal/api/keys?x=1");
const trusted = compileTrust("10.0.0.0/8");
const at = (headers: Record<string, string>, peer = "10.0.0.1") =>
  clientFacingUrl(internal, new Headers(headers), peer, trusted).href;

describe("clientFacingUrl", () => {
  it("takes X-Forwarded-Proto and X-Forwarded-Host (first entry) from a trusted peer", () => {
    expect(at({ "x-forwarded-proto": "https", "x-forwarded-host": "app.example.com" })).toBe(
      "https://app.example.com/portal/api/keys?x=1",
    );
    expect(at({ "x-forwarded-proto": "https, http", "x-forwarded-host": "a.example:8443, b" })).toBe(
      "https://a.example:8443/portal/api/keys?x=1",
    );
    expect(at({ "x-forwarded-proto": "HTTPS" })).toBe("https://10.0.0.5:3000/portal/api/keys?x=1");
  });

  it("falls back to the first element of Forwarded", () => {
    expect(at({ forwarded: 'for=203.0.113.9;proto=https;host="app.example.com", for=10.0.0.2' })).toBe(
      "https://app.example.com/portal/api/keys?x=1",
    );
  });

  it("ignores every forwarded header from an untrusted peer, or without a peer", () => {
    const forged = { "x-forwarded-proto": "https", "x-forwarded-host": "evil.example" };
    expect(at(forged, "198.51.100.1")).toBe(internal.href);
    expect(clientFacingUrl(internal, new Headers(forged), undefined, trusted).href).toBe(internal.href);
    expect(clientFacingUrl(internal, new Headers(forged), "10.0.0.1", compileTrust(false)).href).toBe(
      internal.href,
    );
  });

  it("ignores malformed values and never moves the path", () => {
    for (const host of ["a b", "x:99999", "a@b", "a/b", "evil.example/portal#", "[", "%zz"]) {
      const url = new URL(at({ "x-forwarded-host": host }));
      expect(url.host, host).toBe("10.0.0.5:3000");
      expect(url.pathname).toBe("/portal/api/keys");
    }
    expect(at({ "x-forwarded-proto": "javascript" })).toBe(internal.href);
    expect(at({ "x-forwarded-proto": "ftp" })).toBe(internal.href);
  });
});
