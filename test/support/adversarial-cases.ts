/**
 * The adversarial-input table and the tools the adversarial suites share: a raw-socket HTTP client
 * (for the bytes Node's own client refuses to send), a capturing pino-style logger, a counter of
 * the database reads verification makes, and keys crafted to look right.
 *
 * To add a case, add a row to HEADER_CASES: what goes on the wire, what must come back.
 */
import { connect } from "node:net";
import { crc32 } from "node:zlib";
import type { Flux, Logger } from "@flux-keys/core";
import { vi } from "vitest";
import { BASE62, CHECKSUM_LENGTH, generateKey } from "../../packages/core/src/keys/format.js";

// --- keys --------------------------------------------------------------------------------------

function checksum(body: string): string {
  let out = "";
  let rest = crc32(body);
  while (rest > 0) {
    out = BASE62[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  return out.padStart(CHECKSUM_LENGTH, "0");
}

/** A key with the right length, alphabet and checksum for any prefix and environment segment. */
export function checksummed(prefix: string, environment: string): string {
  const random = generateKey("flux", "live").secret.slice("flux_live_".length, -CHECKSUM_LENGTH);
  const body = `${prefix}_${environment}_${random}`;
  return body + checksum(body);
}

/** A well-formed key nobody issued. */
export function neverIssued(): string {
  return generateKey("flux", "live").secret;
}

/** The same key with one character of its random part changed, checksum recomputed: a near miss. */
export function nearMiss(secret: string): string {
  const body = secret.slice(0, -CHECKSUM_LENGTH);
  const i = "flux_live_".length + 7;
  const swapped = body[i] === "a" ? "b" : "a";
  const changed = body.slice(0, i) + swapped + body.slice(i + 1);
  return changed + checksum(changed);
}

function swapCase(value: string): string {
  return [...value].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join("");
}

// --- the table ---------------------------------------------------------------------------------

/** Keys issued by the suite that runs the table. */
export interface Fixtures {
  /** An active live key with `read:events`. */
  live: string;
  /** A revoked live key. */
  revoked: string;
  /** An active key of the `test` environment (the deployment accepts only `live`). */
  testEnv: string;
}

export interface HeaderCase {
  name: string;
  /** Header lines as sent on the wire, in order (duplicates allowed). */
  headers: (keys: Fixtures) => Array<[string, string]>;
  /** How the header text is turned into bytes. @default 'utf8' */
  encoding?: "utf8" | "latin1";
  /** The status the client gets. */
  status: number;
  /** The problem `code`, when Flux Keys answers; absent when Node's HTTP parser refuses first. */
  code?: string;
  /** The key format alone can refuse it: no database read may happen. */
  parserRejects: boolean;
}

const BAD_CHECKSUM = (k: string) => `${k.slice(0, -1)}${k.endsWith("A") ? "B" : "A"}`;
const bearer = (value: string): Array<[string, string]> => [["Authorization", `Bearer ${value}`]];
const apiKey = (value: string): Array<[string, string]> => [["X-API-Key", value]];

export const HEADER_CASES: HeaderCase[] = [
  // --- nothing, or nothing of ours
  { name: "no credential", headers: () => [], status: 401, code: "key_missing", parserRejects: true },
  {
    name: "empty Authorization",
    headers: () => [["Authorization", ""]],
    status: 401,
    code: "key_missing",
    parserRejects: true,
  },
  {
    name: "empty X-API-Key",
    headers: () => apiKey(""),
    status: 401,
    code: "key_missing",
    parserRejects: true,
  },
  {
    name: "whitespace-only X-API-Key",
    headers: () => apiKey("      "),
    status: 401,
    code: "key_missing",
    parserRejects: true,
  },
  {
    name: "another scheme (Basic)",
    headers: () => [["Authorization", "Basic dXNlcjpwYXNzd29yZA=="]],
    status: 401,
    code: "key_missing",
    parserRejects: true,
  },
  {
    name: "Bearer without a token",
    headers: () => [["Authorization", "Bearer"]],
    status: 400,
    code: "invalid_request",
    parserRejects: true,
  },
  {
    name: "Bearer with two tokens",
    headers: (k) => [["Authorization", `Bearer ${k.live} ${k.live}`]],
    status: 400,
    code: "invalid_request",
    parserRejects: true,
  },
  {
    name: "Bearer and a tab",
    headers: (k) => [["Authorization", `Bearer\t${k.live}`]],
    status: 400,
    code: "invalid_request",
    parserRejects: true,
  },
  {
    name: "two different credentials",
    headers: (k) => [...bearer(k.live), ...apiKey(k.revoked)],
    status: 400,
    code: "invalid_request",
    parserRejects: true,
  },
  // --- size
  {
    name: "8 KB X-API-Key",
    headers: () => apiKey(`flux_live_${"A".repeat(8192)}`),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "8 KB Bearer token",
    headers: () => bearer("Z".repeat(8192)),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "64 KB header (over Node's header limit)",
    headers: () => apiKey("x".repeat(65_536)),
    status: 431,
    parserRejects: true,
  },
  // --- unicode, homoglyphs, bytes
  {
    name: "unicode letters",
    headers: () => apiKey(`flux_live_ключ_${"é".repeat(30)}🔑`),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "homoglyph prefix (Cyrillic х)",
    headers: (k) => apiKey(`fluх${k.live.slice(4)}`),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "homoglyph in the body (Cyrillic а), same character count",
    headers: (k) => bearer(`${k.live.slice(0, 20)}а${k.live.slice(21)}`),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "fullwidth digits",
    headers: () => apiKey(`flux_live_${"１２３".repeat(16)}`),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "latin-1 bytes at the exact key length",
    headers: () => apiKey(`flux_live_${"\u00e9".repeat(49)}`),
    encoding: "latin1",
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "zero-width space after a real key",
    headers: (k) => apiKey(`${k.live}\u200b`),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  // --- control characters: Node's HTTP parser refuses them before any of our code runs
  {
    name: "NUL in the value",
    headers: (k) => apiKey(`${k.live}\u0000`),
    status: 400,
    parserRejects: true,
  },
  { name: "bare CR in the value", headers: (k) => apiKey(`${k.live}\rX`), status: 400, parserRejects: true },
  {
    name: "bare LF (header injection)",
    headers: (k) => apiKey(`${k.live}\nX-Injected: 1`),
    status: 400,
    parserRejects: true,
  },
  {
    name: "obsolete line folding",
    headers: (k) => apiKey(`${k.live}\r\n  folded`),
    status: 400,
    parserRejects: true,
  },
  { name: "DEL and SOH", headers: () => apiKey("flux_live_\u007f\u0001"), status: 400, parserRejects: true },
  // --- shape, prefix, environment, checksum
  {
    name: "another deployment's prefix, valid checksum",
    headers: () => bearer(checksummed("acme", "live")),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "unknown environment segment, valid checksum",
    headers: () => bearer(checksummed("flux", "prod")),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "test key on a live-only deployment",
    headers: (k) => bearer(k.testEnv),
    status: 401,
    code: "key_invalid",
    parserRejects: true,
  },
  {
    name: "bad checksum",
    headers: (k) => bearer(BAD_CHECKSUM(k.live)),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "case-swapped real key",
    headers: (k) => bearer(swapCase(k.live)),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "truncated real key",
    headers: (k) => bearer(k.live.slice(0, -1)),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "real key plus one character",
    headers: (k) => apiKey(`${k.live}0`),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "quoted token",
    headers: (k) => bearer(`"${k.live}"`),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "duplicate X-API-Key (joined by Node)",
    headers: (k) => [...apiKey(k.live), ...apiKey(k.live)],
    status: 400,
    code: "invalid_request",
    parserRejects: true,
  },
  {
    name: "duplicate Authorization (Node keeps the first)",
    headers: (k) => [...bearer("garbage-first"), ...bearer(k.live)],
    status: 400,
    code: "invalid_request",
    parserRejects: true,
  },
  {
    name: "SQL in the key",
    headers: () => apiKey("flux_live_' OR '1'='1' --"),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  {
    name: "a JWT",
    headers: () => bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."),
    status: 401,
    code: "key_malformed",
    parserRejects: true,
  },
  // --- well-formed: these reach the cache, then the database at most once
  {
    name: "never-issued key",
    headers: () => bearer(neverIssued()),
    status: 401,
    code: "key_invalid",
    parserRejects: false,
  },
  {
    name: "near miss of a real key, valid checksum",
    headers: (k) => bearer(nearMiss(k.live)),
    status: 401,
    code: "key_invalid",
    parserRejects: false,
  },
  {
    name: "revoked key",
    headers: (k) => apiKey(k.revoked),
    status: 401,
    code: "key_revoked",
    parserRejects: false,
  },
  // --- controls: what must keep working
  { name: "valid key (Bearer)", headers: (k) => bearer(k.live), status: 200, parserRejects: false },
  {
    name: "valid key, lowercase scheme",
    headers: (k) => [["Authorization", `bearer ${k.live}`]],
    status: 200,
    parserRejects: false,
  },
  {
    name: "valid key with surrounding spaces (trimmed by HTTP)",
    headers: (k) => apiKey(`   ${k.live}   `),
    status: 200,
    parserRejects: false,
  },
];

/** The distinctive parts of what a case presented: none of them may show up in a log or a body. */
export function needles(headers: Array<[string, string]>): string[] {
  const out: string[] = [];
  for (const [, value] of headers) {
    for (const token of value.split(/[\s"]+/)) {
      // Short or generic tokens ("Bearer", "flux_live_") would match innocent text.
      if (token.length >= 16) out.push(token.length > 64 ? token.slice(20, 60) : token.slice(10));
    }
  }
  return out;
}

// --- a raw HTTP/1.1 client ----------------------------------------------------------------------

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The whole response as received. */
  text: string;
}

/**
 * Sends one request byte for byte (`Connection: close`) and reads the answer: what Node's HTTP
 * client refuses to send (CR, LF, NUL, duplicate headers) reaches the server this way.
 */
export function rawRequest(
  url: string,
  request: {
    method?: string;
    path: string;
    headers: Array<[string, string]>;
    encoding?: "utf8" | "latin1";
    localAddress?: string;
    /** The Host header as sent. @default the URL's host */
    host?: string;
    /** Sent as is after the headers (set Content-Length yourself). @default none */
    body?: string;
  },
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const lines = [
    `${request.method ?? "GET"} ${request.path} HTTP/1.1`,
    `Host: ${request.host ?? `${hostname}:${port}`}`,
  ];
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  lines.push("Connection: close", "", request.body ?? "");
  const bytes = Buffer.from(lines.join("\r\n"), request.encoding ?? "utf8");
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: hostname,
      port: Number(port),
      ...(request.localAddress ? { localAddress: request.localAddress } : {}),
    });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error("no answer within 10 s")), 10_000);
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", (error) => {
      // The server may close after answering while we are still writing a huge request.
      if (chunks.length > 0) return;
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(parseResponse(Buffer.concat(chunks).toString("latin1")));
    });
    socket.write(bytes);
  });
}

