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
