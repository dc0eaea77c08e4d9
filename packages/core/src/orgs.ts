import { z } from "zod";
import { writeAudit } from "./audit.js";
import { guard, isUniqueViolation, toStoreError } from "./database.js";
import { FluxError } from "./errors.js";
import type { Org as OrgRow, Prisma } from "./generated/prisma/client.js";
import { randomId } from "./keys/format.js";
import type { Runtime } from "./runtime.js";
import { SYSTEM_ACTOR } from "./runtime.js";
import type { Actor, EntitlementOverride, Org, Page } from "./types.js";
import {
  displayName,
  ID_PATTERN,
  identifier,
  idOrNotFound,
  metadataSchema,
  parseInput,
} from "./validation.js";

/** A Stripe customer id (`cus_…`); null clears it. */
const stripeCustomerId = z
  .string()
  .regex(/^cus_[A-Za-z0-9_]{1,250}$/, "must be a Stripe customer id (cus_…)")
  .nullable();

const createSchema = z
  .object({
    id: identifier.optional(),
    name: displayName,
    planId: identifier.nullable().optional(),
    metadata: metadataSchema.optional(),
    stripeCustomerId: stripeCustomerId.optional(),
  })
  .strict();

const updateSchema = z
  .object({
    name: displayName.optional(),
    planId: identifier.nullable().optional(),
    metadata: metadataSchema.optional(),
    stripeCustomerId: stripeCustomerId.optional(),
  })
  .strict();

export interface OrgChanges {
  name?: string;
  planId?: string | null;
  metadata?: Record<string, unknown>;
  /** The org's Stripe customer (`cus_…`), or null to unlink it. */
  stripeCustomerId?: string | null;
}

const suspendSchema = z
  .object({ reason: z.string().min(1).max(500).optional(), actor: z.unknown().optional() })
  .strict();

const CUSTOMER_TAKEN = "Another org already has this Stripe customer.";

const entitlementSchema = z
  .object({ granted: z.boolean(), expiresAt: z.date().nullable().optional() })
  .strict();

