/** Scope strings: `resource:action`, with `resource:*` and `*` as wildcards. */
import { FluxError } from "./errors.js";

const SCOPE_PATTERN = /^(\*|[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*(:\*)?)$/;
export const MAX_SCOPES = 100;

/** True when `granted` covers `required`: exact match, a `prefix:*` wildcard, or `*`. */
export function scopeCovers(granted: readonly string[], required: string): boolean {
  if (granted.includes("*") || granted.includes(required)) return true;
  for (let i = required.indexOf(":"); i !== -1; i = required.indexOf(":", i + 1)) {
    if (granted.includes(`${required.slice(0, i)}:*`)) return true;
  }
  return false;
}

/**
 * True when the key's scopes cover every required scope.
 * Accepts a KeyContext (or anything with `scopes`) or a plain list.
 */
export function hasScopes(
  subject: { scopes: readonly string[] } | readonly string[],
  required: string | readonly string[],
): boolean {
  const granted = Array.isArray(subject) ? subject : (subject as { scopes: readonly string[] }).scopes;
  const list = typeof required === "string" ? [required] : required;
  for (const scope of list) if (!scopeCovers(granted, scope)) return false;
  return true;
}

/** The required scopes the key lacks (for `WWW-Authenticate: ... scope="..."`). */
export function missingScopes(subject: { scopes: readonly string[] }, required: readonly string[]): string[] {
  return required.filter((scope) => !scopeCovers(subject.scopes, scope));
}

export function normalizeScopes(scopes: unknown, what = "scopes"): string[] {
  if (!Array.isArray(scopes)) {
    throw new FluxError("invalid_request", { detail: `${what} must be an array of strings.` });
  }
  if (scopes.length > MAX_SCOPES) {
    throw new FluxError("invalid_request", { detail: `${what} may hold at most ${MAX_SCOPES}.` });
  }
  const out = new Set<string>();
  for (const scope of scopes) {
    if (typeof scope !== "string" || scope.length > 128 || !SCOPE_PATTERN.test(scope)) {
      throw new FluxError("invalid_request", {
        detail: `${what} entries look like 'resource:action', 'resource:*' or '*'.`,
      });
    }
    out.add(scope);
  }
  return [...out].sort();
}

/** Throws `scope_not_allowed` when the plan lists scopes and a requested one is outside them. */
export function assertWithinPlan(requested: readonly string[], planScopes: readonly string[]): void {
  if (planScopes.length === 0) return;
  const outside = requested.filter((scope) => !scopeCovers(planScopes, scope));
  if (outside.length > 0) {
    throw new FluxError("scope_not_allowed", {
      detail: `Not allowed by the plan: ${outside.join(", ")}.`,
      extensions: { scopes: outside },
    });
  }
}

/**
 * The denial for a request whose key lacks a required scope or entitlement, or null. Pure: the
 * one place adapters' requirements are decided.
 */
export function requirementError(
  context: { scopes: readonly string[]; entitlements: readonly string[] },
  scopes: readonly string[] | undefined,
  entitlements: readonly string[] | undefined,
): FluxError | null {
  if (scopes !== undefined && scopes.length > 0) {
    const missing = missingScopes(context, scopes);
    if (missing.length > 0) {
      return new FluxError("scope_denied", {
        detail: `This request needs the scope${missing.length > 1 ? "s" : ""} ${missing.join(", ")}.`,
        extensions: { requiredScopes: [...scopes] },
      });
    }
  }
  if (entitlements !== undefined) {
    const lacking = entitlements.filter((name) => !context.entitlements.includes(name));
    if (lacking.length > 0) {
      return new FluxError("entitlement_denied", {
        detail: `The organization's plan does not include ${lacking.map((name) => `'${name}'`).join(", ")}.`,
        extensions: { entitlements: lacking },
      });
    }
  }
  return null;
}