function parseResponse(text: string): RawResponse {
  const end = text.indexOf("\r\n\r\n");
  const head = end === -1 ? text : text.slice(0, end);
  let body = end === -1 ? "" : text.slice(end + 4);
  const [statusLine = "", ...headerLines] = head.split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  if (headers["transfer-encoding"] === "chunked") body = dechunk(body);
  return { status, headers, body: Buffer.from(body, "latin1").toString("utf8"), text };
}

function dechunk(text: string): string {
  let out = "";
  let rest = text;
  for (;;) {
    const lineEnd = rest.indexOf("\r\n");
    if (lineEnd === -1) return out;
    const size = Number.parseInt(rest.slice(0, lineEnd), 16);
    if (!(size > 0)) return out;
    out += rest.slice(lineEnd + 2, lineEnd + 2 + size);
    rest = rest.slice(lineEnd + 2 + size + 2);
  }
}

/** The problem `code` of a problem+json body, or undefined. */
export function problemCode(response: { headers: Record<string, string>; body: string }): string | undefined {
  if (!/^application\/problem\+json/.test(response.headers["content-type"] ?? "")) return undefined;
  try {
    return (JSON.parse(response.body) as { code?: string }).code;
  } catch {
    return undefined;
  }
}

// --- logs --------------------------------------------------------------------------------------

