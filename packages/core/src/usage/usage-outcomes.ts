/**
 * What became of a call whose key was identified: served (`allowed`), or refused and why. The
 * codes are a contract (`group.outcome` of `flux.usage.query({ groupBy: ['outcome'] })`).
 */
import type { FluxErrorCode } from "../errors.js";

export const USAGE_OUTCOMES = [
  "allowed",
  "rate_limited",
  "quota_exceeded",
  "scope_denied",
  "entitlement_denied",
  "ip_not_allowed",
  "revoked",
  "expired",
  /** A valid key of a suspended org (`flux.orgs.suspend()`, or billing after a past-due grace). */
  "org_suspended",
  /** The key was identified but a backing store (the limiter's) failed closed. */
  "store_unavailable",
] as const;

export type UsageOutcome = (typeof USAGE_OUTCOMES)[number];

export const OUTCOME_SET: ReadonlySet<string> = new Set(USAGE_OUTCOMES);

/** The outcome of a denial of an identified key, or null for a code that is not one. */
export function outcomeOf(code: FluxErrorCode): UsageOutcome | null {
  switch (code) {
    case "key_revoked":
      return "revoked";
    case "key_expired":
      return "expired";
    case "rate_limited":
    case "quota_exceeded":
    case "scope_denied":
    case "entitlement_denied":
    case "ip_not_allowed":
    case "org_suspended":
    case "store_unavailable":
      return code;
    default:
      return null;
  }
}

/**
 * Requests refused before any key was identified, per instance (never per key: an unknown key
 * has no owner, and counting each would let anyone grow the table).
 */
export interface UnidentifiedCounts {
  /** No credential at all. */
  missing: number;
  /** Not a well-formed key (format, checksum, length). */
  malformed: number;
  /** Well-formed, but no such key (or a key of an environment not accepted here). */
  unknown: number;
  /** Anything else: a key in the query string, two credentials, an address past the pre-auth limit, the key store down. */
  other: number;
}
