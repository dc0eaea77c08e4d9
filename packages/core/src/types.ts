import type { KeyEnvironment } from "./keys/format.js";

/** Who made a change: an operator, a customer's user (portal), or Flux Keys itself. */
export interface Actor {
  type: "admin" | "user" | "system";
  id?: string;
  /** Where the change came from (client address), when known. */
  ip?: string;
}

/** A named limit window, e.g. `{ name: 'burst', limit: 10, window: '1s' }`. */
export interface RateLimitWindow {
  name: string;
  limit: number;
  /** Seconds, or `'1s' | '1m' | '1h' | '1d'`. */
  window: number | "1s" | "1m" | "1h" | "1d";
  /** `'org'` pools the window across all keys of the org. @default 'key' */
  per?: "key" | "org";
  /**
   * How the window counts (the same on the memory store, Redis and Redis Cluster):
   * - `'fixed'`: `limit` per window, the window starting at its first request; any span of one
   *   window length can pass up to 2 × `limit` (the end of one window and the start of the next);
   * - `'sliding'`: the current window's count plus the previous window's, weighted by how much of
   *   it the last window length still covers: any span of one window length passes about `limit`;
   * - `'gcra'`: an even rate of `limit` per window (one unit every window / limit) with a burst
   *   allowance of `burst` units at once.
   * @default 'fixed'
   */
  algorithm?: "fixed" | "sliding" | "gcra";
  /** `'gcra'` only: units admitted at once on a rested key. @default limit */
  burst?: number;
}

export interface Quota {
  limit: number;
  period: "day" | "month" | "total";
}

export interface PlanInput {
  id: string;
  name: string;
  /** Scopes keys of this plan may hold; empty means unrestricted. */
  scopes?: string[];
  rateLimits?: RateLimitWindow[];
  quota?: Quota | null;
  entitlements?: string[];
}

export interface Plan {
  id: string;
  name: string;
  scopes: string[];
  rateLimits: RateLimitWindow[];
  quota: Quota | null;
  entitlements: string[];
  createdAt: Date;
  updatedAt: Date;
}

export interface Org {
  id: string;
  name: string;
  planId: string | null;
  metadata: Record<string, unknown>;
  /** The org's customer in Stripe (`cus_…`), or null. */
  stripeCustomerId: string | null;
  /** When the org was suspended (every key refused with `org_suspended`), or null while active. */
  suspendedAt: Date | null;
  /** Why it was suspended: the operator's reason, `past_due` when billing did it, or null. */
  suspendedReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface EntitlementOverride {
  name: string;
  granted: boolean;
  expiresAt: Date | null;
}

export type KeyStatus = "active" | "grace" | "expired" | "revoked";

/** A key as management code sees it: never the secret, never the digest. */
export interface ApiKeyInfo {
  id: string;
  orgId: string;
  name: string;
  /** Display only: prefix and first characters, and the last four. */
  start: string;
  last4: string;
  environment: KeyEnvironment;
  scopes: string[];
  rateLimits: RateLimitWindow[] | null;
  quota: Quota | null;
  /** Client networks the key may be used from; empty means anywhere. */
  allowFrom: string[];
  metadata: Record<string, unknown>;
  status: KeyStatus;
  expiresAt: Date | null;
  revokedAt: Date | null;
  revokedReason: string | null;
  replacedById: string | null;
  sunsetAt: Date | null;
  createdBy: { type: Actor["type"]; id: string | null };
  lastUsedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Everything a request handler needs about the key that authenticated it, with no extra lookup. */
export interface KeyContext {
  keyId: string;
  name: string;
  orgId: string;
  plan: { id: string; name: string } | null;
  scopes: readonly string[];
  /** Entitlements in force now: the plan's, plus org grants, minus org withdrawals. */
  entitlements: readonly string[];
  environment: KeyEnvironment;
  expiresAt: Date | null;
  metadata: Readonly<Record<string, unknown>>;
  /** Set while the key is in a rotation grace period. */
  rotation: { replacedBy: string; sunsetAt: Date } | null;
  /** Rate limit decision of this request (null when no limits apply). */
  rateLimit: RateLimitState | null;
}

export interface RateLimitWindowState {
  name: string;
  limit: number;
  remaining: number;
  /** Window length in seconds. */
  window: number;
  /**
   * Seconds until the window is back to `limit` remaining (fixed: until it resets; sliding: until
   * what was counted has slid out; gcra: until the burst allowance is whole again). For the window
   * that refused a request: seconds until that request would be admitted.
   */
  resetIn: number;
  /** Whose counter: this key's, the org's pooled one, or (pre-auth) the client address's. */
  per: "key" | "org" | "address";
}

export interface QuotaState {
  limit: number;
  remaining: number;
  period: Quota["period"];
  /** Seconds until the UTC calendar period ends; null for `total`, which never refills. */
  resetIn: number | null;
}

export interface RateLimitState {
  windows: RateLimitWindowState[];
  /** The key's quota (its own, else its plan's), when one applies. */
  quota: QuotaState | null;
}

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

export interface AuditEvent {
  id: string;
  at: Date;
  orgId: string | null;
  keyId: string | null;
  action: string;
  actor: Actor;
  details: Record<string, unknown>;
}

/**
 * Runs the rest of a request's handling inside a scope made from its verified key, e.g. the
 * OpenFeature transaction context (`transactionContextFromKey()` of `@flux-keys/openfeature`): code
 * anywhere in the handler then sees it. Must call `run` exactly once, synchronously or later.
 */
export type RunWithContext = (context: KeyContext, run: () => void) => void;
