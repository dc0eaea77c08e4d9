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
  /** Past due after the grace period: this plan (null: no plan). Unused when `pastDueSuspends`. */
  pastDuePlanId: string | null;
  /**
   * Past due after the grace period: the org keeps its plan and is suspended (every key refused
   * with `org_suspended`) until the subscription is paid again. @default false
   */
  pastDueSuspends?: boolean;
}

/** Statuses in which the customer gets what they pay for. */
const PAYING = new Set(["active", "trialing"]);

/** The plan the org should be on now. */
export function planFor(state: SubscriptionState, policy: SubscriptionPolicy, now: number): string | null {
  if (PAYING.has(state.status)) return state.paidPlanId;
  if (state.status === "past_due") {
    return !graceOver(state, policy, now) || policy.pastDueSuspends ? state.paidPlanId : policy.pastDuePlanId;
  }
  // canceled, unpaid, incomplete, incomplete_expired, paused, and anything new.
  return policy.fallbackPlanId;
}

/** Whether billing holds the org suspended now: past due beyond the grace, with `pastDueSuspends`. */
export function suspendedFor(state: SubscriptionState, policy: SubscriptionPolicy, now: number): boolean {
  return policy.pastDueSuspends === true && state.status === "past_due" && graceOver(state, policy, now);
}

function graceOver(state: SubscriptionState, policy: SubscriptionPolicy, now: number): boolean {
  return now >= (state.pastDueSince ?? now) + policy.pastDueGraceMs;
}
