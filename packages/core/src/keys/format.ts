/**
 * Key format: `<prefix>_<env>_<random><checksum>`, e.g. `flux_live_…`.
 * - random: 32 bytes from the CSPRNG read as one 256-bit number, base62, fixed width 43 (62^43 >
 *   2^256, so every number has its own string: a change of base, not a mapping of bytes, no bias);
 * - checksum: CRC32 of everything before it, base62, fixed width 6.
 * Like GitHub's tokens, a typo or a scanner can tell a real key from noise without any I/O.
 */
import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

export const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const RANDOM_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;
export const ENVIRONMENTS = ["live", "test"] as const;
export type KeyEnvironment = (typeof ENVIRONMENTS)[number];

/** Longer input than any key can be is refused before any other work. */
export const MAX_KEY_LENGTH = 128;

const PREFIX_PATTERN = /^[a-z][a-z0-9]{0,15}$/;

export function isValidPrefix(prefix: string): boolean {
  return PREFIX_PATTERN.test(prefix);
}

function toBase62(value: bigint, width: number): string {
  let out = "";
  let rest = value;
  while (rest > 0n) {
    out = BASE62[Number(rest % 62n)] + out;
    rest /= 62n;
  }
  return out.padStart(width, "0");
}

function smallToBase62(value: number, width: number): string {
  let out = "";
  let rest = value;
  while (rest > 0) {
    out = BASE62[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  return out.padStart(width, "0");
}

function checksumOf(body: string): string {
  return smallToBase62(crc32(body), CHECKSUM_LENGTH);
}

export interface GeneratedKey {
  secret: string;
  environment: KeyEnvironment;
}

export function generateKey(prefix: string, environment: KeyEnvironment): GeneratedKey {
  const random = toBase62(BigInt(`0x${randomBytes(32).toString("hex")}`), RANDOM_LENGTH);
  const body = `${prefix}_${environment}_${random}`;
  return { secret: body + checksumOf(body), environment };
}

export type ParsedKey =
  | { ok: true; environment: KeyEnvironment }
  | { ok: false; code: "key_missing" | "key_malformed" };

const MISSING: ParsedKey = { ok: false, code: "key_missing" };
const MALFORMED: ParsedKey = { ok: false, code: "key_malformed" };
const LIVE: ParsedKey = { ok: true, environment: "live" };
const TEST: ParsedKey = { ok: true, environment: "test" };

export type KeyParser = (input: unknown) => ParsedKey;

/**
 * Builds the parser for one prefix. Any input gives a typed answer; nothing is allocated for
 * inputs that fail the length check, and no I/O ever happens here.
 */
/** Length of every well-formed key with this prefix: `<prefix>_live_` + random + checksum. */
export function keyLengthOf(prefix: string): number {
  return prefix.length + 6 + RANDOM_LENGTH + CHECKSUM_LENGTH;
}

export function createKeyParser(prefix: string): KeyParser {
  const pattern = new RegExp(
    `^${prefix}_(live|test)_[0-9A-Za-z]{${RANDOM_LENGTH}}([0-9A-Za-z]{${CHECKSUM_LENGTH}})$`,
  );
  const exactLength = keyLengthOf(prefix);
  return (input: unknown): ParsedKey => {
    if (typeof input !== "string" || input.length === 0) return MISSING;
    if (input.length !== exactLength) return MALFORMED;
    const match = pattern.exec(input);
    if (match === null) return MALFORMED;
    const body = input.slice(0, exactLength - CHECKSUM_LENGTH);
    if (checksumOf(body) !== match[2]) return MALFORMED;
    return match[1] === "live" ? LIVE : TEST;
  };
}

/** Display parts kept in the database: enough to recognise a key, useless to an attacker. */
export function displayParts(secret: string, prefix: string): { start: string; last4: string } {
  const startLength = prefix.length + 6 + 4;
  return { start: secret.slice(0, startLength), last4: secret.slice(-4) };
}

/**
 * The base62 symbol of one random byte, or null for the bytes rejected: 256 is not a multiple of
 * 62, so `byte % 62` would pick the first eight symbols more often; bytes from 248 on (62 × 4) are
 * dropped and drawn again, so every symbol comes from exactly four byte values.
 */
export function base62Symbol(byte: number): string | null {
  return byte < BYTES_KEPT ? (BASE62[byte % 62] as string) : null;
}

const BYTES_KEPT = 62 * Math.floor(256 / 62);

/** Random ids for rows (`key_…`, `org_…`): 20 base62 characters, ~119 bits, every symbol equally likely. */
export function randomId(kind: string, length = 20): string {
  let out = "";
  while (out.length < length) {
    // 3% of bytes are rejected: a few spare ones make a second draw rare.
    for (const byte of randomBytes(length - out.length + 4)) {
      const symbol = base62Symbol(byte);
      if (symbol !== null && out.length < length) out += symbol;
    }
  }
  return `${kind}_${out}`;
}