export function toOrg(row: OrgRow): Org {
  return {
    id: row.id,
    name: row.name,
    planId: row.planId,
    metadata: (row.metadata ?? {}) as Record<string, unknown>,
    stripeCustomerId: row.stripeCustomerId,
    suspendedAt: row.suspendedAt,
    suspendedReason: row.suspendedReason,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export class Orgs {
  constructor(private readonly rt: Runtime) {}

  async create(
    input: { id?: string; name: string } & Omit<OrgChanges, "name">,
    options: { actor?: Actor } = {},
  ): Promise<Org> {
    const parsed = parseInput(createSchema, input, "org");
    const id = parsed.id ?? randomId("org");
    try {
      const row = await this.rt.prisma.$transaction(async (tx) => {
        if (parsed.planId) await this.assertPlan(tx, parsed.planId);
        const org = await tx.org.create({
          data: {
            id,
            name: parsed.name,
            planId: parsed.planId ?? null,
            metadata: (parsed.metadata ?? {}) as Prisma.InputJsonValue,
            stripeCustomerId: parsed.stripeCustomerId ?? null,
          },
        });
        await writeAudit(tx, {
          action: "org.created",
          actor: options.actor ?? SYSTEM_ACTOR,
          orgId: org.id,
          details: { name: org.name, planId: org.planId },
          at: new Date(this.rt.now()),
        });
        return org;
      });
      return toOrg(row);
    } catch (error) {
      if (isUniqueViolation(error)) {
        const customer = parsed.stripeCustomerId
          ? await this.rt.prisma.org.count({ where: { stripeCustomerId: parsed.stripeCustomerId } })
          : 0;
        throw new FluxError("key_conflict", {
          detail: customer > 0 ? CUSTOMER_TAKEN : "An org with this id already exists.",
        });
      }
      throw toStoreError(error);
    }
  }

  async get(id: string): Promise<Org> {
    const orgId = idOrNotFound(id, "No such org.");
    const row = await guard(() => this.rt.prisma.org.findUnique({ where: { id: orgId } }));
    if (row === null) throw new FluxError("not_found", { detail: "No such org." });
    return toOrg(row);
  }

  /** Orgs by id, `limit` per page (default 50, at most 500). */
  async list(query: { cursor?: string | null; limit?: number; planId?: string } = {}): Promise<Page<Org>> {
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
    // A plan id or cursor that cannot be an id matches no org (and never reaches the database).
    const impossible = (value: string | null | undefined) => !!value && !ID_PATTERN.test(String(value));
    if (impossible(query.planId) || impossible(query.cursor)) return { items: [], nextCursor: null };
    const rows = await guard(() =>
      this.rt.prisma.org.findMany({
        where: {
          ...(query.planId !== undefined ? { planId: query.planId } : {}),
          ...(query.cursor ? { id: { gt: query.cursor } } : {}),
        },
        orderBy: { id: "asc" },
        take: limit + 1,
      }),
    );
    const items = rows.slice(0, limit).map(toOrg);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? last.id : null };
  }

  /** The org linked to this Stripe customer, or null. */
  async findByStripeCustomer(customerId: string): Promise<Org | null> {
    if (typeof customerId !== "string" || !stripeCustomerId.safeParse(customerId).success) return null;
    const row = await guard(() => this.rt.prisma.org.findUnique({ where: { stripeCustomerId: customerId } }));
    return row === null ? null : toOrg(row);
  }

  async update(id: string, changes: OrgChanges, options: { actor?: Actor } = {}): Promise<Org> {
    idOrNotFound(id, "No such org.");
    const parsed = parseInput(updateSchema, changes, "changes");
    const row = await guardUnique(() =>
      this.rt.prisma.$transaction(async (tx) => {
        const before = await tx.org.findUnique({ where: { id } });
        if (before === null) throw new FluxError("not_found", { detail: "No such org." });
        if (parsed.planId) await this.assertPlan(tx, parsed.planId);
        const org = await tx.org.update({
          where: { id },
          data: {
            ...(parsed.name !== undefined ? { name: parsed.name } : {}),
            ...(parsed.planId !== undefined ? { planId: parsed.planId } : {}),
            ...(parsed.metadata !== undefined ? { metadata: parsed.metadata as Prisma.InputJsonValue } : {}),
            ...(parsed.stripeCustomerId !== undefined ? { stripeCustomerId: parsed.stripeCustomerId } : {}),
          },
        });
        await writeAudit(tx, {
          action:
            parsed.planId !== undefined && parsed.planId !== before.planId
              ? "org.plan_changed"
              : "org.updated",
          actor: options.actor ?? SYSTEM_ACTOR,
          orgId: id,
          details: {
            changed: Object.keys(parsed),
            ...(parsed.planId !== undefined ? { planId: { from: before.planId, to: parsed.planId } } : {}),
            ...(parsed.stripeCustomerId !== undefined
              ? { stripeCustomerId: { from: before.stripeCustomerId, to: parsed.stripeCustomerId } }
              : {}),
          },
          at: new Date(this.rt.now()),
        });
        return org;
      }),
    );
    await this.rt.bus.publish({ kind: "org", id });
    return toOrg(row);
  }

  /**
   * Suspends an org: every key of it, issued before or after, is refused with `org_suspended`
   * (403) on every instance until `resume()`; its plan, keys and usage are kept. Suspending a
   * suspended org changes nothing (the first reason stays).
   */
  async suspend(id: string, options: { reason?: string; actor?: Actor } = {}): Promise<Org> {
    const { reason } = parseInput(suspendSchema, options, "options");
    return this.setSuspension(id, { at: new Date(this.rt.now()), reason: reason ?? null }, options.actor);
  }

  /** Lifts a suspension: the org's keys work again as before. Resuming an active org changes nothing. */
  async resume(id: string, options: { actor?: Actor } = {}): Promise<Org> {
    return this.setSuspension(id, null, options.actor);
  }

  /** Suspends (`{ at, reason }`) or resumes (`null`) in one transaction with its audit entry. */
  private async setSuspension(
    id: string,
    next: { at: Date; reason: string | null } | null,
    actor: Actor | undefined,
  ): Promise<Org> {
    const orgId = idOrNotFound(id, "No such org.");
    const { row, changed } = await guard(() =>
      this.rt.prisma.$transaction(async (tx) => {
        const before = await tx.org.findUnique({ where: { id: orgId } });
        if (before === null) throw new FluxError("not_found", { detail: "No such org." });
        if ((before.suspendedAt !== null) === (next !== null)) return { row: before, changed: false };
        const details = { reason: next === null ? before.suspendedReason : next.reason };
        const row = await writeSuspension(tx, orgId, next, actor ?? SYSTEM_ACTOR, details, this.rt.now());
        return { row, changed: true };
      }),
    );
    if (changed) await this.rt.bus.publish({ kind: "org", id: orgId });
    return toOrg(row);
  }

  /**
   * Grants (or, with `granted: false`, withdraws) an entitlement for one org, overriding its plan,
   * optionally until `expiresAt`.
   */
  async setEntitlement(
    orgId: string,
    name: string,
    value: { granted: boolean; expiresAt?: Date | null },
    options: { actor?: Actor } = {},
  ): Promise<EntitlementOverride> {
    idOrNotFound(orgId, "No such org.");
    const entitlement = parseInput(identifier, name, "name");
    const parsed = parseInput(entitlementSchema, value, "entitlement");
    const row = await guard(() =>
      this.rt.prisma.$transaction(async (tx) => {
        const org = await tx.org.findUnique({ where: { id: orgId }, select: { id: true } });
        if (org === null) throw new FluxError("not_found", { detail: "No such org." });
        const saved = await tx.orgEntitlement.upsert({
          where: { orgId_name: { orgId, name: entitlement } },
          create: { orgId, name: entitlement, granted: parsed.granted, expiresAt: parsed.expiresAt ?? null },
          update: { granted: parsed.granted, expiresAt: parsed.expiresAt ?? null },
        });
        await writeAudit(tx, {
          action: "org.entitlement_set",
          actor: options.actor ?? SYSTEM_ACTOR,
          orgId,
          details: { name: entitlement, granted: parsed.granted, expiresAt: parsed.expiresAt ?? null },
          at: new Date(this.rt.now()),
        });
        return saved;
      }),
    );
    await this.rt.bus.publish({ kind: "org", id: orgId });
    return { name: row.name, granted: row.granted, expiresAt: row.expiresAt };
  }

  private async assertPlan(tx: Pick<Prisma.TransactionClient, "plan">, planId: string): Promise<void> {
    const plan = await tx.plan.findUnique({ where: { id: planId }, select: { id: true } });
    if (plan === null) throw new FluxError("not_found", { detail: "No such plan." });
  }
}

/**
 * Writes a suspension (`{ at, reason }`) or its end (`null`) and its audit entry, inside the
 * caller's transaction: the one writer for operators (`orgs.suspend`/`resume`) and billing.
 */
export async function writeSuspension(
  tx: Prisma.TransactionClient,
  orgId: string,
  next: { at: Date; reason: string | null } | null,
  actor: Actor,
  details: Record<string, unknown>,
  now: number,
): Promise<OrgRow> {
  const row = await tx.org.update({
    where: { id: orgId },
    data: { suspendedAt: next?.at ?? null, suspendedReason: next?.reason ?? null },
  });
  await writeAudit(tx, {
    action: next === null ? "org.resumed" : "org.suspended",
    actor,
    orgId,
    details,
    at: new Date(now),
  });
  return row;
}

/** `guard`, with a unique violation (a Stripe customer linked to another org) as a 409. */
async function guardUnique<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isUniqueViolation(error)) throw new FluxError("key_conflict", { detail: CUSTOMER_TAKEN });
    throw error instanceof FluxError ? error : toStoreError(error);
  }
}
