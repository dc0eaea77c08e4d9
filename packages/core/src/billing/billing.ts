/**
 * `flux.billing`: what a billing integration (`@flux-keys/stripe`) needs of core, and nothing
 * more. Provider events are applied once (by event id) and in order (by the event's time: an
 * older event never undoes a newer state), in one transaction with the plan change and its audit
 * entry; every instance hears the change through the invalidation bus.
 */
import { writeAudit } from "../audit.js";
import { guard, type SqlDriver, toStoreError } from "../database.js";
import { FluxError } from "../errors.js";
import type { Prisma } from "../generated/prisma/client.js";
import { writeSuspension } from "../orgs.js";
import type { Runtime } from "../runtime.js";
import type { Actor } from "../types.js";
import { MeterOutbox, type MeterOutboxOptions } from "./meter-outbox.js";
import { planFor, type SubscriptionPolicy, suspendedFor } from "./subscription-policy.js";

export type { SubscriptionPolicy, SubscriptionState } from "./subscription-policy.js";
export { planFor, suspendedFor } from "./subscription-policy.js";

/** The suspension reason billing writes, and the only one it lifts (never an operator's). */
export const PAST_DUE_REASON = "past_due";

export interface BillingEventInput {
  /** e.g. `"stripe"`: also the audit actor's id (`{ type: "system", id: "stripe" }`). */
  provider: string;
  /** The provider's event id: an event seen before changes nothing. */
  eventId: string;
  eventType: string;
  /**
   * Where the event falls in the subscription's history (the provider's creation time; ties
   * broken by the caller, e.g. a few ms added for `deleted` over `updated` over `created`).
   */
  occurredAt: Date;
  customerId: string;
  /**
   * The subscription as of the event. Null for an event that is only recorded (a trial about to
   * end). `paymentFailed` moves a paying subscription of this id to `past_due`.
   */
  subscription:
    | { kind: "state"; id: string; status: string; paidPlanId: string | null }
    | { kind: "payment_failed"; id: string | null }
    | null;
  policy: SubscriptionPolicy;
}

export type BillingOutcome = "applied" | "duplicate" | "stale" | "ignored" | "recorded" | "unknown_customer";

export interface BillingResult {
  outcome: BillingOutcome;
  orgId: string | null;
  /** Set when the org's plan changed. */
  plan?: { from: string | null; to: string | null };
  /** Set when billing suspended the org (past due beyond the grace) or lifted its suspension. */
  suspension?: "suspended" | "resumed";
}

export interface Billing {
  /** Applies one provider event (idempotent by event id, order-safe by `occurredAt`). */
  applyEvent(input: BillingEventInput): Promise<BillingResult>;
  /**
   * Moves orgs past due beyond the grace period to the policy's plan (or suspends them, with
   * `pastDueSuspends`); returns how many changed.
   */
  enforcePastDue(provider: string, policy: SubscriptionPolicy): Promise<number>;
  /** The usage-to-meter outbox of one meter (what was sent is recorded; see MeterOutbox). */
  meter(name: string, options?: MeterOutboxOptions): MeterOutbox;
}

const PAYING = new Set(["active", "trialing"]);

