/**
 * Fluent key issuance: `flux.keys.create().forOrg(id).withScopes([...]).issue()`. The builder only
 * collects; `issue()` validates everything at once and hands a checked spec to `Keys`.
 */
import { z } from "zod";
import { FluxError } from "../errors.js";
import { compileTrust } from "../http/client-address.js";
import { normalizeScopes } from "../scopes.js";
import type { Actor, Quota, RateLimitWindow } from "../types.js";
import {
  displayName,
  identifier,
  metadataSchema,
  parseInput,
  quotaSchema,
  rateLimitsSchema,
} from "../validation.js";
import type { KeyEnvironment } from "./format.js";
import type { IssuedKey, Keys } from "./keys.js";

export interface KeySpec {
  orgId: string;
  name: string;
  scopes: string[];
  environment: KeyEnvironment;
  expiresAt: Date | null;
  rateLimits: RateLimitWindow[] | null;
  quota: Quota | null;
  metadata: Record<string, unknown>;
  allowFrom: string[];
  actor: Actor | undefined;
  /** Refuse with `key_limit_reached` when the org already holds this many active keys. */
  maxActiveKeys?: number | undefined;
}

/** Fluent key issuance. Validation happens in `issue()`, which also reports the first problem. */
export class KeyBuilder {
  private orgId: string | undefined;
  private name = "API key";
  private scopes: unknown = [];
  private expiry: Date | null = null;
  private expiryDays: number | undefined;
  private rateLimits: unknown = null;
  private networks: unknown = [];
  private quota: unknown = null;
  private metadata: unknown = {};
  private env: unknown = "live";
  private actor: Actor | undefined;
  private maxActiveKeys: number | undefined;
  private problem: FluxError | undefined;

  constructor(private readonly keys: Keys) {}

  forOrg(orgId: string): this {
    this.orgId = orgId;
    return this;
  }
  named(name: string): this {
    this.name = name;
    return this;
  }
  withScopes(scopes: string[]): this {
    this.scopes = scopes;
    return this;
  }
  expiresInDays(days: number): this {
    if (!(typeof days === "number" && Number.isFinite(days) && days > 0 && days <= 3650)) {
      this.problem ??= new FluxError("invalid_request", { detail: "expiresInDays takes 0 < days <= 3650." });
      return this;
    }
    this.expiryDays = days;
    this.expiry = null;
    return this;
  }
  expiresAt(date: Date | null): this {
    this.expiry = date;
    this.expiryDays = undefined;
    return this;
  }
  withRateLimits(windows: RateLimitWindow[]): this {
    this.rateLimits = windows;
    return this;
  }
  /** Client networks (`'203.0.113.0/24'`, `'2001:db8::/32'`, an address) the key may be used from. */
  allowFrom(networks: string[]): this {
    this.networks = networks;
    return this;
  }
  withQuota(quota: Quota | null): this {
    this.quota = quota;
    return this;
  }
  withMetadata(metadata: Record<string, unknown>): this {
    this.metadata = metadata;
    return this;
  }
  environment(environment: KeyEnvironment): this {
    this.env = environment;
    return this;
  }
  createdBy(actor: Actor): this {
    this.actor = actor;
    return this;
  }

  /**
   * Issue only while the org holds fewer than `max` active keys (neither revoked, expired nor
   * replaced by a rotation); otherwise `issue()` throws `key_limit_reached` (409). Checked in the
   * issuing transaction with the org's row locked, so concurrent issues cannot both pass it.
   */
  withinActiveKeyLimit(max: number): this {
    if (!Number.isInteger(max) || max < 1) {
      this.problem ??= new FluxError("invalid_request", {
        detail: "The active key limit must be a positive integer.",
      });
    } else {
      this.maxActiveKeys = max;
    }
    return this;
  }

  async issue(): Promise<IssuedKey> {
    if (this.problem) throw this.problem;
    if (this.orgId === undefined) {
      throw new FluxError("invalid_request", { detail: "Call forOrg(orgId) before issue()." });
    }
    const spec = parseInput(
      z.object({
        orgId: identifier,
        name: displayName,
        scopes: z.array(z.string()),
        environment: z.enum(["live", "test"]),
        expiresAt: z.date().nullable(),
        rateLimits: rateLimitsSchema.nullable(),
        quota: quotaSchema.nullable(),
        metadata: metadataSchema,
        allowFrom: z.array(z.string()),
      }),
      {
        orgId: this.orgId,
        name: this.name,
        scopes: this.scopes,
        environment: this.env,
        expiresAt:
          this.expiryDays === undefined
            ? this.expiry
            : new Date(this.keys.now() + this.expiryDays * 86_400_000),
        rateLimits: this.rateLimits,
        quota: this.quota,
        metadata: this.metadata,
        allowFrom: this.networks,
      },
      "key",
    );
    return this.keys.issue({
      ...spec,
      scopes: normalizeScopes(spec.scopes),
      allowFrom: normalizeNetworks(spec.allowFrom),
      actor: this.actor,
      maxActiveKeys: this.maxActiveKeys,
    });
  }
}

/** Validates network rules (each must compile); at most 50. */
export function normalizeNetworks(networks: string[]): string[] {
  if (networks.length > 50) {
    throw new FluxError("invalid_request", { detail: "allowFrom may hold at most 50 networks." });
  }
  const out = [...new Set(networks.map((network) => network.trim()))];
  for (const network of out) {
    try {
      compileTrust([network]);
    } catch {
      throw new FluxError("invalid_request", {
        detail: "allowFrom entries are IP addresses or CIDRs such as '203.0.113.0/24'.",
        extensions: { field: "allowFrom" },
      });
    }
  }
  return out;
}
