/**
 * Every failure Flux Keys reports has a stable `code`, an HTTP status, a title and a human detail.
 * Messages never contain a secret, a digest or a connection string: they are built from the code
 * table below and from caller-supplied identifiers only.
 */

export const ERROR_CODES = {
  key_missing: { status: 401, title: "API key missing", detail: "No API key was presented." },
  key_malformed: {
    status: 401,
    title: "API key malformed",
    detail: "The presented value is not a well-formed API key.",
  },
  key_invalid: { status: 401, title: "API key invalid", detail: "The API key is not valid." },
  key_revoked: { status: 401, title: "API key revoked", detail: "The API key has been revoked." },
  key_expired: { status: 401, title: "API key expired", detail: "The API key has expired." },
  scope_denied: {
    status: 403,
    title: "Insufficient scope",
    detail: "The API key lacks a scope this request requires.",
  },
  scope_not_allowed: {
    status: 422,
    title: "Scope not allowed",
    detail: "A requested scope is not allowed by the organization's plan.",
  },
  ip_not_allowed: {
    status: 403,
    title: "Network not allowed",
    detail: "The API key may not be used from this network.",
  },
  entitlement_denied: {
    status: 403,
    title: "Entitlement missing",
    detail: "The organization's plan does not include this feature.",
  },
  org_suspended: {
    status: 403,
    title: "Organization suspended",
    detail: "The organization is suspended; its API keys are refused until it is resumed.",
  },
  rate_limited: { status: 429, title: "Rate limited", detail: "Too many requests for this API key." },
  quota_exceeded: { status: 429, title: "Quota exceeded", detail: "The API key's quota is used up." },
  key_conflict: {
    status: 409,
    title: "Conflicting change",
    detail: "The key was changed concurrently; reload it and try again.",
  },
  not_found: { status: 404, title: "Not found", detail: "The resource does not exist." },
  key_limit_reached: {
    status: 409,
    title: "Key limit reached",
    detail: "The organization already holds the most active keys it may; revoke one first.",
  },
  session_required: {
    status: 401,
    title: "Sign-in required",
    detail: "Open the portal from your account to sign in, or sign in again.",
  },
  role_denied: { status: 403, title: "Not allowed", detail: "Your role does not allow this action." },
  csrf_rejected: {
    status: 403,
    title: "Cross-site request refused",
    detail: "The request did not come from the portal itself.",
  },
  invalid_request: { status: 400, title: "Invalid request", detail: "The request is not valid." },
  payload_too_large: {
    status: 413,
    title: "Payload too large",
    detail: "The request body is larger than this endpoint accepts.",
  },
  store_unavailable: {
    status: 503,
    title: "Service unavailable",
    detail: "A backing store is unavailable; try again shortly.",
  },
} as const satisfies Record<string, { status: number; title: string; detail: string }>;

export type FluxErrorCode = keyof typeof ERROR_CODES;

/** RFC 9457 problem details, as sent over HTTP. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: FluxErrorCode;
  instance?: string;
  [extension: string]: unknown;
}

export interface FluxErrorOptions {
  detail?: string;
  /** Extra members for the problem document (never secrets). */
  extensions?: Record<string, unknown>;
}

export const PROBLEM_TYPE_BASE = "https://flux-keys.dev/problems/";

/**
 * Problem types registered elsewhere, used instead of ours: an exhausted quota is the RateLimit
 * draft's `quota-exceeded` (draft-ietf-httpapi-ratelimit-headers, "Problem Types"), which also
 * names the policies it violated in `violated-policies`.
 */
const REGISTERED_TYPES: Partial<Record<FluxErrorCode, string>> = {
  quota_exceeded: "https://iana.org/assignments/http-problem-types#quota-exceeded",
};

/** A denial or failure with a stable code. Thrown by `verify()` and the management API. */
export class FluxError extends Error {
  override readonly name = "FluxError";
  readonly code: FluxErrorCode;
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly extensions: Readonly<Record<string, unknown>>;

  constructor(code: FluxErrorCode, options: FluxErrorOptions = {}) {
    const entry = ERROR_CODES[code];
    const detail = options.detail ?? entry.detail;
    super(detail);
    this.code = code;
    this.status = entry.status;
    this.title = entry.title;
    this.detail = detail;
    this.extensions = options.extensions ?? {};
  }

  /** RFC 9457 `application/problem+json` body. */
  toProblem(instance?: string): ProblemDetails {
    return {
      ...this.extensions,
      type: REGISTERED_TYPES[this.code] ?? PROBLEM_TYPE_BASE + this.code,
      title: this.title,
      status: this.status,
      detail: this.detail,
      code: this.code,
      ...(instance === undefined ? {} : { instance }),
    };
  }

  toJSON(): ProblemDetails {
    return this.toProblem();
  }
}

export const CONFIG_ERROR_CODES = [
  "unknown_option",
  "invalid_option",
  "missing_dependency",
  "migration_failed",
] as const;
export type ConfigErrorCode = (typeof CONFIG_ERROR_CODES)[number];

/** A mistake in how Flux Keys was set up (options, migrations): thrown at start, not per request. */
export class FluxConfigError extends Error {
  override readonly name = "FluxConfigError";
  readonly code: ConfigErrorCode;
  constructor(code: ConfigErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export function isFluxError(value: unknown): value is FluxError {
  return value instanceof FluxError;
}
