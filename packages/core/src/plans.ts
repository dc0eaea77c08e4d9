import { z } from "zod";
import { writeAudit } from "./audit.js";
import { guard } from "./database.js";
import { FluxError } from "./errors.js";
import { type Plan as PlanRow, Prisma } from "./generated/prisma/client.js";
import type { Runtime } from "./runtime.js";
import { SYSTEM_ACTOR } from "./runtime.js";
import { normalizeScopes } from "./scopes.js";
import type { Actor, Plan, PlanInput, Quota, RateLimitWindow } from "./types.js";
import {
  displayName,
  identifier,
  idOrNotFound,
  parseInput,
  quotaSchema,
  rateLimitsSchema,
} from "./validation.js";

const planSchema = z
  .object({
    id: identifier,
    name: displayName,
    scopes: z.array(z.string()).optional(),
    rateLimits: rateLimitsSchema.optional(),
    quota: quotaSchema.nullable().optional(),
    entitlements: z.array(identifier).max(200).optional(),
  })
  .strict();

export function toPlan(row: PlanRow): Plan {
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes,
    rateLimits: (row.rateLimits ?? []) as unknown as RateLimitWindow[],
    quota: (row.quota ?? null) as unknown as Quota | null,
    entitlements: row.entitlements,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export class Plans {
  constructor(private readonly rt: Runtime) {}

  /** Creates or replaces a plan. Every org on it sees the change on its keys' next request. */
  async upsert(input: PlanInput, options: { actor?: Actor } = {}): Promise<Plan> {
    const parsed = parseInput(planSchema, input, "plan");
    const scopes = normalizeScopes(parsed.scopes ?? [], "plan.scopes");
    const entitlements = [...new Set(parsed.entitlements ?? [])].sort();
    const data = {
      name: parsed.name,
      scopes,
      rateLimits: (parsed.rateLimits ?? []) as Prisma.InputJsonValue,
      quota: parsed.quota ? (parsed.quota as Prisma.InputJsonValue) : Prisma.DbNull,
      entitlements,
    };
    const quota = parsed.quota ?? null;
    const row = await guard(() =>
      this.rt.prisma.$transaction(async (tx) => {
        const plan = await tx.plan.upsert({
          where: { id: parsed.id },
          create: { id: parsed.id, ...data },
          update: data,
        });
        await writeAudit(tx, {
          action: "plan.upserted",
          actor: options.actor ?? SYSTEM_ACTOR,
          details: { planId: plan.id, scopes, entitlements, rateLimits: parsed.rateLimits ?? [], quota },
          at: new Date(this.rt.now()),
        });
        return plan;
      }),
    );
    await this.rt.bus.publish({ kind: "plan", id: row.id });
    return toPlan(row);
  }

  async get(id: string): Promise<Plan> {
    const planId = idOrNotFound(id, "No such plan.");
    const row = await guard(() => this.rt.prisma.plan.findUnique({ where: { id: planId } }));
    if (row === null) throw new FluxError("not_found", { detail: "No such plan." });
    return toPlan(row);
  }

  async list(): Promise<Plan[]> {
    const rows = await guard(() => this.rt.prisma.plan.findMany({ orderBy: { id: "asc" } }));
    return rows.map(toPlan);
  }
}
