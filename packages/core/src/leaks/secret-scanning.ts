/**
 * The secret-scanning kit: what a scanner needs to find Flux keys (a regular expression) and to
 * tell a real key from a look-alike offline (the CRC32 checksum). See secret-scanning/ at the
 * repository root for gitleaks and GitHub custom-pattern configurations.
 */
import { CHECKSUM_LENGTH, createKeyParser, RANDOM_LENGTH } from "../keys/format.js";

/** The regular expression source of keys with this prefix (live and test). */
export function fluxKeyPattern(prefix = "flux"): string {
  return `\\b${prefix}_(?:live|test)_[0-9A-Za-z]{${RANDOM_LENGTH + CHECKSUM_LENGTH}}\\b`;
}

const parsers = new Map<string, ReturnType<typeof createKeyParser>>();

/** True when `value` is a Flux key with a valid checksum. No I/O: says nothing about validity. */
export function isFluxKey(value: unknown, options: { prefix?: string } = {}): boolean {
  const prefix = options.prefix ?? "flux";
  let parse = parsers.get(prefix);
  if (parse === undefined) {
    parse = createKeyParser(prefix);
    parsers.set(prefix, parse);
  }
  return parse(value).ok;
}

/** Every checksummed Flux key in a text (e.g. a file a scanner reads). */
export function findFluxKeys(text: string, options: { prefix?: string } = {}): string[] {
  const pattern = new RegExp(fluxKeyPattern(options.prefix), "g");
  return [...text.matchAll(pattern)]
    .map((match) => match[0])
    .filter((candidate) => isFluxKey(candidate, options));
}
