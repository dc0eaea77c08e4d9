/**
 * Who is asking, for HTTP auth, the pre-authentication limiter and a key's `allowFrom`: the client
 * address of a request, with `X-Forwarded-For` hops trusted only as `trustProxy` says (parsed and
 * walked by `proxy-addr`, as Express does), and the bucket an address is counted in (an IPv4
 * address; an IPv6 /64, since one subscriber usually holds a whole /64; IPv4-mapped IPv6 counted
 * as the IPv4 address it carries). Addresses are compared and returned in one canonical form
 * (no brackets, port or zone; IPv4-mapped IPv6 as IPv4), which proxy-addr does not give.
 */
import { isIPv4, isIPv6 } from "node:net";
import proxyAddr from "proxy-addr";

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

/** proxy-addr's names for the usual ranges (127.0.0.1/8 and ::1; 169.254/16 and fe80::/10; RFC 1918 and fc00::/7). */
const NAMED_RANGES = new Set(["loopback", "linklocal", "uniquelocal"]);

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
  const ranges: string[] = [];
  for (const entry of entries) {
    if (NAMED_RANGES.has(entry)) {
      ranges.push(entry);
      continue;
    }
    const [address, bits, extra] = entry.split("/");
    const ip = address === undefined || extra !== undefined ? null : canonicalAddress(address);
    if (ip === null) throw new Error(`'${entry}' is not an IP address or CIDR`);
    if (bits !== undefined) {
      const prefix = /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
      if (!(Number.isInteger(prefix) && prefix >= 0 && prefix <= (isIPv4(ip) ? 32 : 128))) {
        throw new Error(`'${entry}' has an invalid prefix length`);
      }
    }
    ranges.push(bits === undefined ? ip : `${ip}/${bits}`);
  }
  const trusted = proxyAddr.compile(ranges);
  return (address) => {
    const ip = canonicalAddress(address);
    return ip !== null && trusted(ip, 0);
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
  // proxy-addr walks the hops right to left and stops after the first untrusted one.
  const hops = proxyAddr.all(
    { socket: { remoteAddress: remote }, headers: { "x-forwarded-for": forwarded } } as never,
    (address, hop) => trust(canonicalOrRaw(address), hop),
  );
  return canonicalOrRaw(hops[hops.length - 1] as string);
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

/**
 * Canonical forms already computed, by input: the same few socket addresses come back on every
 * request of a connection, and parsing one costs regular expressions (and, for an IPv4-mapped
 * IPv6 address, a split and a join). Bounded in entries (emptied when full, so many addresses
 * cost what they cost without it) and in size: only inputs an address can be are kept.
 */
const CANONICAL_MAX = 4_096;
/** No address is longer (with brackets, zone or port, once trimmed): longer inputs are not memoised. */
const ADDRESS_MAX = 64;
const canonical = new Map<string, string | null>();

/** A canonical form of an IP address (lowercase, no zone, brackets or port), or null. */
export function canonicalAddress(input: string): string | null {
  if (input.length > ADDRESS_MAX) return parseAddress(input);
  const known = canonical.get(input);
  if (known !== undefined) return known;
  const result = parseAddress(input);
  if (canonical.size >= CANONICAL_MAX) canonical.clear();
  canonical.set(input, result);
  return result;
}

function parseAddress(input: string): string | null {
  let address = input.trim();
  if (address.length === 0 || address.length > ADDRESS_MAX) return null;
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
