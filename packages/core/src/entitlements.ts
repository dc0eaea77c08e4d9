/** Entitlements: the plan's, plus per-org overrides (grant or withdraw, optionally until a date). */
import type { KeyContext } from "./types.js";

export interface OverrideRow {
  name: string;
  granted: boolean;
  /** ms since epoch, or null for no expiry */
  expiresAt: number | null;
}

export interface EffectiveEntitlements {
  names: readonly string[];
  /** The set is valid until this instant (the next override expiry), ms since epoch. */
  validUntil: number;
}

/** Overrides win over the plan; expired overrides are ignored. */
export function effectiveEntitlements(
  planEntitlements: readonly string[],
  overrides: readonly OverrideRow[],
  now: number,
): EffectiveEntitlements {
  const names = new Set(planEntitlements);
  let validUntil = Number.POSITIVE_INFINITY;
  for (const override of overrides) {
    if (override.expiresAt !== null) {
      if (override.expiresAt <= now) continue;
      validUntil = Math.min(validUntil, override.expiresAt);
    }
    if (override.granted) names.add(override.name);
    else names.delete(override.name);
  }
  return { names: Object.freeze([...names].sort()), validUntil };
}

/** Pure: answers from the context alone. */
export function checkForKey(context: Pick<KeyContext, "entitlements">, name: string): boolean {
  return context.entitlements.includes(name);
}

/** The attributes of a flag evaluation context (OpenFeature's `EvaluationContext` shape). */
export type FlagContextValue =
  | string
  | number
  | boolean
  | null
  | Date
  | FlagContextValue[]
  | { [key: string]: FlagContextValue };
export type FlagContext = { targetingKey?: string } & Record<string, FlagContextValue>;

/**
 * What `entitlements.check` needs of a feature-flag client: an OpenFeature `Client` fits as is.
 * The flag's value wins over the entitlement, which is the default when the flag is not defined.
 */
export interface EntitlementFlagClient {
  getBooleanValue(flagKey: string, defaultValue: boolean, context?: FlagContext): Promise<boolean>;
}

export interface EntitlementCheckOptions {
  /** Consult these flags too: a rollout or kill switch can grant or withhold. @default none */
  flags?: EntitlementFlagClient;
  /** The flag key of an entitlement. @default the entitlement's name */
  flagKey?: (name: string) => string;
}

/**
 * The evaluation context of a key: `targetingKey` is the org id; key id, key name, plan,
 * environment, scopes and entitlements are attributes. Never the secret (the context has none).
 */
export function flagContextFor(
  context: Pick<KeyContext, "orgId" | "keyId" | "name" | "plan" | "environment" | "scopes" | "entitlements">,
): FlagContext {
  return {
    targetingKey: context.orgId,
    orgId: context.orgId,
    keyId: context.keyId,
    keyName: context.name,
    plan: context.plan?.id ?? null,
    environment: context.environment,
    scopes: [...context.scopes],
    entitlements: [...context.entitlements],
  };
}
