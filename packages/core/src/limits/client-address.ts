/**
 * Who is asking, for the pre-authentication limiter: the client address of a request, with
 * forwarded-for headers trusted only as configured, and the bucket an address is counted in
 * (an IPv4 address; an IPv6 /64, since one subscriber usually holds a whole /64; IPv4-mapped IPv6
 * counted as the IPv4 address it carries).
 */
import { BlockList, isIPv4, isIPv6 } from "node:net";

/**
 * Which `X-Forwarded-For` hops to trust: `false` none, `true` all, a number of hops, or the
 * addresses / CIDRs of your proxies (`'loopback'`, `'linklocal'` and `'uniquelocal'` name the usual
 * ranges), as an array or a comma-separated string.
 */
export type TrustProxy = boolean | number | string | readonly string[];

export interface ClientAddressSource {
  /** The socket's peer address (`req.socket.remoteAddress`). */
  remoteAddress?: string | null;
  /** Node's `IncomingHttpHeaders` or a Web `Headers`. */
  headers?: Record<string, string | string[] | undefined> | { get(name: string): string | null } | null;
}

const NAMED_RANGES: Record<string, string[]> = {
  loopback: ["127.0.0.1/8", "::1/128"],
  linklocal: ["169.254.0.0/16", "fe80::/10"],
  uniquelocal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
};

/** Compiles a TrustProxy setting into `(address, hop) => trusted`; throws on a bad address. */
export function compileTrust(trustProxy: TrustProxy): (address: string, hop: number) => boolean {
  if (trustProxy === false) return () => false;
  if (trustProxy === true) return () => true;
  if (typeof trustProxy === "number") {
    if (!(Number.isInteger(trustProxy) && trustProxy >= 0)) {
      throw new Error("a hop count must be a non-negative integer");
    }
    return (_address, hop) => hop < trustProxy;
  }
  const entries = (typeof trustProxy === "string" ? trustProxy.split(",") : [...trustProxy])
    .map((entry) => String(entry).trim())
    .filter((entry) => entry.length > 0);
  const list = new BlockList();
  for (const entry of entries.flatMap((e) => NAMED_RANGES[e] ?? [e])) {
    const [address, bits] = entry.split("/");
    const ip = address === undefined ? null : canonicalAddress(address);
    if (ip === null) throw new Error(`'${entry}' is not an IP address or CIDR`);
    const family = isIPv4(ip) ? "ipv4" : "ipv6";
    if (bits === undefined) {
      list.addAddress(ip, family);
    } else {
      const prefix = Number(bits);
      if (!(Number.isInteger(prefix) && prefix >= 0 && prefix <= (family === "ipv4" ? 32 : 128))) {
        throw new Error(`'${entry}' has an invalid prefix length`);
      }
      list.addSubnet(ip, prefix, family);
    }
  }
  return (address) => {
    const ip = canonicalAddress(address);
    return ip !== null && list.check(ip, isIPv4(ip) ? "ipv4" : "ipv6");
  };
}

/**
 * The client address of a request. Walks from the socket address back through `X-Forwarded-For`
 * (right to left) while each hop is trusted; the first untrusted hop is the client. With the
 * default (`trustProxy: false`) the header is ignored. Returns a canonical address (IPv4-mapped
 * IPv6 as IPv4), an unparseable entry as given (trimmed), or null when there is nothing at all.
 */
export function clientAddress(
  source: ClientAddressSource,
  options: { trustProxy?: TrustProxy } | ((address: string, hop: number) => boolean) = {},
): string | null {
  const trust = typeof options === "function" ? options : compileTrust(options.trustProxy ?? false);
  const remote = source.remoteAddress ? canonicalOrRaw(source.remoteAddress) : null;
  if (remote === null) return null;
  if (!trust(remote, 0)) return remote;
  const forwarded = headerValue(source.headers, "x-forwarded-for");
  if (forwarded === null) return remote;
  const hops = forwarded
    .split(",")
    .map((hop) => hop.trim())
    .filter((hop) => hop.length > 0);
  let current = remote;
  for (let i = hops.length - 1, hop = 1; i >= 0; i--, hop++) {
    current = canonicalOrRaw(hops[i] as string);
    if (!trust(current, hop)) return current;
  }
  return current;
}

/**
 * The bucket an address is counted in: IPv4 as is, IPv6 by its /64, IPv4-mapped IPv6 as IPv4,
 * anything else (not an address) as `raw:` and the first 64 characters.
 */
export function addressBucket(address: string): string {
  const ip = canonicalAddress(address);
  if (ip === null) return `raw:${address.slice(0, 64)}`;
  if (isIPv4(ip)) return ip;
  const groups = expandIPv6(ip);
  return `${groups.slice(0, 4).join(":")}::/64`;
}

/** A canonical form of an IP address (lowercase, no zone, brackets or port), or null. */
export function canonicalAddress(input: string): string | null {
  let address = input.trim();
  if (address.length === 0 || address.length > 64) return null;
  if (address.startsWith("[")) {
    const end = address.indexOf("]");
    if (end < 0) return null;
    address = address.slice(1, end);
  } else if (/^\d{1,3}(?:\.\d{1,3}){3}:\d{1,5}$/.test(address)) {
    address = address.slice(0, address.indexOf(":"));
  }
  const zone = address.indexOf("%");
  if (zone >= 0) address = address.slice(0, zone);
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return null;
  const groups = expandIPv6(address);
  // IPv4-mapped (::ffff:a.b.c.d): the same host as the IPv4 address.
  if (groups.slice(0, 5).every((g) => g === "0") && groups[5] === "ffff") {
    const high = Number.parseInt(groups[6] as string, 16);
    const low = Number.parseInt(groups[7] as string, 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return groups.join(":");
}

function canonicalOrRaw(address: string): string {
  return canonicalAddress(address) ?? address.trim().slice(0, 64);
}

/** Eight lowercase hextets without leading zeros. Input must be a valid IPv6 address. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const [a, b, c, d] = tail.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const middle = rest === undefined ? [] : new Array(8 - left.length - right.length).fill("0");
  return [...left, ...middle, ...right].map((group) => Number.parseInt(group, 16).toString(16));
}

function headerValue(headers: ClientAddressSource["headers"], name: string): string | null {
  if (!headers) return null;
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name);
  }
  const value = (headers as Record<string, string | string[] | undefined>)[name];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(",") : value;
}