/** Everything logged, as text: pino-style fields and message, or a framework's raw log lines. */
export class LogSink {
  readonly lines: string[] = [];

  /** A pino-style logger for `createFlux({ logger })`. */
  readonly logger: Required<Logger> = {
    debug: (fields, message) => this.note("debug", fields, message),
    info: (fields, message) => this.note("info", fields, message),
    warn: (fields, message) => this.note("warn", fields, message),
    error: (fields, message) => this.note("error", fields, message),
  };

  /** A writable-like stream for pino (Fastify's `logger: { stream }`). */
  readonly stream = { write: (line: string) => void this.lines.push(line) };

  note(level: string, fields: unknown, message?: unknown): void {
    let text: string;
    try {
      text = JSON.stringify(fields);
    } catch {
      text = String(fields);
    }
    this.lines.push(`${level} ${text} ${message === undefined ? "" : String(message)}`);
  }

  /** Lines holding any of the needles. */
  containing(values: readonly string[]): string[] {
    return this.lines.filter((line) => values.some((value) => line.includes(value)));
  }
}

// --- database reads ----------------------------------------------------------------------------

/**
 * Counts the key lookups verification makes (`loadKeyRecord`'s one query by digest), by spying
 * on the statements the instance sends on its pool (the key read goes straight to it).
 */
export function countKeyReads(flux: Flux): { readonly count: number; restore(): void } {
  const driver = flux.internals.database.driver;
  const withSession = driver.withSession.bind(driver);
  let count = 0;
  const spy = vi.spyOn(driver, "withSession").mockImplementation((fn) =>
    withSession((session) =>
      fn({
        ...session,
        query: (sql, params) => {
          if (sql.includes('WHERE k."digest" =')) count++;
          return session.query(sql, params);
        },
      }),
    ),
  );
  return {
    get count() {
      return count;
    },
    restore: () => spy.mockRestore(),
  };
}
