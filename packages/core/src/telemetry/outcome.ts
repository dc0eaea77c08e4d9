/**
 * The outcome of a verification as spans and metrics name it (`flux.outcome`): the words operators
 * read on a dashboard, one per way a request ends, from the error code of the denial.
 */
import type { FluxErrorCode } from "../errors.js";

export type Outcome =
  | "allowed"
  | "missing"
  | "malformed"
  | "unknown"
  | "revoked"
  | "expired"
  | "scope_denied"
  | "entitlement_denied"
  | "ip_not_allowed"
  | "rate_limited"
  | "quota_exceeded"
  | "org_suspended"
  | "store_down"
  | "invalid_request"
  | "error";

const BY_CODE: Partial<Record<FluxErrorCode, Outcome>> = {
  key_missing: "missing",
  key_malformed: "malformed",
  key_invalid: "unknown",
  key_revoked: "revoked",
  key_expired: "expired",
  scope_denied: "scope_denied",
  entitlement_denied: "entitlement_denied",
  ip_not_allowed: "ip_not_allowed",
  rate_limited: "rate_limited",
  quota_exceeded: "quota_exceeded",
  org_suspended: "org_suspended",
  store_unavailable: "store_down",
  invalid_request: "invalid_request",
};

export function outcomeOf(code: FluxErrorCode): Outcome {
  return BY_CODE[code] ?? "error";
}
