/**
 * Which plan an org is on given its subscription: pure, so the webhook handler and the past-due
 * sweep decide the same way.
 */

/** What a billing provider (Stripe) says about an org's subscription. */
export interface SubscriptionState {
  /** The provider's status: `active`, `trialing`, `past_due`, `canceled`, `unpaid`, `paused`, … */
  status: string;
  /** The plan the subscription pays for (from the price), or null when none is mapped. */
  paidPlanId: string | null;
  /** When the subscription went past due (ms since epoch), or null. */
  pastDueSince: number | null;
}

export interface SubscriptionPolicy {
  /** The plan of an org whose subscription ended or never started (null: no plan). */
  fallbackPlanId: string | null;
  /** Past due: the paid plan stays this long after the first failed payment. */
  pastDueGraceMs: number;
  /** Past due after the grace period: this plan (null: no plan). */
  pastDuePlanId: string | null;
}

/** Statuses in which the customer gets what they pay for. */
const PAYING = new Set(["active", "trialing"]);

/** The plan the org should be on now. */
export function planFor(state: SubscriptionState, policy: SubscriptionPolicy, now: number): string | null {
  if (PAYING.has(state.status)) return state.paidPlanId;
  if (state.status === "past_due") {
    const since = state.pastDueSince ?? now;
    return now < since + policy.pastDueGraceMs ? state.paidPlanId : policy.pastDuePlanId;
  }
  // canceled, unpaid, incomplete, incomplete_expired, paused, and anything new.
  return policy.fallbackPlanId;
}