export function createBilling(rt: Runtime, driver: SqlDriver): Billing {
  const actorOf = (provider: string): Actor => ({ type: "system", id: provider });

  async function applyEvent(input: BillingEventInput): Promise<BillingResult> {
    if (!input.eventId || !input.customerId) {
      throw new FluxError("invalid_request", { detail: "The event has no id or no customer." });
    }
    const now = rt.now();
    let result: BillingResult;
    try {
      result = await rt.prisma.$transaction(async (tx) => {
        const fresh = await tx.billingEvent.createMany({
          data: [{ id: input.eventId, provider: input.provider, type: input.eventType, outcome: "pending" }],
          skipDuplicates: true,
        });
        if (fresh.count === 0) return { outcome: "duplicate", orgId: null } satisfies BillingResult;
        const finish = async (outcome: BillingOutcome, orgId: string | null) => {
          await tx.billingEvent.update({ where: { id: input.eventId }, data: { outcome, orgId } });
        };
        // Locked: one writer per org at a time, so the order check and the write see the same state.
        const [org] = await tx.$queryRaw<
          Array<{ id: string; planId: string | null; suspendedReason: string | null; suspended: boolean }>
        >`
          SELECT "id", "plan_id" AS "planId", "suspended_reason" AS "suspendedReason",
                 "suspended_at" IS NOT NULL AS "suspended" FROM "flux_orgs"
          WHERE "stripe_customer_id" = ${input.customerId} FOR UPDATE`;
        if (org === undefined) {
          await finish("unknown_customer", null);
          return { outcome: "unknown_customer", orgId: null } satisfies BillingResult;
        }
        const state = await tx.billingState.findUnique({ where: { orgId: org.id } });
        const actor = actorOf(input.provider);
        const change = input.subscription;
        if (change === null) {
          await writeAudit(tx, {
            action: `billing.${input.eventType}`,
            actor,
            orgId: org.id,
            details: { eventId: input.eventId, eventType: input.eventType },
            at: new Date(now),
          });
          await finish("recorded", org.id);
          return { outcome: "recorded", orgId: org.id } satisfies BillingResult;
        }
        if (state !== null && state.eventAt.getTime() > input.occurredAt.getTime()) {
          await finish("stale", org.id);
          return { outcome: "stale", orgId: org.id } satisfies BillingResult;
        }
        let next: { subscriptionId: string | null; status: string; paidPlanId: string | null };
        if (change.kind === "payment_failed") {
          const sameSubscription = change.id === null || change.id === state?.subscriptionId;
          if (state === null || !sameSubscription || !PAYING.has(state.status)) {
            await finish("ignored", org.id);
            return { outcome: "ignored", orgId: org.id } satisfies BillingResult;
          }
          next = { subscriptionId: state.subscriptionId, status: "past_due", paidPlanId: state.paidPlanId };
        } else {
          // The end of another subscription than the one in force leaves the org's plan alone.
          if (
            state !== null &&
            state.subscriptionId !== change.id &&
            PAYING.has(state.status) &&
            !PAYING.has(change.status) &&
            change.status !== "past_due"
          ) {
            await finish("ignored", org.id);
            return { outcome: "ignored", orgId: org.id } satisfies BillingResult;
          }
          next = { subscriptionId: change.id, status: change.status, paidPlanId: change.paidPlanId };
        }
        const pastDueSince =
          next.status !== "past_due"
            ? null
            : state?.status === "past_due" && state.pastDueSince !== null
              ? state.pastDueSince
              : input.occurredAt;
        const subscription = {
          status: next.status,
          paidPlanId: next.paidPlanId,
          pastDueSince: pastDueSince?.getTime() ?? null,
        };
        const planId = planFor(subscription, input.policy, now);
        const suspension = await setBillingSuspension(
          tx,
          org,
          suspendedFor(subscription, input.policy, now),
          actor,
          { source: input.provider, eventId: input.eventId, subscriptionId: next.subscriptionId },
          now,
        );
        if (planId !== null) {
          const plan = await tx.plan.findUnique({ where: { id: planId }, select: { id: true } });
          // Refused (and not recorded): the provider retries once the plan exists.
          if (plan === null) throw new FluxError("not_found", { detail: `No such plan: ${planId}.` });
        }
        const stateData = {
          provider: input.provider,
          subscriptionId: next.subscriptionId,
          status: next.status,
          paidPlanId: next.paidPlanId,
          pastDueSince,
          eventAt: input.occurredAt,
          eventId: input.eventId,
        };
        await tx.billingState.upsert({
          where: { orgId: org.id },
          create: { orgId: org.id, ...stateData },
          update: stateData,
        });
        const details = {
          source: input.provider,
          eventId: input.eventId,
          eventType: input.eventType,
          subscriptionId: next.subscriptionId,
          status: next.status,
        };
        if (planId !== org.planId) {
          await tx.org.update({ where: { id: org.id }, data: { planId } });
          await writeAudit(tx, {
            action: "org.plan_changed",
            actor,
            orgId: org.id,
            details: { ...details, changed: ["planId"], planId: { from: org.planId, to: planId } },
            at: new Date(now),
          });
        } else {
          await writeAudit(tx, {
            action: "billing.subscription_synced",
            actor,
            orgId: org.id,
            details: { ...details, planId },
            at: new Date(now),
          });
        }
        await finish("applied", org.id);
        return {
          outcome: "applied",
          orgId: org.id,
          ...(planId !== org.planId ? { plan: { from: org.planId, to: planId } } : {}),
          ...(suspension !== null ? { suspension } : {}),
        } satisfies BillingResult;
      });
    } catch (error) {
      throw toStoreError(error);
    }
    if ((result.plan !== undefined || result.suspension !== undefined) && result.orgId !== null) {
      await rt.bus.publish({ kind: "org", id: result.orgId });
    }
    return result;
  }

  async function enforcePastDue(provider: string, policy: SubscriptionPolicy): Promise<number> {
    const now = rt.now();
    const due = await guard(() =>
      rt.prisma.billingState.findMany({
        where: { provider, status: "past_due", pastDueSince: { lte: new Date(now - policy.pastDueGraceMs) } },
        include: { org: { select: { planId: true, suspendedAt: true } } },
      }),
    );
    const suspends = policy.pastDueSuspends === true;
    const settled = (org: { planId: string | null; suspendedAt: Date | null }) =>
      suspends ? org.suspendedAt !== null : org.planId === policy.pastDuePlanId;
    let moved = 0;
    for (const state of due) {
      if (settled(state.org)) continue;
      const changed = await guard(() =>
        rt.prisma.$transaction(async (tx) => {
          await tx.$queryRaw`SELECT 1 FROM "flux_orgs" WHERE "id" = ${state.orgId} FOR UPDATE`;
          const current = await tx.billingState.findUnique({
            where: { orgId: state.orgId },
            include: { org: { select: { planId: true, suspendedAt: true, suspendedReason: true } } },
          });
          // A newer event may have settled the invoice meanwhile.
          if (current === null || current.status !== "past_due" || current.eventId !== state.eventId)
            return false;
          if (settled(current.org)) return false;
          if (suspends) {
            const org = { id: state.orgId, suspended: false, suspendedReason: null };
            const details = { source: provider, subscriptionId: current.subscriptionId };
            return (await setBillingSuspension(tx, org, true, actorOf(provider), details, now)) !== null;
          }
          await tx.org.update({ where: { id: state.orgId }, data: { planId: policy.pastDuePlanId } });
          await writeAudit(tx, {
            action: "org.plan_changed",
            actor: actorOf(provider),
            orgId: state.orgId,
            details: {
              source: provider,
              reason: "past_due_grace_ended",
              subscriptionId: current.subscriptionId,
              status: current.status,
              changed: ["planId"],
              planId: { from: current.org.planId, to: policy.pastDuePlanId },
            },
            at: new Date(now),
          });
          return true;
        }),
      );
      if (changed) {
        moved++;
        await rt.bus.publish({ kind: "org", id: state.orgId });
      }
    }
    return moved;
  }

  return {
    applyEvent,
    enforcePastDue,
    meter: (name, options) => new MeterOutbox(driver, name, options ?? {}, rt.now),
  };
}

/**
 * Suspends an org billing holds past due, or lifts a suspension billing made, inside the caller's
 * transaction (the org row locked), with its audit entry. Returns what changed, or null.
 */
async function setBillingSuspension(
  tx: Prisma.TransactionClient,
  org: { id: string; suspended: boolean; suspendedReason: string | null },
  suspend: boolean,
  actor: Actor,
  details: Record<string, unknown>,
  now: number,
): Promise<"suspended" | "resumed" | null> {
  if (suspend === org.suspended) return null;
  // An operator's suspension is the operator's to lift.
  if (!suspend && org.suspendedReason !== PAST_DUE_REASON) return null;
  const next = suspend ? { at: new Date(now), reason: PAST_DUE_REASON } : null;
  await writeSuspension(tx, org.id, next, actor, { ...details, reason: PAST_DUE_REASON }, now);
  return suspend ? "suspended" : "resumed";
}
